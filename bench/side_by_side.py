"""Whole-process speed against the original code: the same README command, run by the original
scripts and by this package, on the same CIFAR-10 files, in alternation.

    .venv/bin/python bench/side_by_side.py --original /path/to/Neural-Collapse-in-Deep-Linear-Networks
                                           [--data_dir DIR] [--rows ...] [--repeats 3]

The original code is not part of this project: --original names a checkout of Dang et al.'s
repository that you have (its train_1st_order.py, validate_NC.py, args.py, utils.py,
datasets.py and models/, with the models/__init__.py of its early commits, which later commits
deleted). Nothing in it is changed. Without CUDA it picks the CPU device by itself; only its
validate_NC.py moves a few tensors with a bare Tensor.cuda call, which the launcher below makes
a no-op when torch.cuda.is_available() is False.

Rows (each from an empty folder, each side in its own process):
  dang_resnet18       train_1st_order.py, Dang's ResNet18 command, --epochs 1 --sample_size 256
  dang_mlp            train_1st_order.py, the D23 MLP command (width 512), --epochs 1
  dang_mlp_validate   validate_NC.py on that MLP's one checkpoint (after an untimed training)
The seconds are the whole timed process: start-up, reading the files, the work, the output.
For the training rows a second figure is the epoch alone: each side also runs the command on one
batch of 10 images (--sample_size 1), and the epoch is the whole process less that start-up run.
Without --data_dir a folder of random CIFAR-10 files in the genuine on-disk format (5 pickled
training batches of 10,000 images and a test batch) is written first and removed afterwards.
torchvision checks the md5 sums of the real CIFAR-10 files; written files cannot match them, so
both sides start through the same one-line launcher that switches that check off. Medians of
--repeats runs, taken in the order original, ours, original, ours, ... so a slow spell of the
machine falls on both sides.
"""
import argparse
import glob
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import datasets  # noqa: E402
D23_MLP = ('--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE '
           '--lr 0.0001 --optimizer Adam --sep_decay')
ROWS = {   # name: (README flags, flags added for a one-epoch timing, the timed script)
    'dang_resnet18': ('--model ResNet18 --dataset cifar10 --depth_linear 1 --width 512 --seed 1',
                      '--epochs 1 --sample_size 256', 'train_1st_order.py'),
    'dang_mlp': (D23_MLP, '--epochs 1', 'train_1st_order.py'),
    'dang_mlp_validate': (D23_MLP, '--epochs 1', 'validate_NC.py'),   # after an untimed train_1st_order.py
}
# The start-up run of a training row: imports, reading the files, building the model, one batch of
# 10 images and its checkpoint; "epoch" = the row's process - this one.
START_UP = '--epochs 1 --sample_size 1'
# Runs a script as __main__ from its own folder, with torchvision's md5 check switched off and,
# without CUDA, Tensor.cuda made a no-op (the original validate_NC.py calls it unconditionally).
LAUNCHER = ('import runpy, sys, torch; import torchvision.datasets.cifar as cifar; '
            'cifar.check_integrity = lambda *args, **kwargs: True; '
            'torch.cuda.is_available() or setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self); '
            'script = sys.argv[1]; sys.argv = sys.argv[1:]; sys.path.insert(0, __import__("os").path.dirname(script)); '
            'runpy.run_path(script, run_name="__main__")')


def run_process(checkout, script, flags, data_dir, folder, log):
    """Seconds of one whole process of ``checkout``'s ``script``, started in ``folder``."""
    command = [sys.executable, '-c', LAUNCHER, os.path.join(os.path.abspath(checkout), script)]
    command += flags.split() + ['--data_dir', data_dir]
    log.write('$ %s %s\n' % (script, flags))
    log.flush()
    start = time.perf_counter()
    status = subprocess.call(command, cwd=folder, stdout=log, stderr=subprocess.STDOUT)
    return status, time.perf_counter() - start


def time_row(checkout, row, extra, data_dir, log_path, start_up=False):
    """Seconds of the row's timed process, from an empty folder: a training row must write the
    epoch-1 checkpoint; a validation row first trains (untimed) and then times the validator.
    ``start_up``: the training command on one batch of 10 images instead (START_UP), the fixed
    cost that the epoch figure leaves out. Raises SystemExit with the log's tail when a process
    fails."""
    readme_flags, added_flags, timed_script = ROWS[row]
    flags = ' '.join([readme_flags, extra, START_UP] if start_up else [readme_flags, added_flags, extra]).strip()
    steps = ['train_1st_order.py'] if timed_script == 'train_1st_order.py' else ['train_1st_order.py', timed_script]
    with tempfile.TemporaryDirectory(prefix='side_by_side_') as folder, open(log_path, 'w') as log:
        for script in steps:
            status, seconds = run_process(checkout, script, flags, data_dir, folder, log)
            if status != 0:
                break
            if script == 'train_1st_order.py' and not glob.glob(os.path.join(folder, '**', 'epoch_001.pth'),
                                                               recursive=True):
                raise SystemExit('%s/%s wrote no epoch_001.pth: the command did not train (log: %s)'
                                 % (checkout, script, log_path))
    if status != 0:
        with open(log_path) as log:
            tail = log.read().strip().splitlines()[-3:]
        raise SystemExit('%s/%s exited with %d: %s (log: %s)' % (checkout, script, status, ' | '.join(tail), log_path))
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--original', required=True,
                        help="a checkout of the original repository (its train_1st_order.py and models/)")
    parser.add_argument('--ours', default=ROOT, help='the checkout of this project to time (default: this one)')
    parser.add_argument('--data_dir', default=None,
                        help='a folder holding cifar-10-batches-py (default: random files, written and removed)')
    parser.add_argument('--rows', nargs='+', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--extra', default='', help='flags added to both commands (e.g. --sample_size 2 for a smoke run)')
    bench = parser.parse_args()
    for side in (bench.original, bench.ours):
        for needed in ('train_1st_order.py', os.path.join('models', '__init__.py')):
            if not os.path.isfile(os.path.join(side, needed)):
                parser.error('%s has no %s: give the checkout that holds the training script and its models '
                             'package (early commits of the original keep models/__init__.py)' % (side, needed))
    if bench.repeats < 1:
        parser.error('--repeats must be at least 1')

    scratch = tempfile.mkdtemp(prefix='side_by_side_data_')
    try:
        data_dir = bench.data_dir
        if data_dir is None:
            data_dir = os.path.join(scratch, 'data')
            print('writing random CIFAR-10 files (50,000 + 10,000 images) under %s' % data_dir, flush=True)
            datasets.write_cifar10_files(data_dir, per_batch=10000, test_images=10000)
        data_dir = os.path.abspath(os.path.expanduser(data_dir))
        print('%-18s %10s %10s %9s   (whole processes, medians of %d alternating runs)'
              % ('row', 'original', 'nc-repro', 'speed-up', bench.repeats))
        for row in bench.rows:
            readme_flags, added_flags, timed_script = ROWS[row]
            training_row = timed_script == 'train_1st_order.py'
            times = {'original': [], 'ours': [], 'original start-up': [], 'ours start-up': []}
            for repeat in range(bench.repeats):
                for side, checkout in (('original', bench.original), ('ours', bench.ours)):
                    log_path = os.path.join(scratch, '%s_%s_%d.log' % (row, side, repeat))
                    times[side].append(time_row(checkout, row, bench.extra, data_dir, log_path))
                    if training_row:
                        times[side + ' start-up'].append(
                            time_row(checkout, row, bench.extra, data_dir, log_path + '.start_up', start_up=True))
            original, ours = statistics.median(times['original']), statistics.median(times['ours'])
            print('%-18s %9.1fs %9.1fs %8.2fx   runs: original %s, nc-repro %s' % (
                row, original, ours, original / ours, ' '.join('%.1f' % t for t in times['original']),
                ' '.join('%.1f' % t for t in times['ours'])), flush=True)
            if training_row:     # per repeat, whole process - start-up, then the median
                epochs = {side: statistics.median(whole - fixed for whole, fixed in
                                                  zip(times[side], times[side + ' start-up']))
                          for side in ('original', 'ours')}
                print('%-18s %9.1fs %9.1fs %8.2fx   the epoch: whole process - start-up (%s: original %.1f s, '
                      'nc-repro %.1f s)' % ('  epoch', epochs['original'], epochs['ours'],
                                             epochs['original'] / epochs['ours'], START_UP,
                                             statistics.median(times['original start-up']),
                                             statistics.median(times['ours start-up'])), flush=True)
            print('%18s %s %s %s %s' % ('timed:', timed_script, readme_flags, added_flags, bench.extra))
    except BaseException:
        shutil.rmtree(os.path.join(scratch, 'data'), ignore_errors=True)   # the logs stay, for the message
        raise
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
    main()
