"""Run folders, checkpoint names and atomic file writes: defined here once.

Layouts (relative to the working directory, as the originals):
  zhou2022   model_weights/<uid>/epoch_001.pth ...          (spec J §6.1)
             model_weights/<random>-<%a-%b-%d-%H-%M>/ when --uid is absent
  dang2023   model_weights/<run name of spec D23 §1.4>/epoch_001.pth ...
  dang2024   model_weights/unbalanced_<2024 run name>/ (spec D23 App. B)
A checkpoint holds ``model.state_dict()`` only, as in the originals, so their validators and
ours read each other's files. Every file is written to a temporary name and renamed.
"""
import datetime
import glob
import json
import os
import re
import tempfile

import numpy as np
import torch


def atomic_write(path, write, mode='wb'):
    """Write ``path`` through ``write(file)`` into a temporary file in the same folder, then
    rename it over ``path``: readers see the old file or the whole new one, never a part."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.',
                                         suffix='.tmp')
    try:
        with os.fdopen(handle, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text), mode='w')


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


def save_state_dict(model, path):
    atomic_write(path, lambda f: torch.save(model.state_dict(), f))


def load_state_dict(path, device='cpu'):
    return torch.load(path, map_location=device, weights_only=True)


# ----------------------------------------------------------------------------------------
# run folders

def zhou_run_name(args, now=None):
    """J §1.1: <uid>, or a random number and a timestamp when --uid is absent."""
    if args.uid:
        return args.uid
    now = now or datetime.datetime.now()
    return '%d-%s' % (np.random.randint(0, 100000), now.strftime('%a-%b-%d-%H-%M'))


def dang_run_name(args, prefix=''):
    """D23 §1.4 (prefix '' balanced, 'unbalanced_' imbalanced); values through str()."""
    return ('%s%s-%s-%s-%s-width_%s-depth_relu_%s-depth_linear_%s-bias_%s-lr_%s'
            '-data_augmentation_%s-epochs_%s-seed_%s' % (
                prefix, args.dataset, args.model, args.loss, args.optimizer, args.width,
                args.depth_relu, args.depth_linear, args.bias, args.lr, args.data_augmentation,
                args.epochs, args.seed))


def dang2024_run_name(args):
    """D23 App. B: the 2024 repository's imbalanced folder name."""
    return ('unbalanced_%s-%s-%s-%s-width_%s-depth_relu_%s-depth_linear_%s-bias_%s-lr_%s'
            '-sep_decay_%s-weight_decay_%s-epochs_%s-seed_%s' % (
                args.dataset, args.model, args.loss, args.optimizer, args.width,
                args.depth_relu, args.depth_linear, args.bias, args.lr, args.sep_decay,
                args.weight_decay, args.epochs, args.seed))


def run_dir(args, unbalanced=False):
    """The run folder the paper's scripts would use for these flags."""
    if args.paper == 'zhou2022':
        if getattr(args, 'load_path', None):
            return os.path.normpath(args.load_path)
        name = zhou_run_name(args)
    elif args.paper == 'dang2024':
        name = dang2024_run_name(args)
    else:
        name = dang_run_name(args, 'unbalanced_' if unbalanced else '')
    return os.path.join(args.weights_root, name)


def write_args(folder, args):
    """args.txt (the originals' one-line Namespace repr) and args.json (readable, complete)."""
    atomic_write_text(os.path.join(folder, 'args.txt'), str(args) + '\n')
    atomic_write_text(os.path.join(folder, 'args.json'),
                      json.dumps(vars(args), indent=1, sort_keys=True, default=str) + '\n')


def prepare_run_dir(args, unbalanced=False):
    """Create the run folder and write args.txt/args.json and the empty log.txt, as the
    originals' parsers do. zhou2022 refuses an existing --uid folder unless --force."""
    from args import UsageError
    folder = run_dir(args, unbalanced)
    if args.paper == 'zhou2022' and os.path.isdir(folder) and not args.force:
        raise UsageError('%s already exists; pass --force to overwrite it or choose another --uid'
                         % folder)
    os.makedirs(folder, exist_ok=True)
    args.save_path = folder
    open(os.path.join(folder, 'log.txt'), 'w').close()
    write_args(folder, args)
    return folder
