"""The synthetic experiments of Dang et al. 2023 (D23's synthetic_experiment_*.py): optimise the deep linear UFM
(``ufm.DeepLinearUFM``) directly, measure NC1-NC3 every --log_every iterations, compare the final
iterate with the closed-form minimiser (``theory.d23_geometry``) and save the results.

``optimise`` is the loop; ``measure`` the per-iteration metrics with the original's variants;
``compare_with_theory`` the learned versus predicted per-class geometry; ``save_results`` the
files of a run folder.
"""
import dataclasses
import json
import os
import pickle
import time

import numpy as np
import torch
from tqdm import tqdm

from nc_repro import fileio, frames, nc_measures, nc_statistics, recipes, theory
from nc_repro.errors import RunStopped
from nc_repro.nc_measures import alignment_error


@dataclasses.dataclass(frozen=True)
class SyntheticSettings:
    """One synthetic run (the flags of D23's synthetic scripts, under their names): which script
    (``balanced``), the problem (--hidden d, --depth_linear M, --bias, --GOF targets, lambda_W =
    --weight_decay, lambda_H = --feature_decay), the optimiser (--lr, --num_iteration, --seed),
    what is measured (--log_every, --as_coded_nc1), where it goes (--out_dir), and ``flags``,
    every flag's value (with the initial std used), recorded in summary.json."""
    balanced: bool
    hidden: int
    depth_linear: int
    bias: bool
    GOF: bool
    weight_decay: float
    feature_decay: float
    lr: float
    num_iteration: int
    seed: int
    log_every: int
    as_coded_nc1: bool
    out_dir: str
    flags: dict


def run_name(settings):
    """The original's (unused) run-name strings (D23's synthetic scripts)."""
    if settings.balanced:
        return 'balance-MSE-bias_%s-GOF_%s-depth_linear_%s-lr_%s-dim_%s-epochs_%s-seed_%s' % (
            settings.bias, settings.GOF, settings.depth_linear, settings.lr, settings.hidden,
            settings.num_iteration, settings.seed)
    return 'imbalance-MSE-nobias-depth_linear_%s-lr_%s-dim_%s-epochs_%s-seed_%s' % (
        settings.depth_linear, settings.lr, settings.hidden, settings.num_iteration, settings.seed)


def class_means(features, labels, num_classes):
    """(d, K) uncentred class means and (d, K) centred ones (sample-weighted global mean)."""
    stats = nc_statistics.ClassStatistics.from_features(features, labels, num_classes)
    means = stats.class_means                                                    # (K, d)
    return stats, means.T, (means - stats.global_mean('sample')).T


def measure(model, labels, counts, settings, geometry):
    """The metrics the original computes after each step (D23's synthetic scripts), with its variants:
    balanced without --GOF: ETF (bias) or orthogonal-frame (bias-free) targets at every layer;
    balanced --GOF with bias: NC1 only; balanced --GOF --no-bias and imbalanced: GOF targets
    (unnormalised NC2_H and NC3_W_sub_H in the balanced script)."""
    K = len(counts)
    conventions = recipes.conventions('dang2023')
    inputs = [x.detach().double() for x in model.layer_inputs()]
    products = [model.product(layer).detach().double() for layer in range(len(inputs))]
    stats, U, C = class_means(inputs[0], labels, K)
    nc1 = nc_measures.nc1(stats, conventions, as_coded=settings.as_coded_nc1)
    metrics = {'NC1': nc1['nc1']}
    if settings.as_coded_nc1:
        metrics['NC1_as_coded'] = nc1['nc1_as_coded']
    with torch.no_grad():
        metrics['train_acc'] = 100 * float((model.logits().argmax(1) == labels).double().mean())
    balanced = settings.balanced
    gof = (not balanced) or (settings.GOF and not settings.bias)
    if balanced and not settings.GOF:
        for layer, (features, product) in enumerate(zip(inputs, products)):
            _, U_l, C_l = class_means(features, labels, K)
            if settings.bias:
                metrics['NC2_ETF_W_%d' % layer] = alignment_error(product @ product.T, frames.simplex_etf_gram(K))
                metrics['NC3_ETF_WH_%d' % layer] = alignment_error(product @ C_l, frames.simplex_etf_gram(K))
            else:
                metrics['NC2_Identity_W_%d' % layer] = alignment_error(product @ product.T, frames.orthogonal_frame_gram(K))
                metrics['NC3_Identity_WH_%d' % layer] = alignment_error(product @ U_l, frames.orthogonal_frame_gram(K))
    if gof:
        t, c = torch.from_numpy(geometry['t']), torch.from_numpy(geometry['c'])
        _, U_last, _ = class_means(inputs[-1], labels, K)
        # general-orthogonal-frame targets (Dang 2023, imbalanced theorem; docs/papers.md); the balanced script leaves NC2_H
        # and NC3_W_sub_H unnormalised
        metrics['NC2_W'] = alignment_error(products[0] @ products[0].T, torch.diag(t))
        metrics['NC2_H'] = alignment_error(U.T @ U, torch.diag(t / c ** 2), normalised=not balanced)
        metrics['NC3_WH'] = alignment_error(products[-1] @ U_last, torch.diag(t / c))
        metrics['NC3_W_sub_H'] = alignment_error(products[0], torch.diag(c) @ U.T, normalised=not balanced)
    return metrics


def predicted_matrices(geometry, K, bias):
    """Closed-form W W^T, class-mean Gram and W H (docs/papers.md, Dang 2023): diagonal for the bias-free
    problem; with a bias (balanced) the minimiser fits the centred one-hot targets, so each
    matrix is its diagonal value times the centring projector I - 11^T/K."""
    shape = np.eye(K) - np.ones((K, K)) / K if bias else np.eye(K)
    scale = (lambda v: v[:, None] * shape) if not bias else (lambda v: v.mean() * shape)
    return {'WWT': scale(geometry['WWT']), 'HTH': scale(geometry['HTH']), 'WH': scale(geometry['WH'])}


def compare_with_theory(model, labels, counts, geometry, bias):
    """Learned vs predicted per-class geometry of the final iterate."""
    K = len(counts)
    H = model.H.detach().double()
    W = model.product().detach().double()                                        # (K, d)
    _, U, C = class_means(H, labels, K)
    means = C if bias else U                       # centred means when a bias absorbs the mean
    learned = {'WWT': (W @ W.T).numpy(), 'HTH': (means.T @ means).numpy(), 'WH': (W @ means).numpy()}
    predicted = predicted_matrices(geometry, K, bias)
    summary = {'counts': list(counts), 's_predicted': geometry['s'].tolist(),
               's_learned': (np.diag(learned['WWT']) ** (1 / (2 * geometry['depth'])) if not bias
                             else np.diag(learned['WWT'] / (1 - 1 / K)) ** (1 / (2 * geometry['depth']))).tolist()}
    for key in ('WWT', 'HTH', 'WH'):
        diag_learned, diag_predicted = np.diag(learned[key]), np.diag(predicted[key])
        off = learned[key] - predicted[key]
        np.fill_diagonal(off, 0)
        summary[key] = {'learned_diag': diag_learned.tolist(), 'predicted_diag': diag_predicted.tolist(),
                        'max_rel_diag_error': float(np.max(np.abs(diag_learned - diag_predicted)
                                                           / np.maximum(np.abs(diag_predicted), 1e-12))),
                        'max_abs_offdiag_error': float(np.abs(off).max())}
    return summary


def format_summary(summary):
    lines = ['closed form vs learned (class counts %s):' % summary['counts'],
             '  s_k predicted %s' % np.array2string(np.array(summary['s_predicted']), precision=6),
             '  s_k learned   %s' % np.array2string(np.array(summary['s_learned']), precision=6)]
    for key, label in (('WWT', 'diag W W^T'), ('HTH', 'diag H^T H (class means)'), ('WH', 'diag W H')):
        part = summary[key]
        lines.append('  %-26s learned %s predicted %s | max rel diag err %.2e, max off-diag err %.2e' % (
            label, np.array2string(np.array(part['learned_diag']), precision=5),
            np.array2string(np.array(part['predicted_diag']), precision=5),
            part['max_rel_diag_error'], part['max_abs_offdiag_error']))
    return '\n'.join(lines)


def closed_form(settings, counts):
    """The minimiser's per-class geometry (theory.d23_geometry, Dang 2023, balanced and imbalanced theorems), with
    the depth M. The imbalanced script compares with the global minimiser; the balanced script keeps the
    original's largest root, unclamped (equal counts: every class lives or every class dies, and the
    two rules differ only in the window of docs/original_code.md, D23-B21)."""
    rule = 'as_coded' if settings.balanced else 'global'
    geometry = theory.d23_geometry(counts, settings.depth_linear, settings.weight_decay, settings.feature_decay,
                                   rule=rule, clamp=not settings.balanced)
    return dict(geometry, depth=settings.depth_linear, rule=rule)


def run_folder(settings):
    """<--out_dir>/<the original's run name>, created."""
    folder = os.path.join(settings.out_dir, run_name(settings))
    os.makedirs(folder, exist_ok=True)
    return folder


def optimise(model, labels, counts, settings, geometry):
    """Full-batch SGD on the data term for --num_iteration steps (the penalties are the
    optimiser's weight decay); every --log_every steps the objective and ``measure``.
    Returns (history of lists, seconds)."""
    targets = torch.nn.functional.one_hot(labels, len(counts)).float()
    optimizer = model.optimizer(settings.lr, settings.weight_decay, settings.feature_decay)
    history = {'iteration': [], 'loss': []}
    bar = tqdm(range(1, settings.num_iteration + 1), desc='Loss is ?', dynamic_ncols=True, mininterval=0.5)
    start = time.time()
    for iteration in bar:
        optimizer.zero_grad(set_to_none=True)
        model.data_term(targets).backward()
        optimizer.step()
        if iteration % settings.log_every == 0 or iteration == settings.num_iteration:
            with torch.no_grad():
                value = float(model.objective(targets, settings.weight_decay, settings.feature_decay))
            if not np.isfinite(value):
                raise RunStopped('loss is %s at iteration %d; lower --lr or --init_std' % (value, iteration))
            with torch.no_grad():
                metrics = measure(model, labels, counts, settings, geometry)
            history['iteration'].append(iteration)
            history['loss'].append(value)
            for key, metric in metrics.items():
                history.setdefault(key, []).append(metric)
            bar.set_description('Loss is %.6f' % value)
    return history, time.time() - start


def save_results(folder, settings, model, labels, history, summary, seconds):
    """metrics.pkl/.json (the history), summary.json/.txt (the comparison, also printed) and
    final_state.pt (H, labels, weights, bias) in ``folder``."""
    summary.update(seconds=round(seconds, 2), iterations_per_second=round(settings.num_iteration / seconds, 1),
                   final_loss=history['loss'][-1], args=dict(settings.flags))
    fileio.atomic_write(os.path.join(folder, 'metrics.pkl'), lambda f: pickle.dump(history, f))
    fileio.atomic_write_text(os.path.join(folder, 'metrics.json'), json.dumps(history) + '\n')
    fileio.atomic_write_text(os.path.join(folder, 'summary.json'), json.dumps(summary, indent=1, default=str) + '\n')
    state = {'H': model.H.detach(), 'labels': labels,
             'weights': [layer.weight.detach() for layer in model.head_layers()],
             'bias': None if model.fc[-1].bias is None else model.fc[-1].bias.detach()}
    fileio.atomic_write(os.path.join(folder, 'final_state.pt'), lambda f: torch.save(state, f))
    text = format_summary(summary)
    fileio.atomic_write_text(os.path.join(folder, 'summary.txt'), text + '\n')
    print(text)
