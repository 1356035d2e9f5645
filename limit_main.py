"""Hong & Ling 2023, Figure 9: as n_A grows with l N held fixed, the imbalance fades and the
cosines between the classifiers' logit rows tend to the simplex-ETF value -1/(K-1) (Hong's
limit_main.py).

  python limit_main.py --nalist 500 1000 1500 2000 2500 3000 3500 4000 4500 5000 5500

One network per n_A with nb = na // ratio, l = ln_pro / N and (lambda_H, lambda_W, lambda_b) =
(l/20, 5 l, reg_b). Writes models/004_<network>_ka=<ka>_na=<na>_r=<ratio>/{network_weight,
z_data.npy, b_data.npy}, plots/limit.png (A, B, AB and the ETF line; the convex program's values
as crosses, not in the reference) and plots/limit.json with the numbers.

  python limit_main.py --quick

--quick (hong_args.QUICK for the network and training) holds l N at ln_pro = 8 instead of 0.1
unless --ln_pro is given; why: docs/hong.md.

Record plots/limit<suffix>.json, keys: nalist, A_B_AB and convex_A_B_AB ([A, B, AB] per n_A),
etf_cosine (-1/9), faithful_b, settings, quick, ln_pro, ka, ratio, points (per n_A: na,
class_counts, N, level, level_over_minority_threshold, A, B, AB, distance_to_etf ([|A + 1/9|,
|B + 1/9|, |AB + 1/9|]), convex_A_B_AB, convex_distance_to_etf, train_accuracy),
distance_first / distance_last (network, at the first and last n_A given) and
distance_decreases ([A, B, AB]: last < first), weight_decay, and per point effective_level
(l_eff = 2 sqrt((lambda_W + weight_decay / 2) lambda_H), the level with SGD's weight decay on W;
docs/hong.md), effective_over_level and convex_effective_A_B_AB (the convex program at l_eff,
circles on the figure).
Every path above is below --output_root (default hong_results/), in the original's layout.
"""
import dataclasses
import math

import args as cli
import hong_args
import hong_runs
from nc_repro import hong_analysis, training
from plots import hong_figures as plot_hong

DEFAULT_NALIST = [500, 1000, 1500, 2000, 2500, 3000, 3500, 4000, 4500, 5000]
PAPER_LN_PRO, QUICK_LN_PRO = 0.1, 8.0
WEIGHT_DECAY = 5e-4           # SGD's weight decay in the original's limit loop


def effective_level(level, weight_decay=WEIGHT_DECAY):
    """2 sqrt(lambda_W' lambda_H) with lambda_W' = 5 l + weight_decay / 2, lambda_H = l / 20:
    the nuclear-norm level of the objective the network trains, weight decay on W included."""
    lambda_h, lambda_w, _ = hong_analysis.lambdas_for_level(level, 0.0)
    return 2 * math.sqrt((lambda_w + weight_decay / 2) * lambda_h)


def get_args_parser():
    parser = hong_args.get_common_parser('Hong & Ling 2023: cosines as n_A grows (limit_main).', 2000,
                                         quick_extra='; l N held at %g unless --ln_pro is given' % QUICK_LN_PRO)
    parser.add_argument('--ln_pro', type=float, default=None,
                        help='l N, held fixed (l = ln_pro / N; default %g, %g with --quick)' % (PAPER_LN_PRO, QUICK_LN_PRO))
    parser.add_argument('--ka', type=int, default=5, help='number of majority classes (classes 0..ka-1)')
    parser.add_argument('--nalist', type=int, nargs='+', default=DEFAULT_NALIST, help='the majority sizes n_A')
    # type=float with an int default: omitted -> the int 2 (names r=2, nb=250); given -> a float
    # (r=2.0, nb=250.0), exactly as the original's argparse behaves (docs/original_code.md, Hong-B7).
    parser.add_argument('--ratio', type=float, default=2, help='nb = na // ratio')
    extra = hong_args.add_sweep_flags(parser)
    extra.add_argument('--faithful_b', type=int, default=1, choices=[0, 1],
                       help='1: B over the strict upper triangle of size ka, as the original (right '
                            'for ka = 5 only, Hong-B6); 0: over the minority block itself')
    return parser


def main(args):
    hong_args.check_two_clusters(args.ka)
    if args.ka < 2:
        raise cli.UsageError('--ka must be at least 2 for the majority cosine A (got %d)' % args.ka)
    if args.ln_pro is None:
        args.ln_pro = QUICK_LN_PRO if args.quick else PAPER_LN_PRO
    if not 0 < args.ratio < math.inf or not 0 < args.ln_pro < math.inf:
        raise cli.UsageError('--ratio and --ln_pro must be positive (got %s and %s)' % (args.ratio, args.ln_pro))
    settings_line = hong_args.describe_settings(args)
    print('l N held at %g%s' % (args.ln_pro, ' (quick)' if args.quick else ''))
    all_counts = [hong_analysis.two_cluster_counts(args.ka, na, na // args.ratio) for na in args.nalist]
    hong_args.check_counts('--nalist (nb = na // ratio)', [c for counts in all_counts for c in counts], minimum=2)
    device = training.select_device(args.device, args.gpu_id)
    scale = hong_analysis.offline_scale(args.dataset_t, all_counts)
    hong_analysis.announce_scale(scale)
    suffix = hong_runs.dataset_suffix(args)
    settings = [hong_runs.Setting(na, hong_analysis.scaled_counts(counts, scale), args.ln_pro / sum(counts) / math.sqrt(scale),
                                  cli.output_path(args, 'models', '004_%s_ka=%d_na=%d_r=%s%s' % (
                                      args.network, args.ka, na, args.ratio, suffix)),
                                  '234_data_ka=%d_na=%d_nb=%s' % (args.ka, na, na // args.ratio))
                for na, counts in zip(args.nalist, all_counts)]
    matrices = hong_runs.run_sweep(args, settings, 'batch_2', WEIGHT_DECAY, device)
    faithful = bool(args.faithful_b)
    cosines = [hong_analysis.cosine_statistics(pre, args.ka, faithful) for pre in matrices]
    convex = hong_runs.convex_reference(args, settings)
    convex_cosines = None if convex is None else [hong_analysis.cosine_statistics(pre, args.ka, faithful) for pre in convex]
    effective = [dataclasses.replace(s, level=effective_level(s.level)) for s in settings]
    convex_effective = hong_runs.convex_reference(args, effective)
    effective_cosines = (None if convex_effective is None else
                         [hong_analysis.cosine_statistics(pre, args.ka, faithful) for pre in convex_effective])
    ratios = [e.level / s.level for e, s in zip(effective, settings)]
    note = 'weight decay %g on W: effective l = %.3g to %.3g x l' % (WEIGHT_DECAY, min(ratios), max(ratios))
    print(note)
    for index, setting in enumerate(settings):
        print('n_A = %s: A %.4f, B %.4f, AB %.4f%s' % ((setting.value,) + cosines[index] + (
            '' if convex is None else ' (convex program: %.4f, %.4f, %.4f)' % convex_cosines[index],)))
    stem = cli.output_path(args, 'plots', 'limit' + suffix)
    paths = plot_hong.limit_cosines(args.nalist, *zip(*cosines), stem,
                                    convex=None if convex is None else list(zip(*convex_cosines)),
                                    convex_effective=None if convex is None else list(zip(*effective_cosines)),
                                    note=note)
    record = limit_record(args, settings_line, settings, cosines, convex_cosines, faithful)
    record['weight_decay'] = WEIGHT_DECAY
    for point, setting, cosine in zip(record['points'], effective, effective_cosines or [None] * len(effective)):
        point.update(effective_level=setting.level, effective_over_level=setting.level / point['level'],
                     convex_effective_A_B_AB=None if cosine is None else list(cosine))
    hong_runs.write_record(stem, record)
    print('distance to -1/9 (A, B, AB): first n_A %s, last n_A %s' % (
        ', '.join('%.4f' % d for d in record['distance_first']), ', '.join('%.4f' % d for d in record['distance_last'])))
    print('figures: %s, %s.json' % (', '.join(paths), stem))


def limit_record(args, settings_line, settings, cosines, convex_cosines, faithful):
    """The JSON record (keys in the module docstring)."""
    etf = -1 / (hong_analysis.NUM_CLASSES - 1)
    distance = [[abs(c - etf) for c in triple] for triple in cosines]
    points = []
    for index, setting in enumerate(settings):
        convex = None if convex_cosines is None else list(convex_cosines[index])
        points.append({
            'na': setting.value, 'class_counts': list(setting.counts), 'N': int(sum(setting.counts)),
            'level': setting.level,
            'level_over_minority_threshold': setting.level / hong_analysis.minority_collapse_threshold(setting.counts, args.ka),
            'A': cosines[index][0], 'B': cosines[index][1], 'AB': cosines[index][2],
            'distance_to_etf': distance[index], 'convex_A_B_AB': convex,
            'convex_distance_to_etf': None if convex is None else [abs(c - etf) for c in convex],
            'train_accuracy': setting.train_accuracy})
    return {'nalist': args.nalist, 'A_B_AB': cosines, 'convex_A_B_AB': convex_cosines, 'etf_cosine': etf,
            'faithful_b': faithful, 'settings': settings_line, 'quick': bool(args.quick), 'ln_pro': args.ln_pro,
            'ka': args.ka, 'ratio': args.ratio, 'points': points,
            'distance_first': distance[0], 'distance_last': distance[-1],
            'distance_decreases': [last < first for first, last in zip(distance[0], distance[-1])]}


if __name__ == '__main__':
    cli.run(main, hong_args.parse(get_args_parser()))
