"""Run every job of an experiment grid through submitit: on this machine in parallel, on a
SLURM cluster, or in-process.

  python sweep.py grids/d23_mlp_depth.yaml --quick                   # local, one job at a time
  python sweep.py d23_mlp_depth --executor local --max_parallel 2
  python sweep.py d23_mlp_depth --executor slurm --slurm_partition gpu --gpus_per_job 1 --timeout_min 2880
  python sweep.py d23_mlp_depth --executor slurm --dry_run           # print sbatch parameters and commands
  python sweep.py d23_mlp_depth --status                             # done / running / failed table

Each job runs the grid's trainer with --resume, then its validator, from the work folder
(--work_dir, default sweeps/<grid name>); output goes to <work_dir>/logs/<job>.log. A job whose
info.pkl already holds the last epoch is skipped, so running a sweep again only runs what is
missing or failed; a SLURM job that times out or is preempted is requeued by submitit and its
trainer resumes (job_runs.GridJob). With the local and debug executors the grid's figures are drawn at the end
(from every finished run, naming the missing ones); `python figures.py GRID` redraws them, e.g.
after a SLURM sweep.
"""
import argparse
import contextlib
import io
import os
import shlex
import subprocess
import sys
import time

from tqdm import tqdm

import args as cli
import figures
from args import UsageError
from reproduction import grids, job_runs


def add_launch_flags(parser, max_parallel=1):
    """The flags that say where and how a grid's jobs run (executor, parallelism, SLURM), shared
    with reproduce.py, which passes them through to this script unchanged."""
    parser.add_argument('--executor', choices=('local', 'slurm', 'debug'), default='local',
                        help='local: parallel processes here; slurm: sbatch; debug: in this process')
    parser.add_argument('--max_parallel', type=int, default=max_parallel,
                        help='jobs running at once (SLURM array parallelism; default %d)' % max_parallel)
    parser.add_argument('--allow_outside', action='append', default=[], metavar='DIR',
                        help="let the grid's path flags (data_dir, weights_root, ...) point into DIR, outside "
                             'the work folder (repeatable); without it they must stay inside the work folder')
    slurm = parser.add_argument_group('SLURM (--executor slurm)')
    slurm.add_argument('--slurm_partition', default=None)
    slurm.add_argument('--slurm_account', default=None)
    slurm.add_argument('--gpus_per_job', type=int, default=1,
                       help='GPUs per job (default 1); 0 for a partition without GPUs, e.g. a CPU-only '
                            'cluster or the test cluster of make slurm-up, where sbatch refuses a GPU request')
    slurm.add_argument('--cpus_per_job', type=int, default=4)
    slurm.add_argument('--mem_gb', type=int, default=32, help='memory per job in GB (at most a node\'s)')
    slurm.add_argument('--timeout_min', type=int, default=2880, help='per job (also the local executor)')
    slurm.add_argument('--slurm_setup', nargs='*', default=[],
                       help='shell lines run before each job, e.g. "source .venv/bin/activate"')


def launch_flag_names():
    """The names add_launch_flags defines (what reproduce.py hands on to a sweep)."""
    parser = argparse.ArgumentParser()
    add_launch_flags(parser)
    return list(vars(parser.parse_args([])))


def get_args_parser():
    parser = argparse.ArgumentParser(description='Run an experiment grid through submitit.')
    parser.add_argument('grid', help='grid file (grids/<name>.yaml, or just <name>)')
    parser.add_argument('--quick', action='store_true', help="the grid's quick variant on digits")
    add_launch_flags(parser)
    parser.add_argument('--work_dir', default=None, help='folder the jobs run in (default sweeps/<grid name>)')
    parser.add_argument('--set', nargs='*', default=[], metavar='FLAG=VALUE', dest='settings',
                        help='override a flag of every run (a swept flag is swept over the value or [list]); '
                             'use another --work_dir, as reproduce.py --settings does')
    parser.add_argument('--status', action='store_true', help='print the state of every job and exit')
    parser.add_argument('--dry_run', action='store_true', help='print what would be submitted, submit nothing')
    parser.add_argument('--no_figures', action='store_true',
                        help="local/debug executors: do not draw the grid's figures after the jobs")
    return parser


def make_executor(args, work_dir, dry_run=False):
    import submitit
    folder = os.path.join(work_dir, '.submitit', '%j')
    # the job function lives in grids.py: let every job process import the project
    os.environ['PYTHONPATH'] = os.pathsep.join([grids.ROOT] + [p for p in [os.environ.get('PYTHONPATH')] if p])
    if args.executor == 'debug':
        return submitit.DebugExecutor(folder)
    if args.executor == 'local':
        executor = submitit.LocalExecutor(folder)
        executor.update_parameters(timeout_min=args.timeout_min, gpus_per_node=0)
        return executor
    try:
        executor = submitit.SlurmExecutor(folder)
    except RuntimeError as error:
        raise UsageError('--executor slurm: %s; use --executor local here, or --dry_run to see the sbatch '
                         'parameters' % error) from None
    executor.update_parameters(**slurm_parameters(args, work_dir))
    return executor


def slurm_parameters(args, work_dir):
    """submitit SlurmExecutor parameters from the flags (one GPU job per grid point)."""
    parameters = dict(gpus_per_node=args.gpus_per_job, cpus_per_task=args.cpus_per_job, ntasks_per_node=1,
                      mem='%dGB' % args.mem_gb, time=args.timeout_min, array_parallelism=args.max_parallel,
                      setup=args.slurm_setup, job_name='nc-' + os.path.basename(os.path.normpath(work_dir)))
    parameters.update({k: v for k, v in (('partition', args.slurm_partition), ('account', args.slurm_account)) if v})
    return parameters


# what a job's exit code means, shown by --status
EXIT_MEANINGS = {75: 'disk full or quota exceeded'}


def failure_text(note):
    """'exit 75 (disk full or quota exceeded) in train_1st_order.py' for a failed note, else ''."""
    if note.get('status') != 'failed' or note.get('returncode') is None:
        return ''
    code = note['returncode']
    meaning = EXIT_MEANINGS.get(code) or ('killed by signal %d' % -code if code < 0 else '')
    return 'exit %s%s in %s' % (code, ' (%s)' % meaning if meaning else '', (note.get('command') or '?').split()[0])


def print_status(jobs, work_dir):
    """A table of every job's state; jobs submitted to SLURM are asked about with sacct once."""
    submitted = [job_runs.read_slurm_record(work_dir, job).get('slurm_job') for job in jobs]
    slurm_states = job_runs.sacct_states(submitted)
    if slurm_states is None:
        print('warning: sacct does not answer, so jobs that SLURM ended (killed, out of memory) may show as '
              'running; the states below are the jobs\' own notes')
    rows = []
    for job in jobs:
        state, note = job_runs.status(work_dir, job, slurm_states), job_runs.read_note(work_dir, job)
        shown = note.get('log', '') if state in ('failed', 'running', 'stopped') else ''
        if state == 'failed':
            parts = [failure_text(note), 'log: %s' % (note.get('log') or job_runs.log_path(work_dir, job)),
                     job_runs.slurm_failure(work_dir, job, slurm_states)]
            shown = '; '.join(part for part in parts if part)
        rows.append((job.name, state, shown))
    width = max(len(name) for name, _, _ in rows)
    print('%-*s  %-8s  %s' % (width, 'job', 'state', 'log'))
    for name, state, log in rows:
        print('%-*s  %-8s  %s' % (width, name, state, log))
    counts = {state: sum(row[1] == state for row in rows) for state in ('done', 'running', 'failed', 'stopped', 'pending')}
    print(', '.join('%d %s' % (n, state) for state, n in counts.items() if n))


def dry_run(args, jobs, work_dir):
    if args.executor == 'slurm':
        print('sbatch parameters (one array, %d tasks, %d at a time):' % (len(jobs), args.max_parallel))
        print('\n'.join(sbatch_lines(args, work_dir, len(jobs))))
    print('commands (from %s):' % work_dir)
    for job in jobs:
        for argv in (job.train, job.validate):
            if argv:
                print('  [%s] python %s' % (job.name, ' '.join(argv)))


def sbatch_lines(args, work_dir, count):
    """The #SBATCH lines of the job array that --executor slurm submits for ``count`` jobs:
    submitit writes one `#SBATCH --<name>=<value>` line per parameter of slurm_parameters, plus
    the array range and the log paths below its folder. tests/test_slurm.py checks this preview
    against the submission file that submitit really hands to sbatch."""
    parameters = slurm_parameters(args, work_dir)
    parameters.pop('setup')
    parallelism = parameters.pop('array_parallelism')
    logs = os.path.join(work_dir, '.submitit', '%A_%a', '%A_%a_0_log')
    parameters.update(array='0-%d%%%d' % (count - 1, min(count, parallelism)), output=logs + '.out',
                      error=logs + '.err')
    return ['#SBATCH --%s=%s' % (key.replace('_', '-'), shlex.quote(str(value)))
            for key, value in sorted(parameters.items())]


# sbatch's refusals -> the flag to change (first match wins; sbatch's message is quoted)
SBATCH_REFUSALS = (
    (('gres', 'generic resource'), '--gpus_per_job (0 on a partition without GPUs)'),
    (('account', 'association'), '--slurm_account (sacctmgr show assoc user=$USER lists yours)'),
    (('partition',), '--slurm_partition (sinfo lists the partitions)'),
    (('memory',), '--mem_gb (at most a node\'s memory: sinfo -o "%P %m")'),
    (('time limit',), '--timeout_min (at most the partition\'s limit: sinfo -o "%P %l")'),
    (('node configuration',), '--gpus_per_job, --cpus_per_job or --mem_gb (no node has that much: sinfo -o "%P %c %m %G")'),
    (('processor', 'cpu'), '--cpus_per_job (at most a node\'s CPUs: sinfo -o "%P %c")'),
)


def sbatch_refusal(message):
    """One line for sbatch's refusal ``message``: the flag to change, then sbatch's words."""
    lines = [line.strip() for line in str(message).splitlines() if line.strip()]
    quoted = '; '.join(line for line in lines if 'error' in line.lower()) or '; '.join(lines) or 'no message'
    lower = quoted.lower()
    flag = next((flag for needles, flag in SBATCH_REFUSALS if any(n in lower for n in needles)),
                '--slurm_partition, --slurm_account, --gpus_per_job, --cpus_per_job, --mem_gb or --timeout_min')
    return 'sbatch refused the job array; change %s. sbatch said: "%s"' % (flag, quoted)


def submit_slurm(executor, todo, work_dir):
    """map_array through sbatch; a refusal is a UsageError naming the flag to change."""
    import submitit
    try:
        with contextlib.redirect_stderr(io.StringIO()):      # submitit echoes sbatch's stderr
            return executor.map_array(job_runs.GridJob(), todo, [work_dir] * len(todo), [sys.executable] * len(todo))
    except submitit.core.utils.FailedJobError as error:
        raise UsageError(sbatch_refusal(error)) from None
    except FileNotFoundError as error:
        raise UsageError('--executor slurm: %s not found; run on a SLURM login node, or use --executor local'
                         % (error.filename or 'sbatch')) from None


# squeue reasons of a job that no node of the partition can ever run (sbatch accepts it when
# the cluster does not set EnforcePartLimits)
NEVER_RUNS = ('PartitionConfig', 'BadConstraints', 'PartitionNodeLimit', 'PartitionTimeLimit', 'Resources_Unavailable')


def warn_if_held(array_id, seconds=2.0):
    """One line when SLURM accepted the array but holds it for a reason no wait cures."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            reasons = subprocess.run(['squeue', '-h', '-j', array_id, '-o', '%r'], capture_output=True,
                                     text=True, timeout=10).stdout.split()
        except (OSError, subprocess.SubprocessError):
            return
        if not reasons:                   # running or done already
            return
        held = [reason for reason in reasons if reason in NEVER_RUNS]
        if held:
            print('warning: SLURM accepted job %s but no node of the partition fits it (squeue reason %s); '
                  'scancel %s and submit again with smaller --cpus_per_job, --mem_gb, --gpus_per_job or '
                  '--timeout_min (sinfo -o "%%P %%c %%m %%G %%l" shows the limits)' % (array_id, held[0], array_id))
            return
        if reasons and 'None' not in reasons and 'Priority' not in reasons:
            return
        time.sleep(0.5)


def run_local(executor, jobs, work_dir, max_parallel):
    """Keep at most max_parallel jobs running; returns {job name: error} of the failed ones."""
    pending, running, failed = list(jobs), [], {}
    with tqdm(total=len(jobs), desc='sweep', unit='job', dynamic_ncols=True) as progress:
        while pending or running:
            while pending and len(running) < max_parallel:
                job = pending.pop(0)
                running.append((job, executor.submit(job_runs.GridJob(), job, work_dir, sys.executable)))
            time.sleep(0.5)
            for job, handle in list(running):
                if handle.done():
                    running.remove((job, handle))
                    record_failure(failed, work_dir, job, handle)
                    progress.update(1)
    return failed


def run_debug(executor, jobs, work_dir):
    failed = {}
    for job in tqdm(jobs, desc='sweep', unit='job', dynamic_ncols=True):
        record_failure(failed, work_dir, job, executor.submit(job_runs.GridJob(), job, work_dir, sys.executable))
    return failed


def record_failure(failed, work_dir, job, handle):
    """Wait for the job's result; if it raised, failed[job.name] = one line naming the failing
    script, its exit code and log, or submitit's own log."""
    try:
        handle.result()
    except Exception:                               # noqa: BLE001 - reported with its log
        note = job_runs.read_note(work_dir, job)
        if note.get('status') == 'failed':
            failed[job.name] = '%s; log: %s' % (failure_text(note), note['log'])
        else:
            failed[job.name] = 'the job process failed; submitit log: %s' % handle.paths.stderr


def main(args):
    if args.max_parallel < 1:
        raise UsageError('--max_parallel must be at least 1 (got %d)' % args.max_parallel)
    grid = grids.load_grid(args.grid)
    jobs = grids.expand(grid, args.quick, grids.parse_settings(args.settings))
    work_dir = grids.work_folder(grid, args.work_dir)
    grids.check_paths(grid, work_dir, [os.path.abspath(root) for root in args.allow_outside])
    if args.status:
        print_status(jobs, work_dir)
        return 0
    todo = [job for job in jobs if not job_runs.is_complete(work_dir, job)]
    print('grid %s%s: %d jobs, %d complete, %d to run in %s'
          % (grid['name'], ' (quick)' if args.quick else '', len(jobs), len(jobs) - len(todo), len(todo), work_dir))
    if args.dry_run:
        dry_run(args, todo, work_dir)
        return 0
    if not todo:
        print('nothing to run; redraw the figures with: python figures.py %s%s' % (args.grid, ' --quick' if args.quick else ''))
        return 0
    if args.executor == 'local' and args.max_parallel > 1:
        # parallel jobs share this machine's cores instead of each starting one thread per core
        os.environ.setdefault('OMP_NUM_THREADS', str(max(1, (os.cpu_count() or 1) // args.max_parallel)))
    if args.executor == 'slurm' and args.timeout_min < 3:
        print('warning: --timeout_min %d: SLURM sends USR2 90 s before the limit, so a job may be signalled before '
              'it can requeue itself; use at least 3' % args.timeout_min)
    executor = make_executor(args, work_dir)
    os.makedirs(work_dir, exist_ok=True)
    if args.executor == 'slurm':
        handles = submit_slurm(executor, todo, work_dir)
        for job, handle in zip(todo, handles):
            job_runs.write_slurm_record(work_dir, job, handle.job_id, handle.paths.stderr)
        warn_if_held(handles[0].job_id.split('_')[0])
        print('submitted %d jobs (%s); follow them with: python sweep.py %s --status, then draw the '
              'figures with: python figures.py %s' % (len(handles), handles[0].job_id.split('_')[0], args.grid, args.grid))
        return 0
    for job in todo:
        job_runs.forget_slurm_record(work_dir, job)
    failed = (run_debug(executor, todo, work_dir) if args.executor == 'debug'
              else run_local(executor, todo, work_dir, args.max_parallel))
    for name, error in failed.items():
        print('FAILED %s: %s' % (name, error))
    print('%d of %d jobs finished%s' % (len(todo) - len(failed), len(todo),
                                       '; fix and run the same command again' if failed else ''))
    figures_failed = 0
    if not args.no_figures and len(failed) < len(jobs):
        figures_failed = figures.draw_grid(grid, jobs, work_dir, args.quick)
    return 1 if failed or figures_failed else 0


if __name__ == '__main__':
    sys.exit(cli.run(main, get_args_parser().parse_args()))
