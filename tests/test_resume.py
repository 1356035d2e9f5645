"""A run killed with SIGKILL and resumed with --resume ends with bit-identical weights to an
uninterrupted run; interrupted writes never leave a partial file under a real name."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from nc_repro import checkpoints, fileio
from conftest import ROOT, run_script

RECIPES = {
    'dang2023': ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '3', '--depth_linear', '2',
                 '--width', '256', '--seed', '1', '--loss', 'MSE', '--lr', '0.001', '--optimizer',
                 'Adam', '--sep_decay'],
    'zhou2022': ['--gpu_id', '0', '--uid', 'run', '--dataset', 'digits', '--optimizer', 'SGD',
                 '--batch_size', '64', '--lr', '0.05', '--model', 'MLP', '--width', '256',
                 '--depth', '3', '--patience', '4'],
}
EPOCHS = 12


def final_state(folder):
    run_dir = os.path.join(folder, 'model_weights', os.listdir(os.path.join(folder, 'model_weights'))[0])
    return checkpoints.load_state_dict(checkpoints.checkpoint_path(run_dir, EPOCHS)), run_dir


def kill_after(flags, cwd, epoch_file):
    """Start training and SIGKILL it as soon as ``epoch_file`` exists (mid-epoch)."""
    command = [sys.executable, os.path.join(ROOT, 'train_1st_order.py')] + flags
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline:
        found = [os.path.join(d, epoch_file) for d, _, files in os.walk(cwd) if epoch_file in files]
        if found or process.poll() is not None:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    return process.returncode


@pytest.mark.parametrize('recipe', sorted(RECIPES))
def test_sigkill_then_resume_is_bit_identical(recipe, tmp_path):
    flags = RECIPES[recipe] + ['--epochs', str(EPOCHS)]
    straight, interrupted = tmp_path / 'straight', tmp_path / 'interrupted'
    straight.mkdir(), interrupted.mkdir()
    run_script('train_1st_order.py', *flags, cwd=straight)
    code = kill_after(flags, str(interrupted), 'epoch_004.pth')
    assert code == -signal.SIGKILL, 'the run finished before it could be killed'
    run_script('train_1st_order.py', *flags, '--resume', cwd=interrupted)
    expected, _ = final_state(str(straight))
    resumed, run_dir = final_state(str(interrupted))
    assert expected.keys() == resumed.keys()
    for key in expected:
        assert torch.equal(expected[key], resumed[key]), key
    epochs_logged = [line for line in open(os.path.join(run_dir, 'train_log.jsonl'))]
    assert len(epochs_logged) == EPOCHS


def test_interrupted_write_leaves_no_partial_file(tmp_path):
    target = tmp_path / 'epoch_001.pth'
    fileio.atomic_write(str(target), lambda f: f.write(b'complete'))

    def crash(f):
        f.write(b'half of a new checkpo')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        fileio.atomic_write(str(target), crash)
    assert target.read_bytes() == b'complete'
    assert os.listdir(tmp_path) == ['epoch_001.pth']
    # a temporary file left by a SIGKILL during a write is never taken for a checkpoint
    (tmp_path / '.epoch_002.pth.x1.tmp').write_bytes(b'trunc')
    assert checkpoints.saved_epochs(str(tmp_path)) == [1]


def test_run_record(tmp_path):
    run_script('train_1st_order.py', *RECIPES['dang2023'], '--epochs', '1', cwd=tmp_path)
    run_dir = os.path.join(tmp_path, 'model_weights', os.listdir(tmp_path / 'model_weights')[0])
    import json
    record = json.load(open(os.path.join(run_dir, 'run.json')))
    assert record['paper'] == 'dang2023' and record['torch'] == torch.__version__
    assert record['device'] == 'cpu' and record['args']['width'] == 256
    assert set(record) >= {'python', 'torchvision', 'git_commit', 'command'}
