"""Reproduce a paper's results: run its grids through sweep.py, check its claims on the
finished runs, and write docs/reports/<paper>.md (a row per claim) and docs/reports/README.md.

  python reproduce.py --paper all --quick                       # this CPU: digits, MNIST-5k, synthetic
  python reproduce.py --paper dang2023 --quick --no_run         # re-check finished runs only
  python reproduce.py --paper zhou2022 --executor slurm --slurm_partition gpu --timeout_min 2880
  python reproduce.py --paper zhou2022 --no_run                 # after the SLURM jobs finished

Without --quick the grids run at the papers' settings, exactly as sweep.py runs them. Finished
jobs are reused, so running the same command again only runs what is missing. A claim whose
runs have not finished is reported as "not run", with the missing runs; one that the quick scale
cannot test is "needs full scale", with the reason. Exit status 1 when a claim checked at this
scale is not reproduced (or a job failed), 2 on bad input.
"""
import os
import sys
import time

import args as cli
import sweep
from nc_repro import claims, report
from nc_repro.papers import PAPERS


def get_args_parser():
    parser = cli.Parser(description="Run a paper's grids, check its claims and write the report.")
    parser.add_argument('--paper', required=True, choices=sorted(PAPERS) + ['all'], help='which paper (or all)')
    parser.add_argument('--quick', action='store_true', help="the grids' quick variants, on this CPU")
    parser.add_argument('--no_run', action='store_true', help='submit nothing; check what has finished')
    parser.add_argument('--executor', choices=('local', 'slurm', 'debug'), default='local', help='as sweep.py')
    parser.add_argument('--max_parallel', type=int, default=2, help='jobs at once (default 2: this CPU has 2 cores)')
    parser.add_argument('--work_root', default='sweeps', help='grids run in <work_root>/<grid> (default sweeps/, as sweep.py)')
    parser.add_argument('--allow_outside', action='append', default=[], metavar='DIR',
                        help="let the grid's path flags (data_dir, weights_root, ...) point into DIR, outside "
                             'the work folder (repeatable); without it they must stay inside the work folder')
    parser.add_argument('--report_dir', default=os.path.join('docs', 'reports'),
                        help='where the reports go (default docs/reports/)')
    slurm = parser.add_argument_group('SLURM (--executor slurm), passed to sweep.py')
    for flag, default in (('--slurm_partition', None), ('--slurm_account', None), ('--gpus_per_job', 1),
                          ('--cpus_per_job', 4), ('--mem_gb', 32), ('--timeout_min', 2880)):
        slurm.add_argument(flag, type=type(default) if default is not None else str, default=default)
    slurm.add_argument('--slurm_setup', nargs='*', default=[])
    return parser


def sweep_argv(args, grid):
    argv = [grid, '--executor', args.executor, '--max_parallel', str(args.max_parallel),
            '--work_dir', os.path.join(args.work_root, grid)] + (['--quick'] if args.quick else [])
    for flag in ('slurm_partition', 'slurm_account', 'gpus_per_job', 'cpus_per_job', 'mem_gb', 'timeout_min'):
        if getattr(args, flag) is not None:
            argv += ['--' + flag, str(getattr(args, flag))]
    argv += [option for root in args.allow_outside for option in ('--allow_outside', root)]
    return argv + (['--slurm_setup'] + args.slurm_setup if args.slurm_setup else [])


def run_grids(args, paper):
    """sweep.py on each of the paper's grids; returns the names of the grids with failed jobs."""
    failed = []
    for grid in paper.GRIDS:
        started = time.time()
        print('\n== %s: sweep.py %s' % (paper.NAME, ' '.join(sweep_argv(args, grid))), flush=True)
        if sweep.main(sweep.get_args_parser().parse_args(sweep_argv(args, grid))):
            failed.append(grid)
        print('== %s finished in %.0f s' % (grid, time.time() - started), flush=True)
    return failed


def main(args):
    if args.max_parallel < 1:
        raise cli.UsageError('--max_parallel must be at least 1 (got %d)' % args.max_parallel)
    papers = [PAPERS[name] for name in (sorted(PAPERS, key=list(PAPERS).index) if args.paper == 'all' else [args.paper])]
    scale = 'quick (CPU)' if args.quick else 'full scale'
    started, failed_grids, failed_claims = time.time(), [], []
    for paper in papers:
        paper_started = time.time()
        if not args.no_run:
            failed_grids += run_grids(args, paper)
        results = claims.Results(args.quick, args.work_root)
        rows = [claims.evaluate(claim, results) for claim in paper.CLAIMS]
        runs = [(grid, results[grid].command_lines()) for grid in paper.GRIDS]
        seconds = None if args.no_run else time.time() - paper_started
        path = report.paper_report(paper, rows, runs, scale, seconds, args.work_root, args.report_dir)
        print('\n%s (%s): %s' % (paper.NAME, scale, path))
        for row in rows:
            print('  %-4s %-17s %s%s' % (row.id, row.status, row.value, ' (%s)' % row.reason if row.reason else ''))
        failed_claims += ['%s %s' % (paper.NAME, row.id) for row in rows if row.status == claims.NOT_REPRODUCED]
    summary, totals = report.summary_report(args.report_dir, list(PAPERS))
    print('\nsummary: %s (%s) in %.0f s' % (summary, ', '.join('%d %s' % (n, s) for s, n in totals.items() if n),
                                           time.time() - started))
    if failed_grids:
        print('grids with failed jobs: %s (python sweep.py GRID --status lists them)' % ', '.join(failed_grids))
    if failed_claims:
        print('not reproduced: %s' % ', '.join(failed_claims))
    return 1 if failed_grids or failed_claims else 0


if __name__ == '__main__':
    sys.exit(cli.run(main, get_args_parser().parse_args()))
