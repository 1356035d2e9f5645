"""The quick variants of grids/d23_imbalanced.yaml and grids/d24_imbalanced.yaml: what the
theory predicts for their flags (fast), and, end to end, that the trained runs reach the
predicted geometry (slow, about 2 to 4 minutes each on a 2-core CPU).

Checked quantities, from each run's info.pkl (last saved epoch) and theory.json:
* Dang 2023: ||h_k|| (class_mean_norms) and ||w_k|| (classifier_row_norms) against the
  minimiser of the trainer's objective (whose data term is the MSE mean halved, so K lambda_W,
  K lambda_H), found by tests/d23_reference.py's direct per-class minimisation (no closed form);
  NC1_collapse_metric.
* Dang 2024: max |cosine| between distinct class means (HTH.csv), the validator's NC1,
  NC2_W, NC2_WWT, NC2_H, NC3_WH, and the classes whose features vanish against the zeros of
  theory.d24_logit_gaps (theory.json 'M').
"""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from nc_repro import theory
from nc_repro.recipes import dang2023
from reproduction import grids
import d23_reference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DIGITS_COUNTS = list(dang2023.DIGITS_STEP_COUNTS)


def quick_jobs(name):
    return grids.expand(grids.load_grid(name), quick=True)


def test_quick_d23_sweeps_the_paper_depths_without_predicted_collapse():
    jobs = quick_jobs('d23_imbalanced')
    assert [job.flags['depth_linear'] for job in jobs] == [1, 3, 6]
    K = len(DIGITS_COUNTS)
    for job in jobs:
        flags = job.flags
        assert flags['dataset'] == 'digits' and flags['loss'] == 'MSE'
        geometry = d23_reference.class_geometry(DIGITS_COUNTS, flags['depth_linear'], K * flags['weight_decay'],
                                                K * flags['feature_decay_rate'])
        assert np.all(geometry['s'] > 0)
        # predicted ordering: feature means shrink, classifier rows grow with n_k
        order = np.argsort(DIGITS_COUNTS, kind='stable')
        assert np.all(np.diff(geometry['HTH'][order]) <= 0) and np.all(np.diff(geometry['WWT'][order]) >= 0)


def test_quick_d24_runs_are_mlps_with_and_without_predicted_minority_collapse():
    jobs = {job.name: job for job in quick_jobs('d24_imbalanced')}
    assert set(jobs) == {'MLP', 'MLP_collapse'}
    assert all(job.flags['model'] == 'MLP' and job.flags['dataset'] == 'digits' for job in jobs.values())
    gaps = {name: theory.d24_logit_gaps(DIGITS_COUNTS, job.flags['weight_decay'], job.flags['feature_decay_rate'])
            for name, job in jobs.items()}
    assert np.all(gaps['MLP'] > 0)
    collapsed = np.asarray(DIGITS_COUNTS) == min(DIGITS_COUNTS)
    assert np.all(gaps['MLP_collapse'][collapsed] == 0) and np.all(gaps['MLP_collapse'][~collapsed] > 0)


def test_full_scale_flags_are_the_papers():
    d23 = {job.name: job.flags for job in grids.expand(grids.load_grid('d23_imbalanced'))}
    assert sorted(d23) == ['depth_linear=1', 'depth_linear=3', 'depth_linear=6']
    assert all(f['dataset'] == 'cifar10' and f['width'] == 2048 and f['epochs'] == 12000 and f['lr'] == 0.0001
               for f in d23.values())
    d24 = {job.name: job.flags for job in grids.expand(grids.load_grid('d24_imbalanced'))}
    assert sorted(d24) == ['MLP', 'ResNet18']
    assert d24['MLP']['batch_size'] == 256 and d24['ResNet18']['batch_size'] == 32
    assert all(f['epochs'] == 4000 and f['weight_decay'] == 0.0001 and f['feature_decay_rate'] == 0.00001
               for f in d24.values())


def run_quick(name, work_dir):
    subprocess.run([sys.executable, os.path.join(ROOT, 'sweep.py'), name, '--quick', '--work_dir', str(work_dir),
                    '--max_parallel', '2', '--no_figures'], check=True, cwd=ROOT,
                   env=dict(os.environ, OMP_NUM_THREADS='1'))
    results = {}
    for job in quick_jobs(name):
        path = os.path.join(str(work_dir), job.info_path)
        with open(path, 'rb') as f:
            info = pickle.load(f)
        with open(os.path.join(os.path.dirname(path), 'theory.json')) as f:
            record = json.load(f)
        results[job.name] = (info, record, os.path.dirname(path))
    return results


@pytest.mark.slow
def test_quick_d23_lengths_match_the_objective_prediction(tmp_path):
    for name, (info, record, _) in run_quick('d23_imbalanced', tmp_path).items():
        counts = np.asarray(record['counts'], dtype=float)
        K = len(counts)
        geometry = d23_reference.class_geometry(counts, record['depth_linear'], K * record['lambda_W'],
                                                K * record['lambda_H'])
        # theory.json holds the validator's prediction at the flags' decays: the same reference there
        at_flags = d23_reference.class_geometry(counts, record['depth_linear'], record['lambda_W'], record['lambda_H'])
        for key in ('WWT', 'HTH', 'WH'):
            np.testing.assert_allclose(record[key], at_flags[key], rtol=1e-6, err_msg=(name, key))
        h = np.asarray(info['class_mean_norms'][-1], dtype=float)
        w = np.asarray(info['classifier_row_norms'][-1], dtype=float)
        assert np.max(np.abs(h / np.sqrt(geometry['HTH']) - 1)) < 0.05, name
        assert np.max(np.abs(w / np.sqrt(geometry['WWT']) - 1)) < 0.05, name
        assert info['NC1_collapse_metric'][-1] < 0.01 and info['train_acc1'][-1] == 100.0, name
        # ordered by n_k as predicted: per size group, means shrink and rows grow
        sizes = np.unique(counts)
        h_by_size = [h[counts == n].mean() for n in sizes]
        w_by_size = [w[counts == n].mean() for n in sizes]
        assert np.all(np.diff(h_by_size) < 0) and np.all(np.diff(w_by_size) > 0), name


@pytest.mark.slow
def test_quick_d24_orthogonal_relu_means_and_minority_collapse(tmp_path):
    for name, (info, record, run_dir) in run_quick('d24_imbalanced', tmp_path).items():
        HTH = np.loadtxt(os.path.join(run_dir, 'HTH.csv'), delimiter=',')
        norms = np.sqrt(np.diag(HTH))
        predicted_alive = np.asarray(record['M']) > 0
        assert np.all(norms[~predicted_alive] < 1e-3 * norms.max()), name
        assert np.all(norms[predicted_alive] > 0.1 * norms.max()), name
        alive = HTH[np.ix_(predicted_alive, predicted_alive)]
        cosine = alive / np.outer(norms[predicted_alive], norms[predicted_alive])
        assert np.max(np.abs(cosine - np.eye(len(alive)))) < 0.1, name
        assert info['NC1'][-1] < 0.01, name
        for key in ('NC2_W', 'NC2_WWT', 'NC2_H', 'NC3_WH'):
            assert info[key][-1] < 0.1, (name, key, info[key][-1])
