"""What the Hong & Ling 2023 training scripts share (block_main, minority_l_main,
minority_n_main, limit_main): flags, the rendered imbalanced data, one trained model per
setting through the project's training loop, and the analysis of Hong's ana_utils.py and main scripts.

Training as the code does it (Hong's train_utils.py loops): SGD(lr 0.01, momentum 0.9, weight decay 5e-4 for
block_main and limit_main, 0 for the minority scripts), batch 128 reshuffled every epoch, loss
CE + lambda_W ||W||^2 + lambda_b ||b||^2 + lambda_H (N/|B|) sum_B ||h||^2 (losses.HongObjective).
The loops are passed lr 0.1 while the optimiser starts at 0.01, so the printed "divide the
learning rate by 10" changes nothing the first time: the effective lr is 0.01, then 0.001 from
the second milestone on (``effective_lr_factor``). The minority scripts' warm phase divides
lambda_H and lambda_W by 10 for the first int(E/6) epochs (it prints "larger").

Offline stand-in (not in the reference): ``--dataset_t digits`` has at most about 175 images per
class (train and test together), so every class count of a script is multiplied by
s = 100 / (largest count of the script), and the nuclear-norm level l by 1/sqrt(s). Every
threshold of the theory (docs/papers.md, Hong & Ling 2023) is sqrt(n)/N up to constants, so it moves by the same 1/sqrt(s): the
transitions stay at the same place relative to the sweep.

``--quick`` (offline, finishes in seconds per model on a CPU; any other flag given explicitly
wins):
  * data: digits (as above), always;
  * network: ``MLP`` (models.hong_mlp.HongMLP, not in the reference): the 32x32 digit is
    4x4 average-pooled back to its native 8x8 (64 inputs), two hidden ReLU layers of 128 units,
    the second one's output is the feature h, then a linear classifier with bias, as the
    ResNet18 head (``--network ResNet18 --quick`` still gives the old ResNet18 of base width 8);
  * 300 epochs (600 for block_main), SGD lr 0.05 (instead of 0.01; momentum 0.9 and the
    scripts' weight decay unchanged), batch 128, the original milestone rule for the lr drop to
    a tenth and for the warm phase (so 0.05 -> 0.005);
  * one thread for torch and for numpy's BLAS (the matrices are tiny: several threads only
    spin-wait);
  * the sweep scripts' own quick values (each script's docstring): points kept away from the
    thresholds so that "collapsed" and "not collapsed" are told apart at this scale.
These take the network to its terminal phase (training accuracy 100 % where no collapse is
predicted, NC1 falling by orders of magnitude) in 300 epochs; a ResNet18 of width 8 for 40
epochs did not get there.

Every script writes a JSON record next to its figures (keys in each script's docstring).
"""
import json
import math
import os
from dataclasses import dataclass

import numpy as np
import torch

import datasets
import models
from nc_repro import checkpoints, convex_ufm, losses, nc_curves, nc_measures, nc_statistics, recipes, safe_load, theory, training
import args as cli
from args import Parser, add_output_root, output_path
from nc_repro.errors import UsageError
from nc_repro.fileio import atomic_write, atomic_write_text, write_json
from nc_repro.validation import feature_pass
from plots import hong_figures as plot_hong

NUM_CLASSES = 10
BATCH_SIZE = 128
LEARNING_RATE = 0.01          # what build_model gives SGD; the loops' "lr = 0.1" never takes effect
MOMENTUM = 0.9
DIGITS_MAX_COUNT = 100
PAPER_WIDTH = 64
SWEEP_SEED = 666
# --quick (not in the reference); an explicitly given flag overrides its entry
QUICK = {'dataset_t': 'digits', 'network': 'MLP', 'width': 128, 'depth': 2, 'pool': 4,
         'epoch': 300, 'lr': 0.05, 'batch_size': BATCH_SIZE, 'threads': 1}
QUICK_EPOCHS, QUICK_MLP_WIDTH = QUICK['epoch'], QUICK['width']
QUICK_WIDTH = 8               # ResNet18 base width with --quick --network ResNet18
MLP_WIDTH, MLP_DEPTH = 128, 2  # --network MLP defaults without --quick
QUICK_HELP = ('offline check that reaches the terminal phase in seconds per model: digits, '
              'MLP (4x4-pooled input, 2 hidden ReLU layers of 128), %%d epochs, SGD lr %g '
              '(milestones as the original), batch %d, 1 thread' % (QUICK['lr'], QUICK['batch_size']))


def get_common_parser(description, paper_epochs, quick_extra='', quick_epochs=QUICK['epoch']):
    parser = Parser(description=description)
    parser.add_argument('--dataset_t', type=str, default=None,
                        help='cifar10 (default) or fashion_mnist (digits: offline)')
    parser.add_argument('--network', type=str, default=None,
                        help='ResNet18 (default), VGG11, VGG13, ResNet18_bf; MLP (not in the reference)')
    parser.add_argument('--reg_b', type=float, default=0.01, help='lambda_b, the ridge on the classifier bias')
    parser.add_argument('--epoch', type=int, default=None,
                        help='epochs per model (default %d; %d with --quick)' % (paper_epochs, quick_epochs))
    parser.set_defaults(paper_epochs=paper_epochs, quick_epochs=quick_epochs)
    extra = parser.add_argument_group('not in the reference')
    add_output_root(extra)
    extra.add_argument('--data_dir', type=str, default=None,
                       help='torchvision root (default <output_root>/data/; the original: data/)')
    extra.add_argument('--device', type=str, default='auto', help='auto (CUDA when present), cpu, cuda:1, ...')
    extra.add_argument('--gpu_id', type=int, default=0)
    extra.add_argument('--width', type=int, default=None,
                       help='ResNet18 base width (default 64 = the paper; %d with --quick) or MLP hidden '
                            'width (default %d)' % (QUICK_WIDTH, MLP_WIDTH))
    extra.add_argument('--depth', type=int, default=None,
                       help='MLP: number of hidden ReLU layers (default %d)' % MLP_DEPTH)
    extra.add_argument('--pool', type=int, default=None,
                       help='MLP: average-pool the image by this factor before flattening (default 1; '
                            '%d with --quick)' % QUICK['pool'])
    extra.add_argument('--lr', type=float, default=None,
                       help='initial SGD learning rate (default %g as the original; %g with --quick)'
                            % (LEARNING_RATE, QUICK['lr']))
    extra.add_argument('--batch_size', type=int, default=None, help='default %d' % BATCH_SIZE)
    extra.add_argument('--threads', type=int, default=None,
                       help="torch threads (default: torch's choice; %d with --quick)" % QUICK['threads'])
    cli.add_nc_curve_flags(extra)
    extra.add_argument('--quick', action='store_true', help=(QUICK_HELP % quick_epochs).replace('%', '%%') + quick_extra)
    return parser


PAPER_DEFAULTS = {'dataset_t': 'cifar10', 'network': 'ResNet18', 'pool': 1, 'lr': LEARNING_RATE,
                  'batch_size': BATCH_SIZE, 'threads': 0}


def parse(parser, argv=None):
    """Flags, with --quick applied, checked up front (one-line errors)."""
    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = output_path(args, 'data')
    if args.quick:
        args.dataset_t = 'digits'         # --quick is the offline check, whatever --dataset_t says
    for key, paper in PAPER_DEFAULTS.items():
        if getattr(args, key) is None:
            quick = args.quick and (key != 'pool' or args.network == 'MLP')   # pooling is an MLP option
            setattr(args, key, QUICK[key] if quick else paper)
    if args.width is None:
        if args.network == 'MLP':
            args.width = QUICK['width'] if args.quick else MLP_WIDTH
        else:
            args.width = QUICK_WIDTH if args.quick else PAPER_WIDTH
    if args.depth is None:
        args.depth = QUICK['depth'] if args.quick else MLP_DEPTH
    if args.epoch is None:
        args.epoch = args.quick_epochs if args.quick else args.paper_epochs
    if args.epoch < 1:
        parser.error('--epoch must be at least 1 (got %d)' % args.epoch)
    if args.dataset_t not in datasets.HONG_DATASETS:
        parser.error('--dataset_t %s is not known; choose cifar10, fashion_mnist or digits (offline)' % args.dataset_t)
    if args.network not in models.HONG_NAMES:
        parser.error('--network %s is not known; choose one of %s' % (args.network, ', '.join(models.HONG_NAMES)))
    for flag in ('width', 'depth', 'pool', 'batch_size'):
        if getattr(args, flag) < 1:
            parser.error('--%s must be at least 1 (got %d)' % (flag, getattr(args, flag)))
    if args.pool > 1 and args.network != 'MLP':
        parser.error('--pool is an MLP option (got --network %s)' % args.network)
    if 32 % args.pool:
        parser.error('--pool must divide the image size 32 (got %d)' % args.pool)
    if args.threads < 0:
        parser.error('--threads must be zero (torch default) or positive (got %d)' % args.threads)
    if not 0 < args.lr < math.inf:
        parser.error('--lr must be positive (got %s)' % args.lr)
    if not 0 <= args.reg_b < math.inf:
        parser.error('--reg_b must be zero or positive (got %s)' % args.reg_b)
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)             # numpy / scipy BLAS too (NC1's eigh)
    return args


def describe_settings(args, echo=True):
    """One line with the settings that differ between --quick and the paper, printed first."""
    network = args.network
    if network == 'MLP':
        network += ' (width %d, depth %d, input pooled %dx%d)' % (args.width, args.depth, args.pool, args.pool)
    elif network.startswith('ResNet'):
        network += ' (base width %d)' % args.width
    line = '%s: dataset %s, network %s, %d epochs, SGD lr %g, batch %d, torch threads %s' % (
        'quick' if args.quick else 'settings', args.dataset_t, network, args.epoch, args.lr,
        args.batch_size, args.threads or torch.get_num_threads())
    if echo:
        print(line)
    return line


def check_counts(flag, values, minimum=1):
    for value in values:
        if not minimum <= value < math.inf:
            raise UsageError('%s values must be at least %s (got %s)' % (flag, minimum, value))


def check_two_clusters(ka):
    """Majority classes 0..ka-1 and at least two minority classes (the minority block)."""
    if not 1 <= ka <= NUM_CLASSES - 2:
        raise UsageError('--ka must be between 1 and %d so that at least two minority classes remain '
                         '(got %d)' % (NUM_CLASSES - 2, ka))


def check_levels(flag, values):
    for value in values:
        if not 0 < value < math.inf:
            raise UsageError('%s values must be positive (got %s)' % (flag, value))


# ----------------------------------------------------------------------------------------
# class counts, names and the offline rescaling

def two_cluster_counts(ka, na, nb):
    """minority_l / minority_n / limit (the class patterns of Hong's scripts): classes 0..ka-1 get na, the rest nb."""
    return [na] * ka + [nb] * (NUM_CLASSES - ka)


def offline_scale(args, all_counts):
    """s = DIGITS_MAX_COUNT / (largest count the script asks for) on digits, else 1."""
    if args.dataset_t != 'digits':
        return 1.0
    return min(1.0, DIGITS_MAX_COUNT / max(max(counts) for counts in all_counts))


def scaled_counts(counts, scale):
    """Counts times s, rounded, at least 2 per class (a class of one sample breaks the class
    mean in the original, docs/original_code.md, Hong-B14)."""
    if scale == 1.0:
        return [int(round(c)) for c in counts]
    return [max(2, int(round(c * scale))) for c in counts]


def announce_scale(scale):
    if scale != 1.0:
        print('digits (offline): class counts x %.4g and l / sqrt(%.4g) = l x %.4g, so every '
              'threshold keeps its place relative to the sweep' % (scale, scale, 1 / math.sqrt(scale)))


def dataset_suffix(args):
    """'' for cifar10 (the original folder names), else '_<dataset>' (the original's folders and
    caches did not name the dataset, Hong-B8), plus ``network_suffix``."""
    suffix = '' if args.dataset_t == 'cifar10' else '_' + args.dataset_t
    return suffix + network_suffix(args)


def network_suffix(args):
    """'_width=<k>' for a non-paper ResNet width; '_width=<w>_depth=<d>[_pool=<p>]' for the MLP."""
    if args.network == 'MLP':
        return '_width=%d_depth=%d%s' % (args.width, args.depth, '_pool=%d' % args.pool if args.pool > 1 else '')
    if args.width != PAPER_WIDTH and args.network.startswith('ResNet'):
        return '_width=%d' % args.width
    return ''


def name_number(value):
    """Numbers in folder names as the original's str(): 0.0030 -> 0.003, 2.0 -> 2.0, 2 -> 2."""
    return str(value)


def ensure_dir(path):
    os.makedirs(path, exist_ok=True)
    return path


# ----------------------------------------------------------------------------------------
# data and training

def rendered_data(args, counts, cache_stem, device):
    """The imbalanced training set (train split first, test split to top up, as Hong's utils.save_train_data) on the
    device. Indices are cached in <output_root>/data/<stem>_<dataset>.pt and reused only for the same request."""
    bundle = datasets.hong_dataset(args.dataset_t, args.data_dir)
    cache = os.path.join(ensure_dir(output_path(args, 'data')), '%s_%s.pt' % (cache_stem, args.dataset_t))
    data = datasets.hong_training_set(bundle, counts, cache)
    found = torch.bincount(data.labels, minlength=NUM_CLASSES).tolist()
    print('class counts: %s (N = %d)' % (found, sum(found)))
    return data.to(device)


def effective_lr_factor(loop, epochs):
    """epoch index (0-based) -> lr / 0.01, as the original loops set it (Hong's train_utils.py).

    'batch' (simple_train_batch, block_main) and 'batch_2' (limit_main) set lr/10 at epoch
    int(E/6) and, in an elif, lr/100 at int(E/3); 'warm' (minority scripts) at int(E/3) and
    int(2E/3). lr/10 = 0.01 is the starting value, so only the second milestone matters, and
    it never fires when both milestones coincide (E < 3, or E < 2 for 'warm')."""
    first, second = (int(epochs / 3), int(2 * epochs / 3)) if loop == 'warm' else (int(epochs / 6), int(epochs / 3))
    return lambda epoch: 0.1 if epoch >= second and second != first else 1.0


def build_network(args, in_channels, device):
    return models.build_hong_model(args.network, in_channels, NUM_CLASSES, args.width, args.depth,
                                   args.pool).to(device)


def train_model(args, data, lambdas, weight_decay, loop, save_dir, save_rule, checkpoint_file, device):
    """One model for one setting through training.fit, or the one already trained there.

    The model is built first, as the original does, so a skipped setting still draws its
    initialisation from the RNG and later settings get the same weights as in a full run.
    A folder trained with other settings is an error rather than silently reused (the original
    reused anything with the right file name); an interrupted run with the same settings resumes."""
    model = build_network(args, data.images.shape[1], device)
    loader_seed = int(torch.randint(0, 2 ** 62, (1,)))       # from the global RNG, as the shuffles were
    settings = {'dataset_t': args.dataset_t, 'network': args.network, 'width': args.width,
                'epoch': args.epoch, 'counts': torch.bincount(data.labels.cpu(), minlength=NUM_CLASSES).tolist(),
                'lambda_H': lambdas[0], 'lambda_W': lambdas[1], 'lambda_b': lambdas[2],
                'weight_decay': weight_decay, 'loop': loop}
    # recorded only where they differ from the paper, so folders of earlier runs stay valid
    if args.network == 'MLP':
        settings.update(depth=args.depth, pool=args.pool)
    if args.lr != LEARNING_RATE:
        settings['lr'] = args.lr
    if args.batch_size != BATCH_SIZE:
        settings['batch_size'] = args.batch_size
    settings_path = os.path.join(save_dir, 'settings.json')
    final = checkpoint_file(save_dir, args.epoch)
    if os.path.exists(settings_path):
        with open(settings_path) as f:
            previous = json.load(f)
        if previous != settings:
            changed = sorted(key for key in settings if previous.get(key) != settings[key])
            raise UsageError('%s holds a model trained with other settings (%s differ); delete the '
                             'folder or run elsewhere' % (save_dir, ', '.join(changed)))
    if os.path.exists(final):
        model.load_state_dict(safe_load.load_torch(final, device))
        print('trained model found: %s' % final)
        return model
    ensure_dir(save_dir)
    checkpoints.lock_run_dir(save_dir)           # one writer per folder; training.fit releases it
    atomic_write_text(settings_path, json.dumps(settings, indent=1) + '\n')
    print('lambda_H = %.4g, lambda_W = %.4g, lambda_b = %.4g, weight decay %g -> %s'
          % (lambdas + (weight_decay, save_dir)))
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=MOMENTUM,
                                weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, effective_lr_factor(loop, args.epoch))
    objective = losses.HongObjective(*lambdas, num_train=len(data),
                                     warm_epochs=int(args.epoch / 6) if loop == 'warm' else 0)
    loader = datasets.BatchLoader(data, args.batch_size, shuffle=True, merge_single=True,
                                  generator=torch.Generator().manual_seed(loader_seed))
    curves = nc_curves.make_curves(args.nc_every, args.tensorboard, 'hong2023', run_name=os.path.relpath(save_dir, args.output_root))
    training.fit(model, loader, objective, optimizer, scheduler, save_dir, args.epoch,
                 save_rule=save_rule, checkpoint_file=checkpoint_file,
                 resume=os.path.exists(os.path.join(save_dir, 'resume.pth')), resume_flag=False, curves=curves)
    return model


def final_weights_file(save_dir, epoch):
    """The sweep loops save once, at the end, to <save_dir>/network_weight (Hong's simple_train_batch_warm and _2)."""
    return os.path.join(save_dir, 'network_weight')


def only_final(epoch, epochs):
    return epoch == epochs


def lambdas_for_level(level, reg_b):
    """(lambda_H, lambda_W, lambda_b) = (l/20, 5 l, reg_b), so 2 sqrt(lambda_W lambda_H) = l
    (docs/papers.md, Hong & Ling 2023)."""
    return (level / 20, 5 * level, reg_b)


# ----------------------------------------------------------------------------------------
# analysis (Hong's ana_utils.py and the main scripts)

def class_statistics(model, data, device, with_accuracy=False):
    """Eval-mode features of the rendered training set -> nc_statistics.ClassStatistics (and the
    training accuracy in percent with with_accuracy)."""
    features = feature_pass(model, data, BATCH_SIZE, device)
    stats = nc_statistics.ClassStatistics.from_features(features.layer_inputs[0], features.labels, NUM_CLASSES)
    if not with_accuracy:
        return stats
    accuracy = 100 * float((features.logits.argmax(1) == features.labels).float().mean())
    return stats, accuracy


def hong_nc1(stats):
    """NC1 = tr(Sigma_W pinv(Sigma_B, rcond=1e-10)) / K with Sigma_B weighted by n_k/N (Hong's
    block_main.py), as coded; computed in the span of the class means (nc_measures.nc1)."""
    return nc_measures.nc1(stats, recipes.get('hong2023').conventions)['nc1_as_coded']


def logit_matrix(model, stats):
    """pre = M W^T (K x K, no bias; row k = true class, column j = logit; Hong's block_main.py Z plot)."""
    W = model.head_layers()[-1].weight.detach().double().cpu()
    return (stats.class_means.cpu() @ W.T).numpy()


def count_clusters(counts):
    """Cluster index per class: classes with the same count share a cluster, numbered in the
    order the counts first appear (e.g. [5, 5, 3, 3, 3] -> [0, 0, 1, 1, 1])."""
    order = list(dict.fromkeys(counts))
    return [order.index(c) for c in counts]


def _rms(values):
    values = np.asarray(values, dtype=np.float64)
    return float(np.sqrt(np.mean(values ** 2))) if values.size else 0.0


def block_structure(pre, counts):
    """Not in the reference: how closely the logit matrix pre (rows = true class k, columns =
    logit j) follows the block pattern of the UFM optimum, where pre[k, j] for k != j depends
    only on the pair (cluster of k, cluster of j) and pre[k, k] only on the cluster of k.

    The off-diagonal entries are grouped into blocks (cluster of the row, cluster of the
    column). ``within_rms`` is the root-mean-square deviation of the entries from their block
    mean; ``between_rms`` the root-mean-square deviation of the block means (weighted by the
    number of entries) from the mean of all off-diagonal entries. ``block_contrast`` =
    within_rms / between_rms: near 0 when the blocks are sharp (entries equal within a block,
    different between blocks), about 1 or more for a matrix without blocks. Per cluster c the
    same two spreads are taken over the rows of c only (``per_cluster``). ``within_over_gap``
    = within_rms / (mean diagonal - mean off-diagonal) measures the within-block spread on the
    scale of the logit margin, and the diagonal gets the same within / between split."""
    pre = np.asarray(pre, dtype=np.float64)
    K = len(counts)
    cluster = np.asarray(count_clusters(counts))
    rows, cols = np.nonzero(~np.eye(K, dtype=bool))
    entries = pre[rows, cols]
    block_of = cluster[rows] * (cluster.max() + 1) + cluster[cols]
    block_mean = {b: entries[block_of == b].mean() for b in np.unique(block_of)}
    entry_block_mean = np.array([block_mean[b] for b in block_of])          # each entry's block mean
    deviation = entries - entry_block_mean
    between = entry_block_mean - entries.mean()
    per_cluster = []
    for c in range(cluster.max() + 1):
        mine = cluster[rows] == c
        within_c, between_c = _rms(deviation[mine]), _rms(between[mine] + entries.mean() - entries[mine].mean())
        per_cluster.append({'cluster': c, 'classes': np.flatnonzero(cluster == c).tolist(),
                            'count': int(counts[int(np.flatnonzero(cluster == c)[0])]),
                            'within_rms': within_c, 'between_rms': between_c,
                            'block_contrast': within_c / between_c if between_c > 0 else float('inf')})
    diagonal = np.diag(pre)
    diagonal_cluster_mean = np.array([diagonal[cluster == c].mean() for c in cluster])
    within, between_rms = _rms(deviation), _rms(between)
    gap = float(diagonal.mean() - entries.mean())
    return {'within_rms': within, 'between_rms': between_rms,
            'block_contrast': within / between_rms if between_rms > 0 else float('inf'),
            'within_over_gap': within / gap if gap > 0 else float('inf'), 'logit_gap': gap,
            'diagonal_within_rms': _rms(diagonal - diagonal_cluster_mean),
            'diagonal_between_rms': _rms(diagonal_cluster_mean - diagonal.mean()),
            'per_cluster': per_cluster}


def save_logits(save_dir, pre, bias):
    """z_data.npy (pre, float64) and b_data.npy (b, float32), as the sweep scripts save them."""
    for name, array in (('z_data.npy', pre), ('b_data.npy', bias)):
        atomic_write(os.path.join(save_dir, name), lambda f, array=array: np.save(f, array))
    print('pre = M W^T (rows: class, columns: logit):\n%s\nb = %s' % (np.array2string(pre, precision=4),
                                                                      np.array2string(bias, precision=4)))


def minority_collapse_score(pre, ka, zero=convex_ufm.STRUCTURE_TOL):
    """Not in the reference: the largest distance of a minority class's logit vector (column k
    of pre^T) from the minority mean, relative to the largest logit-vector norm. 0 = the
    minority classes share one logit vector (minority collapse); also 0 when every logit vector
    is below ``zero`` (total collapse, Z = 0), where the ratio would be solver noise."""
    minority = pre[ka:]
    spread = np.linalg.norm(minority - minority.mean(0), axis=1).max()
    largest = np.linalg.norm(pre, axis=1).max()
    return 0.0 if largest < zero else float(spread / largest)


def pairwise_cosines(rows):
    """compute_pairwise_angle: cosines between the rows of a matrix (Hong's ana_utils)."""
    unit = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-300)
    return unit @ unit.T


def cosine_statistics(pre, ka, faithful_b=True):
    """limit_main's A, B, AB (Hong's limit_main.py), cosines between the rows of pre^T (= Z_cvx).
    A: mean over the strict upper triangle of the majority block; AB: mean of the majority x
    minority block; B: the minority block at the strict-upper-triangle indices of size ka, as
    the original (right only for ka = 5, docs/original_code.md, Hong-B6; entries outside the block are left out instead of
    raising), or with faithful_b=False over the minority block's own triangle."""
    cosines = pairwise_cosines(pre.T)
    A = cosines[:ka, :ka][np.triu_indices(ka, 1)].mean()
    minority = cosines[ka:, ka:]
    rows, cols = np.triu_indices(ka if faithful_b else NUM_CLASSES - ka, 1)
    inside = (rows < len(minority)) & (cols < len(minority))
    B = minority[rows[inside], cols[inside]].mean()
    AB = cosines[:ka, ka:].mean()
    return float(A), float(B), float(AB)


# ----------------------------------------------------------------------------------------
# thresholds (theory.py; docs/papers.md, Hong & Ling 2023)

def collapse_prediction(counts, level):
    """What the theory (docs/papers.md, Hong & Ling 2023) predicts at nuclear-norm level l for these class counts, in one line."""
    N = sum(counts)
    sizes = sorted({c for c in counts if counts.count(c) >= 2})
    levels = ', '.join('%.4g (n=%d)' % (theory.hong_within_cluster_threshold(n, N), n) for n in sizes)
    total = theory.hong_total_collapse_threshold(counts)
    collapsed = [n for n in sizes if level >= theory.hong_within_cluster_threshold(n, N)]
    state = ('total collapse (Z = 0)' if level >= total else
             'clusters of size %s collapse' % collapsed if collapsed else 'no cluster collapses')
    return 'l = %.4g: within-cluster collapse at l >= %s; total collapse at l >= %.4g -> %s' % (
        level, levels or 'none (no two classes share a count)', total, state)


# ----------------------------------------------------------------------------------------
# the sweep scripts (minority_l, minority_n, limit)

@dataclass
class Setting:
    """One point of a sweep: the swept flag value as given, the class counts and nuclear-norm
    level actually used (after the offline rescaling), and where its model and data go."""
    value: float
    counts: list
    level: float
    save_dir: str
    cache_stem: str
    train_accuracy: float = None      # filled in by run_sweep


def add_sweep_flags(parser):
    extra = parser.add_argument_group('not in the reference (sweeps)')
    extra.add_argument('--seed', type=int, default=SWEEP_SEED, help='set once before the sweep (default 666, as the original)')
    extra.add_argument('--solver', type=str, default=convex_ufm.FAITHFUL_SOLVER,
                       help='cvxpy solver for the convex-program reference values (default SCS)')
    extra.add_argument('--no_convex', action='store_true', help='skip the convex-program reference values')
    return parser


def run_sweep(args, settings, loop, weight_decay, device):
    """Train (or reload) one network per setting, in the order given, after seeding the global
    RNG once (seed 666, as Hong's sweep scripts): each model's initialisation depends on the settings before it.
    Saves z_data.npy / b_data.npy per setting; returns the pre = M W^T matrices."""
    training.set_seed(args.seed)
    matrices = []
    for setting in settings:
        print('\n== %s: %s' % (setting.save_dir, collapse_prediction(setting.counts, setting.level)))
        data = rendered_data(args, setting.counts, setting.cache_stem, device)
        model = train_model(args, data, lambdas_for_level(setting.level, args.reg_b), weight_decay, loop,
                            setting.save_dir, only_final, final_weights_file, device)
        stats, setting.train_accuracy = class_statistics(model, data, device, with_accuracy=True)
        pre = logit_matrix(model, stats)
        save_logits(setting.save_dir, pre, model.classifier_bias().float().numpy())
        matrices.append(pre)
    return matrices


def convex_reference(args, settings):
    """The convex UFM program (docs/papers.md, Hong & Ling 2023) solved for each setting's counts and level, in the
    pre orientation (rows = classes, = Z_cvx^T), or None with --no_convex."""
    if args.no_convex:
        return None
    solutions = []
    for setting in settings:
        solution = convex_ufm.solve_ufm_program(setting.counts, setting.level, args.reg_b, solver=args.solver)
        solutions.append(solution['Z'].T)
    return solutions


def minority_figures(args, settings, matrices, ka, title, stem, xlabel, thresholds, log_x=False, record=None):
    """The 2 x 5 heatmaps (Figs. 5-8), the collapse-score curve with the thresholds, and
    <stem>.json (``minority_record``; ``record`` adds script-specific keys)."""
    minority = [minority_collapse_threshold(s.counts, ka) for s in settings]
    collapsed = [s.level >= threshold for s, threshold in zip(settings, minority)]
    note = 'red frame: theory predicts minority collapse (l >= sqrt(n_B)/N)'
    paths = plot_hong.sweep_heatmaps(matrices, [s.value for s in settings], ka, title,
                                     stem + '_z_comparison_plot', collapsed, note)
    convex = convex_reference(args, settings)
    scores = [minority_collapse_score(pre, ka) for pre in matrices]
    convex_scores = None if convex is None else [minority_collapse_score(pre, ka) for pre in convex]
    for setting, score, reference in zip(settings, scores, convex_scores or [None] * len(settings)):
        print('%s: minority spread %.4g%s' % (setting.value, score,
                                              '' if reference is None else ' (convex program: %.4g)' % reference))
    paths += plot_hong.collapse_score_curve([s.value for s in settings], scores, xlabel, stem + '_collapse_score',
                                            thresholds, convex_scores, log_x, small=SMALL_SCORE)
    summary = minority_record(args, settings, ka, scores, convex_scores, matrices, convex)
    summary.update(record or {})
    summary['thresholds_in_swept_units'] = {label: value for value, label in thresholds}
    write_json(stem + '.json', summary)
    print('network: small spread (< %g) exactly where theory predicts minority collapse: %s; convex '
          'program: %s' % (SMALL_SCORE, summary['network_matches_theory'], summary['convex_matches_theory']))
    print('figures: %s; record: %s.json' % (', '.join(paths), stem))
    return summary


SMALL_SCORE = 0.1
SCORE_DEFINITION = ('minority_collapse_score: max over minority classes k of ||pre[k] - mean of the minority '
                    'rows of pre|| / max_k ||pre[k]||, pre = M W^T (rows = true class); 0 when every row is '
                    'below %g (total collapse)' % convex_ufm.STRUCTURE_TOL)


def minority_record(args, settings, ka, scores, convex_scores, matrices, convex):
    """The JSON record of a minority sweep: per point the counts and level used, the minority-
    collapse level sqrt(n_B)/N and the total-collapse level (both in the units of the level),
    what theory predicts there, and the network's and the convex program's scores; a score
    below SMALL_SCORE counts as collapsed. ``*_matches_theory``: small exactly where theory
    predicts minority collapse (None without the convex program)."""
    points = []
    for index, setting in enumerate(settings):
        threshold = minority_collapse_threshold(setting.counts, ka)
        total = theory.hong_total_collapse_threshold(setting.counts)
        convex_score = None if convex_scores is None else convex_scores[index]
        points.append({
            'value': setting.value, 'class_counts': list(setting.counts), 'N': int(sum(setting.counts)),
            'level': setting.level, 'minority_threshold': threshold, 'level_over_threshold': setting.level / threshold,
            'predicts_minority_collapse': bool(setting.level >= threshold),
            'total_collapse_level': total, 'predicts_total_collapse': bool(setting.level >= total),
            'network_score': scores[index], 'network_small': bool(scores[index] < SMALL_SCORE),
            'convex_score': convex_score,
            'convex_small': None if convex_score is None else bool(convex_score < SMALL_SCORE),
            'train_accuracy': setting.train_accuracy,
            'network_logits_pre': np.asarray(matrices[index]).tolist(),
            'convex_logits_pre': None if convex is None else np.asarray(convex[index]).tolist()})

    def matches(key):
        if any(point[key] is None for point in points):
            return None
        return all(point[key] == point['predicts_minority_collapse'] for point in points)

    def extreme(key, collapsed, pick):
        values = [p[key] for p in points if p['predicts_minority_collapse'] == collapsed and p[key] is not None]
        return pick(values) if values else None

    return {'settings': describe_settings(args, echo=False), 'quick': bool(args.quick), 'ka': ka,
            'values': [s.value for s in settings], 'small_cutoff': SMALL_SCORE, 'score_definition': SCORE_DEFINITION,
            'points': points,
            'network_matches_theory': matches('network_small'), 'convex_matches_theory': matches('convex_small'),
            'network_min_score_not_collapsed': extreme('network_score', False, min),
            'network_max_score_collapsed': extreme('network_score', True, max),
            'convex_min_score_not_collapsed': extreme('convex_score', False, min),
            'convex_max_score_collapsed': extreme('convex_score', True, max)}


def minority_collapse_threshold(counts, ka):
    """lambda_MC for a two-cluster count vector (classes ka.. are the minority)."""
    return theory.hong_within_cluster_threshold(counts[ka], sum(counts))


# ----------------------------------------------------------------------------------------
# the quick sweeps (not in the reference)

QUICK_RATIOS = (0.6, 0.75, 0.9, 1.2, 1.5, 2.0)
QUICK_TOTAL_MARGIN = 0.85


def keep_quick_point(ratio, level, total_level):
    """Quick sweep points sit at level / lambda_MC = ratio, at least 10 % from the threshold;
    above it only while level < 0.85 x the total-collapse level (near Z = 0 every logit is tiny
    and the relative spread says little)."""
    return ratio < 1 or level < QUICK_TOTAL_MARGIN * total_level


def significant(value, digits=3):
    return float('%.*g' % (digits, value))
