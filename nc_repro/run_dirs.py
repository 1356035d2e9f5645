"""Run folders: the name each paper's code gives a run (its recipe's ``run_folder``), and the
successor folders that keep runs of other training flags apart.

  zhou2022   model_weights/<uid>/ (Zhou's code), model_weights/<random>-<%a-%b-%d-%H-%M>/
             when --uid is absent, or the --load_path folder
  dang2023   model_weights/[unbalanced_]<the 2023 code's run name>/
  dang2024   model_weights/unbalanced_<the 2024 code's run name>/
A run of the same paper name but other training flags gets ``<name>__<flag>_<value>-...``
(``run_dir``). Creating, locking and filling the folder is checkpoints.prepare_run_dir's.

The engine never sees the parser's namespace: a run is described by a ``RunSettings`` (named
values plus the flag record), which args.run_settings builds from the parsed flags.
"""
import dataclasses
import datetime
import json
import os

import numpy as np

from nc_repro import plain_names, recipes
from nc_repro.errors import UsageError


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """What the engine knows of one training run: its recipe, where its folder goes, how the
    folder is claimed, and ``flags``, every flag's value in the parser's order (the training
    flags name and tell apart run folders; all of them are recorded in args.txt, args.json and
    run.json)."""
    paper: str
    weights_root: str
    flags: dict
    epochs: int
    unbalanced: bool = False          # Dang's imbalanced scripts: the 'unbalanced_' folder
    uid: str = None                   # zhou2022: --uid names the folder
    load_path: str = None             # zhou2022 validators: the folder itself
    force: bool = False
    resume: bool = False
    recipe_reason: str = None         # why this recipe (run.json)


def zhou_run_name(uid, now=None):
    """J's args.parse_train_args: <uid>, or a random number and a timestamp when --uid is absent."""
    if uid:
        return uid
    now = now or datetime.datetime.now()
    return '%d-%s' % (np.random.randint(0, 100000), now.strftime('%a-%b-%d-%H-%M'))


def dang_run_name(flags, prefix=''):
    """The run name of D23's args.parse_train_args (prefix '' balanced, 'unbalanced_' imbalanced)
    from a run's flag values; values through str()."""
    return ('%s%s-%s-%s-%s-width_%s-depth_relu_%s-depth_linear_%s-bias_%s-lr_%s'
            '-data_augmentation_%s-epochs_%s-seed_%s' % ((prefix,) + tuple(flags[dest] for dest in (
                'dataset', 'model', 'loss', 'optimizer', 'width', 'depth_relu', 'depth_linear', 'bias',
                'lr', 'data_augmentation', 'epochs', 'seed'))))


def dang2024_run_name(flags):
    """D24's args_unbalance.py: the 2024 repository's imbalanced folder name, from a run's flag values."""
    return ('unbalanced_%s-%s-%s-%s-width_%s-depth_relu_%s-depth_linear_%s-bias_%s-lr_%s'
            '-sep_decay_%s-weight_decay_%s-epochs_%s-seed_%s' % tuple(flags[dest] for dest in (
                'dataset', 'model', 'loss', 'optimizer', 'width', 'depth_relu', 'depth_linear', 'bias',
                'lr', 'sep_decay', 'weight_decay', 'epochs', 'seed')))


# Flags that shape the trained weights (every recipe): two runs that differ in one of them are
# two runs and never share a folder. --epochs is compared apart (a longer run continues a
# shorter one under --resume). Flags that change nothing here (device, logging, --save_every,
# --data_dir) are left out.
TRAINING_FLAGS = ('paper', 'dataset', 'sample_size', 'data_augmentation', 'model', 'bias', 'ETF_fc',
                  'fixdim', 'SOTA', 'width', 'depth', 'depth_relu', 'depth_linear', 'loss', 'M', 'k',
                  'sep_decay', 'weight_decay', 'feature_decay_rate', 'optimizer', 'history_size', 'lr',
                  'batch_size', 'patience', 'decay_type', 'gamma', 'seed')
SUCCESSOR_SEPARATOR = '__'


def training_flags(values):
    """The TRAINING_FLAGS of a run's flag values (RunSettings.flags, or a stored run.json 'args'
    dict), with --epochs, as JSON values (so a stored record and live flags compare equal)."""
    flags = {dest: values.get(dest) for dest in TRAINING_FLAGS + ('epochs',)}
    return json.loads(json.dumps(flags, default=str))


def flag_differences(ours, theirs, with_epochs=True):
    """[(dest, our value, their value)] of the training flags that differ, in TRAINING_FLAGS order."""
    dests = TRAINING_FLAGS + (('epochs',) if with_epochs else ())
    return [(d, ours.get(d), theirs.get(d)) for d in dests if ours.get(d) != theirs.get(d)]


def describe_differences(differences):
    return ', '.join('--%s %s here, %s there' % (d, mine, other) for d, mine, other in differences)


def stored_flags(folder):
    """The training flags of the run in ``folder`` (its run.json), or None when it has none."""
    try:
        with open(os.path.join(folder, 'run.json')) as f:
            record = json.load(f)
    except (OSError, ValueError):
        return None
    return record.get('training_flags') or training_flags(record.get('args') or {})


def run_id(folder):
    """The id of the run whose files ``folder`` holds (run.json), None without one."""
    try:
        with open(os.path.join(folder, 'run.json')) as f:
            return json.load(f).get('run_id')
    except (OSError, ValueError):
        return None


def paper_run_dir(run):
    """The run folder the paper's scripts would use for this run (their names)."""
    style = recipes.get(run.paper).run_folder
    if style == 'uid':
        if run.load_path:
            return os.path.normpath(run.load_path)
        name = zhou_run_name(run.uid)
    elif style == 'd24':
        name = dang2024_run_name(run.flags)
    else:
        name = dang_run_name(run.flags, 'unbalanced_' if run.unbalanced else '')
    problem = plain_names.name_problem(name)
    if problem:
        raise UsageError('the run folder name %s (from --uid, --dataset, --model, --loss, --optimizer, ...) %s; '
                         'a name may hold %s' % (plain_names.shown(name), problem, plain_names.ALLOWED))
    return os.path.join(run.weights_root, name)


def run_dir(run):
    """This run's folder. zhou2022 (``Recipe.user_names_run_folder``): the --uid / --load_path
    folder the user names. Dang: the paper's name (paper_run_dir) unless that folder holds a
    run of other training flags; then
    ``<name>__<flag>_<value>-...``, naming each flag that differs from that run, so ablations
    over flags the paper's name leaves out (decays, --sep_decay, batch size, ...) never share a
    folder, and a validator given the same flags finds the same one. Folders without run.json
    (older runs) count as this run's."""
    folder = paper_run_dir(run)
    if recipes.get(run.paper).user_names_run_folder:
        return folder
    ours = training_flags(run.flags)
    for _ in range(8):
        theirs = stored_flags(folder)
        differences = flag_differences(ours, theirs) if theirs is not None else []
        if not differences:
            return folder
        folder += SUCCESSOR_SEPARATOR + '-'.join('%s_%s' % (d, mine) for d, mine, _ in differences)
    return folder
