"""validate_NC.py on real short digits runs, as a user runs it after training."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

from nc_repro import recipes
from conftest import run_script

DANG = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '3', '--depth_linear', '3', '--width', '128',
        '--seed', '1', '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay', '--epochs', '15']
ZHOU = ['--gpu_id', '0', '--uid', 'run', '--dataset', 'digits', '--optimizer', 'SGD', '--batch_size', '64',
        '--lr', '0.05', '--model', 'MLP', '--width', '128', '--depth', '2', '--epochs', '3']


@pytest.fixture(scope='module')
def dang_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp('dang')
    run_script('train_1st_order.py', *DANG, cwd=folder)
    result = run_script('validate_NC.py', *DANG, cwd=folder)
    run_dir = result.stdout.strip().splitlines()[-1].split('info: ')[1].rsplit('/', 1)[0]
    return folder, os.path.join(folder, run_dir)


def test_dang_info_keys_lengths_and_collapse(dang_run):
    folder, run_dir = dang_run
    info = pickle.load(open(os.path.join(run_dir, 'info.pkl'), 'rb'))
    assert list(info)[:len(list(recipes.get('dang2023').info_keys))] == list(recipes.get('dang2023').info_keys)
    assert info['epoch'] == list(range(1, 16))
    for key in list(recipes.get('dang2023').info_keys):
        assert len(info[key]) == 15, key
    assert info['NC1_collapse_metric'][-1] < info['NC1_collapse_metric'][0]
    # per-layer lists: one value per head layer, the backbone first and equal to the top level
    assert all(len(values) == 3 for values in info['per_layer']['NC1_collapse_metric'])
    assert info['per_layer']['NC1_collapse_metric'][-1][0] == info['NC1_collapse_metric'][-1]
    assert len(info['NC1_collapse_metric_as_coded']) == 15
    assert all(len(values) == 3 for values in info['per_layer']['NC1_collapse_metric_as_coded'])
    assert info['W'][-1].shape == (10, 128) and info['H'][-1].shape == (128, 10)
    series = json.load(open(os.path.join(run_dir, 'info.json')))
    assert series['NC1_collapse_metric'] == pytest.approx(info['NC1_collapse_metric'])
    assert 'W' not in series
    assert len(open(os.path.join(run_dir, 'test_log.txt')).read().splitlines()) == 15


def test_every_and_epoch_list(dang_run, tmp_path):
    folder, run_dir = dang_run
    run_script('validate_NC.py', *DANG, '--every', '4', cwd=folder)
    assert pickle.load(open(os.path.join(run_dir, 'info.pkl'), 'rb'))['epoch'] == [1, 5, 9, 13, 15]
    run_script('validate_NC.py', *DANG, '--epoch_list', '2', '7', cwd=folder)
    assert pickle.load(open(os.path.join(run_dir, 'info.pkl'), 'rb'))['epoch'] == [2, 7]


def test_bad_inputs_give_one_line(dang_run):
    folder, run_dir = dang_run
    cases = [
        (DANG[:-1] + ['16'], 'does not exist'),                                  # wrong --epochs: no folder
        (DANG + ['--epoch_list', '40'], 'epoch_040.pth is missing'),
    ]
    for flags, needle in cases:
        result = run_script('validate_NC.py', *flags, cwd=folder, check=False)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert needle in result.stderr
    # a checkpoint that does not fit the flags: same folder name, different head
    mismatched = os.path.join(folder, 'mismatch')
    os.makedirs(mismatched)
    result = run_script('validate_NC.py', *[f if f != '128' else '64' for f in DANG], cwd=folder, check=False)
    assert result.returncode == 2 and 'does not exist' in result.stderr
    broken = DANG.copy()
    renamed = run_dir.replace('depth_linear_3', 'depth_linear_2')
    os.rename(run_dir, renamed)
    try:
        broken[broken.index('--depth_linear') + 1] = '2'
        # its run.json says which run it holds: the validator names the flag that differs
        result = run_script('validate_NC.py', *broken, cwd=folder, check=False)
        assert result.returncode == 2 and '(--depth_linear 2 here, 3 there)' in result.stderr, result.stderr
        # without run.json (e.g. the original code's folder) the checkpoint itself does not fit
        os.rename(os.path.join(renamed, 'run.json'), os.path.join(folder, 'run.json.kept'))
        result = run_script('validate_NC.py', *broken, cwd=folder, check=False)
        assert result.returncode == 2 and 'does not fit the model' in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    finally:
        if os.path.exists(os.path.join(folder, 'run.json.kept')):
            os.rename(os.path.join(folder, 'run.json.kept'), os.path.join(renamed, 'run.json'))
        os.rename(renamed, run_dir)


def test_zhou_validate_with_and_without_trailing_slash(tmp_path):
    run_script('train_1st_order.py', *ZHOU, cwd=tmp_path)
    for path in ('model_weights/run/', 'model_weights/run'):
        run_script('validate_NC.py', '--gpu_id', '0', '--dataset', 'digits', '--batch_size', '256',
                   '--load_path', path, '--model', 'MLP', '--width', '128', '--depth', '2', '--epochs', '3',
                   cwd=tmp_path)
    info = pickle.load(open(tmp_path / 'model_weights/run/info.pkl', 'rb'))
    assert list(info)[:len(list(recipes.get('zhou2022').info_keys))] == list(recipes.get('zhou2022').info_keys)
    assert info['nuclear_metric'] == []
    assert all(len(info[k]) == 3 for k in list(recipes.get('zhou2022').info_keys) if k != 'nuclear_metric')
    assert info['all_cos_margin'][0].dtype == np.float32
    assert np.all(np.diff(info['all_cos_margin'][-1]) >= 0)              # sorted ascending
    assert info['avg_cos_margin'][-1] == pytest.approx(float(np.mean(info['all_cos_margin'][-1])), rel=1e-5)
    assert 0 <= info['train_acc1'][-1] <= 100


def test_head_products_match_the_forward_pass():
    import models
    from types import SimpleNamespace
    args = SimpleNamespace(paper='dang2023', model='MLP', width=16, depth_relu=2, depth_linear=3, bias=False)
    model = models.build_model(args, 10, (1, 8, 8)).eval()
    x = torch.randn(5, 1, 8, 8)
    products = model.head_products()
    h = model.features(x).double()
    with torch.no_grad():
        assert torch.allclose(h.float() @ products[0].float().T, model(x)[0], atol=1e-5)
        second = model.head_layers()[0](model.features(x)).double()
        assert torch.allclose(second @ products[1].T, model(x)[0].double(), atol=1e-5)


def test_truncated_checkpoint_and_corrupt_info_are_survived(dang_run, tmp_path):
    import shutil
    folder, run_dir = dang_run
    copy = tmp_path / 'copy'
    shutil.copytree(folder, copy)
    run_copy = os.path.join(copy, os.path.relpath(run_dir, folder))
    checkpoint = os.path.join(run_copy, 'epoch_005.pth')
    with open(checkpoint, 'r+b') as f:
        f.truncate(os.path.getsize(checkpoint) // 2)
    with open(os.path.join(run_copy, 'info.pkl'), 'wb') as f:
        f.write(b'not a pickle')
    result = run_script('validate_NC.py', *DANG, cwd=copy)
    assert 'epoch_005.pth cannot be read' in result.stdout + result.stderr
    info = pickle.load(open(os.path.join(run_copy, 'info.pkl'), 'rb'))
    assert info['epoch'] == [e for e in range(1, 16) if e != 5]
    assert len(info['NC1_collapse_metric']) == 14


def test_wait_is_bounded_and_picks_up_late_checkpoints(dang_run, tmp_path):
    import shutil
    import subprocess
    import sys
    import time
    from conftest import ROOT
    folder, run_dir = dang_run
    copy = tmp_path / 'late'
    shutil.copytree(folder, copy)
    run_copy = os.path.join(copy, os.path.relpath(run_dir, folder))
    hidden = os.path.join(copy, 'epoch_015.pth')
    os.rename(os.path.join(run_copy, 'epoch_015.pth'), hidden)
    result = run_script('validate_NC.py', *DANG, '--wait', '1', cwd=copy, check=False)
    assert result.returncode == 2 and 'epoch_015.pth is missing' in result.stderr and 'after waiting 1s' in result.stderr
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, 'validate_NC.py')] + DANG + ['--wait', '120'],
                               cwd=copy, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(8)
    assert process.poll() is None                     # still waiting for epoch 15
    os.rename(hidden, os.path.join(run_copy, 'epoch_015.pth'))
    assert process.wait(timeout=200) == 0
    assert pickle.load(open(os.path.join(run_copy, 'info.pkl'), 'rb'))['epoch'] == list(range(1, 16))


def test_same_run_validated_twice_gives_identical_info(dang_run, tmp_path):
    import shutil
    folder, run_dir = dang_run
    results = []
    for name in ('first', 'second'):
        copy = tmp_path / name
        shutil.copytree(folder, copy)
        run_script('validate_NC.py', *DANG, '--epoch_list', '1', '15', cwd=copy)
        results.append(pickle.load(open(os.path.join(copy, os.path.relpath(run_dir, folder), 'info.pkl'), 'rb')))
    first, second = results
    assert first.keys() == second.keys()
    for key in list(recipes.get('dang2023').info_keys):
        for a, b in zip(first[key], second[key]):
            assert np.array_equal(np.asarray(a), np.asarray(b)), key


def test_disk_space_warning(tmp_path, monkeypatch, capsys):
    import shutil
    from nc_repro import checkpoints
    model = torch.nn.Linear(1000, 1000)                      # 4 MB per checkpoint
    monkeypatch.setattr(shutil, 'disk_usage', lambda path: shutil._ntuple_diskusage(10 ** 9, 0, 10 ** 7))
    needed, free = checkpoints.warn_if_disk_too_small(str(tmp_path), model, 200)
    assert needed == 200 * 1001000 * 4 and free == 10 ** 7
    assert 'use --save_every' in capsys.readouterr().out
    checkpoints.warn_if_disk_too_small(str(tmp_path), model, 2)
    assert capsys.readouterr().out == ''
