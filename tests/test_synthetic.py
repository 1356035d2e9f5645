"""The synthetic deep-linear UFM experiments reach the minimiser of Dang 2023's objective: the final
iterate, recomputed from the saved tensors, against a direct minimisation that shares no code with
the closed form (tests/d23_reference.py)."""
import json
import os
import pickle

import numpy as np
import pytest
import torch

import args as cli
import synthetic_experiment_balanced
import synthetic_experiment_imbalanced
from conftest import run_script
import d23_reference

CASES = [
    # script, flags: the README configurations of D23's synthetic scripts
    ('synthetic_experiment_imbalanced.py', ['--hidden', '64', '--depth_linear', '1']),
    ('synthetic_experiment_imbalanced.py', ['--hidden', '64', '--depth_linear', '3']),
    # not a README configuration: even depth and lambda_W = 4 lambda_H
    # (its slower approach needs the README's 30,000 steps)
    pytest.param('synthetic_experiment_imbalanced.py', ['--hidden', '64', '--depth_linear', '2', '--weight_decay',
                                                        '0.001', '--feature_decay', '0.00025', '--num_iteration', '30000'],
                 marks=pytest.mark.slow),
    ('synthetic_experiment_balanced.py', ['--hidden', '64', '--lr', '0.1', '--no-bias']),
    ('synthetic_experiment_balanced.py', ['--hidden', '64', '--lr', '0.1']),
]


def run(script, flags, cwd):
    os.makedirs(cwd, exist_ok=True)
    result = run_script(script, *flags, '--log_every', '1000', cwd=cwd)
    folder = result.stdout.split('results in ')[1].split(';')[0].strip()
    return os.path.join(cwd, folder), result.stdout


def learned_geometry(folder, K, bias):
    """W W^T, the class-mean Gram and W H recomputed from the run's final_state.pt (H (N, d),
    labels, the head's weights, first layer first); with a bias the class means are centred,
    since the bias absorbs their mean."""
    state = torch.load(os.path.join(folder, 'final_state.pt'))
    product = state['weights'][0].double()
    for weight in state['weights'][1:]:
        product = weight.double() @ product                                    # W_M ... W_1 (K, d)
    H, labels = state['H'].double(), state['labels']
    means = torch.stack([H[labels == k].mean(0) for k in range(K)], 1)         # (d, K)
    if bias:
        means = means - means.mean(1, keepdim=True)
    return {'WWT': (product @ product.T).numpy(), 'HTH': (means.T @ means).numpy(),
            'WH': (product @ means).numpy()}


def reference_geometry(counts, depth, lambda_W, lambda_H, bias):
    """The minimiser's W W^T, class-mean Gram and W H from tests/d23_reference.py's direct
    per-class minimisation. Bias-free: diagonal, one minimisation per class. With a bias
    (balanced counts n): the bias fits the mean target, so the problem is that of the centred
    targets, whose K-1 non-zero singular values are all sqrt(n), each one a class of n samples;
    every matrix is that class's value times the centring projector I - 11^T/K."""
    K = len(counts)
    if not bias:
        geometry = d23_reference.class_geometry(counts, depth, lambda_W, lambda_H)
        return {key: np.diag(geometry[key]) for key in ('WWT', 'HTH', 'WH')}
    s, a = d23_reference.minimise_class(counts[0], sum(counts), depth, lambda_W, lambda_H)
    centring = np.eye(K) - np.ones((K, K)) / K
    return {'WWT': s ** (2 * depth) * centring, 'HTH': a ** 2 * centring, 'WH': s ** depth * a * centring}


@pytest.mark.parametrize('script,flags', CASES, ids=['imbalanced-M1', 'imbalanced-M3', 'imbalanced-M2-unequal-decays',
                                                     'balanced-nobias', 'balanced-bias'])
def test_optimum_matches_the_closed_form(script, flags, tmp_path):
    """The final iterate, recomputed from final_state.pt, against an independent reference
    (tests/d23_reference.py), at the scripts' settings written here: counts (200, 100, 50, 50)
    or 4 x 100, lambda_W = lambda_H = 5e-4 unless the flags say otherwise."""
    # 15,000 of the README's 30,000 steps: the loss check below shows they have converged
    folder, stdout = run(script, ['--num_iteration', '15000'] + flags, tmp_path)
    balanced = script == 'synthetic_experiment_balanced.py'
    counts = [100] * 4 if balanced else [200, 100, 50, 50]
    bias = balanced and '--no-bias' not in flags
    depth, lambda_W, lambda_H = (type(default)(flags[flags.index(flag) + 1]) if flag in flags else default
                                 for flag, default in (('--depth_linear', 1), ('--weight_decay', 5e-4),
                                                       ('--feature_decay', 5e-4)))
    run_args = json.load(open(os.path.join(folder, 'summary.json')))['args']
    assert (run_args['weight_decay'], run_args['feature_decay'], run_args['depth_linear']) == (lambda_W, lambda_H, depth)
    learned = learned_geometry(folder, len(counts), bias)
    expected = reference_geometry(counts, depth, lambda_W, lambda_H, bias)
    for key in ('WWT', 'HTH', 'WH'):
        diagonal = np.diag(expected[key])
        assert np.max(np.abs(np.diag(learned[key]) - diagonal) / diagonal) < 1e-3, (key, np.diag(learned[key]), diagonal)
        off = (learned[key] - expected[key]) * (1 - np.eye(len(counts)))
        assert np.abs(off).max() < 1e-4, (key, learned[key])
    # converged: the objective no longer moves over the last 5,000 iterations
    history = pickle.load(open(os.path.join(folder, 'metrics.pkl'), 'rb'))
    assert abs(history["loss"][-1] - history["loss"][-6]) < 1e-3 * history["loss"][-1]
    assert history['NC1'][-1] < 1e-8
    for name in ('metrics.json', 'summary.json', 'summary.txt', 'synthetic_metrics.png', 'synthetic_lengths.pdf'):
        assert os.path.exists(os.path.join(folder, name)), name
    assert 'closed form vs learned' in stdout


def run_in_process(flags, cwd, monkeypatch, balanced=True):
    os.makedirs(cwd, exist_ok=True)
    monkeypatch.chdir(cwd)
    script = synthetic_experiment_balanced if balanced else synthetic_experiment_imbalanced
    args = cli.parse_synthetic(script.get_args_parser(), flags + ['--log_every', '10'])
    return os.path.join(cwd, script.main(args))


def test_run_folder_name_and_seed(tmp_path, monkeypatch):
    flags = ['--hidden', '16', '--num_iteration', '20']
    folder2 = run_in_process(flags, tmp_path / 'a', monkeypatch)
    assert os.path.basename(folder2) == 'balance-MSE-bias_True-GOF_False-depth_linear_1-lr_0.1-dim_16-epochs_20-seed_2'
    again = run_in_process(flags, tmp_path / 'b', monkeypatch)
    folder3 = run_in_process(flags + ['--seed', '3'], tmp_path / 'c', monkeypatch)
    assert folder3.endswith('seed_3')
    first, second, third = (torch.load(os.path.join(f, 'final_state.pt')) for f in (folder2, again, folder3))
    assert torch.equal(first['H'], second['H']) and torch.equal(first['labels'], second['labels'])
    assert not torch.equal(first['H'], third['H'])


def test_metric_variants(tmp_path, monkeypatch):
    folder = run_in_process(['--hidden', '16', '--num_iteration', '200', '--no-bias', '--GOF'], tmp_path, monkeypatch)
    history = pickle.load(open(os.path.join(folder, 'metrics.pkl'), 'rb'))
    assert {'NC1', 'NC2_W', 'NC2_H', 'NC3_WH', 'NC3_W_sub_H'} <= set(history)
    assert history['iteration'] == list(range(10, 201, 10))
    folder = run_in_process(['--hidden', '16', '--num_iteration', '200'], tmp_path, monkeypatch)
    history = pickle.load(open(os.path.join(folder, 'metrics.pkl'), 'rb'))
    assert {'NC2_ETF_W_0', 'NC3_ETF_WH_0'} <= set(history) and 'NC2_W' not in history


def test_bad_flags_and_divergence_are_one_line(tmp_path):
    result = run_script('synthetic_experiment_imbalanced.py', '--num_classes', '5', cwd=tmp_path, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    result = run_script('synthetic_experiment_balanced.py', '--hidden', '0', cwd=tmp_path, check=False)
    assert result.returncode == 2 and '--hidden' in result.stderr
    result = run_script('synthetic_experiment_imbalanced.py', '--hidden', '1024', '--depth_linear', '4',
                        '--init_std', '0.1', '--num_iteration', '300', '--log_every', '50', cwd=tmp_path, check=False)
    assert result.returncode == 1 and 'loss is' in result.stderr.strip().splitlines()[-1]
