"""Hong & Ling 2023 (the UFM under cross-entropy with imbalanced data): block structure
(Figs. 1-2), minority collapse against the regularisation level and the sample size (Figs.
5-8) at the threshold l = sqrt(n_B)/N that the convex program also shows, and the cosine limits
of Fig. 9.

Read from the JSON records the scripts write under hong_results/plots/ in each grid's work folder (keys in
the scripts' docstrings): block_main's NC1 series and block contrast, the minority sweeps'
per-point spread of the minority logit vectors (network and convex program) against the
theory's prediction, and limit_main's distances of A, B, AB to -1/(K-1). See
docs/reproduction.md for the thresholds.
"""
import glob
import json
import os

from reproduction.claims import Claim, Measurement, MissingResult, all_pass, fmt
from args import OUTPUT_ROOT

NAME = 'hong2023'
TITLE = 'Hong & Ling 2023, the UFM under cross-entropy with imbalanced data'
CITATION = ('Hong, Ling, *Neural Collapse for Unconstrained Feature Model under Cross-entropy Loss with '
            'Imbalanced Data*, arXiv 2309.09725, 2023')
GRIDS = ['hong_block', 'hong_minority', 'hong_limit']
NOTES = ['Quick scale: a two-layer ReLU MLP (width 128, 4x4-pooled digits) instead of ResNet18 on '
         'CIFAR-10, 300-600 epochs, class counts scaled to digits with l scaled by the same rule, so '
         'every threshold keeps its place in the sweep; each script prints its settings.',
         'Quick block_main trains at l = 4e-4 (about 0.3x the smallest cluster\'s collapse level): at '
         'the paper\'s level the optimum\'s blocks differ by only about 1% of the logit gap. Quick '
         'limit_main uses l N = 8 instead of 0.1: at 0.1 the optimum is within 0.01 of -1/9 at every '
         'n_A, so there is nothing to approach.',
         'Quick minority sweeps place their points at 0.6, 0.75, 0.9, 1.2, 1.5 and 2 times the '
         'threshold (below 0.85 times total collapse); the README grids put a point at 0.99 times it, '
         'where even the convex program\'s spread is only 0.05.']


def records(grid, pattern):
    found = []
    for path in sorted(glob.glob(os.path.join(grid.work_dir, OUTPUT_ROOT, 'plots', pattern))):
        try:
            with open(path) as f:
                found.append(json.load(f))
        except ValueError:
            raise MissingResult('%s is not valid JSON (interrupted run?)' % os.path.relpath(path)) from None
    if not found:
        raise MissingResult('no %s/plots/%s in %s' % (OUTPUT_ROOT, pattern, os.path.relpath(grid.work_dir)))
    return found


def block_structure(results, nc1_drop=10, contrast_at_most=0.3):
    record = records(results['hong_block'], '001_*.json')[-1]
    contrast = record['block']['block_contrast']
    return Measurement('NC1 %s -> %s (/%s), block contrast %s' % (
        fmt(record['nc1_first']), fmt(record['nc1_last']), fmt(record['nc1_drop']), fmt(contrast)),
        record['nc1_drop'] >= nc1_drop and contrast <= contrast_at_most,
        'NC1 falls /%s (needs %d) or block contrast %s > %s' % (fmt(record['nc1_drop']), nc1_drop, fmt(contrast), contrast_at_most),
        contrast, 'block contrast')


def minority_collapse(results):
    grid = results['hong_minority']
    sweeps = records(grid, '00[23]_*.json')
    parts, beyond = [], []
    for name, job in grid.jobs.items():
        script, ka = os.path.basename(job.train[0]), job.flags.get('ka', 5)
        matching = [r for r in sweeps if r['script'] == script and r['ka'] == ka]
        if not matching:
            raise MissingResult('no record of %s --ka %s under %s/plots' % (script, ka, os.path.relpath(grid.work_dir)))
        record = matching[-1]
        beyond.append(record['network_max_score_collapsed'])
        parts.append((name, 'network spread >= %s below the threshold, <= %s beyond (convex: >= %s, <= %s)' % (
            fmt(record['network_min_score_not_collapsed']), fmt(record['network_max_score_collapsed']),
            fmt(record['convex_min_score_not_collapsed']), fmt(record['convex_max_score_collapsed'])),
            bool(record['network_matches_theory'] and record['convex_matches_theory']),
            '%s: the spread crosses the cut-off %s elsewhere than at the threshold' % (name, record['small_cutoff'])))
    return all_pass(parts, max(beyond), 'largest network spread beyond the threshold')


def cosine_limits(results, at_most=0.05):
    record = records(results['hong_limit'], 'limit*.json')[-1]
    first, last = record['distance_first'], record['distance_last']
    labels = ('A', 'B', 'AB')
    value = 'distance to -1/9 from n_A = %s to %s: %s' % (record['nalist'][0], record['nalist'][-1], ', '.join(
        '%s %s -> %s' % (label, fmt(a), fmt(b)) for label, a, b in zip(labels, first, last)))
    passed = max(last) <= at_most and max(last) < max(first)
    return Measurement(value, passed, 'a cosine ends %s from its limit (needs <= %s, and closer than at the smallest n_A)'
                       % (fmt(max(last)), at_most), max(last), 'largest distance at the largest n_A')


CLAIMS = [
    Claim('H1', 'Block structure: features collapse within each cluster of equal-sized classes (NC1 -> 0) and the '
          'logit matrix M W^T shows one block per cluster (Figs. 1 and 2)',
          'NC1 first/last >= 10x; block contrast (off-diagonal spread inside blocks / between blocks) <= 0.3',
          [('hong_block', None)], block_structure, 'hong_block/hong_results/plots/001_*_Z_plot.png'),
    Claim('H2', 'Minority collapse: the minority classes share one logit vector beyond l = sqrt(n_B)/N (as the '
          'regularisation grows, Figs. 5-6, or the majority size grows, Figs. 7-8) and not below it, where the '
          'convex program also collapses',
          'per sweep, minority spread < 0.1 exactly at the points beyond the threshold, for the network and the convex program',
          [('hong_minority', None)], minority_collapse, 'hong_minority/hong_results/plots/003_*ka=5*_z_comparison_plot.png'),
    Claim('H3', 'As n_A grows with l N fixed, the cosines A, B, AB between classifier rows approach the simplex '
          'ETF value -1/(K-1) = -1/9 (Fig. 9)',
          'largest n_A: every distance to -1/9 <= 0.05 and below the smallest n_A\'s largest',
          [('hong_limit', None)], cosine_limits, 'hong_limit/hong_results/plots/limit*.png'),
]
