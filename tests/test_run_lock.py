"""One writer per run folder: a second trainer on a folder in use stops with exit code 2 and
one line naming the folder and the PID holding it, and writes nothing; a stale lock never
blocks --resume; validation of a folder being trained keeps working."""
import fcntl
import json
import os
import subprocess
import sys
import time

import pytest

from nc_repro import checkpoints
from conftest import ROOT, run_script

FLAGS = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '1', '--width', '16', '--seed', '1',
         '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay']


def run_folder(cwd):
    weights = os.path.join(cwd, 'model_weights')
    return os.path.join(weights, os.listdir(weights)[0])


def snapshot(folder):
    """{name: (size, mtime)} of every file in folder."""
    return {name: (os.stat(os.path.join(folder, name)).st_size, os.stat(os.path.join(folder, name)).st_mtime_ns)
            for name in sorted(os.listdir(folder))}


def hold_lock(folder, pid=None):
    """Lock folder as a trainer would, from this process (another open file description)."""
    descriptor = os.open(os.path.join(folder, checkpoints.LOCK_NAME), os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps({'pid': pid or os.getpid(), 'host': os.uname().nodename}).encode(), 0)
    return descriptor


def test_two_trainers_on_one_folder_exactly_one_trains(tmp_path):
    """The first trains on (it is stopped once the second has been refused); the second is
    refused in one line naming the folder and the first's PID, and writes nothing."""
    epochs = 100000                                # far more than it trains before it is stopped
    command = [sys.executable, os.path.join(ROOT, 'train_1st_order.py')] + FLAGS + ['--epochs', str(epochs)]
    first = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock, deadline = None, time.time() + 120
    while time.time() < deadline and first.poll() is None:       # wait until the first holds the lock
        found = [os.path.join(d, checkpoints.LOCK_NAME) for d, _, files in os.walk(tmp_path)
                 if checkpoints.LOCK_NAME in files]
        if found and os.path.getsize(found[0]) and os.path.exists(os.path.join(os.path.dirname(found[0]), 'epoch_001.pth')):
            lock = found[0]
            break
        time.sleep(0.05)
    assert lock, 'the first trainer never locked its folder: %s' % (first.communicate()[1][-2000:],)
    folder = os.path.dirname(lock)
    before = {name: value for name, value in snapshot(folder).items() if not name.startswith('epoch_')}
    second = run_script('train_1st_order.py', *FLAGS, '--epochs', epochs, cwd=tmp_path, check=False)
    still_training = first.poll() is None
    first.terminate()
    first.communicate(timeout=60)
    assert still_training, 'the first trainer ended before the second started'
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and 'Traceback' not in second.stderr, second.stderr
    assert folder in lines[0] and 'PID %d' % first.pid in lines[0], lines[0]
    # the second wrote nothing: args, logs and run record are the first's (epochs went on
    # meanwhile), and the epoch log is the first's alone, one line per epoch in order
    after = snapshot(folder)
    for name in ('args.txt', 'args.json', 'run.json', 'log.txt'):
        assert after[name] == before[name], name
    logged = [json.loads(line)['epoch'] for line in open(os.path.join(folder, 'train_log.jsonl')) if line.endswith('\n')]
    assert len(logged) > 1 and logged == list(range(1, len(logged) + 1)), logged[:10]


def test_a_stale_lock_never_blocks_resume_and_a_live_one_does(tmp_path):
    run_script('train_1st_order.py', *FLAGS, '--epochs', '2', cwd=tmp_path)
    folder = run_folder(tmp_path)
    with open(os.path.join(folder, checkpoints.LOCK_NAME), 'w') as f:     # left by a dead process
        json.dump({'pid': 999999, 'host': os.uname().nodename}, f)
    resumed = run_script('train_1st_order.py', *FLAGS, '--epochs', '2', '--resume', cwd=tmp_path)
    assert 'after epoch 2' in resumed.stdout or 'after epoch 2' in resumed.stderr
    descriptor = hold_lock(folder)
    try:
        blocked = run_script('train_1st_order.py', *FLAGS, '--epochs', '2', '--resume', cwd=tmp_path, check=False)
        assert blocked.returncode == 2 and len(blocked.stderr.strip().splitlines()) == 1, blocked.stderr
        assert 'PID %d' % os.getpid() in blocked.stderr and folder in blocked.stderr
        # validation reads only finished checkpoints and takes no lock: it works meanwhile
        checked = run_script('validate_NC.py', *FLAGS, '--epochs', '2', cwd=tmp_path)
        assert os.path.exists(os.path.join(folder, 'info.pkl')), checked.stdout
    finally:
        os.close(descriptor)


def test_lock_is_reentrant_in_one_process_and_released_by_unlock(tmp_path):
    folder = str(tmp_path / 'run')
    checkpoints.lock_run_dir(folder)
    checkpoints.lock_run_dir(folder)                       # the same process: a no-op
    with pytest.raises(BlockingIOError):
        hold_lock(folder)
    checkpoints.unlock_run_dir(folder)
    os.close(hold_lock(folder))


def test_a_requeued_slurm_job_waits_for_its_own_predecessor_only(tmp_path, monkeypatch):
    folder = str(tmp_path / 'run')
    os.makedirs(folder)
    descriptor = os.open(os.path.join(folder, checkpoints.LOCK_NAME), os.O_RDWR | os.O_CREAT)
    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.pwrite(descriptor, json.dumps({'pid': 1, 'host': 'n1', 'slurm_job': '77_3'}).encode(), 0)
    monkeypatch.setenv('SLURM_ARRAY_JOB_ID', '88')
    monkeypatch.setenv('SLURM_ARRAY_TASK_ID', '3')
    start = time.time()
    with pytest.raises(checkpoints.RunFolderBusy, match='SLURM job 77_3'):
        checkpoints.lock_run_dir(folder)                   # another job's lock: no wait
    assert time.time() - start < 5
    monkeypatch.setenv('SLURM_ARRAY_JOB_ID', '77')
    with pytest.raises(checkpoints.RunFolderBusy):
        checkpoints.lock_run_dir(folder, predecessor_wait=1)  # our predecessor: waited for, then busy
    assert time.time() - start >= 1
    os.close(descriptor)                                    # the predecessor ends
    checkpoints.lock_run_dir(folder, predecessor_wait=1)
    checkpoints.unlock_run_dir(folder)
