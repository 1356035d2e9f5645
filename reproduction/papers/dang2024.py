"""Dang et al. 2024 (cross-entropy, imbalanced, unconstrained ReLU features): orthogonal
class means, the W and H geometry of the closed form up to scale, and minority collapse where
the logit gaps M_k of the theory vanish.

Read from each run folder: info.pkl (NC1, NC2_W, NC2_WWT, NC2_H, NC3_WH: distances of the
normalised W, W W^T, ReLU(U)^T ReLU(U) and W U from the theory's targets; class_mean_norms),
theory.json (M: the predicted logit gap per class, 0 = the class collapses) and HTH.csv (the
Gram matrix of the last epoch's class means). See docs/reproduction.md for the thresholds.
"""
import os

import numpy as np

from reproduction.claims import Claim, Measurement, MissingResult, all_pass, fmt
from reproduction.papers.dang2023 import read_theory

NAME = 'dang2024'
TITLE = 'Dang et al. 2024, cross-entropy imbalanced collapse with ReLU features'
CITATION = ('Dang, Tran, Nguyen, Ho, *Neural Collapse for Cross-entropy Class-Imbalanced Learning with '
            'Unconstrained ReLU Features Model*, ICML 2024')
GRIDS = ['d24_imbalanced']
NOTES = ['Quick scale: two MLPs on imbalanced digits (25, 25, 50, ..., 125 images per class), one '
         'where the theory predicts no collapse and one (larger lambda) where it predicts the two '
         '25-image classes collapse; the quick ResNet18 cannot reach the terminal phase on this CPU '
         '(45-66 s per epoch, 77% training accuracy after 3 epochs).',
         'The validator\'s targets take lambda_W and lambda_H from the flags as the 2024 code does; '
         'the trainer halves the cross-entropy and sums the feature penalty over a batch, so its '
         'minimiser has other logit gaps. The quick lambdas are chosen where the two nearly agree.']
GEOMETRY_KEYS = ('NC2_W', 'NC2_WWT', 'NC2_H', 'NC3_WH')


def live_classes(record):
    return np.asarray(record['M'], dtype=float) > 0


def class_mean_gram(run_dir):
    path = os.path.join(run_dir, 'HTH.csv')
    try:
        return np.loadtxt(path, delimiter=',')
    except OSError:
        raise MissingResult('%s is missing; run validate_NC_unbalanced.py' % os.path.relpath(path)) from None


def largest_cosine(gram, alive):
    """max |cos| between distinct class means among the live classes."""
    gram = gram[np.ix_(alive, alive)]
    norms = np.sqrt(np.diag(gram))
    cosines = gram / np.outer(norms, norms)
    return float(np.abs(cosines - np.eye(len(norms))).max()) if len(norms) > 1 else 0.0


def orthogonal_means(results, at_most=0.1):
    grid = results['d24_imbalanced']
    parts, cosines = [], []
    for name in grid.jobs:
        grid.info(name)                                   # finished?
        cosine = largest_cosine(class_mean_gram(grid.run_dir(name)), live_classes(read_theory(grid.run_dir(name))))
        cosines.append(cosine)
        parts.append((name, 'max |cos| %s' % fmt(cosine), cosine <= at_most, '%s: max |cos| %s > %s' % (name, fmt(cosine), at_most)))
    return all_pass(parts, max(cosines), 'max |cos|')


def geometry_up_to_scale(results, at_most=0.1, nc1_at_most=0.01):
    grid = results['d24_imbalanced']
    parts, worst_values = [], []
    for name in grid.jobs:
        info = grid.info(name)
        final = {key: float(info[key][-1]) for key in ('NC1',) + GEOMETRY_KEYS}
        worst = max(GEOMETRY_KEYS, key=final.get)
        worst_values.append(final[worst])
        parts.append((name, 'NC1 %s, worst %s %s' % (fmt(final['NC1']), worst, fmt(final[worst])),
                      final[worst] <= at_most and final['NC1'] <= nc1_at_most,
                      '%s: %s %s > %s or NC1 %s > %s' % (name, worst, fmt(final[worst]), at_most, fmt(final['NC1']), nc1_at_most)))
    return all_pass(parts, max(worst_values), 'worst NC2/NC3 target')


def minority_collapse_where_predicted(results, vanished=1e-3, alive=0.1):
    grid = results['d24_imbalanced']
    parts, predicted_somewhere, wrong = [], False, 0
    for name in grid.jobs:
        norms = np.asarray(grid.info(name)['class_mean_norms'][-1], dtype=float)
        record = read_theory(grid.run_dir(name))
        predicted = ~live_classes(record)
        measured = norms < vanished * norms.max()
        kept = norms >= alive * norms.max()
        predicted_somewhere |= bool(predicted.any())
        counts = np.asarray(record['counts'])
        wrong += int(np.sum(measured != predicted) + np.sum(~kept & ~predicted))
        parts.append((name, 'predicted collapse: %s, measured: %s' % (
            describe(counts, predicted), describe(counts, measured)),
            bool(np.all(measured == predicted) and np.all(kept | predicted)),
            '%s: collapsed classes differ from the prediction' % name))
    measurement = all_pass(parts, wrong, 'classes off the prediction')
    if not predicted_somewhere:
        return Measurement(measurement.value, False, 'no run where the theory predicts a collapse')
    return measurement


def describe(counts, mask):
    return 'none' if not mask.any() else 'classes %s (n_k = %s)' % (
        ','.join(str(k) for k in np.flatnonzero(mask)), ','.join(str(n) for n in counts[mask]))


RUNS = [('d24_imbalanced', None)]            # every claim reads the one grid's runs
METRICS_FIGURE = 'd24_imbalanced/figures/d24_imbalanced_metrics.png'
LENGTHS_FIGURE = 'd24_imbalanced/figures/d24_imbalanced_lengths.png'

CLAIMS = [
    Claim('E1',
          statement='The class means of the ReLU features become orthogonal (the UFM minimisers with '
                    'ReLU features, imbalanced theorem)',
          quantity='last epoch, max |cos| between distinct non-collapsed class means <= 0.1',
          runs=RUNS, check=orthogonal_means, figure=METRICS_FIGURE),
    Claim('E2',
          statement='W, W W^T, the class-mean Gram matrix and W H match the closed form up to scale, '
                    'with NC1 -> 0 (imbalanced theorem)',
          quantity='last epoch: NC2_W, NC2_WWT, NC2_H, NC3_WH <= 0.1 and NC1 <= 0.01',
          runs=RUNS, check=geometry_up_to_scale, figure=LENGTHS_FIGURE),
    Claim('E3',
          statement="Minority classes collapse (their features vanish) exactly where the theory's logit "
                    'gap M_k is 0, and only there (minority-collapse condition)',
          quantity='||h_k|| < 1e-3 max for predicted classes, >= 0.1 max for the rest; some run predicts a collapse',
          runs=RUNS, check=minority_collapse_where_predicted, figure=LENGTHS_FIGURE),
]
