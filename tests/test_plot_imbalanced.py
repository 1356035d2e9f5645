"""A bias-free MSE run on imbalanced digits (M = 1) reaches the lengths Dang et al. 2023
predict, and plots/plot_imbalanced.py draws them."""
import glob
import os
import pickle

import numpy as np
import pytest

from nc_repro import theory
from conftest import run_script
from plots import plot_imbalanced

COUNTS = np.array([25, 25, 50, 50, 75, 75, 100, 100, 125, 125])
LAMBDA = 1.3e-4
FLAGS = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '2', '--depth_linear', '1', '--width', '64',
         '--seed', '1', '--no-bias', '--loss', 'MSE', '--lr', '0.01', '--optimizer', 'Adam', '--sep_decay',
         '--epochs', '600', '--patience', '300', '--save_every', '300',
         '--weight_decay', str(LAMBDA), '--feature_decay_rate', str(LAMBDA)]


@pytest.fixture(scope='module')
def mse_run(tmp_path_factory):
    work = tmp_path_factory.mktemp('imbalanced')
    run_script('train_1st_order_unbalanced.py', *FLAGS, cwd=work)
    run_script('validate_NC_unbalanced.py', *FLAGS, cwd=work)
    run_dir, = glob.glob(os.path.join(work, 'model_weights', '*'))
    with open(os.path.join(run_dir, 'info.pkl'), 'rb') as f:
        return work, run_dir, pickle.load(f)


def by_class_size(values):
    """Mean of a per-class vector over the classes of each size, smallest size first."""
    return np.array([np.mean(np.asarray(values)[COUNTS == n]) for n in np.unique(COUNTS)])


def m1_lengths(counts, lambda_W, lambda_H):
    """(||h_k||, ||w_k||) of the bias-free M = 1 minimiser, the closed form of Dang et al. 2023
    written out here: b = N^2 lambda_W lambda_H, x_k = max(0, sqrt(n_k/b) - 1),
    s_k^2 = N lambda_H x_k; ||w_k|| = s_k and ||h_k|| = s_k/(s_k^2 + N lambda_H)."""
    counts = np.asarray(counts, dtype=float)
    N = counts.sum()
    x = np.maximum(0.0, np.sqrt(counts / (N ** 2 * lambda_W * lambda_H)) - 1)
    s = np.sqrt(N * lambda_H * x)
    return s / (s ** 2 + N * lambda_H), s


def test_class_mean_norms_are_ordered_by_class_size_as_predicted(mse_run):
    """Measured lengths against the M = 1 closed form written in this test, at K lambda (the
    trainer halves the MSE mean: README, imbalanced runs); the code's prediction must agree."""
    _, run_dir, info = mse_run
    record = plot_imbalanced.load_run(run_dir)[1]
    K = len(COUNTS)
    predicted_h, predicted_w = m1_lengths(COUNTS, K * LAMBDA, K * LAMBDA)
    code_h, code_w, absolute = theory.predicted_lengths(record, 'objective')
    assert absolute and record['paper'] == 'dang2023'
    np.testing.assert_allclose(code_h, predicted_h, rtol=1e-10)
    np.testing.assert_allclose(code_w, predicted_w, rtol=1e-10)
    # In this regime (x_k > 1 for every class) the theory predicts feature means that shrink and
    # classifier rows that grow with the class size.
    assert np.all(np.diff(by_class_size(predicted_h)) < 0) and np.all(np.diff(by_class_size(predicted_w)) > 0)
    measured_h, measured_w = info['class_mean_norms'][-1], info['classifier_row_norms'][-1]
    assert np.all(np.diff(by_class_size(measured_h)) < 0)
    assert np.all(np.diff(by_class_size(measured_w)) > 0)
    np.testing.assert_allclose(measured_h, predicted_h, rtol=0.05)
    np.testing.assert_allclose(measured_w, predicted_w, rtol=0.02)
    # The flags' lambdas (as the validator plugs them in) predict longer rows than the run reaches.
    flags_w = m1_lengths(COUNTS, LAMBDA, LAMBDA)[1]
    np.testing.assert_allclose(theory.predicted_lengths(record, 'flags')[1], flags_w, rtol=1e-10)
    assert np.all(flags_w > 1.03 * measured_w)


def test_plot_writes_both_figures(mse_run, tmp_path):
    work, run_dir, _ = mse_run
    result = run_script('plots/plot_imbalanced.py', run_dir, '--out_dir', tmp_path, '--name', 'd23',
                        '--theory_scaling', 'objective', cwd=work)
    for stem in ('d23_metrics', 'd23_lengths'):
        for ext in ('png', 'pdf'):
            path = tmp_path / ('%s.%s' % (stem, ext))
            assert path.stat().st_size > 5000, path
    assert (tmp_path / 'd23_lengths.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
    assert 'd23_metrics.png' in result.stdout


def test_missing_theory_file_is_one_line(tmp_path):
    with open(tmp_path / 'info.pkl', 'wb') as f:
        pickle.dump({'epoch': [1]}, f)
    result = run_script('plots/plot_imbalanced.py', tmp_path, '--out_dir', tmp_path, cwd=tmp_path, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert 'theory.json' in result.stderr and 'validate_NC_unbalanced.py' in result.stderr


def test_d24_prediction_is_fitted_to_scale():
    record = {'paper': 'dang2024', 'counts': COUNTS.tolist(), 'lambda_W': 1e-4, 'lambda_H': 1e-5}
    predicted_h, predicted_w, absolute = theory.predicted_lengths(record)
    assert not absolute
    measured = 3.0 * predicted_w
    assert theory.fitted_scale(predicted_w, measured) == pytest.approx(3.0)
