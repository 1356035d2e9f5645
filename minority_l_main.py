"""Hong & Ling 2023, Figures 5 & 6: minority collapse as the regularisation level l grows
(Hong's minority_l_main.py). ka majority classes of na samples, 10 - ka minority classes of nb.

  python minority_l_main.py --ka 5 --reg_z_l 0.0027 0.0030 0.0033 0.0039 0.0045 0.0051 0.0057 0.0063 0.0069 0.0075

One network per l with (lambda_H, lambda_W, lambda_b) = (l/20, 5 l, reg_b), so 2 sqrt(lambda_W
lambda_H) = l. Writes models/003_<network>_ka=<ka>_na=<na>_nb=<nb>_l=<l>/{network_weight,
z_data.npy, b_data.npy} and plots/003_<network>_ka=<ka>_nb=<nb>_na=<na>_z_comparison_plot.png
(the original crashed before writing it, docs/original_code.md, Hong-B1), plus a collapse-score figure with the
minority-collapse level sqrt(n_B)/N and the total-collapse level drawn (not in the reference).

  python minority_l_main.py --quick --ka 5

--quick (hong_args.QUICK for the network and training) sweeps its own levels unless --reg_z_l
is given: l = r sqrt(n_B)/N for r in 0.6, 0.75, 0.9 and 1.2, 1.5, 2.0, the latter only below
0.85 x the total-collapse level (ka=5: 0.002 0.0025 0.003 | 0.004 0.005, ka=3: 0.00273 0.00341
0.00409 | 0.00545 0.00682); why these points: docs/hong.md.

Record (not in the reference): plots/003_<...>.json, the figure stem + '.json', with keys
settings, quick, ka, na, nb, swept ('reg_z_l'), values, small_cutoff, score_definition,
thresholds_in_swept_units, points (per value: value, class_counts, N, level, minority_threshold,
level_over_threshold, predicts_minority_collapse, total_collapse_level, predicts_total_collapse,
network_score, network_small, convex_score, convex_small, train_accuracy, network_logits_pre,
convex_logits_pre), network_matches_theory, convex_matches_theory and the extreme scores on
either side (network_min_score_not_collapsed, network_max_score_collapsed, convex_...).
Levels and thresholds in the record are those actually used (after the digits rescaling).
Every path above is below --output_root (default hong_results/), in the original's layout.
"""
import math

import args as cli
import hong_args
import hong_runs
from nc_repro import hong_analysis, theory, training

DEFAULT_LEVELS = [0.0027, 0.0030, 0.0033, 0.0039, 0.0045, 0.0051, 0.0057, 0.0063, 0.0069, 0.0075]


def get_args_parser():
    parser = hong_args.get_common_parser('Hong & Ling 2023: minority collapse versus l (minority_l_main).', 2000,
                                         quick_extra='; levels l = r sqrt(n_B)/N, r in 0.6-0.9 and 1.2-2.0 below '
                                                     '0.85 x total collapse, unless --reg_z_l is given')
    parser.add_argument('--na', type=int, default=500, help='samples per majority class')
    parser.add_argument('--nb', type=int, default=100, help='samples per minority class')
    parser.add_argument('--ka', type=int, default=5, help='number of majority classes (classes 0..ka-1)')
    parser.add_argument('--reg_z_l', type=float, nargs='+', default=None,
                        help='the levels l to sweep (default: the README values; own values with --quick)')
    parser.add_argument('--no_gpu', action='store_true', help='parsed and unused, as in the original')
    return hong_args.add_sweep_flags(parser)


def quick_levels(ka, na, nb):
    """--quick's levels (module docstring), in --reg_z_l units (the unscaled counts)."""
    counts = hong_analysis.two_cluster_counts(ka, na, nb)
    threshold = hong_analysis.minority_collapse_threshold(counts, ka)
    total = theory.hong_total_collapse_threshold(counts)
    return [hong_args.significant(r * threshold) for r in hong_args.QUICK_RATIOS
            if hong_args.keep_quick_point(r, r * threshold, total)]


def main(args):
    hong_args.check_two_clusters(args.ka)
    hong_args.check_counts('--na/--nb', [args.na, args.nb], minimum=2)
    hong_args.describe_settings(args)
    if args.reg_z_l is None:
        args.reg_z_l = quick_levels(args.ka, args.na, args.nb) if args.quick else list(DEFAULT_LEVELS)
        print('levels l: %s%s' % (args.reg_z_l, ' (quick)' if args.quick else ''))
    hong_args.check_levels('--reg_z_l', args.reg_z_l)
    device = training.select_device(args.device, args.gpu_id)
    counts = hong_analysis.two_cluster_counts(args.ka, args.na, args.nb)
    scale = hong_analysis.offline_scale(args.dataset_t, [counts])
    hong_analysis.announce_scale(scale)
    counts = hong_analysis.scaled_counts(counts, scale)
    suffix = hong_runs.dataset_suffix(args)
    base = '%s_ka=%d_na=%d_nb=%d' % (args.network, args.ka, args.na, args.nb)
    settings = [hong_runs.Setting(l, counts, l / math.sqrt(scale), cli.output_path(args, 'models', '003_%s_l=%s%s' % (base, l, suffix)),
                                  '234_data_ka=%d_na=%d_nb=%d' % (args.ka, args.na, args.nb))
                for l in args.reg_z_l]
    matrices = hong_runs.run_sweep(args, settings, 'warm', 0.0, device)
    N = sum(counts)
    to_flag_units = math.sqrt(scale)            # thresholds in the units of --reg_z_l
    thresholds = [(hong_analysis.minority_collapse_threshold(counts, args.ka) * to_flag_units, 'minority collapse $\\sqrt{n_B}/N$'),
                  (theory.hong_total_collapse_threshold(counts) * to_flag_units, 'total collapse $\\sqrt{n_A}/N$')]
    print('N = %d; minority collapse at l >= %.4g, total collapse at l >= %.4g (in --reg_z_l units)'
          % (N, thresholds[0][0], thresholds[1][0]))
    stem = cli.output_path(args, 'plots', '003_%s_ka=%d_nb=%d_na=%d%s' % (args.network, args.ka, args.nb, args.na, suffix))
    hong_runs.minority_figures(args, settings, matrices, args.ka, lambda l: '$l=%s$' % l, stem, '$l$', thresholds,
                               record={'script': 'minority_l_main.py', 'na': args.na, 'nb': args.nb, 'swept': 'reg_z_l'})


if __name__ == '__main__':
    cli.run(main, hong_args.parse(get_args_parser()))
