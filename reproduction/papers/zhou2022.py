"""Zhou et al. 2022 (MSE loss): the claims of its experiments section, measured on the grids
that J's plot scripts draw (plot_optim_mse, plot_etf_mse, plot_dk_mse, plot_M_rmse, plot_k_rmse).

Keys of info.pkl (zhou2022 recipe): collapse_metric = NC1 (tr(Sigma_W Sigma_B^+)/K),
ETF_metric = NC2 (distance of the normalised W W^T from the simplex ETF's), WH_relation_metric
= NC3 (distance between the normalised W and H-bar), NC4_ncc_mismatch, train_acc1, test_acc1,
avg_cos_margin. See docs/reproduction.md for the thresholds.
"""
from reproduction.claims import Claim, Measurement, all_pass, fmt, fold_drop

NAME = 'zhou2022'
TITLE = 'Zhou et al. 2022, neural collapse under MSE loss'
CITATION = ('Zhou, Li, Ding, You, Qu, Zhu, *On the Optimization Landscape of Neural Collapse under '
            'MSE Loss*, ICML 2022')
GRIDS = ['zhou_optim_mse', 'zhou_etf_mse', 'zhou_dk_mse', 'zhou_M_rmse', 'zhou_k_rmse']
NOTES = ['Quick scale: T\'s MLP on the 8x8 digits instead of ResNet18 on CIFAR-10 / mini-ImageNet, '
         'with the flags listed under Runs. The paper\'s figures come from the full grids '
         '(`python reproduce.py --paper zhou2022` on a GPU cluster).']

NC1, NC2, NC3 = 'collapse_metric', 'ETF_metric', 'WH_relation_metric'
K = 10


def optimizers_collapse(results, nc1_fold=100, nc2_fold=3, nc3_fold=3):
    grid = results['zhou_optim_mse']
    parts, nc1_folds = [], []
    for name in grid.jobs:
        info = grid.info(name)
        folds = [fold_drop(info[key]) for key in (NC1, NC2, NC3)]
        nc1_folds.append(folds[0])
        ok = folds[0] >= nc1_fold and folds[1] >= nc2_fold and folds[2] >= nc3_fold
        parts.append((name, 'NC1 /%s, NC2 /%s, NC3 /%s' % tuple(fmt(f) for f in folds), ok,
                      '%s falls less than the threshold' % name))
    return all_pass(parts, min(nc1_folds), 'smallest NC1 fold')


def fixed_etf_like_learned(results, nc1_fold=100, accuracy_gap=2.0):
    grid = results['zhou_etf_mse']
    by_dim = {}
    for name, job in grid.jobs.items():
        by_dim.setdefault(job.flags.get('fixdim') or job.flags.get('width') or 512, {})['fixed' if job.flags.get('ETF_fc') else 'learned'] = name
    parts, folds = [], []
    for dim, pair in by_dim.items():
        if set(pair) != {'fixed', 'learned'}:
            continue
        fixed, learned = grid.info(pair['fixed']), grid.info(pair['learned'])
        fold = fold_drop(fixed[NC1])
        folds.append(fold)
        gap = abs(float(fixed['test_acc1'][-1]) - float(learned['test_acc1'][-1]))
        parts.append(('d=%s' % dim, 'fixed NC1 /%s (learned /%s), test accuracy %.1f vs %.1f' % (
            fmt(fold), fmt(fold_drop(learned[NC1])), fixed['test_acc1'][-1], learned['test_acc1'][-1]),
            fold >= nc1_fold and gap <= accuracy_gap,
            'd=%s: fixed NC1 /%s < %d or accuracy gap %.1f > %.1f' % (dim, fmt(fold), nc1_fold, gap, accuracy_gap)))
    if not parts:
        return Measurement('-', False, 'no learned/fixed pair at the same d in the grid')
    return all_pass(parts, min(folds), 'smallest fixed-ETF NC1 fold')


def feature_dimension(results, collapsed_at_most=0.2, floor=0.3, ratio=2.0):
    grid = results['zhou_dk_mse']
    final = {}
    for name, job in grid.jobs.items():
        final[int(job.flags.get('fixdim') or job.flags.get('width') or 512)] = float(grid.info(name)[NC2][-1])
    enough = {d: v for d, v in final.items() if d >= K - 1}
    short = {d: v for d, v in final.items() if d < K - 1}
    if not enough or not short:
        return Measurement('-', False, 'the grid needs runs with d >= K-1 and d < K-1')
    largest = max(enough.values())
    value = ', '.join('d=%d: %s' % (d, fmt(final[d])) for d in sorted(final))
    bound = max(floor, ratio * largest)
    failed = ['d=%d ends at %s > %s' % (d, fmt(v), collapsed_at_most) for d, v in enough.items() if v > collapsed_at_most]
    failed += ['d=%d ends at %s < %s' % (d, fmt(v), fmt(bound)) for d, v in short.items() if v < bound]
    return Measurement('final NC2 ' + value, not failed, '; '.join(failed), largest, 'largest NC2 at d >= K-1')


def rescaled_mse(grid_name, flag):
    """Larger M (or k) ends at a lower NC1 and a larger average cosine margin (largest value
    against the smallest)."""
    def check(results):
        grid = results[grid_name]
        runs = sorted((float(job.flags[flag]), grid.info(name)) for name, job in grid.jobs.items())
        (low, low_info), (high, high_info) = runs[0], runs[-1]
        nc1 = [(value, float(info[NC1][-1])) for value, info in runs]
        margin = [(value, float(info['avg_cos_margin'][-1])) for value, info in runs]
        text = 'final NC1 %s; final average cosine margin %s' % (
            ', '.join('%s=%g: %s' % (flag, v, fmt(x)) for v, x in nc1),
            ', '.join('%s=%g: %s' % (flag, v, fmt(x)) for v, x in margin))
        lower = float(high_info[NC1][-1]) < float(low_info[NC1][-1])
        wider = float(high_info['avg_cos_margin'][-1]) > float(low_info['avg_cos_margin'][-1])
        reason = [] if lower else ['NC1 at %s=%g is not below %s=%g' % (flag, high, flag, low)]
        reason += [] if wider else ['the margin at %s=%g is not above %s=%g' % (flag, high, flag, low)]
        return Measurement(text, lower and wider, '; '.join(reason), float(high_info[NC1][-1]) / float(low_info[NC1][-1]),
                           'NC1 ratio largest/smallest %s' % flag)
    return check


CLAIMS = [
    Claim('Z1', 'Under MSE, NC1, NC2 and NC3 fall by orders of magnitude whichever optimizer trains the '
          'network: SGD, Adam or L-BFGS, as the global-optimality theorem predicts (the optimizers figure, '
          '`plot_optim_mse.py`)',
          'per optimizer, first/last epoch: NC1 >= 100x, NC2 >= 3x, NC3 >= 3x',
          [('zhou_optim_mse', None)], optimizers_collapse, 'zhou_optim_mse/figures{q}/optim_mse/resnet18-NC1.png'),
    Claim('Z2', 'A classifier fixed to the simplex ETF collapses like a learned one, at similar accuracy, '
          'also with feature dimension d = K (the fixed-classifier figure, `plot_etf_mse.py`)',
          'fixed-ETF NC1 >= 100x; |test accuracy fixed - learned| <= 2 points at the same d',
          [('zhou_etf_mse', None)], fixed_etf_like_learned, 'zhou_etf_mse/figures{q}/etf_mse/resnet18-NC1.png'),
    Claim('Z3', 'With feature dimension d >= K-1 the class means and classifier collapse to a simplex ETF; '
          'with d < K-1 they cannot, and NC2 stays away from 0 (the feature-dimension figure, `plot_dk_mse.py`)',
          'final NC2 <= 0.2 for d >= 9; >= max(0.3, 2x the largest d >= 9 value) for d < 9',
          [('zhou_dk_mse', None)], feature_dimension, 'zhou_dk_mse/figures{q}/dk_mse/resnet18-NC2.png'),
    Claim('Z4', 'Rescaled MSE: a larger rescaling M of the true-class term improves the landscape around '
          'the collapsed solution: lower NC1 and larger cosine margins (the rescaled-MSE figure, `plot_M_rmse.py`)',
          'largest M against M = 1: final NC1 lower and final average cosine margin larger',
          [('zhou_M_rmse', None)], rescaled_mse('zhou_M_rmse', 'M'), 'zhou_M_rmse/figures{q}/M_rmse/resnet18-NC1.png'),
    Claim('Z5', 'Rescaled MSE: a larger weight alpha = k on the true class does the same (the '
          'rescaled-MSE figure, `plot_k_rmse.py`)',
          'largest k against k = 1: final NC1 lower and final average cosine margin larger',
          [('zhou_k_rmse', None)], rescaled_mse('zhou_k_rmse', 'k'), 'zhou_k_rmse/figures{q}/k_rmse/resnet18-NC1.png',
          full_scale_only='on digits a larger k collapses less (final NC1 0.0057 at k = 1, 0.014 at k = 20) and its '
          'margins shrink: the effect of alpha is measured on mini-ImageNet with ResNet18 over 200 epochs'),
]
