"""validate_NC_unbalanced.py after train_1st_order_unbalanced.py, both recipes, on digits."""
import csv
import json
import os
import pickle

import numpy as np
import pytest

import theory
import validation
from conftest import run_script

BASE = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '2', '--depth_linear', '2', '--width', '64',
        '--seed', '1', '--no-bias', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay', '--epochs', '12',
        '--weight_decay', '0.0001', '--feature_decay_rate', '0.0001', '--save_every', '5']


@pytest.mark.parametrize('loss,paper', [('MSE', 'dang2023'), ('CrossEntropy', 'dang2024')])
def test_train_then_validate_writes_theory_metrics(loss, paper, tmp_path):
    flags = BASE + ['--loss', loss]
    run_script('train_1st_order_unbalanced.py', *flags, cwd=tmp_path)
    result = run_script('validate_NC_unbalanced.py', *flags, cwd=tmp_path)
    assert result.stdout.splitlines()[0] == 'recipe: %s (inferred from --loss %s)' % (paper, loss)
    run_dir = os.path.join(tmp_path, result.stdout.strip().splitlines()[-1].split('info: ')[1].rsplit('/', 1)[0])
    info = pickle.load(open(os.path.join(run_dir, 'info.pkl'), 'rb'))
    keys = validation.INFO_KEYS['dang2023_imbalanced' if paper == 'dang2023' else 'dang2024']
    assert info['epoch'] == [1, 6, 11, 12]
    for key in keys:
        assert len(info[key]) == 4 and all(np.isfinite(v) for v in info[key]), key
    assert info['class_mean_norms'][-1].shape == (10,)
    recorded = json.load(open(os.path.join(run_dir, 'theory.json')))
    counts = [25, 25, 50, 50, 75, 75, 100, 100, 125, 125]
    assert recorded['counts'] == counts
    if paper == 'dang2023':
        expected = theory.d23_geometry(counts, 2, 1e-4, 1e-4)
        np.testing.assert_allclose(recorded['s'], expected['s'])
        assert all(len(layers) == 2 for layers in info['per_layer']['NC2_W'])
        assert info['per_layer']['NC2_W'][-1][0] == info['NC2_W'][-1]
    else:
        np.testing.assert_allclose(recorded['M'], theory.d24_logit_gaps(counts, 1e-4, 1e-4))
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
