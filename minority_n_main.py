"""Hong & Ling 2023, Figures 7 & 8: minority collapse as the majority size n_A grows at a fixed
level l (Hong's minority_n_main.py).

  python minority_n_main.py --ka 5 --nalist 100 200 300 400 600 800 1000 1100 1200 1400

One network per n_A with (lambda_H, lambda_W, lambda_b) = (l/20, 5 l, reg_b). Writes
models/002_<network>_ka=<ka>_na=<na>_nb=<nb>_l=<reg_l>/{network_weight, z_data.npy, b_data.npy}
and plots/002_<network>_ka=<ka>_nb=<nb>_l=<reg_l>_z_comparison_plot.png, plus a collapse-score
figure with n_A* = (sqrt(n_B)/l - k_B n_B)/k_A and the total-collapse size drawn (not in the
reference).

  python minority_n_main.py --quick --ka 5

--quick (hong_args.QUICK for the network and training) sweeps its own n_A unless --nalist is
given: the n_A at which l / (sqrt(n_B)/N) = r, for r in 0.6, 0.75, 0.9 and 1.2, 1.5, 2.0 (ka=5:
140 200 260 | 380 500 700; ka=3: 167 267 367 | 567 767 1100); why these points: docs/hong.md.

Record (not in the reference): plots/002_<...>.json, the figure stem + '.json', with the keys
of minority_l_main's record (swept = 'nalist'; value = n_A as given, level = l actually used).
Every path above is below --output_root (default hong_results/), in the original's layout.
"""
import math

import args as cli
import hong_args
import hong_runs
from nc_repro import hong_analysis, theory, training

DEFAULT_NALIST = [100, 200, 300, 400, 600, 800, 1000, 1100, 1200, 1400]


def get_args_parser():
    parser = hong_args.get_common_parser('Hong & Ling 2023: minority collapse versus n_A (minority_n_main).', 2000,
                                         quick_extra='; n_A where l = r sqrt(n_B)/N, r in 0.6-0.9 and 1.2-2.0 below '
                                                     '0.85 x total collapse, unless --nalist is given')
    parser.add_argument('--nb', type=int, default=100, help='samples per minority class')
    parser.add_argument('--ka', type=int, default=5, help='number of majority classes (classes 0..ka-1)')
    parser.add_argument('--nalist', type=int, nargs='+', default=None,
                        help='the majority sizes n_A to sweep (default: the README values; own values with --quick)')
    parser.add_argument('--reg_l', type=float, default=0.005, help='l, held fixed')
    parser.add_argument('--no_gpu', action='store_true', help='parsed and unused, as in the original')
    return hong_args.add_sweep_flags(parser)


def quick_nalist(ka, nb, level):
    """--quick's n_A values (module docstring), in --nalist units (the unscaled counts)."""
    k_B = hong_analysis.NUM_CLASSES - ka
    nalist = []
    for r in hong_args.QUICK_RATIOS:
        na = int(round((r * math.sqrt(nb) / level - k_B * nb) / ka))
        counts = hong_analysis.two_cluster_counts(ka, na, nb)
        if na >= nb and hong_args.keep_quick_point(r, level, theory.hong_total_collapse_threshold(counts)):
            nalist.append(na)
    return nalist


def main(args):
    hong_args.check_two_clusters(args.ka)
    hong_args.check_levels('--reg_l', [args.reg_l])
    hong_args.describe_settings(args)
    if args.nalist is None:
        args.nalist = quick_nalist(args.ka, args.nb, args.reg_l) if args.quick else list(DEFAULT_NALIST)
        print('n_A values: %s%s' % (args.nalist, ' (quick)' if args.quick else ''))
        if not args.nalist:
            raise cli.UsageError('no quick n_A value lies on both sides of the threshold for these flags; give --nalist')
    hong_args.check_counts('--nalist/--nb', args.nalist + [args.nb], minimum=2)
    device = training.select_device(args.device, args.gpu_id)
    all_counts = [hong_analysis.two_cluster_counts(args.ka, na, args.nb) for na in args.nalist]
    scale = hong_analysis.offline_scale(args.dataset_t, all_counts)
    hong_analysis.announce_scale(scale)
    level = args.reg_l / math.sqrt(scale)
    suffix = hong_runs.dataset_suffix(args)
    settings = [hong_runs.Setting(na, hong_analysis.scaled_counts(counts, scale), level,
                                  cli.output_path(args, 'models', '002_%s_ka=%d_na=%d_nb=%d_l=%s%s' % (
                                      args.network, args.ka, na, args.nb, args.reg_l, suffix)),
                                  '234_data_ka=%d_na=%d_nb=%d' % (args.ka, na, args.nb))
                for na, counts in zip(args.nalist, all_counts)]
    matrices = hong_runs.run_sweep(args, settings, 'warm', 0.0, device)
    k_B, n_B = hong_analysis.NUM_CLASSES - args.ka, settings[0].counts[-1]
    thresholds = [(theory.hong_minority_n_star(args.ka, k_B, n_B, level) / scale, 'minority collapse $n_A^*$'),
                  (theory.hong_total_collapse_n_star(args.ka, k_B, n_B, level) / scale, 'total collapse')]
    print('minority collapse for n_A >= %.1f, total collapse for n_A >= %.1f (in --nalist units)'
          % (thresholds[0][0], thresholds[1][0]))
    stem = cli.output_path(args, 'plots', '002_%s_ka=%d_nb=%d_l=%s%s' % (args.network, args.ka, args.nb, args.reg_l, suffix))
    hong_runs.minority_figures(args, settings, matrices, args.ka, lambda na: '$n_A=%s$' % na, stem, '$n_A$', thresholds,
                               record={'script': 'minority_n_main.py', 'nb': args.nb, 'reg_l': args.reg_l, 'swept': 'nalist'})


if __name__ == '__main__':
    cli.run(main, hong_args.parse(get_args_parser()))
