"""Validation of saved checkpoints: one forward pass per split, the NC metric engine, and the
info files. Every validator of the project goes through ``validate_run``.

Per checkpoint: load the state dict, run the model in eval mode under inference_mode over the
un-augmented training set and the test set once each, keeping the input of every head layer
(layer 0 = the backbone features h, layer l = the input of head layer l), the logits and the
labels; then the recipe's metrics (``BALANCED_METRICS``, or the imbalanced validator's) are
computed from those tensors by ``nc_statistics`` / ``nc_measures`` and appended to ``info.pkl``
/ ``info.json`` (``info_files``), which are rewritten atomically after every epoch, so a crash
never loses finished epochs or leaves half a file.

Head-layer products: with head weights A_0, ..., A_{M-1} (A_{M-1} the classifier), the input
x_l of layer l is mapped to the bias-free logits by P_l = A_{M-1} ... A_l; P_0 = W, the full
product that D23's metrics use (NCModel.head_products).
"""
import os
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from nc_repro.batches import BatchLoader
from nc_repro import checkpoints, fileio, info_files, nc_measures, nc_statistics, run_dirs, safe_load, theory
from nc_repro.errors import UsageError
from nc_repro.nc_measures import alignment_error
from nc_repro.training import topk_correct


@dataclass
class FeaturePass:
    layer_inputs: list          # [(N, d_l) float32] inputs of the head layers, backbone first
    logits: torch.Tensor        # (N, K)
    labels: torch.Tensor        # (N,)
    order: torch.Tensor = None  # (N,) row r is the order[r]-th sample of the pass (loader order)

    def accuracy(self):
        top1, top5 = topk_correct(self.logits, self.labels)
        n = len(self.labels)
        return 100 * float(top1) / n, 100 * float(top5) / n


def feature_pass(model, data, batch_size, device):
    """Eval-mode forward over an ImageSet (no augmentation); results grouped by class."""
    model.eval()
    layers = model.head_layers()
    inputs = [[] for _ in layers]
    logits, labels = [], []
    with torch.inference_mode():
        for images, targets in BatchLoader(data, batch_size):
            x = model.features(images.to(device))
            for index, layer in enumerate(layers):
                inputs[index].append(x.float().cpu())
                x = layer(x)
            logits.append(x.float().cpu())
            labels.append(targets.cpu())
    labels = torch.cat(labels)
    order = torch.argsort(labels, stable=True)      # grouped by class: the engine's fast path
    return FeaturePass([torch.cat(chunks)[order] for chunks in inputs], torch.cat(logits)[order],
                       labels[order], order)


def accuracies(train, test):
    """train_acc1/5 and test_acc1/5 in percent (the originals' keys)."""
    (train_acc1, train_acc5), (test_acc1, test_acc5) = train.accuracy(), test.accuracy()
    return {'train_acc1': train_acc1, 'train_acc5': train_acc5,
            'test_acc1': test_acc1, 'test_acc5': test_acc5}


def statistics(features, labels, num_classes):
    return nc_statistics.ClassStatistics.from_features(features, labels, num_classes)


# ----------------------------------------------------------------------------------------
# per-recipe metrics: each returns a flat dict of per-epoch values under the paper's keys

def zhou_metrics(model, train, test, num_classes, conventions):
    """J's info.pkl entries (as J's validate_NC.py computes and pickles them), plus NC1 as coded, NC4 as Papyan's NCC
    mismatch, and the class-mean ETF error."""
    W = model.head_layers()[-1].weight.detach().double().cpu()                # (K, d)
    b = model.classifier_bias()
    h = train.layer_inputs[0]
    stats = statistics(h, train.labels, num_classes)
    mu_G = stats.global_mean(conventions)
    nc1 = nc_measures.nc1(stats, conventions)
    margins = nc_measures.cosine_margins(h, train.labels, W, mu_G, conventions)
    test_mu_G = test.layer_inputs[0].double().mean(0)
    frame = nc_measures.frame_measures(stats, W, conventions)                # W centred (J)
    return {
        'collapse_metric': nc1['nc1'],
        'collapse_metric_as_coded': nc1['nc1_as_coded'],
        'ETF_metric': frame['NC2_ETF_W'],                                       # NC2
        'WH_relation_metric': frame['NC3_ETF_WH'],                              # NC3
        'Wh_b_relation_metric': nc_measures.bias_relation(W, b, mu_G),
        'avg_cos_margin': float(margins.mean()),
        'all_cos_margin': np.sort(margins.float().numpy()),
        'W': W.float().numpy(), 'b': b.float().numpy(),
        'mu_G_train': mu_G.float().numpy(), 'mu_G_test': test_mu_G.float().numpy(),
        **accuracies(train, test),
        'NC2_means_ETF': frame['NC2_ETF_H'],
        'NC4_ncc_mismatch': nc_measures.ncc_mismatch_count(
            h, train.logits.argmax(1), stats.class_means) / len(train.labels),
    }


def over_head_layers(model, train, num_classes, layer_measures):
    """Apply ``layer_measures(stats, product)`` to the input of every head layer (layer 0 = the
    backbone features) against its product P_l. Returns (per_layer: {key: [value per layer]},
    the backbone's measures, the backbone's ClassStatistics)."""
    per_layer, backbone = {}, None
    for features, product in zip(train.layer_inputs, model.head_products()):
        stats = statistics(features, train.labels, num_classes)
        layer = layer_measures(stats, product)
        backbone = backbone or (layer, stats)
        for key, value in layer.items():
            per_layer.setdefault(key, []).append(value)
    return per_layer, backbone[0], backbone[1]


def dang_layer_measures(stats, product, conventions):
    """D23's metrics of one head layer's input x_l against P_l, as the 2023 validator measures each head layer
    (nc_measures.frame_measures, its ETF and orthogonal-frame keys); NC1 both exact and as the
    original computed it (float32 Sigma_B, SciPy's pinv rule)."""
    nc1 = nc_measures.nc1(stats, conventions)
    frame = nc_measures.frame_measures(stats, product, conventions)
    return {'NC1_collapse_metric': nc1['nc1'], 'NC1_collapse_metric_as_coded': nc1['nc1_as_coded'],
            **{key: frame[key] for key in D23_FRAME_KEYS}}


D23_FRAME_KEYS = ('NC2_ETF_W', 'NC2_Identity_W', 'NC2_ETF_H', 'NC2_Identity_H', 'NC3_ETF_WH',
                  'NC3_Identity_WH', 'NC3_W_sub_H', 'NC3_W_sub_H_centered')


def dang_balanced_metrics(model, train, test, num_classes, conventions):
    """D23 validate_NC.py's info_dict keys at the backbone, plus the same
    metrics at every head layer under ``per_layer`` (the original computed and dropped them).
    Both NC2 variants are filled every epoch (the original filled one of them per --no-bias; docs/original_code.md, D23-B6)."""
    per_layer, backbone, backbone_stats = over_head_layers(
        model, train, num_classes, lambda stats, product: dang_layer_measures(stats, product, conventions))
    mu_G = backbone_stats.global_mean(conventions)
    metrics = {key: backbone[key] for key in ('NC1_collapse_metric', 'NC1_collapse_metric_as_coded',
                                              'NC2_ETF_W', 'NC2_Identity_W', 'NC2_ETF_H',
                                              'NC3_ETF_WH', 'NC3_W_sub_H')}
    metrics.update({
        'W': model.head_layers()[-1].weight.detach().float().cpu().numpy(),
        'b': model.classifier_bias().float().numpy(),
        'H': (backbone_stats.class_means - mu_G).T.float().numpy(),
        'mu_G_train': mu_G.float().numpy(),
        **accuracies(train, test),
        'NC4_ncc_mismatch': nc_measures.ncc_mismatch_count(
            train.layer_inputs[0], train.logits.argmax(1), backbone_stats.class_means) / len(train.labels),
        'per_layer': per_layer,
    })
    return metrics


def d23_theory_measures(stats, product, geometry):
    """D23's validate_NC_unbalanced.py measures of one layer against the closed-form targets of
    theory.d23_geometry (t = s^{2M}, c = t + N lambda_H, r), with W = product and U the uncentred
    class means: NC2_W, NC2_H, NC3_WH, NC3_W_sub_H, NC3_W_div_H."""
    t, c, r = (torch.from_numpy(np.asarray(geometry[key], dtype=np.float64)).double()
               for key in ('t', 'c', 'W_div_H'))
    # the general-orthogonal-frame targets of Dang 2023's imbalanced theorem (diagonal Grams; docs/papers.md)
    U = stats.class_means.T                                                      # (d, K)
    return {'NC2_W': alignment_error(product @ product.T, torch.diag(t)),
            'NC2_H': alignment_error(U.T @ U, torch.diag(t / c ** 2)),
            'NC3_WH': alignment_error(product @ U, torch.diag(t / c)),
            'NC3_W_sub_H': alignment_error(product, torch.diag(c) @ U.T),
            'NC3_W_div_H': nc_measures.length_ratio_error(product, U, r)}


def dang_imbalanced_metrics(model, train, test, num_classes, conventions, geometry, as_coded_geometry):
    """D23 validate_NC_unbalanced.py against the closed form: NC1, then NC2_W, NC2_H, NC3_WH,
    NC3_W_sub_H, NC3_W_div_H (d23_theory_measures) against the global minimiser (``geometry``,
    theory rule 'global') and, under the same keys with the suffix ``_as_coded``, against the
    original's largest root (``as_coded_geometry``; the two differ only where
    docs/original_code.md, D23-B21 says); the same measures of every head layer's input under per_layer."""
    def measures(stats, product):
        nc1 = nc_measures.nc1(stats, conventions)
        values = {'NC1_collapse_metric': nc1['nc1'], 'NC1_collapse_metric_as_coded': nc1['nc1_as_coded']}
        values.update(d23_theory_measures(stats, product, geometry))
        values.update({key + '_as_coded': value
                       for key, value in d23_theory_measures(stats, product, as_coded_geometry).items()})
        return values

    per_layer, backbone, stats = over_head_layers(model, train, num_classes, measures)
    W = model.head_products()[0]
    return dict(backbone, class_mean_norms=torch.linalg.norm(stats.class_means, dim=1).numpy(),
                classifier_row_norms=torch.linalg.norm(W, dim=1).numpy(),
                **accuracies(train, test), per_layer=per_layer,
                **per_class_measures(stats, W, train.layer_inputs[0], train.labels, train.logits.argmax(1),
                                     conventions))


def per_class_measures(stats, W, features, labels, decisions, conventions, chunk=8192):
    """Each class's values for the imbalanced validators' new info keys (docs/metrics.md,
    per-class results): ``per_class`` {name: (K,) array} with each class's NC1 contribution
    (summing to the exact NC1), mean CDNV to the other classes, duality cosine, centred-mean
    norm and NCC mismatch (against the network's decisions), and ``CDNV_matrix`` (K, K)."""
    Vt, s, keep, divisor, _ = nc_measures.nc1_directions(stats, conventions)
    sample_pass = nc_statistics.SamplePass(stats._mean_rows(), stats.present,
                                         Vt[keep] / s[keep, None] / (stats.num_samples * divisor) ** 0.5)
    for start in range(0, len(labels), chunk):
        sample_pass.update(features[start:start + chunk], labels[start:start + chunk],
                           decisions[start:start + chunk])
    mismatch, _, counts, spread = (t[stats.present] for t in sample_pass.tensors())
    centred = nc_measures.centred_means(stats, conventions)
    pairs = nc_measures.pairwise_measures(centred, stats.class_variances, matrix=True)
    rows = nc_measures.classifier_rows(W, conventions)[stats.present]
    per_class = {'nc1_contribution': spread, 'cdnv_row_mean': pairs['cdnv'] / (stats.num_present - 1),
                 'duality_cosine': nc_measures.duality_cosines(rows, centred),
                 'centred_mean_norm': torch.linalg.norm(centred, dim=1), 'ncc_mismatch': mismatch / counts}
    return {'per_class': {key: value.numpy() for key, value in per_class.items()},
            'CDNV_matrix': pairs['cdnv_matrix'].numpy()}


D24_VALIDATION_BATCH = 64    # the 2024 validator's fixed batch size, train and test


def stale_feature_rows(train, test, batch=D24_VALIDATION_BATCH):
    """The 2024 validator's stale pairing (see docs/original_code.md): its test pass never
    emptied the feature hook, so the first batch of its Sigma_W pass over the training set
    read the first *test* batch's features and paired them with that training batch's labels.
    Returns (seen, replaced, labels) for nc_measures.nc1's sigma_w_swap: the first ``batch``
    test features in loader order, the training features they displaced, and the labels."""
    m = min(batch, len(train.labels), len(test.labels))
    train_rows = torch.argsort(train.order)[:m]       # rows of the first m samples in loader order
    test_rows = torch.argsort(test.order)[:m]
    return (test.layer_inputs[0][test_rows], train.layer_inputs[0][train_rows],
            train.labels[train_rows])


def dang2024_metrics(model, train, test, num_classes, conventions, targets, counts, run_dir,
                     stale_features=False):
    """The 2024 validator (D24's validate_NC_unbalanced.py): NC1, and with U the uncentred class means of the
    (ReLU) features and W the full product: NC2_H (ReLU(U)^T ReLU(U) vs diag(d)), NC2_W (W vs
    S), NC2_WWT (W W^T vs T), NC3_WH (W U vs Q). Also writes its CSV matrices (HTH, ReLU_HTH,
    W, ReLU_H, WTW = W W^T, WH), overwritten at every checkpoint as the original.
    NC1 is exact (``NC1``) and as the original computed it (``NC1_as_coded``: float32 Sigma_B,
    SciPy's pinv rule); stale_features=True (--nc1_stale_features) puts the original's stale
    first Sigma_W batch (stale_feature_rows) into the as-coded value."""
    W = model.head_products()[0]                                                  # (K, d)
    stats = statistics(train.layer_inputs[0], train.labels, num_classes)
    U = stats.class_means.T                                                      # (d, K)
    relu = torch.relu(U)
    S = torch.from_numpy(theory.d24_classifier_target(stats.class_means.numpy(), counts))
    matrices = {'HTH': U.T @ U, 'ReLU_HTH': relu.T @ relu, 'W': W, 'ReLU_H': relu,
                'WTW': W @ W.T, 'WH': W @ U}
    for name, matrix in matrices.items():
        fileio.atomic_write(os.path.join(run_dir, name + '.csv'),
                                 lambda f, values=matrix.numpy(): np.savetxt(f, values, delimiter=','))
    swap = stale_feature_rows(train, test) if stale_features else None
    nc1 = nc_measures.nc1(stats, conventions, sigma_w_swap=swap)
    return {'NC1': nc1['nc1'], 'NC1_as_coded': nc1['nc1_as_coded'],
            'NC2_W': alignment_error(W, S),
            'NC2_WWT': alignment_error(W @ W.T, torch.from_numpy(targets['WWT'])),
            'NC2_H': alignment_error(relu.T @ relu, torch.diag(torch.from_numpy(targets['HTH_diag']))),
            'NC3_WH': alignment_error(W @ U, torch.from_numpy(targets['WH'])),
            'class_mean_norms': torch.linalg.norm(U, dim=0).numpy(),
            'classifier_row_norms': torch.linalg.norm(W, dim=1).numpy(),
            **accuracies(train, test),
            **per_class_measures(stats, W, train.layer_inputs[0], train.labels, train.logits.argmax(1), conventions)}


# the balanced validators' measures, by Recipe.validation_metrics
BALANCED_METRICS = {'zhou': zhou_metrics, 'dang': dang_balanced_metrics}


# ----------------------------------------------------------------------------------------
# the loop over checkpoints

@dataclass(frozen=True)
class EpochChoice:
    """Which saved epochs a validator reads: ``epoch_list`` (--epoch_list), else the epochs
    1..``epochs`` that the run saved, thinned by ``every`` (the last one always kept); ``wait``
    seconds for epochs not saved yet; ``save_every`` the recipe's checkpoint cadence;
    ``missing_hint`` completes the error for a missing run folder (the flags that name it).
    args.epoch_choice builds it from a validator's flags."""
    epochs: int
    epoch_list: tuple = ()
    every: int = 1
    wait: float = 0
    save_every: int = 1
    missing_hint: str = ''


def select_epochs(run_dir, choice, poll_seconds=5.0):
    """Epochs to validate (EpochChoice). A missing file is reported by name. With ``wait`` S,
    every epoch 1..``epochs`` that the recipe saves (every ``save_every`` and the last,
    checkpoints.is_saved_epoch) or of ``epoch_list`` is awaited for at most S seconds, for a
    validator started beside its training run."""
    deadline = time.time() + choice.wait
    while True:
        try:
            return _select_epochs(run_dir, choice)
        except UsageError as error:
            remaining = deadline - time.time()
            if remaining <= 0:
                if choice.wait:
                    raise UsageError('%s (after waiting %gs)' % (error, choice.wait))
                raise
            time.sleep(min(poll_seconds, remaining))


def _select_epochs(run_dir, choice):
    if not os.path.isdir(run_dir):
        raise UsageError('run folder %s does not exist; check the flags that name it %s' % (run_dir, choice.missing_hint))
    saved = checkpoints.saved_epochs(run_dir)
    if choice.epoch_list:
        wanted = list(choice.epoch_list)
    elif choice.wait:
        wanted = [e for e in range(1, choice.epochs + 1) if checkpoints.is_saved_epoch(e, choice.epochs, choice.save_every)]
    else:
        wanted = [e for e in saved if e <= choice.epochs]
        if not wanted:
            raise UsageError('no checkpoint epoch_XXX.pth for epochs 1..%d in %s; train first or fix --epochs'
                             % (choice.epochs, run_dir))
        wanted = [e for i, e in enumerate(wanted) if i % choice.every == 0 or e == wanted[-1]]
    missing = [e for e in wanted if e not in saved]
    if missing:
        raise UsageError('%s is missing; train that epoch first or drop it from --epoch_list/--epochs'
                         % checkpoints.checkpoint_path(run_dir, missing[0]))
    return wanted


class UnreadableCheckpoint(Exception):
    pass


def load_checkpoint(model, path, device):
    """Load a state dict, in the project's key layout or the original code's (renamed by
    checkpoints.to_project_layout). An unreadable (truncated, corrupt) file raises
    UnreadableCheckpoint; one that asks to run code is refused (safe_load.UnsafeFile); a key of neither layout is a UsageError naming it and the file; a
    file that does not fit the model is a UsageError naming the flags to check."""
    try:
        state = checkpoints.load_state_dict(path, device)
    except safe_load.UnsafeFile:
        raise
    except Exception as error:   # truncated or corrupt files raise many types in torch.load
        raise UnreadableCheckpoint('%s cannot be read (%s); skipped' % (path, type(error).__name__))
    try:
        state = checkpoints.to_project_layout(state, model, path)
    except checkpoints.ForeignKey as error:
        raise UsageError('%s; use the training flags (--model, --width, --depth*, --no-bias, '
                         '--fixdim, --SOTA, --ETF_fc)' % error)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = [line.strip() for line in str(error).splitlines() if line.strip()][1:2]
        raise UsageError('%s does not fit the model built from the flags (%s); use the training '
                         'flags (--model, --width, --depth*, --no-bias, --fixdim, --SOTA, --ETF_fc)'
                         % (path, first[0][:150] if first else 'shape mismatch'))


def validate_run(model, data, run_dir, device, choice, batch_size, recipe_metrics, conventions, keys=()):
    """Validate every epoch of run_dir that ``choice`` (EpochChoice) selects; info files
    rewritten after each epoch. ``keys``: the paper's info keys, created first and in the
    paper's order. The checkpoints are one run's:
    if the folder's run id (run.json) changes while validating (a restart or --force), the
    validator stops with one line instead of mixing two runs."""
    epochs = select_epochs(run_dir, choice)
    identity = run_dirs.run_id(run_dir)
    for epoch in epochs:      # flags that do not fit the run fail here, before any output
        try:
            load_checkpoint(model, checkpoints.checkpoint_path(run_dir, epoch), device)
            break
        except UnreadableCheckpoint:
            continue
    info, test_log, skipped = {key: [] for key in keys}, [], []
    for epoch in tqdm(epochs, desc='validate', unit='ckpt', dynamic_ncols=True):
        start = time.time()
        try:
            load_checkpoint(model, checkpoints.checkpoint_path(run_dir, epoch), device)
        except UnreadableCheckpoint as error:
            tqdm.write('warning: %s' % error)
            skipped.append(epoch)
            continue
        train = feature_pass(model, data.train, batch_size, device)
        test = feature_pass(model, data.test, batch_size, device)
        if run_dirs.run_id(run_dir) != identity:
            raise UsageError('%s was restarted by a trainer while being validated (its run.json changed); '
                             'validate again once that run has saved its checkpoints' % run_dir)
        metrics = recipe_metrics(model, train, test, data.num_classes, conventions)
        metrics = info_files.record_undefined(info, epoch, metrics, train)
        info_files.append_epoch(info, epoch, metrics)
        info_files.write_info(run_dir, info)
        line = ('[epoch: %d] | train top1: %.4f | train top5: %.4f | test top1: %.4f | test top5: %.4f '
                % (epoch, metrics['train_acc1'], metrics['train_acc5'], metrics['test_acc1'],
                   metrics['test_acc5']))
        test_log.append(line)
        fileio.atomic_write_text(os.path.join(run_dir, 'test_log.txt'), '\n'.join(test_log) + '\n')
        tqdm.write(line + '| %.1fs' % (time.time() - start))
    if skipped:
        print('skipped unreadable checkpoints of epochs %s' % skipped)
    if not info.get('epoch'):
        raise UsageError('no readable checkpoint among epochs %s of %s' % (epochs, run_dir))
    return info
