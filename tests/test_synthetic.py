"""The synthetic deep-linear UFM experiments reach the closed-form minimiser (Dang 2023, imbalanced theorem; docs/papers.md)."""
import json
import os
import pickle

import pytest
import torch

import args as cli
import synthetic_experiment_balanced
import synthetic_experiment_imbalanced
from conftest import run_script

CASES = [
    # script, flags, depth: the README configurations of D23's synthetic scripts
    ('synthetic_experiment_imbalanced.py', ['--hidden', '64', '--depth_linear', '1']),
    ('synthetic_experiment_imbalanced.py', ['--hidden', '64', '--depth_linear', '3']),
    ('synthetic_experiment_balanced.py', ['--hidden', '64', '--lr', '0.1', '--no-bias']),
    ('synthetic_experiment_balanced.py', ['--hidden', '64', '--lr', '0.1']),
]


def run(script, flags, cwd):
    os.makedirs(cwd, exist_ok=True)
    result = run_script(script, *flags, '--log_every', '1000', cwd=cwd)
    folder = result.stdout.split('results in ')[1].split(';')[0].strip()
    return os.path.join(cwd, folder), result.stdout


@pytest.mark.parametrize('script,flags', CASES, ids=['imbalanced-M1', 'imbalanced-M3', 'balanced-nobias', 'balanced-bias'])
def test_optimum_matches_the_closed_form(script, flags, tmp_path):
    # 15,000 of the README's 30,000 steps: the loss check below shows they have converged
    folder, stdout = run(script, flags + ['--num_iteration', '15000'], tmp_path)
    summary = json.load(open(os.path.join(folder, 'summary.json')))
    for key in ('WWT', 'HTH', 'WH'):
        assert summary[key]['max_rel_diag_error'] < 1e-3, (key, summary[key])
        assert summary[key]['max_abs_offdiag_error'] < 1e-4, (key, summary[key])
    # converged: the objective no longer moves over the last 5,000 iterations
    history = pickle.load(open(os.path.join(folder, 'metrics.pkl'), 'rb'))
    assert abs(history["loss"][-1] - history["loss"][-6]) < 1e-3 * history["loss"][-1]
    assert history['NC1'][-1] < 1e-8
    for name in ('metrics.json', 'final_state.pt', 'summary.txt', 'synthetic_metrics.png',
                 'synthetic_lengths.pdf'):
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
