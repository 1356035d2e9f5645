"""Dang et al. 2023 (deep linear heads, MSE): balanced collapse at every head layer, the
simplex ETF with bias against the orthogonal frame without, the imbalanced closed form, and
the synthetic unconstrained-feature experiments.

Keys of info.pkl (dang2023 recipe): NC1_collapse_metric, NC2_ETF_W / NC2_Identity_W (W W^T
against the simplex ETF / the orthogonal frame), per_layer (the same per head layer, epoch
first), and for imbalanced runs class_mean_norms and classifier_row_norms per saved epoch with
theory.json beside info.pkl. See docs/reproduction.md for the thresholds.
"""
import glob
import json
import os

import numpy as np

from nc_repro import theory
from reproduction.claims import Claim, Measurement, MissingResult, all_pass, fmt, fold_drop, relative_error, same_order

NAME = 'dang2023'
TITLE = 'Dang et al. 2023, neural collapse in deep linear networks'
CITATION = ('Dang, Tran, Osher, Tran-The, Ho, Nguyen, *Neural Collapse in Deep Linear Networks: From '
            'Balanced to Imbalanced Data*, ICML 2023')
GRIDS = ['d23_mlp_depth', 'd23_bias', 'd23_imbalanced', 'd23_synthetic']
NOTES = ['Quick scale: the paper\'s MLP recipe with smaller widths (flags under Runs); the balanced grids '
         'train on real MNIST images (`mnist5k`, 4,500 of them), as the paper\'s MNIST runs; the imbalanced '
         'closed form is compared with the minimiser of the objective the trainer optimises '
         '(`--theory_scaling objective`, K lambda_W and K lambda_H: the trainer halves the MSE mean).']


def every_head_layer(results, fold=10):
    grid = results['d23_mlp_depth']
    parts, worst = [], []
    for name, job in grid.jobs.items():
        per_layer = np.asarray(grid.info(name)['per_layer']['NC1_collapse_metric'], dtype=float)  # (epochs, layers)
        folds = [fold_drop(per_layer[:, layer]) for layer in range(per_layer.shape[1])]
        worst.append(min(folds))
        parts.append((name, 'NC1 /%s (worst of %d layers), last %s' % (fmt(min(folds)), len(folds), fmt(per_layer[-1].max())),
                      min(folds) >= fold, '%s: layer %d falls only %sx' % (name, int(np.argmin(folds)) + 1, fmt(min(folds)))))
    return all_pass(parts, min(worst), 'smallest NC1 fold')


def bias_decides_frame(results, fold=2.0, flat=1.2):
    grid = results['d23_bias']
    parts, drops = [], []
    for name, job in grid.jobs.items():
        info = grid.info(name)
        matching, other = (('NC2_Identity_W', 'NC2_ETF_W') if job.flags.get('no-bias') else ('NC2_ETF_W', 'NC2_Identity_W'))
        falls = fold_drop(info[matching])
        other_change = fold_drop(info[other])
        drops.append(falls)
        parts.append((name, '%s /%s, %s /%s' % (matching, fmt(falls), other, fmt(other_change)),
                      falls >= fold and other_change <= flat,
                      '%s: %s falls %sx (needs %s), %s falls %sx (must stay within %s)' % (
                          name, matching, fmt(falls), fold, other, fmt(other_change), flat)))
    return all_pass(parts, min(drops), 'smallest matching-target fold')


def class_landscape(record, scaling='objective'):
    """Per class k, the local minima of its objective phi_k (theory.d23_class_minima) at the
    decays the run trains (K lambda, ``scaling='objective'``): [(x, ||h_k||, ||w_k||, phi_k)],
    and the index of the global one. ||w_k||^2 = t = N lambda_H x^M, ||h_k|| = sqrt(t)/(t + N lambda_H)."""
    counts = np.asarray(record['counts'], dtype=float)
    factor = len(counts) if scaling == 'objective' else 1.0
    depth, N = record['depth_linear'], counts.sum()
    lambda_W, lambda_H = factor * record['lambda_W'], factor * record['lambda_H']
    b = theory.d23_b(N, depth, lambda_W, lambda_H)
    landscape = []
    for n_k in counts:
        minima = []
        for x in theory.d23_class_minima(n_k, N, depth, lambda_W, lambda_H):
            t = N * lambda_H * x ** depth
            minima.append((x, np.sqrt(t) / (t + N * lambda_H), np.sqrt(t), float(theory.d23_class_objective(x, n_k, b, depth))))
        best = [m[0] for m in minima].index(theory.d23_global_root(n_k, N, depth, lambda_W, lambda_H))
        landscape.append((minima, best))
    return landscape


def imbalanced_run(record, measured_h, measured_w, tolerance=0.05, collapsed=0.05):
    """D3 on one run, class by class: *at* its global minimiser (lengths within ``tolerance``;
    a collapsed class: ||w_k|| below ``collapsed`` times the largest predicted ||w||), *trapped*
    at another local minimum of its objective phi_k (as close to it; named, with the objective
    gap (phi_local - phi_global)/2N), or at no local minimum (not converged). Passed when every
    class is at its global minimiser and the living ones are ordered by n_k; ``trapped`` is set
    when the others are all trapped."""
    counts = np.asarray(record['counts'], dtype=float)
    N = counts.sum()
    landscape = class_landscape(record)
    predicted_h = np.array([minima[best][1] for minima, best in landscape])
    predicted_w = np.array([minima[best][2] for minima, best in landscape])
    floor = collapsed * predicted_w.max()

    def error_from(minimum, k):
        """0 at the minimum; for a living one the relative length error, for x = 0 ||w_k|| / floor - 1 if above."""
        x, h, w, _ = minimum
        if x == 0:
            return max(0.0, measured_w[k] / floor - 1)
        return max(abs(measured_h[k] - h) / h, abs(measured_w[k] - w) / w)

    at_global, trapped, unconverged, errors, stray_errors = [], [], [], [], []
    for k, (minima, best) in enumerate(landscape):
        error = error_from(minima[best], k)
        if error <= (tolerance if minima[best][0] > 0 else 0):
            at_global.append(k)
            errors += [error] if minima[best][0] > 0 else []
            continue
        other = [m for i, m in enumerate(minima) if i != best and error_from(m, k) <= (tolerance if m[0] > 0 else 0)]
        if other:
            gap = (other[0][3] - minima[best][3]) / (2 * N)
            trapped.append('class %d (n_k = %g) at the %s local minimum instead of the global %s (objective gap %s)' % (
                k, counts[k], 'collapsed' if other[0][0] == 0 else 'living',
                'living one' if minima[best][0] > 0 else 'collapse', fmt(gap)))
        else:
            stray_errors += [error] if minima[best][0] > 0 else []
            unconverged.append('class %d (n_k = %g) at no local minimum of its objective (not converged): %s' % (
                k, counts[k], 'off by %.1f%% from the global minimiser' % (100 * error) if minima[best][0] > 0
                else '||w_k|| %s, predicted collapsed' % fmt(measured_w[k])))
    living = [k for k in at_global if predicted_w[k] > 0]
    # as predicted: feature means shrink and classifier rows grow with n_k (among the living classes)
    ordered = same_order(-measured_h[living], counts[living]) and same_order(measured_w[living], counts[living])
    dead = [k for k in at_global if predicted_w[k] == 0]
    worst = max(errors + stray_errors, default=0.0)       # the key number: trapped classes aside
    value = 'living classes at the minimiser within %.1f%%, %s' % (100 * max(errors, default=0.0), 'ordered by n_k' if ordered else 'NOT ordered by n_k')
    if dead:
        value += '; collapsed as predicted (predicted 0, measured 0): classes %s (n_k = %s)' % (
            ','.join(map(str, dead)), ','.join('%g' % counts[k] for k in dead))
    if trapped:
        value += '; %d trapped' % len(trapped)
    if unconverged:
        value += '; %d not converged' % len(unconverged)
    if unconverged or not ordered:
        reason = '; '.join(unconverged) if unconverged else 'the living classes are not ordered by n_k'
        return Measurement(value, False, reason, worst, 'worst length error')
    if trapped:
        return Measurement(value, False, '', worst, 'worst length error', trapped='; '.join(trapped))
    return Measurement(value, True, '', worst, 'worst length error')


def imbalanced_lengths(results, tolerance=0.05):
    grid = results['d23_imbalanced']
    parts, trapped, numbers = [], [], []
    for name in grid.jobs:
        info = grid.info(name)
        record = read_theory(grid.run_dir(name))
        measured = imbalanced_run(record, np.asarray(info['class_mean_norms'][-1], dtype=float),
                                  np.asarray(info['classifier_row_norms'][-1], dtype=float), tolerance)
        numbers.append(measured.number)
        if measured.trapped:
            trapped.append('%s: %s' % (name, measured.trapped))
        parts.append((name, measured.value, measured.passed or bool(measured.trapped),
                      '%s: %s' % (name, measured.reason)))
    result = all_pass(parts, max(numbers), 'worst length error')
    if result.passed and trapped:
        result.passed, result.trapped = False, '; '.join(trapped)
    return result


def read_theory(run_dir):
    path = os.path.join(run_dir, 'theory.json')
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        raise MissingResult('%s is missing; run validate_NC_unbalanced.py' % os.path.relpath(path)) from None


def synthetic_summaries(grid):
    """{job name: summary.json} matched on the flags that name a synthetic run."""
    summaries = []
    for path in glob.glob(os.path.join(grid.work_dir, 'synthetic_results', '*', 'summary.json')):
        with open(path) as f:
            summaries.append(json.load(f))
    matched = {}
    for name, job in grid.jobs.items():
        balanced = os.path.basename(job.train[0]) == 'synthetic_experiment_balanced.py'
        wanted = {'hidden': job.flags.get('hidden'), 'num_iteration': job.flags.get('num_iteration'),
                  'depth_linear': job.flags.get('depth_linear', 1)}
        if balanced:                     # the imbalanced experiment is bias-free whatever its flags
            wanted['bias'] = not job.flags.get('no-bias')
        found = [s for s in summaries if all(s['args'].get(k) == v for k, v in wanted.items() if v is not None)
                 and balanced == (len(set(s['counts'])) == 1)]
        if not found:
            raise MissingResult('no summary.json for synthetic run %s in %s' % (name, os.path.relpath(grid.work_dir)))
        matched[name] = found[0]
    return matched


def gram_error(block):
    """Largest error of a learned Gram matrix against the closed form, relative to its largest
    predicted diagonal entry."""
    scale = max(abs(v) for v in block['predicted_diag'])
    return max(block['max_rel_diag_error'], block['max_abs_offdiag_error'] / scale)


def synthetic_trapped(summary, tolerance=1e-3):
    """Classes of an imbalanced synthetic run whose learned ||w_k||^2 sits at the collapsed local
    minimum (about 0) where the global minimiser keeps them alive (depth M >= 2), with the
    objective gap (phi_k(0) - phi_k(x_k))/(2N); '' when there are none."""
    block, run_args = summary.get('WWT') or {}, summary.get('args') or {}
    if 'learned_diag' not in block or 'counts' not in summary or 'weight_decay' not in run_args:
        return ''
    learned, predicted = (np.asarray(block[key], dtype=float) for key in ('learned_diag', 'predicted_diag'))
    counts = np.asarray(summary['counts'], dtype=float)
    depth, N = run_args.get('depth_linear', 1), counts.sum()
    if len(set(counts)) == 1 or depth < 2:
        return ''
    b = theory.d23_b(N, depth, run_args['weight_decay'], run_args['feature_decay'])
    found = []
    for k in np.flatnonzero((predicted > 0) & (learned <= tolerance * predicted.max())):
        x = theory.d23_global_root(counts[k], N, depth, run_args['weight_decay'], run_args['feature_decay'])
        gap = (counts[k] - float(theory.d23_class_objective(x, counts[k], b, depth))) / (2 * N)
        found.append('class %d (n_k = %g) at the collapsed local minimum (objective gap %s)' % (k, counts[k], fmt(gap)))
    return '; '.join(found)


def synthetic_closed_form(results, tolerance=1e-3):
    grid = results['d23_synthetic']
    parts, worst_errors, trapped = [], [], []
    for name, summary in synthetic_summaries(grid).items():
        errors = {key: gram_error(block) for key, block in summary.items()
                  if isinstance(block, dict) and 'max_rel_diag_error' in block}
        worst = max(errors, key=errors.get)
        worst_errors.append(errors[worst])
        stuck = synthetic_trapped(summary) if errors[worst] > tolerance else ''
        if stuck:
            trapped.append('%s: %s' % (name, stuck))
        parts.append((name, 'worst %s %s' % (worst, fmt(errors[worst])), errors[worst] <= tolerance or bool(stuck),
                      '%s: %s off by %s' % (name, worst, fmt(errors[worst]))))
    result = all_pass(parts, max(worst_errors), 'worst Gram error')
    if result.passed and trapped:
        result.passed, result.trapped = False, '; '.join(trapped)
    return result


CLAIMS = [
    Claim('D1', 'Balanced data: within-class variability collapses at the input of every layer of the deep '
          'linear head, not only at the last one (balanced theorem; per-layer NC1 figures)',
          'per run and head layer, NC1 first/last >= 10x',
          [('d23_mlp_depth', None)], every_head_layer, 'd23_mlp_depth/figures/d23_mlp_depth.png'),
    Claim('D2', 'Balanced data: with a classifier bias W W^T approaches the simplex ETF; without bias it '
          'approaches the orthogonal frame; in each case the other target is not approached (balanced theorems)',
          'matching NC2 target first/last >= 2x; the other changes by at most 1.2x',
          [('d23_bias', None)], bias_decides_frame, 'd23_bias/figures/d23_bias.png'),
    Claim('D3', 'Imbalanced data: the class-mean and classifier-row lengths follow the closed form of the global '
          'minimiser, ||h_k|| shrinking and ||w_k|| growing with n_k, minority classes collapsing where it says '
          '(imbalanced theorem)',
          'last epoch, per class: at the global minimiser (relative error <= 5%; a collapsed class below 5% of the '
          'largest predicted length), living classes ordered by n_k; a class at another local minimum of its '
          'objective is named as trapped',
          [('d23_imbalanced', None)], imbalanced_lengths, 'd23_imbalanced/figures/d23_imbalanced_objective_lengths.png'),
    Claim('D4', 'Synthetic unconstrained features optimised directly reach the closed-form geometry '
          '(W W^T, H^T H, W H), balanced and imbalanced, for head depths 1, 3, 6 (synthetic experiments)',
          'per run and Gram matrix, error relative to the largest predicted entry <= 1e-3',
          [('d23_synthetic', None)], synthetic_closed_form, ''),
]
