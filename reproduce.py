"""Reproduce a paper's results: run its grids through sweep.py, check its claims on the
finished runs, and write docs/reports/<paper>.md (a row per claim) and docs/reports/README.md.

  python reproduce.py --paper all --quick                       # this CPU: digits, MNIST-5k, synthetic
  python reproduce.py --paper dang2023 --quick --no_run         # re-check finished runs only
  python reproduce.py --paper zhou2022 --executor slurm --slurm_partition gpu --timeout_min 2880
  python reproduce.py --paper zhou2022 --no_run                 # after the SLURM jobs finished
  python reproduce.py --paper dang2023 --quick --claims D3 --settings depth_linear=2 weight_decay=0.0005 feature_decay_rate=0.0005 seed=3

--seeds N runs every grid N times (default 3 with --quick, else 1): first with the grid's own
seed, then with --seed 101, 102, ... in <work_root>/seed_<s>/; each claim's row says how many
seeds reproduce it and the spread of its key number (a claim that --quick cannot test runs
with the first seed only). --settings FLAG=VALUE ... sets flags of
every run of the claims' grids (a swept flag is swept over the value, or a [list]): the grids
then run in <work_root>/settings/<settings>/ and the report goes to
<report_dir>/settings/<settings>/, judged with the same thresholds (docs/reproduction.md says
over which settings each claim is expected to hold).

Without --quick the grids run at the papers' settings, exactly as sweep.py runs them. Finished
jobs are reused, so running the same command again only runs what is missing. A claim whose
runs have not finished is reported as "not run", with the missing runs; one that the quick scale
cannot test is "needs full scale", with the reason. Exit status 1 when a claim checked at this
scale is not reproduced (or a job failed), 2 on bad input.
"""
import json
import multiprocessing
import os
import sys
import time

from tqdm import tqdm

import args as cli
import sweep
from reproduction import claims, grids, report
from reproduction.papers import PAPERS


def get_args_parser():
    parser = cli.Parser(description="Run a paper's grids, check its claims and write the report.")
    parser.add_argument('--paper', required=True, choices=sorted(PAPERS) + ['all'], help='which paper (or all)')
    parser.add_argument('--quick', action='store_true', help="the grids' quick variants, on this CPU")
    parser.add_argument('--no_run', action='store_true', help='submit nothing; check what has finished')
    sweep.add_launch_flags(parser, max_parallel=2)          # passed to sweep.py as they are (2 cores here)
    parser.add_argument('--work_root', default='sweeps', help='grids run in <work_root>/<grid> (default sweeps/, as sweep.py)')
    parser.add_argument('--report_dir', default=os.path.join('docs', 'reports'),
                        help='where the reports go (default docs/reports/)')
    parser.add_argument('--seeds', type=int, default=None,
                        help='seed replicates of every grid (default 3 with --quick, else 1): the grid\'s seed, then 101, 102, ...')
    parser.add_argument('--settings', nargs='*', default=[], metavar='FLAG=VALUE',
                        help='flags set on every run of the claims\' grids, e.g. depth_linear=2 weight_decay=0.0005')
    parser.add_argument('--claims', nargs='*', default=None, metavar='ID', help='check only these claims (e.g. D3 D4)')
    return parser


FIRST_EXTRA_SEED = 101


def replicates(args):
    """[(label, settings, work_root)] of every seed replicate: the grid's own seed first (in
    the settings' root), then --seed 101, 102, ... in <root>/seed_<s>."""
    settings = grids.parse_settings(args.settings)
    root = args.work_root if not settings else os.path.join(args.work_root, 'settings', grids.settings_slug(settings))
    count = args.seeds if args.seeds is not None else (3 if args.quick else 1)
    if count < 1:
        raise cli.UsageError('--seeds must be at least 1 (got %d)' % count)
    first = 'seed %s' % settings['seed'] if 'seed' in settings else 'grid seed'
    variants = [(first, settings, root)]
    for seed in range(FIRST_EXTRA_SEED, FIRST_EXTRA_SEED + count - 1):
        variants.append(('seed %d' % seed, dict(settings, seed=seed), os.path.join(root, 'seed_%d' % seed)))
    return variants


def sweep_args(args, grid, settings=None, work_root=None):
    """sweep.py's arguments for one grid: its defaults, this command's launch flags as given,
    the grid's work folder below work_root and the seed replicate's settings."""
    swept = sweep.get_args_parser().parse_args([grid])
    for name in sweep.launch_flag_names():
        setattr(swept, name, getattr(args, name))
    swept.quick, swept.work_dir = args.quick, os.path.join(work_root or args.work_root, grid)
    swept.settings = ['%s=%s' % (key, json.dumps(value)) for key, value in (settings or {}).items()]
    return swept


def describe(swept):
    return '%s --executor %s --max_parallel %d --work_dir %s%s%s' % (
        swept.grid, swept.executor, swept.max_parallel, swept.work_dir, ' --quick' if swept.quick else '',
        ' --set ' + ' '.join(swept.settings) if swept.settings else '')


def run_grids(args, tasks):
    """sweep.py on each (grid, replicate) of ``tasks`` = [(grid, label, settings, work_root)];
    returns the sweeps with failed jobs. With the local executor, --max_parallel sweeps run at
    once, each one job at a time, so that no core waits for the last job of a grid; a sweep's
    output goes to <its work folder>/.sweep/reproduce.log. SLURM and debug sweeps run in turn."""
    sweeps = [(grid, label, sweep_args(args, grid, settings, work_root)) for grid, label, settings, work_root in tasks]
    if args.executor != 'local' or args.max_parallel == 1 or len(sweeps) == 1:
        outcomes = (run_one_sweep(grid, label, swept) for grid, label, swept in sweeps)
        return [name for name, failed in outcomes if failed]
    # the sweeps share this machine's cores (as sweep.py's parallel jobs do); a user's own setting wins
    os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // args.max_parallel)))
    for _, _, swept in sweeps:
        swept.max_parallel = 1
    failed = []
    with multiprocessing.get_context('fork').Pool(args.max_parallel) as pool, \
            tqdm(total=len(sweeps), desc='sweeps', unit='sweep', dynamic_ncols=True) as progress:
        for name, sweep_failed, seconds, log in pool.imap_unordered(run_logged_sweep, sweeps):
            tqdm.write('== %s finished in %.0f s%s (log: %s)' % (name, seconds, ': FAILED' if sweep_failed else '', log))
            progress.update()
            failed += [name] if sweep_failed else []
    return failed


def run_one_sweep(grid, label, swept):
    started = time.time()
    print('\n== %s (%s): sweep.py %s' % (grid, label, describe(swept)), flush=True)
    failed = sweep.main(swept) != 0
    print('== %s (%s) finished in %.0f s%s' % (grid, label, time.time() - started, ': FAILED' if failed else ''), flush=True)
    return '%s (%s)' % (grid, label), failed


def run_logged_sweep(task):
    """run_one_sweep in a worker process, its output (and its figure commands') into the sweep's log."""
    grid, label, swept = task
    log = os.path.join(swept.work_dir, '.sweep', 'reproduce.log')
    os.makedirs(os.path.dirname(log), exist_ok=True)
    started, terminal = time.time(), (os.dup(1), os.dup(2))
    with open(log, 'w') as f:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(f.fileno(), 1), os.dup2(f.fileno(), 2)
        try:
            name, failed = run_one_sweep(grid, label, swept)
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(terminal[0], 1), os.dup2(terminal[1], 2)
            os.close(terminal[0]), os.close(terminal[1])
    return name, failed, time.time() - started, log


def chosen_claims(args, paper):
    if args.claims is None:
        return paper.CLAIMS
    return [claim for claim in paper.CLAIMS if claim.id in args.claims]


def main(args):
    if args.max_parallel < 1:
        raise cli.UsageError('--max_parallel must be at least 1 (got %d)' % args.max_parallel)
    papers = [PAPERS[name] for name in (sorted(PAPERS, key=list(PAPERS).index) if args.paper == 'all' else [args.paper])]
    known = {claim.id for paper in papers for claim in paper.CLAIMS}
    unknown = sorted(set(args.claims or []) - known)
    if unknown:
        raise cli.UsageError('--claims %s: no such claim of --paper %s (claims: %s)' % (
            ' '.join(unknown), args.paper, ' '.join(sorted(known))))
    variants = replicates(args)
    settings, root = variants[0][1], variants[0][2]
    report_dir = args.report_dir if not settings else os.path.join(args.report_dir, 'settings', grids.settings_slug(settings))
    scale = ('quick (CPU)' if args.quick else 'full scale') + (', %d seeds' % len(variants) if len(variants) > 1 else '')
    if settings:
        scale += ', settings %s' % ' '.join(args.settings)
    started, failed_grids, failed_claims = time.time(), [], []
    for paper in papers:
        paper_claims = chosen_claims(args, paper)
        if not paper_claims:
            continue
        grid_names = [name for name in paper.GRIDS if any(grid == name for claim in paper_claims for grid, _ in claim.runs)]
        # a claim the quick scale cannot test is shown with its first seed only
        seeded = [name for name in grid_names if any(grid == name for claim in paper_claims for grid, _ in claim.runs
                                                     if not (args.quick and claim.full_scale_only))]
        paper_started = time.time()
        if not args.no_run:
            tasks = [(grid, label, variant_settings, work_root) for label, variant_settings, work_root in variants
                     for grid in (grid_names if label == variants[0][0] else seeded)]
            failed_grids += run_grids(args, tasks)
        results = [claims.Results(args.quick, work_root, variant_settings, label)
                   for label, variant_settings, work_root in variants]
        rows = [claims.evaluate(claim, results[:1] if args.quick and claim.full_scale_only else results)
                for claim in paper_claims]
        runs = [(grid, results[0][grid].command_lines()) for grid in grid_names]
        seconds = None if args.no_run else time.time() - paper_started
        path = report.paper_report(paper, rows, runs, scale, seconds, root, report_dir,
                                   seed_folders=[(label, work_root) for label, _, work_root in variants[1:]])
        print('\n%s (%s): %s' % (paper.NAME, scale, path))
        for row in rows:
            print('  %-4s %-17s %s%s' % (row.id, row.status, row.value, ' (%s)' % row.reason if row.reason else ''))
        failed_claims += ['%s %s' % (paper.NAME, row.id) for row in rows if row.status == claims.NOT_REPRODUCED]
    summary, totals = report.summary_report(report_dir, list(PAPERS))
    print('\nsummary: %s (%s) in %.0f s' % (summary, ', '.join('%d %s' % (n, s) for s, n in totals.items() if n),
                                           time.time() - started))
    if failed_grids:
        print('grids with failed jobs: %s (python sweep.py GRID --status lists them)' % ', '.join(failed_grids))
    if failed_claims:
        print('not reproduced: %s' % ', '.join(failed_claims))
    return 1 if failed_grids or failed_claims else 0


if __name__ == '__main__':
    sys.exit(cli.run(main, get_args_parser().parse_args()))
