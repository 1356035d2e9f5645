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
import os
import re
from dataclasses import dataclass, field

import yaml

import args as cli
from nc_repro import plain_names, run_dirs
from nc_repro.errors import UsageError

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
    """The grid dict of a YAML/JSON file, checked as data (``check_grid``); a missing,
    malformed or unsafe file is a UsageError naming the file and the key."""
    if not os.path.isfile(path):
        candidate = os.path.join(ROOT, 'grids', path if path.endswith('.yaml') else path + '.yaml')
        if not os.path.isfile(candidate):
            raise UsageError('grid file %s does not exist; see grids/ for the shipped grids' % plain_names.shown(path))
        path = candidate
    try:
        with open(path, 'rb') as f:
            grid = yaml.safe_load(f)
    except yaml.YAMLError as error:
        raise UsageError('grid file %s is not valid YAML (%s)' % (path, str(error).splitlines()[0])) from None
    except (OSError, ValueError) as error:      # unreadable, or not text
        raise UsageError('grid file %s cannot be read (%s)' % (path, type(error).__name__)) from None
    if not isinstance(grid, dict) or 'name' not in grid or 'train' not in grid:
        raise UsageError('grid file %s needs at least the keys name and train' % path)
    check_grid(grid, path)
    grid['path'] = path
    return grid


# ----------------------------------------------------------------------------------------
# a grid file is data: every key checked before anything is built from it (docs/trust.md)

FLAG_NAME = re.compile(r'[A-Za-z][A-Za-z0-9_]*(-[A-Za-z0-9_]+)*')
QUICK_KEYS = {'flags', 'validate_flags', 'sweep', 'runs', 'uid_suffix'}
RUN_KEYS = {'name', 'train', 'validate'}          # beside flags, in an entry of runs
NAME_FLAGS = {'uid'}                               # flags whose value becomes a folder name
# flags whose value is a path: it must stay inside the work folder (or an allowed outside root)
PATH_FLAGS = {'weights_root', 'output_root', 'data_dir', 'out_dir', 'load_path', 'tensorboard', 'weights_dir',
              'work_dir', 'work_root', 'report_dir'}
SCALARS = (str, bool, int, float, type(None))
SCALAR_TEXT = 'a string, number, true/false or null'


class GridError(UsageError):
    """One line: the grid file, the key and what is allowed there."""

    def __init__(self, path, key, problem, allowed):
        super().__init__('grid file %s: %s %s; allowed: %s' % (path, key, problem, allowed))


def check_grid(grid, path):
    """Raise GridError at the first key whose type or value is not allowed (names, scripts,
    flags); path flags are checked against the work folder by ``check_paths``."""
    unknown = sorted(map(str, set(grid) - GRID_KEYS))
    if unknown:
        raise GridError(path, 'key %s' % plain_names.shown(unknown[0]), 'is not a grid key', ', '.join(sorted(GRID_KEYS)))
    _check_name(path, 'name', grid['name'])
    if not isinstance(grid.get('title', ''), str):
        raise GridError(path, 'title', 'is a %s' % type(grid['title']).__name__, 'a string')
    for key in ('train', 'validate'):
        if grid.get(key) is not None or key == 'train':
            _check_script(path, key, grid[key], COMMAND_FOLDERS)
    _check_setting(path, '', grid)
    quick = grid.get('quick')
    if quick is not None:
        if not isinstance(quick, dict):
            raise GridError(path, 'quick', 'is a %s' % type(quick).__name__, 'a mapping of %s' % ', '.join(sorted(QUICK_KEYS)))
        unknown = sorted(map(str, set(quick) - QUICK_KEYS))
        if unknown:
            raise GridError(path, 'quick.%s' % plain_names.shown(unknown[0]), 'is not a key of quick', ', '.join(sorted(QUICK_KEYS)))
        _check_setting(path, 'quick.', quick)
        if quick.get('uid_suffix') is not None:
            _check_name(path, 'quick.uid_suffix', quick['uid_suffix'])
    for key in ('figures', 'quick_figures'):
        commands = grid.get(key)
        if commands is None:
            continue
        if not isinstance(commands, list):
            raise GridError(path, key, 'is a %s' % type(commands).__name__, 'a list of commands, each a list [script, arguments...]')
        for index, command in enumerate(commands):
            _check_figure(path, '%s[%d]' % (key, index), command)


def _check_name(path, key, value):
    problem = plain_names.name_problem(value)
    if problem:
        raise GridError(path, key, '%s %s' % (plain_names.shown(value), problem), 'a plain file name: ' + plain_names.ALLOWED)


COMMAND_FOLDERS = ('',)                    # train/validate: the commands at the project root
FIGURE_FOLDERS = ('', 'plots')             # figure scripts: those and plots/*.py


def _check_script(path, key, value, folders):
    """A script of the project: <folder>/<name>.py for one of ``folders``, existing."""
    allowed = 'a .py file of the project in %s' % ' or '.join(('%s/' % f) if f else 'its root' for f in folders)
    if not isinstance(value, str):
        raise GridError(path, key, 'is a %s' % type(value).__name__, allowed)
    folder, name = os.path.split(value)
    if (folder not in folders or not name.endswith('.py') or plain_names.name_problem(name) or name.startswith('.')
            or not os.path.isfile(os.path.join(ROOT, folder, name))):
        raise GridError(path, key, '%s is not a script of the project' % plain_names.shown(value), allowed)


def _check_flags(path, key, flags, sweep=False):
    """{flag: value} with plain flag names and scalar (or list of scalar) values; a sweep's
    values are non-empty lists."""
    what = 'a non-empty list of values' if sweep else '%s, or a list of those' % SCALAR_TEXT
    if not isinstance(flags, dict):
        raise GridError(path, key, 'is a %s' % type(flags).__name__, 'a mapping {flag: %s}' % what)
    for flag, value in flags.items():
        if not isinstance(flag, str) or not FLAG_NAME.fullmatch(flag):
            raise GridError(path, '%s flag %s' % (key, plain_names.shown(flag)), 'is not a flag name',
                            'letters, digits, _ and inner - (the flag without its --)')
        where = '%s.%s' % (key, flag)
        if sweep:
            if not isinstance(value, list) or not value:
                raise GridError(path, where, 'is %s' % plain_names.shown(value), what)
            for index, item in enumerate(value):
                _check_value(path, '%s[%d]' % (where, index), flag, item)
        elif isinstance(value, list):
            for index, item in enumerate(value):
                _check_value(path, '%s[%d]' % (where, index), flag, item)
        else:
            _check_value(path, where, flag, value)


def _check_value(path, where, flag, value):
    if not isinstance(value, SCALARS):
        raise GridError(path, where, 'is a %s' % type(value).__name__, SCALAR_TEXT)
    if isinstance(value, str):
        if any(not character.isprintable() for character in value):
            raise GridError(path, where, '%s holds a control character' % plain_names.shown(value), 'printable text')
        if value.startswith('-') and not _is_number(value):
            raise GridError(path, where, '%s starts with -' % plain_names.shown(value),
                            'a value, not another flag (write the flag as its own key)')
    if flag in NAME_FLAGS and value is not None:
        _check_name(path, where, str(value))


def _is_number(text):
    try:
        float(text)
        return True
    except ValueError:
        return False


def _check_setting(path, prefix, part):
    """flags, validate_flags, sweep and runs of the grid (prefix '') or of quick ('quick.')."""
    for key in ('flags', 'validate_flags'):
        if part.get(key) is not None:
            _check_flags(path, prefix + key, part[key])
    if part.get('sweep') is not None:
        _check_flags(path, prefix + 'sweep', part['sweep'], sweep=True)
    runs = part.get('runs')
    if runs is None:
        return
    if not isinstance(runs, list) or not runs:
        raise GridError(path, prefix + 'runs', 'is %s' % plain_names.shown(runs),
                        'a non-empty list of mappings {name: ..., flag: value}')
    for index, run in enumerate(runs):
        where = '%sruns[%d]' % (prefix, index)
        if not isinstance(run, dict):
            raise GridError(path, where, 'is a %s' % type(run).__name__, 'a mapping {name: ..., flag: value}')
        if run.get('name') is not None:
            _check_name(path, where + '.name', run['name'])
        for key in ('train', 'validate'):
            if run.get(key) is not None:
                _check_script(path, '%s.%s' % (where, key), run[key], COMMAND_FOLDERS)
        _check_flags(path, where, {k: v for k, v in run.items() if k not in RUN_KEYS})


def _check_figure(path, key, command):
    allowed = '[script in plots/, arguments: %s]' % SCALAR_TEXT
    if not isinstance(command, list) or not command:
        raise GridError(path, key, 'is %s' % plain_names.shown(command), allowed)
    _check_script(path, key + '[0]', command[0], FIGURE_FOLDERS)
    for index, item in enumerate(command[1:], 1):
        if not isinstance(item, SCALARS) or any(not c.isprintable() for c in str(item)):
            raise GridError(path, '%s[%d]' % (key, index), 'is %s' % plain_names.shown(item), allowed)
        previous = str(command[index - 1])
        if previous == '--name':
            _check_name(path, '%s[%d]' % (key, index), str(item))


def check_paths(grid, work_dir, outside_roots=()):
    """Every path flag of the grid (flags, runs, sweeps, quick, and a figure's path options)
    stays inside ``work_dir`` or one of ``outside_roots`` (sweep.py --allow_outside)."""
    path = grid['path']
    allowed = 'a path inside the work folder%s (or pass --allow_outside DIR to sweep.py/figures.py)' % (
        ', or in %s' % ', '.join(outside_roots) if outside_roots else '')
    quick = grid.get('quick') or {}
    parts = [('flags', grid.get('flags')), ('validate_flags', grid.get('validate_flags')),
             ('quick.flags', quick.get('flags')), ('quick.validate_flags', quick.get('validate_flags'))]
    for prefix, part in (('', grid), ('quick.', quick)):
        for index, run in enumerate(part.get('runs') or []):
            parts.append(('%sruns[%d]' % (prefix, index), run))
        for flag, values in (part.get('sweep') or {}).items():
            parts += [('%ssweep.%s[%d]' % (prefix, flag, index), {flag: value}) for index, value in enumerate(values)]
    for key, flags in parts:
        for flag, value in (flags or {}).items():
            if flag in PATH_FLAGS and value is not None:
                for item in value if isinstance(value, list) else [value]:
                    problem = plain_names.path_problem(str(item), work_dir, outside_roots)
                    if problem:
                        raise GridError(path, '%s.%s' % (key, flag), '%s %s' % (plain_names.shown(item), problem), allowed)
    for key in ('figures', 'quick_figures'):
        for index, command in enumerate(grid.get(key) or []):
            for position, item in enumerate(command[1:], 1):
                if str(command[position - 1]).lstrip('-') in PATH_FLAGS:
                    problem = plain_names.path_problem(str(item), work_dir, outside_roots)
                    if problem:
                        raise GridError(path, '%s[%d][%d]' % (key, index, position),
                                        '%s %s' % (plain_names.shown(item), problem), allowed)


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


SEEDLESS_SCRIPTS = {'opt_main.py'}    # deterministic (the convex program): no --seed


def parse_settings(items):
    """['depth_linear=2', 'no-bias=true', 'nalist=[500, 1000]'] -> {flag: value}, each value read
    as YAML (numbers, true/false, lists), as a grid file would give it."""
    settings = {}
    for item in items or []:
        key, equals, text = item.partition('=')
        if not equals or not re.fullmatch(r'[A-Za-z][A-Za-z0-9_-]*', key):
            raise UsageError('--settings %r: write FLAG=VALUE, e.g. depth_linear=2 or weight_decay=0.0005' % item)
        try:
            settings[key] = yaml.safe_load(text)
        except yaml.YAMLError:
            raise UsageError('--settings %r: the value is not a number, true/false, a word or a [list]' % item) from None
    return settings


def settings_slug(settings):
    """A folder name for a set of settings: 'depth_linear=2,weight_decay=0.0005'."""
    return re.sub(r'[^A-Za-z0-9_.=,+-]', '_', ','.join('%s=%s' % (k, settings[k]) for k in sorted(settings)))


def run_settings(grid, quick=False, settings=None):
    """[(name, per-run overrides)] in grid order: the product of sweep, or the runs list. A
    swept flag named in ``settings`` is swept over the settings' value(s) instead."""
    quick_part = grid.get('quick') or {}
    sweep = quick_part.get('sweep', grid.get('sweep')) if quick else grid.get('sweep')
    runs = quick_part.get('runs', grid.get('runs')) if quick else grid.get('runs')
    if sweep and runs:
        raise UsageError('grid %s sets both sweep and runs; use one' % grid['name'])
    if sweep and settings:
        sweep = {key: (settings[key] if isinstance(settings[key], list) else [settings[key]]) if key in settings
                 else values for key, values in sweep.items()}
    if sweep:
        keys = list(sweep)
        runs = [dict(zip(keys, values)) for values in itertools.product(*(sweep[k] for k in keys))]
    runs = runs or [{}]
    settings = []
    for run in runs:
        shown = {k: v for k, v in run.items() if k not in ('train', 'validate', 'name')}
        name = run.get('name') or run.get('uid') or '-'.join('%s=%s' % (k, v) for k, v in shown.items()) or grid['name']
        settings.append((re.sub(r'[^A-Za-z0-9_.=+-]', '_', str(name)), run))
    for name, _ in settings:
        problem = plain_names.name_problem(name)
        if problem:
            raise GridError(grid.get('path', grid['name']), 'run name %s' % plain_names.shown(name), problem,
                            'a plain file name: ' + plain_names.ALLOWED)
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
    folder = run_dirs.run_dir(cli.run_settings(parsed, unbalanced=options['unbalanced']))
    return os.path.join(folder, 'info.pkl'), parsed.epochs


def expand(grid, quick=False, settings=None):
    """The grid's jobs (Job list) for full or --quick mode. ``settings`` ({flag: value}, from
    reproduce.py --settings / --seeds or sweep.py --set) override the flags of every run, after
    the grid's own (a swept flag is swept over the given values; --seed is not given to
    SEEDLESS_SCRIPTS); runs the settings make identical are kept once, under the first name."""
    quick_part = grid.get('quick') or {}
    if quick and not quick_part:
        raise UsageError('grid %s has no quick variant' % grid['name'])
    settings = settings or {}
    swept = set((quick_part.get('sweep', grid.get('sweep')) if quick else grid.get('sweep')) or {})
    jobs = []
    for name, run in run_settings(grid, quick, settings):
        flags = dict(grid.get('flags') or {})
        if quick:
            flags.update(quick_part.get('flags') or {})
        flags.update({k: v for k, v in run.items() if k not in ('train', 'validate', 'name')})
        train = run.get('train', grid['train'])
        flags.update({k: v for k, v in settings.items() if k not in swept and not
                      (k == 'seed' and os.path.basename(train) in SEEDLESS_SCRIPTS)})
        if quick and 'uid' in flags:
            flags['uid'] = str(flags['uid']) + quick_part.get('uid_suffix', '_quick')
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
        if any(other.train == job.train for other in jobs):
            continue                     # settings made two runs alike: run it once, under the first name
        jobs.append(job)
    return jobs
