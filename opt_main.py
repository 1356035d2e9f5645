"""Solve the convex UFM program of Hong & Ling 2023 and save Z and b (Hong's opt_main.py and ana_utils.solve_cvx;
the program is in docs/papers.md, Hong & Ling 2023).

  python opt_main.py --cluster_s 3 3 4 --sample_s 5000 4000 3000 --reg_z 0.005 --reg_b 0.01

Class counts: entry i of --sample_s repeated --cluster_s[i] times. Prints the collapse thresholds
of theory.py (docs/papers.md, Hong & Ling 2023) for these counts and where --reg_z lies, the solver status, the
objective, b and Z (column k = logits of class k), whether the solution agrees with the
thresholds, and saves <output_root>/opt_results/<sd_z>.npy (K, K) and <sd_b>.npy (K,) (--output_root,
default hong_results/, keeps the original's relative layout).
Not in the reference: --solver / --eps, the threshold report, and no torch or CUDA at all.
In the README example every cluster is above its threshold, so Z = 0 and b carries the prior.
"""
import math

import numpy as np

import args as cli
from nc_repro import convex_ufm, theory


def get_args_parser():
    parser = cli.Parser(description='Convex UFM program of Hong & Ling 2023 (no training).')
    parser.add_argument('--cluster_s', type=int, nargs='+', default=[3, 3, 4],
                        help='number of classes in each cluster')
    parser.add_argument('--sample_s', type=int, nargs='+', default=[5000, 4000, 3000],
                        help='samples per class in each cluster')
    parser.add_argument('--reg_z', type=float, default=0.005, help='l, the weight of ||Z D||_*')
    parser.add_argument('--reg_b', type=float, default=0.01, help='l_2, the weight of ||b||^2')
    parser.add_argument('--sd_b', type=str, default='ground_b', help='file stem of the saved bias')
    parser.add_argument('--sd_z', type=str, default='ground_z', help='file stem of the saved Z')
    # not in the reference
    cli.add_output_root(parser)
    parser.add_argument('--solver', type=str, default=convex_ufm.FAITHFUL_SOLVER,
                        help='cvxpy solver (SCS as the original; CLARABEL, ...)')
    parser.add_argument('--eps', type=float, default=None,
                        help='solver tolerance (default: 1e-5 for SCS as cvxpy sets it, the '
                             "solver's own otherwise)")
    return parser


def check_args(args):
    """The per-class counts, or a UsageError naming the flag."""
    try:
        counts = convex_ufm.class_counts(args.cluster_s, args.sample_s)
    except ValueError as error:
        raise cli.UsageError(str(error))
    try:
        args.solver = convex_ufm.check_solver(args.solver)
    except ValueError as error:
        raise cli.UsageError('--' + str(error))
    if not 0 < args.reg_z < math.inf:
        raise cli.UsageError('--reg_z must be positive and finite: with l = 0 the cross-entropy has no '
                             'minimiser (got %s)' % args.reg_z)
    if not 0 <= args.reg_b < math.inf:
        raise cli.UsageError('--reg_b must be zero or positive and finite (got %s)' % args.reg_b)
    if args.eps is not None and not 0 < args.eps < math.inf:
        raise cli.UsageError('--eps must be positive and finite (got %s)' % args.eps)
    if npy_path(args, args.sd_z) == npy_path(args, args.sd_b) or not args.sd_z or not args.sd_b:
        raise cli.UsageError('--sd_z and --sd_b must be two different non-empty names '
                             '(got %r and %r)' % (args.sd_z, args.sd_b))
    return counts


def npy_path(args, stem):
    """<output_root>/opt_results/<stem>.npy, as np.save('opt_results/' + stem) names it."""
    return cli.output_path(args, 'opt_results', stem if stem.endswith('.npy') else stem + '.npy')


def side(value, threshold):
    return 'above' if value >= threshold else 'below'


def yes(flag):
    return 'yes' if flag else 'no'


def main(args):
    counts = check_args(args)
    K, N = len(counts), sum(counts)
    reg_z = args.reg_z
    print('counts (K=%d, N=%d): %s' % (K, N, counts))
    print('thresholds (theory.py; docs/papers.md, Hong & Ling 2023) for reg_z = l = %g:' % reg_z)
    clusters = convex_ufm.equal_count_clusters(counts)
    within = {}
    for n_c, indices in clusters:
        within[n_c] = theory.hong_within_cluster_threshold(n_c, N)
        print('  classes %s (n_c=%d): columns coincide iff l >= sqrt(n_c)/N = %.6g: l is %s'
              % (indices.tolist(), n_c, within[n_c], side(reg_z, within[n_c])))
    total = theory.hong_total_collapse_threshold(counts)
    exact_total = convex_ufm.total_collapse_level(counts, args.reg_b)
    print('  total collapse (Z = 0) iff l >= sqrt(n_max)/N = %.6g: l is %s'
          % (total, side(reg_z, total)))
    print('  KKT level sigma_max(G_0) = %.6g: l is %s%s' % (
        exact_total, side(reg_z, exact_total),
        '' if np.isclose(exact_total, total, rtol=1e-6) else
        ' (differs from sqrt(n_max)/N: the largest count is not shared)'))

    try:
        result = convex_ufm.solve_ufm_program(counts, reg_z, args.reg_b, solver=args.solver,
                                              eps=args.eps)
    except RuntimeError as error:
        raise cli.RunStopped(str(error))
    Z, b = result['Z'], result['b']
    eps = 'its default' if result['eps'] is None else '%g' % result['eps']
    print('solver: %s (eps %s), status: %s' % (result['solver'], eps, result['status']))
    print('objective: %.9f' % result['objective'])
    with np.printoptions(precision=4, suppress=True, linewidth=120):
        print('b:', np.round(b, 4) + 0.0)                       # + 0.0 prints -0.0 as 0.0
        print('Z (column k = logits of class k):')
        print(np.round(Z, 4) + 0.0)

    tol = convex_ufm.STRUCTURE_TOL
    print('structure of the solution (entries equal within %g):' % tol)
    agree = []
    for n_c, indices in clusters:
        spread = convex_ufm.column_spread(Z, indices)
        found, predicted = spread <= tol, reg_z >= within[n_c]
        agree.append(found == predicted)
        print('  classes %s: column spread %.2e, coincide: %s (predicted %s)'
              % (indices.tolist(), spread, yes(found), yes(predicted)))
    zero = convex_ufm.is_total_collapse(Z, tol)
    agree_kkt = all(agree) and zero == (reg_z >= exact_total)
    agree.append(zero == (reg_z >= total))
    print('  Z = 0: max |Z| = %.2e, %s (predicted %s; KKT level predicts %s)'
          % (np.abs(Z).max(), yes(zero), yes(reg_z >= total), yes(reg_z >= exact_total)))
    near = [t for t in list(within.values()) + [total, exact_total] if abs(reg_z / t - 1) < 0.01]
    print('solution agrees with the thresholds of theory.py: %s; with the KKT level: %s%s' % (
        yes(all(agree)), yes(agree_kkt),
        ' (l is within 1% of a threshold: the check is tolerance-limited)' if near else ''))

    z_path, b_path = npy_path(args, args.sd_z), npy_path(args, args.sd_b)
    convex_ufm.save_npy(z_path, Z)
    convex_ufm.save_npy(b_path, b)
    print('saved %s %s and %s %s' % (z_path, Z.shape, b_path, b.shape))
    return dict(result, agrees=all(agree), agrees_kkt=agree_kkt, z_path=z_path, b_path=b_path)


if __name__ == '__main__':
    args = get_args_parser().parse_args()
    cli.run(main, args)
