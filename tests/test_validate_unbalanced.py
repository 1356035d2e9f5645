"""validate_NC_unbalanced.py after train_1st_order_unbalanced.py, both recipes, on digits and on
CIFAR-10 files written by the test."""
import csv
import functools
import glob
import json
import os
import pickle

import numpy as np
import pytest

from nc_repro import recipes
from conftest import run_script
import d23_reference
import d24_reference

BASE = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '2', '--depth_linear', '2', '--width', '64',
        '--seed', '1', '--no-bias', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay', '--epochs', '12',
        '--weight_decay', '0.0004', '--feature_decay_rate', '0.0001', '--save_every', '5']
LAMBDA_W, LAMBDA_H = 4e-4, 1e-4


@pytest.mark.parametrize('loss,paper', [('MSE', 'dang2023'), ('CrossEntropy', 'dang2024')])
def test_train_then_validate_writes_theory_metrics(loss, paper, tmp_path):
    flags = BASE + ['--loss', loss]
    run_script('train_1st_order_unbalanced.py', *flags, cwd=tmp_path)
    result = run_script('validate_NC_unbalanced.py', *flags, cwd=tmp_path)
    assert result.stdout.splitlines()[0] == 'recipe: %s (inferred from --loss %s)' % (paper, loss)
    run_dir = os.path.join(tmp_path, result.stdout.strip().splitlines()[-1].split('info: ')[1].rsplit('/', 1)[0])
    info = pickle.load(open(os.path.join(run_dir, 'info.pkl'), 'rb'))
    keys = list(recipes.get(paper).info_keys_imbalanced)
    assert info['epoch'] == [1, 6, 11, 12]
    for key in keys:
        assert len(info[key]) == 4 and all(np.isfinite(v) for v in info[key]), key
    assert info['class_mean_norms'][-1].shape == (10,)
    as_coded = 'NC1_collapse_metric_as_coded' if paper == 'dang2023' else 'NC1_as_coded'
    assert len(info[as_coded]) == 4 and all(np.isfinite(v) for v in info[as_coded])
    nc1 = 'NC1_collapse_metric' if paper == 'dang2023' else 'NC1'      # the per-class values, new keys at the end
    assert list(info)[-2:] == ['per_class', 'CDNV_matrix'] and info['CDNV_matrix'][-1].shape == (10, 10)
    assert sum(info['per_class']['nc1_contribution'][-1]) == pytest.approx(info[nc1][-1], rel=1e-9)
    for key in ('cdnv_row_mean', 'duality_cosine', 'centred_mean_norm', 'ncc_mismatch'):
        assert info['per_class'][key][-1].shape == (10,), key
    recorded = json.load(open(os.path.join(run_dir, 'theory.json')))
    counts = [25, 25, 50, 50, 75, 75, 100, 100, 125, 125]
    assert recorded['counts'] == counts
    if paper == 'dang2023':
        # the flags' decays (lambda_W = 4 lambda_H) and depth 2, against a direct per-class
        # minimisation of the objective (tests/d23_reference.py, no closed form)
        expected = d23_reference.class_geometry(counts, 2, LAMBDA_W, LAMBDA_H)
        for key in ('WWT', 'HTH', 'WH'):
            np.testing.assert_allclose(recorded[key], expected[key], rtol=1e-6, err_msg=key)
        assert recorded['rule'] == 'global'
        assert all(len(layers) == 2 for layers in info['per_layer']['NC2_W'])
        assert info['per_layer']['NC2_W'][-1][0] == info['NC2_W'][-1]
    else:
        # the logit gaps of a direct minimisation of the ReLU-features model (tests/d24_reference.py);
        # at lambda_H = lambda_W/4 the original's formula gives them (tests/test_theory.py)
        _, W, H, labels = d24_reference.minimise(counts, LAMBDA_W, LAMBDA_H, starts=1)
        gaps = d24_reference.measured_geometry(W, H, labels, len(counts))['gaps']
        np.testing.assert_allclose(recorded['M'], gaps, rtol=1e-5)
        for name, shape in (('HTH', (10, 10)), ('ReLU_HTH', (10, 10)), ('W', (10, 64)), ('ReLU_H', (64, 10)),
                            ('WTW', (10, 10)), ('WH', (10, 10))):
            rows = list(csv.reader(open(os.path.join(run_dir, name + '.csv'))))
            assert (len(rows), len(rows[0])) == shape, name
        relu_h = np.loadtxt(os.path.join(run_dir, 'ReLU_H.csv'), delimiter=',')
        assert relu_h.min() >= 0


def test_missing_run_is_one_line(tmp_path):
    result = run_script('validate_NC_unbalanced.py', *BASE, '--loss', 'MSE', cwd=tmp_path, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert 'does not exist' in result.stderr


def write_balanced_cifar10(root, per_class):
    """CIFAR-10 python pickles (genuine format) with per_class training images of every class,
    spread over the five data batches, and 100 test images."""
    rng = np.random.RandomState(0)
    folder = os.path.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    per_batch = 10 * per_class // 5
    for name, n in [('data_batch_%d' % i, per_batch) for i in range(1, 6)] + [('test_batch', 100)]:
        batch = {'data': rng.randint(0, 256, (n, 3072)).astype(np.uint8), 'labels': list(np.arange(n) % 10),
                 'batch_label': name}
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump(batch, f)
    with open(os.path.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({'label_names': ['class%d' % k for k in range(10)]}, f)


@pytest.mark.parametrize('loss,per_class,counts', [
    ('MSE', 500, [100, 100, 200, 200, 300, 300, 400, 400, 500, 500]),
    ('CrossEntropy', 5000, [1000, 1000, 2000, 2000, 3000, 3000, 4000, 4000, 5000, 5000]),
])
def test_both_validators_on_written_cifar10_files(loss, per_class, counts, tmp_path, monkeypatch, capsys):
    """The README's imbalanced CIFAR-10 recipes (D23 counts 100..500, D24 1000..5000) read through
    torchvision's CIFAR10 class from files in the real format (only the md5 check is patched),
    then validated in-process; a flag that changes the model is a one-line error."""
    import torchvision
    import args as cli
    import train_1st_order_unbalanced
    import validate_NC_unbalanced
    monkeypatch.setattr(torchvision.datasets.cifar, 'check_integrity', lambda *a, **k: True)
    write_balanced_cifar10(str(tmp_path), per_class)
    monkeypatch.chdir(tmp_path)
    flags = ['--model', 'MLP', '--dataset', 'cifar10', '--data_dir', str(tmp_path), '--depth_relu', '1',
             '--depth_linear', '1', '--width', '16', '--seed', '1', '--no-bias', '--loss', loss, '--lr', '0.001',
             '--optimizer', 'Adam', '--epochs', '2', '--batch_size', '10000']
    parse = functools.partial(cli.parse, unbalanced=True, allowed=('dang2023', 'dang2024'))
    train_1st_order_unbalanced.main(parse(train_1st_order_unbalanced.get_args_parser(), flags))
    validate_NC_unbalanced.main(parse(validate_NC_unbalanced.get_args_parser(), flags, evaluation=True))
    run_dir, = glob.glob(os.path.join(tmp_path, 'model_weights', '*'))
    with open(os.path.join(run_dir, 'info.pkl'), 'rb') as f:
        info = pickle.load(f)
    assert info['epoch'] == [1, 2] and len(info['NC2_W']) == 2 and np.isfinite(info['NC2_W']).all()
    with open(os.path.join(run_dir, 'theory.json')) as f:
        assert json.load(f)['counts'] == counts
    if loss == 'CrossEntropy':
        assert os.path.exists(os.path.join(run_dir, 'WH.csv'))
    # same folder name, a head of another width: named, one line, exit 2, info.pkl untouched
    before = os.path.getmtime(os.path.join(run_dir, 'info.pkl'))
    os.rename(run_dir, run_dir.replace('width_16', 'width_24'))
    wider = [v if v != '16' else '24' for v in flags]
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:      # its run.json names the flag that differs
        cli.run(validate_NC_unbalanced.main, parse(validate_NC_unbalanced.get_args_parser(), wider, evaluation=True))
    errors = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(errors) == 1 and '(--width 24 here, 16 there)' in errors[0], errors
    os.remove(os.path.join(run_dir.replace('width_16', 'width_24'), 'run.json'))   # as a folder of the original code
    with pytest.raises(SystemExit) as stop:
        cli.run(validate_NC_unbalanced.main, parse(validate_NC_unbalanced.get_args_parser(), wider, evaluation=True))
    errors = capsys.readouterr().err.strip().splitlines()
    assert stop.value.code == 2 and len(errors) == 1 and 'does not fit' in errors[0], errors
    assert os.path.getmtime(os.path.join(run_dir.replace('width_16', 'width_24'), 'info.pkl')) == before
