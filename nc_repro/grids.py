"""Experiment grids: a YAML file naming the scripts, the fixed flags and the swept flags of
one paper figure; ``sweep.py`` runs its jobs, ``figures.py`` draws its figures.

A grid file (see grids/*.yaml):

  name: d23_mlp_depth                  # jobs run in --work_dir (default sweeps/<name>)
  title: Dang et al. 2023, MLP, depth of the linear head
  train: train_1st_order.py            # run with --resume, so a killed job continues
  validate: validate_NC.py             # optional; the job is complete when its info.pkl
                                       # holds the last epoch
  flags: {model: MLP, dataset: cifar10, depth_linear: 1, sep_decay: true}
  sweep: {depth_linear: [1, 3, 6, 9]}  # product of the values, or
  runs: [{uid: a, lr: 0.1}, ...]       # an explicit list (an entry may set train/validate)
  validate_flags: {every: 10}          # validator only
  quick:                               # --quick: merged over the above, uid + '_quick'
    flags: {dataset: digits, epochs: 5}
  figures:                             # run from the work folder; {infos}, {runs} and
    - [plots/plot_nc.py, '{infos}', --labels, '{labels}', --name, depth]   # {labels}
  quick_figures: [...]                 # figures of --quick (default: figures)

Flags become command-line options: true -> --flag, false/null -> absent, a list -> its values.
Without a validator a job is complete once it has succeeded (a marker in .sweep/).
"""
import contextlib
import io
import itertools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field

import submitit.helpers
import yaml

import args as cli
from nc_repro import checkpoints, safe_load
from nc_repro.cli import UsageError
from nc_repro.fileio import atomic_write

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))      # the project root
VALIDATORS = {'validate_NC.py': dict(unbalanced=False, allowed=('zhou2022', 'dang2023')),
              'validate_NC_unbalanced.py': dict(unbalanced=True, allowed=('dang2023', 'dang2024'))}
GRID_KEYS = {'name', 'title', 'train', 'validate', 'flags', 'sweep', 'runs', 'validate_flags', 'quick',
             'figures', 'quick_figures'}


@dataclass
class Job:
    name: str
    train: list                      # argv: script path, then flags
    validate: list = None            # argv or None
    info_path: str = None            # relative to the work folder; None without a validator
    last_epoch: int = None
    flags: dict = field(default_factory=dict)


def load_grid(path):
    """The grid dict of a YAML/JSON file; a missing or malformed file is a UsageError."""
    if not os.path.isfile(path):
        candidate = os.path.join(ROOT, 'grids', path if path.endswith('.yaml') else path + '.yaml')
        if not os.path.isfile(candidate):
            raise UsageError('grid file %s does not exist; see grids/ for the shipped grids' % path)
        path = candidate
    try:
        with open(path) as f:
            grid = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise UsageError('grid file %s is not valid YAML (%s)' % (path, str(error).splitlines()[0])) from None
    if not isinstance(grid, dict) or 'name' not in grid or 'train' not in grid:
        raise UsageError('grid file %s needs at least the keys name and train' % path)
    unknown = set(grid) - GRID_KEYS
    if unknown:
        raise UsageError('grid file %s has unknown keys %s; known: %s' % (path, sorted(unknown), sorted(GRID_KEYS)))
    grid['path'] = path
    return grid


def work_folder(grid, work_dir=None):
    """Absolute folder a grid's jobs run in: --work_dir, else sweeps/<grid name>."""
    return os.path.abspath(work_dir or os.path.join('sweeps', grid['name']))


def to_argv(flags):
    """{'lr': 0.1, 'sep_decay': True, 'no-bias': True, 'nalist': [1, 2]} -> command-line options."""
    argv = []
    for key, value in flags.items():
        if value is None or value is False:
            continue
        argv.append('--' + key)
        if isinstance(value, (list, tuple)):
            argv += [str(v) for v in value]
        elif value is not True:
            argv.append(str(value))
    return argv


def run_settings(grid, quick=False):
    """[(name, per-run overrides)] in grid order: the product of sweep, or the runs list."""
    quick_part = grid.get('quick') or {}
    sweep = quick_part.get('sweep', grid.get('sweep')) if quick else grid.get('sweep')
    runs = quick_part.get('runs', grid.get('runs')) if quick else grid.get('runs')
    if sweep and runs:
        raise UsageError('grid %s sets both sweep and runs; use one' % grid['name'])
    if sweep:
        keys = list(sweep)
        runs = [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]
    runs = runs or [{}]
    settings = []
    for run in runs:
        shown = {k: v for k, v in run.items() if k not in ('train', 'validate', 'name')}
        name = run.get('name') or run.get('uid') or '-'.join('%s=%s' % (k, v) for k, v in shown.items()) or grid['name']
        settings.append((re.sub(r'[^A-Za-z0-9_.=+-]', '_', str(name)), run))
    names = [name for name, _ in settings]
    if len(set(names)) != len(names):
        raise UsageError('grid %s names two runs alike; give each run a name' % grid['name'])
    return settings


def expected_info(validate_script, validate_argv):
    """(info.pkl path, last epoch) that the validator writes for these flags, from the
    project's own parser and run-folder rule (nothing is run)."""
    options = VALIDATORS.get(os.path.basename(validate_script))
    if options is None:
        raise UsageError('validate: %s is not a validator (%s)' % (validate_script, ', '.join(VALIDATORS)))
    parser = cli.get_eval_parser()
    try:
        with contextlib.redirect_stderr(io.StringIO()) as errors:
            parsed = parser.parse_args(validate_argv)
    except SystemExit:
        raise UsageError('the validator rejects %s: %s' % (' '.join(validate_argv), errors.getvalue().strip().splitlines()[-1])) from None
    cli.resolve(parsed, validate_argv, evaluation=True, **options)
    folder = checkpoints.run_dir(parsed, unbalanced=options['unbalanced'])
    return os.path.join(folder, 'info.pkl'), parsed.epochs


def expand(grid, quick=False):
    """The grid's jobs (Job list) for full or --quick mode."""
    quick_part = grid.get('quick') or {}
    if quick and not quick_part:
        raise UsageError('grid %s has no quick variant' % grid['name'])
    jobs = []
    for name, run in run_settings(grid, quick):
        flags = dict(grid.get('flags') or {})
        if quick:
            flags.update(quick_part.get('flags') or {})
        flags.update({k: v for k, v in run.items() if k not in ('train', 'validate', 'name')})
        if quick and 'uid' in flags:
            flags['uid'] = str(flags['uid']) + quick_part.get('uid_suffix', '_quick')
        train = run.get('train', grid['train'])
        validate = run.get('validate', grid.get('validate'))
        for script in filter(None, (train, validate)):
            if not os.path.isfile(os.path.join(ROOT, script)):
                raise UsageError('grid %s names %s, which is not a script of the project' % (grid['name'], script))
        argv = to_argv(flags)
        job = Job(name, [train] + argv + (['--resume'] if validate else []), flags=flags)
        if validate:
            extra = dict(grid.get('validate_flags') or {})
            if quick:
                extra.update(quick_part.get('validate_flags') or {})
            job.validate = [validate] + argv + to_argv(extra)
            job.info_path, job.last_epoch = expected_info(validate, job.validate[1:])
        jobs.append(job)
    return jobs


# ----------------------------------------------------------------------------------------
# job state: complete info.pkl, or a marker; running/failed notes written by the job itself

def state_dir(work_dir):
    return os.path.join(work_dir, '.sweep')


def log_path(work_dir, job):
    return os.path.join(work_dir, 'logs', job.name + '.log')


def is_complete(work_dir, job):
    """A validated job is complete when its info.pkl holds the last epoch; another job when
    its success marker exists. A missing or damaged info.pkl is not complete; one that asks
    to run code is refused (safe_load.UnsafeFile, one line, exit code 2)."""
    if job.info_path is None:
        return os.path.exists(os.path.join(state_dir(work_dir), job.name + '.done'))
    try:
        info = safe_load.load_pickle(os.path.join(work_dir, job.info_path))
        return bool(info.get('epoch')) and info['epoch'][-1] >= job.last_epoch
    except (OSError, safe_load.DamagedFile, AttributeError, TypeError, KeyError, IndexError):
        return False


def read_note(work_dir, job):
    try:
        with open(os.path.join(state_dir(work_dir), job.name + '.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_note(work_dir, job, **note):
    path = os.path.join(state_dir(work_dir), job.name + '.json')
    atomic_write(path, lambda f: f.write((json.dumps(dict(note, time=time.time(), job=job.name)) + '\n').encode()))


def status(work_dir, job):
    """'done', 'running', 'failed', 'stopped' (a running note whose local process is gone) or
    'pending'."""
    if is_complete(work_dir, job):
        return 'done'
    note = read_note(work_dir, job)
    if note.get('status') == 'running' and note.get('host') == os.uname().nodename and not _alive(note.get('pid')):
        return 'stopped'
    return note['status'] if note.get('status') in ('running', 'failed') else 'pending'


def _alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def run_job(job, work_dir, python=None):
    """Train then validate one job from work_dir, output appended to logs/<name>.log. Runs
    inside a submitit job (or in-process with the debug executor). Raises RuntimeError naming
    the log when a command fails."""
    python = python or sys.executable
    log = log_path(work_dir, job)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    write_note(work_dir, job, status='running', pid=os.getpid(), host=os.uname().nodename, log=log)
    for argv in (job.train, job.validate):
        if argv is None:
            continue
        command = [python, os.path.join(ROOT, argv[0])] + argv[1:]
        with open(log, 'a') as f:
            f.write('$ %s\n' % ' '.join(command))
            f.flush()
            code = subprocess.call(command, cwd=work_dir, stdout=f, stderr=subprocess.STDOUT)
        if code != 0:
            write_note(work_dir, job, status='failed', returncode=code, log=log, command=' '.join(argv))
            raise RuntimeError('exit %d in %s; log: %s' % (code, argv[0], log))
    write_note(work_dir, job, status='done', log=log)
    if job.info_path is None:
        atomic_write(os.path.join(state_dir(work_dir), job.name + '.done'), lambda f: f.write(b'done\n'))
    return job.name


class GridJob(submitit.helpers.Checkpointable):
    """What sweep.py submits: ``GridJob()(job, work_dir, python)`` runs ``run_job``. On a SLURM
    timeout or preemption submitit calls ``checkpoint`` and requeues the same call, and the
    trainer's --resume continues from the last resume.pth (MAE's submitit launcher pattern)."""

    def __call__(self, job, work_dir, python=None):
        return run_job(job, work_dir, python)


# ----------------------------------------------------------------------------------------
# figures

def figure_commands(grid, jobs, work_dir, quick=False):
    """([argv], missing job names): the grid's figure commands with {infos}, {runs} and
    {labels} expanded over the complete jobs, in grid order."""
    done = [job for job in jobs if is_complete(work_dir, job)]
    missing = [job.name for job in jobs if job not in done]
    specs = (grid.get('quick_figures') or grid.get('figures')) if quick else grid.get('figures')
    expansions = {'{infos}': [job.info_path for job in done],
                  '{runs}': [os.path.dirname(job.info_path) for job in done if job.info_path],
                  '{labels}': [job.name for job in done]}
    commands = []
    for spec in specs or []:
        argv = []
        for item in spec:
            argv += expansions.get(item, [str(item)])
        commands.append(argv)
    return commands, missing
