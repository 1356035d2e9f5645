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
from nc_repro.claims import Claim, Measurement, MissingResult, all_pass, fmt, fold_drop, relative_error, same_order

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
    parts = []
    for name, job in grid.jobs.items():
        per_layer = np.asarray(grid.info(name)['per_layer']['NC1_collapse_metric'], dtype=float)  # (epochs, layers)
        folds = [fold_drop(per_layer[:, layer]) for layer in range(per_layer.shape[1])]
        parts.append((name, 'NC1 /%s (worst of %d layers), last %s' % (fmt(min(folds)), len(folds), fmt(per_layer[-1].max())),
                      min(folds) >= fold, '%s: layer %d falls only %sx' % (name, int(np.argmin(folds)) + 1, fmt(min(folds)))))
    return all_pass(parts)


def bias_decides_frame(results, fold=2.0, flat=1.2):
    grid = results['d23_bias']
    parts = []
    for name, job in grid.jobs.items():
        info = grid.info(name)
        matching, other = (('NC2_Identity_W', 'NC2_ETF_W') if job.flags.get('no-bias') else ('NC2_ETF_W', 'NC2_Identity_W'))
        falls = fold_drop(info[matching])
        other_change = fold_drop(info[other])
        parts.append((name, '%s /%s, %s /%s' % (matching, fmt(falls), other, fmt(other_change)),
                      falls >= fold and other_change <= flat,
                      '%s: %s falls %sx (needs %s), %s falls %sx (must stay within %s)' % (
                          name, matching, fmt(falls), fold, other, fmt(other_change), flat)))
    return all_pass(parts)


def imbalanced_lengths(results, tolerance=0.05):
    grid = results['d23_imbalanced']
    parts = []
    for name in grid.jobs:
        info = grid.info(name)
        record = read_theory(grid.run_dir(name))
        predicted_h, predicted_w, _ = theory.predicted_lengths(record, 'objective')
        measured_h, measured_w = np.asarray(info['class_mean_norms'][-1]), np.asarray(info['classifier_row_norms'][-1])
        counts = record['counts']
        error_h, error_w = relative_error(measured_h, predicted_h), relative_error(measured_w, predicted_w)
        # as predicted: feature means shrink and classifier rows grow with n_k
        ordered = same_order(-measured_h, counts) and same_order(measured_w, counts)
        parts.append((name, '||h_k|| within %.1f%%, ||w_k|| within %.1f%%, %s' % (
            100 * error_h, 100 * error_w, 'ordered by n_k' if ordered else 'NOT ordered by n_k'),
            error_h <= tolerance and error_w <= tolerance and ordered,
            '%s: %s' % (name, 'lengths off by more than %d%%' % (100 * tolerance) if ordered else 'not ordered by n_k')))
    return all_pass(parts)


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


def synthetic_closed_form(results, tolerance=1e-3):
    grid = results['d23_synthetic']
    parts = []
    for name, summary in synthetic_summaries(grid).items():
        errors = {key: gram_error(block) for key, block in summary.items()
                  if isinstance(block, dict) and 'max_rel_diag_error' in block}
        worst = max(errors, key=errors.get)
        parts.append((name, 'worst %s %s' % (worst, fmt(errors[worst])), errors[worst] <= tolerance,
                      '%s: %s off by %s' % (name, worst, fmt(errors[worst]))))
    return all_pass(parts)


CLAIMS = [
    Claim('D1', 'Balanced data: within-class variability collapses at the input of every layer of the deep '
          'linear head, not only at the last one (balanced theorem; per-layer NC1 figures)',
          'per run and head layer, NC1 first/last >= 10x',
          [('d23_mlp_depth', None)], every_head_layer, 'd23_mlp_depth/figures/d23_mlp_depth.png'),
    Claim('D2', 'Balanced data: with a classifier bias W W^T approaches the simplex ETF; without bias it '
          'approaches the orthogonal frame; in each case the other target is not approached (balanced theorems)',
          'matching NC2 target first/last >= 2x; the other changes by at most 1.2x',
          [('d23_bias', None)], bias_decides_frame, 'd23_bias/figures/d23_bias.png'),
    Claim('D3', 'Imbalanced data: the class-mean and classifier-row lengths follow the closed form, '
          '||h_k|| shrinking and ||w_k|| growing with n_k (imbalanced theorem)',
          'last epoch, per class: relative error <= 5%, ordered by n_k',
          [('d23_imbalanced', None)], imbalanced_lengths, 'd23_imbalanced/figures/d23_imbalanced_objective_lengths.png'),
    Claim('D4', 'Synthetic unconstrained features optimised directly reach the closed-form geometry '
          '(W W^T, H^T H, W H), balanced and imbalanced, for head depths 1, 3, 6 (synthetic experiments)',
          'per run and Gram matrix, error relative to the largest predicted entry <= 1e-3',
          [('d23_synthetic', None)], synthetic_closed_form, ''),
]
