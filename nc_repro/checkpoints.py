"""Checkpoints, run folders' preparation and locks, and resume state: defined here once.

A run folder (named by ``run_dirs.run_dir`` after the paper's code) holds epoch_001.pth ...
(the imbalanced recipes save every ``Recipe.save_every_imbalanced`` epochs and the last; the
balanced ones every epoch). A checkpoint holds the model's state dict only, as in the originals, under the original code's
key names (Dang's ResNets and VGGs name their stem ``conv1``/``features``, ours ``body``), so
their validators and ours read each other's files; resume.pth keeps the project's names. Every
file is written to a temporary name and renamed.

One writer per run folder: a trainer holds an exclusive lock on <run folder>/.lock
(``lock_run_dir``, fcntl.flock, released by the OS when the process dies, so a stale lock never
blocks a --resume); a second trainer on the folder stops with one line (exit code 2) naming
the process that holds it. Validators take no lock: they read only complete checkpoints (a
checkpoint being written has a hidden temporary name until it is renamed).
"""
import argparse
import dataclasses
import datetime
import errno
import fcntl
import glob
import importlib.metadata
import importlib.util
import io
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
import uuid

import numpy as np
import torch

from nc_repro import recipes, run_dirs, safe_load
from nc_repro.errors import UsageError
from nc_repro.fileio import atomic_write, atomic_write_text, human_bytes, packaged_file, stop_if_disk_full


def checkpoint_name(epoch):
    """epoch_001.pth ... epoch_200.pth ... epoch_12000.pth (at least three digits)."""
    return 'epoch_%s.pth' % str(epoch).zfill(3)


def checkpoint_path(run_dir, epoch):
    return os.path.join(run_dir, checkpoint_name(epoch))


def saved_epochs(run_dir):
    """Epoch numbers of the complete checkpoints in run_dir, ascending."""
    epochs = []
    for path in glob.glob(os.path.join(run_dir, 'epoch_*.pth')):
        match = re.fullmatch(r'epoch_(\d+)\.pth', os.path.basename(path))
        if match:
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def torch_save(obj, path):
    """torch.save through atomic_write, serialised in memory first: a full disk is then an
    OSError(ENOSPC) of the file write (one line, fileio.stop_disk_full), not torch's
    'unexpected pos' RuntimeError. The bytes are those torch.save writes to a file."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write(path, lambda f: f.write(buffer.getbuffer()))


def save_state_dict(model, path):
    """An epoch checkpoint: the model's state dict under the original code's key names
    (NCModel.original_state_dict; the same as state_dict() except for Dang's ResNets and VGGs)."""
    state = model.original_state_dict() if hasattr(model, 'original_state_dict') else model.state_dict()
    torch_save(state, path)


def load_state_dict(path, device='cpu'):
    """An epoch checkpoint's state dict (weights_only: tensors and containers only)."""
    return safe_load.load_torch(path, device)


# ----------------------------------------------------------------------------------------
# the original code's key layout

class ForeignKey(ValueError):
    """A checkpoint key that is neither the project's nor the original code's name."""


def original_key(key, layout):
    """The original code's state-dict name of our ``key``. ``layout`` is a model's
    ``original_layout``: (our prefix, the original's prefix) pairs, the first that fits wins."""
    for ours, theirs in layout:
        if key.startswith(ours):
            return theirs + key[len(ours):]
    return key


def to_project_layout(state, model, path=None):
    """The state dict with every key in the project's names: keys already ours are kept, keys
    in the original code's layout (``model.original_layout``, e.g. ``conv1.weight`` of Dang's
    ResNets for our ``body.conv1.weight``, VGG's ``features.0.weight`` for ``body.0.weight``)
    are renamed. A key that is neither raises ForeignKey naming it and the checkpoint ``path``;
    without a path (NCModel.load_state_dict) it is kept, for torch's own strict check."""
    expected = model.state_dict().keys()
    layout = getattr(model, 'original_layout', ())
    renamed = {original_key(key, layout): key for key in expected}
    result = {}
    for key, value in state.items():
        if key in expected:
            result[key] = value
        elif key in renamed:
            result[renamed[key]] = value
        elif path is None:
            result[key] = value
        else:
            raise ForeignKey('%s does not fit the model built from the flags: key %r is in neither '
                             'the project\'s nor the original code\'s layout of %s'
                             % (path, key, type(model).__name__))
    return result


# ----------------------------------------------------------------------------------------
# preparing a run folder (named by run_dirs.run_dir)

def write_args(folder, flags):
    """args.txt (the originals' one-line Namespace repr of the flag values ``flags``) and
    args.json (readable, complete)."""
    atomic_write_text(os.path.join(folder, 'args.txt'), str(argparse.Namespace(**flags)) + '\n')
    atomic_write_text(os.path.join(folder, 'args.json'),
                      json.dumps(flags, indent=1, sort_keys=True, default=str) + '\n')


def prepare_run_dir(run, device, model, save_every):
    """Create and lock the folder of ``run`` (a run_dirs.RunSettings; the folder named by run_dir),
    settle what it holds, then write args.txt/args.json (the flags with the originals'
    ``save_path``) and the empty log.txt, as the originals' parsers do, then run.json
    (``write_run_record``) and a warning when the checkpoints to come (every ``save_every``
    epochs) will not fit on the disk.

    zhou2022 refuses an existing --uid folder unless --force or --resume. --force empties the
    folder first and says so. --resume continues the run in the folder (``check_resumable``),
    or a finished shorter run of the same flags into this one (``continue_shorter_run``), or
    says in one line that there is nothing to resume. The folder stays locked for this process
    (``lock_run_dir``) until ``training.fit`` returns."""
    folder = run_dirs.run_dir(run)
    user_named = recipes.get(run.paper).user_names_run_folder     # zhou2022's --uid folder
    if user_named and os.path.isdir(folder) and not (run.force or run.resume):
        raise UsageError('%s already exists; pass --force to overwrite it, --resume to continue '
                         'it, or choose another --uid' % folder)
    folder = lock_own_run_dir(folder, run)   # before anything is written into the folder
    flags = dict(run.flags, save_path=folder)
    if run.force:
        empty_run_dir(folder)
    resuming = False
    if run.resume:
        resuming = check_resumable(folder, run) or (
            not user_named and continue_shorter_run(folder, run))
        if not resuming:
            print('--resume: nothing to resume in %s; starting from epoch 1' % folder)
    if not (resuming and os.path.exists(os.path.join(folder, 'log.txt'))):
        with stop_if_disk_full(os.path.join(folder, 'log.txt')):
            open(os.path.join(folder, 'log.txt'), 'w').close()
    write_args(folder, flags)
    write_run_record(folder, dataclasses.replace(run, flags=flags), device,
                     run_dirs.run_id(folder) if resuming else None)
    saved = [epoch for epoch in range(1, run.epochs + 1) if is_saved_epoch(epoch, run.epochs, save_every)]
    warn_if_disk_too_small(folder, model, len(saved))
    return folder


def lock_own_run_dir(folder, run, attempts=10):
    """Lock ``folder`` and return it; for a Dang folder whose lock another trainer holds (say
    a sweep job of other flags that has not yet written its run.json), wait a second and
    resolve run_dir again, up to ``attempts`` times, so that two jobs of different flags started
    together each get their own folder."""
    user_named = recipes.get(run.paper).user_names_run_folder     # zhou2022: never another folder
    for attempt in range(attempts):
        try:
            lock_run_dir(folder)
        except RunFolderBusy:
            if user_named or attempt == attempts - 1:
                raise
            time.sleep(1)
            folder = run_dirs.run_dir(run)
            continue
        if user_named or run_dirs.run_dir(run) == folder:
            return folder
        unlock_run_dir(folder)            # another run claimed it between resolving and locking
        folder = run_dirs.run_dir(run)
    lock_run_dir(folder)
    return folder


def empty_run_dir(folder):
    """--force: remove everything of the previous run from ``folder`` (not the lock)."""
    removed = []
    for entry in sorted(os.listdir(folder)):
        path = os.path.join(folder, entry)
        if entry == LOCK_NAME:
            continue
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
        removed.append(entry)
    if removed:
        print('--force: emptied %s (removed %d files: %s)' % (
            folder, len(removed), ', '.join(removed[:6]) + (', ...' if len(removed) > 6 else '')))


def check_resumable(folder, run):
    """True when ``folder`` holds a readable resume state of a run with these training flags
    (its --epochs may differ: a longer run continues it). An unreadable resume.pth, or a run of
    other training flags, is a UsageError: its checkpoints are never overwritten."""
    path = os.path.join(folder, RESUME_NAME)
    if not os.path.exists(path):
        return False
    load_resume_state(folder)             # raises UsageError when unreadable
    theirs = run_dirs.stored_flags(folder)
    if theirs is not None:
        differences = run_dirs.flag_differences(run_dirs.training_flags(run.flags), theirs, with_epochs=False)
        if differences:
            raise UsageError('--resume: %s holds a run of other training flags (%s); pass its '
                             'flags to continue it, or drop --resume (and use another --uid or '
                             '--force) for a new run' % (folder, run_dirs.describe_differences(differences)))
    return True


def continue_shorter_run(folder, run):
    """--resume with more --epochs than a finished run of the same flags (whose folder name
    differs in its epochs): link its checkpoints and copy its resume state and logs into
    ``folder``, so training continues it there. The shorter run's folder stays as it was.
    Returns True when such a run was found."""
    ours = run_dirs.training_flags(run.flags)
    best = None
    root = os.path.dirname(folder) or '.'
    for entry in os.scandir(root) if os.path.isdir(root) else ():
        if not entry.is_dir() or entry.path == folder or not os.path.exists(os.path.join(entry.path, RESUME_NAME)):
            continue
        theirs = run_dirs.stored_flags(entry.path)
        if (theirs is None or run_dirs.flag_differences(ours, theirs, with_epochs=False)
                or not isinstance(theirs.get('epochs'), int) or theirs['epochs'] >= run.epochs):
            continue
        if best is None or theirs['epochs'] > best[0]:
            best = (theirs['epochs'], entry.path)
    if best is None:
        return False
    load_resume_state(best[1])            # raises UsageError when unreadable
    for entry in sorted(os.listdir(best[1])):
        source, target = os.path.join(best[1], entry), os.path.join(folder, entry)
        if re.fullmatch(r'epoch_\d+\.pth', entry):
            if os.path.exists(target):
                os.remove(target)
            os.link(source, target)       # checkpoints are replaced by rename, never rewritten
        elif entry in (RESUME_NAME, 'run.json', 'log.txt', 'train_log.txt', 'train_log.jsonl'):
            shutil.copy2(source, target)
    print('--resume: continuing %s (%d epochs) in %s' % (best[1], best[0], folder))
    return True


def is_saved_epoch(epoch, epochs, save_every):
    """Epoch e (1-based) is saved when (e - 1) % save_every == 0 or it is the last one:
    every epoch for save_every = 1 (balanced scripts), epochs 1, 101, 201, ... and the last
    for 100 (Dang 2023 imbalanced), 1, 11, 21, ... for 10 (Dang 2024)."""
    return (epoch - 1) % save_every == 0 or epoch == epochs


# ----------------------------------------------------------------------------------------
# one writer per run folder

LOCK_NAME = '.lock'
PREDECESSOR_WAIT_SECONDS = 120
_locks = {}                               # real path of a run folder -> open lock file descriptor


class RunFolderBusy(UsageError):
    """Another live process trains into the run folder (exit code 2, one line)."""


def _slurm_job():
    """This process's SLURM job (array job_task, or job id; kept across requeues), or None."""
    array, task = os.environ.get('SLURM_ARRAY_JOB_ID'), os.environ.get('SLURM_ARRAY_TASK_ID')
    return '%s_%s' % (array, task) if array and task else os.environ.get('SLURM_JOB_ID')


def _holder(descriptor):
    try:
        return json.loads(os.pread(descriptor, 4096, 0).decode() or '{}')
    except (OSError, ValueError):
        return {}


def lock_run_dir(folder, predecessor_wait=None):
    """Take the exclusive lock of run folder ``folder`` (created if missing) for the rest of
    this process, or until unlock_run_dir; a no-op when this process holds it already.
    Returns True when it took the lock now. Raises RunFolderBusy naming the holder's PID and host when another live process holds it.
    A requeued SLURM job whose predecessor (the same job) still holds the lock waits up to
    PREDECESSOR_WAIT_SECONDS for SLURM to end it."""
    key = os.path.realpath(folder)
    if key in _locks:
        return False
    path = os.path.join(folder, LOCK_NAME)
    try:
        os.makedirs(folder, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise UsageError('cannot create the run folder %s (%s); choose a writable --weights_root or '
                         '--output_root' % (folder, error.strerror or error)) from None
    wait = PREDECESSOR_WAIT_SECONDS if predecessor_wait is None else predecessor_wait
    deadline = time.time() + wait
    while True:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as error:
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(descriptor)
                raise
            holder = _holder(descriptor) or (time.sleep(0.3) or _holder(descriptor))
            own = _slurm_job()
            if own and holder.get('slurm_job') == own and time.time() < deadline:
                time.sleep(1)           # our own predecessor, being ended by SLURM
                continue
            os.close(descriptor)
            raise RunFolderBusy('%s is in use by another trainer (PID %s on %s%s); wait for it to finish or '
                                'stop it, or train into another folder' % (
                                    os.path.abspath(folder), holder.get('pid', '?'), holder.get('host', '?'),
                                    ', SLURM job %s' % holder['slurm_job'] if holder.get('slurm_job') else '')) from None
    record = json.dumps({'pid': os.getpid(), 'host': platform.node(), 'slurm_job': _slurm_job(),
                         'since': datetime.datetime.now().isoformat(timespec='seconds')}) + '\n'
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, record.encode(), 0)
    _locks[key] = descriptor
    return True


def unlock_run_dir(folder):
    descriptor = _locks.pop(os.path.realpath(folder), None)
    if descriptor is not None:
        os.close(descriptor)          # closing the descriptor releases the flock


# ----------------------------------------------------------------------------------------
# resuming (beside the faithful state-dict checkpoints, which keep their format)

RESUME_NAME = 'resume.pth'


def save_resume_state(folder, epoch, model, optimizer, scheduler, generator):
    """Everything needed to continue bit-identically after ``epoch``."""
    state = {
        'epoch': epoch, 'model': model.state_dict(), 'optimizer': optimizer.state_dict(),
        'scheduler': scheduler.state_dict(), 'loader_generator': generator.get_state(),
        'torch_rng': torch.get_rng_state(), 'numpy_rng': np.random.get_state(),
        'python_rng': random.getstate(),
        'cuda_rng': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
    }
    torch_save(state, os.path.join(folder, RESUME_NAME))


def load_resume_state(folder, device='cpu'):
    """The resume state, or None when there is none. Loaded with weights_only
    (safe_load.load_torch): a file naming anything but tensors, containers and the RNG state's
    numpy types is refused (UnsafeFile, exit code 2). A damaged or unreadable one is a
    UsageError: the run's checkpoints are never overwritten by a start from epoch 1 over them."""
    path = os.path.join(folder, RESUME_NAME)
    if not os.path.exists(path):
        return None
    try:
        return safe_load.load_torch(path, device)
    except (safe_load.DamagedFile, OSError) as error:
        raise UsageError('%s cannot be read (%s), so its run cannot continue; restore the file, or '
                         'start the run again with --force (or delete the folder)'
                         % (path, type(error).__name__)) from None


def restore_rng(state):
    torch.set_rng_state(state['torch_rng'])
    np.random.set_state(state['numpy_rng'])
    random.setstate(state['python_rng'])
    if state.get('cuda_rng') is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda_rng'])


# ----------------------------------------------------------------------------------------
# run records

def git_commit():
    try:
        return subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=os.path.dirname(os.path.abspath(__file__)),
                              capture_output=True, text=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def torchvision_version():
    """torchvision.__version__ (with its build tag, '0.29.1+cu130'), read from torchvision/version.py
    rather than by importing torchvision (2 s of every command, most of which never use it);
    the installed distribution's version where that file cannot be read; None without torchvision
    (the installed engine needs none)."""
    if importlib.util.find_spec('torchvision') is None:
        return None
    path, found = packaged_file('torchvision', 'version.py'), None
    if path:
        with open(path) as f:
            found = re.search(r"^__version__ = '([^']+)'", f.read(), flags=re.M)
    return found.group(1) if found else importlib.metadata.version('torchvision')


def write_run_record(folder, run, device, existing_run_id=None):
    """run.json of ``run`` (a run_dirs.RunSettings): versions, device, recipe, all flags, the training flags that identify the run
    (``training_flags``), its run id (kept by --resume, new for a fresh start: a validator
    stops if it changes under it) and the code's git commit."""
    record = {
        'run_id': existing_run_id or uuid.uuid4().hex,
        'training_flags': run_dirs.training_flags(run.flags),
        'python': platform.python_version(), 'torch': torch.__version__,
        'torchvision': torchvision_version(), 'numpy': np.__version__, 'device': str(device),
        'paper': run.paper, 'recipe_reason': run.recipe_reason,
        'git_commit': git_commit(), 'command': ' '.join(sys.argv),
        'started': datetime.datetime.now().isoformat(timespec='seconds'),
        'args': {k: v for k, v in sorted(run.flags.items())},
    }
    atomic_write_text(os.path.join(folder, 'run.json'), json.dumps(record, indent=1, default=str) + '\n')


def warn_if_disk_too_small(folder, model, saved_checkpoints):
    """Estimate the checkpoints' total size from the state dict; warn when it exceeds the free
    space of the run folder's disk. Returns (estimated bytes, free bytes)."""
    per_checkpoint = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    needed = per_checkpoint * saved_checkpoints
    free = shutil.disk_usage(folder).free
    if needed > free:
        print('warning: %d checkpoints of %s need %s but %s has %s free; '
              'use --save_every to keep fewer' % (saved_checkpoints, human_bytes(per_checkpoint),
                                                   human_bytes(needed), folder, human_bytes(free)))
    return needed, free
