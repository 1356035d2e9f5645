"""convex_ufm.py and opt_main.py: the convex UFM program of Hong & Ling 2023 (docs/papers.md, Hong & Ling 2023)."""
import os
import stat
import warnings

import cvxpy as cp
import numpy as np
import pytest

from nc_repro import convex_ufm, theory
from conftest import run_script

README_COUNTS = [5000] * 3 + [4000] * 3 + [3000] * 4        # opt_main's defaults, N = 39000


def literal_objective(Z, b, counts, reg_z, reg_b):
    """Slow reference: the UFM loss over the full K x N logit matrix, one column per sample
    (column k of Z repeated n_k times), cross-entropy averaged over the N samples."""
    columns, labels = [], []
    for k, n_k in enumerate(counts):
        for _ in range(n_k):
            columns.append(Z[:, k] + b)
            labels.append(k)
    loss = 0.0
    for logits, label in zip(columns, labels):
        loss += np.log(np.sum(np.exp(logits))) - logits[label]
    full = np.stack([Z[:, k] for k in labels], axis=1)                      # (K, N)
    nuclear = np.linalg.svd(full, compute_uv=False).sum()
    return loss / len(labels) + reg_z * nuclear + reg_b * np.sum(b ** 2)


def test_program_and_numpy_objective_match_the_literal_definition():
    rng = np.random.default_rng(0)
    counts = [3, 2, 1]
    Z, b = rng.normal(size=(3, 3)), rng.normal(size=3)
    expected = literal_objective(Z, b, counts, 0.3, 0.2)
    problem, Z_var, b_var = convex_ufm.build_ufm_program(counts, 0.3, 0.2)
    Z_var.value, b_var.value = Z, b[:, None]
    assert problem.objective.value == pytest.approx(expected, rel=1e-10)
    assert convex_ufm.ufm_objective(Z, b, counts, 0.3, 0.2) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize('solver', ['SCS', 'CLARABEL'])
def test_balanced_closed_form(solver):
    """All n_k = n: Z = alpha (I - 11^T/K), b = 0, alpha = ln((1 - (K-1) l sqrt(n)) / (l sqrt(n)))
    (the balanced optimum, docs/papers.md, Hong & Ling 2023); n = 500, K = 10, l = 0.001 gives alpha = 3.575749."""
    n, K, l = 500, 10, 0.001
    alpha = np.log((1 - (K - 1) * l * np.sqrt(n)) / (l * np.sqrt(n)))
    assert alpha == pytest.approx(3.57575, abs=1e-5)                # 3.5758 to four decimals
    result = convex_ufm.solve_ufm_program([n] * K, l, 0.01, solver=solver)
    assert result['status'] == 'optimal' and result['solver'] == solver
    np.testing.assert_allclose(result['Z'], alpha * (np.eye(K) - 1.0 / K), atol=1e-3)
    np.testing.assert_allclose(result['b'], 0, atol=1e-4)
    columns = result['Z'] / np.linalg.norm(result['Z'], axis=0)
    cosines = (columns.T @ columns)[~np.eye(K, dtype=bool)]
    np.testing.assert_allclose(cosines, -1 / 9, atol=1e-4)
    assert result['objective'] == pytest.approx(
        convex_ufm.ufm_objective(result['Z'], result['b'], [n] * K, l, 0.01), rel=1e-5)


def test_balanced_above_one_over_K_sqrt_n_is_total_collapse():
    n, K = 500, 10
    result = convex_ufm.solve_ufm_program([n] * K, 1.2 / (K * np.sqrt(n)), 0.01, solver='CLARABEL')
    assert convex_ufm.is_total_collapse(result['Z'])


def test_readme_example_is_total_collapse_with_scs():
    """The README command (l = 0.005) returns Z = 0 and b ~ [0.228]*3 + [0.034]*3 + [-0.197]*4."""
    result = convex_ufm.solve_ufm_program(README_COUNTS, 0.005, 0.01)
    assert result['solver'] == 'SCS' and result['eps'] == 1e-5
    assert np.abs(result['Z']).max() < 1e-6
    np.testing.assert_allclose(result['b'], [0.228] * 3 + [0.0343] * 3 + [-0.1967] * 4, atol=2e-4)
    # Z = 0 leaves the bias-only problem, solved independently by Newton's method
    np.testing.assert_allclose(result['b'], convex_ufm.optimal_bias_only(README_COUNTS, 0.01), atol=1e-5)


def test_readme_counts_below_collapse_have_block_structure():
    """l = 0.001: diagonals 1.855 / 1.763 / 1.570 per cluster (measured with SCS at 1e-5; the
    exact optimum, from Clarabel and SCS at 1e-9, is 1.8546 / 1.7622 / 1.5715), off-diagonal
    values constant within each block pair, Z not symmetric."""
    result = convex_ufm.solve_ufm_program(README_COUNTS, 0.001, 0.01, solver='CLARABEL')
    Z = result['Z']
    np.testing.assert_allclose(np.diag(Z), [1.855] * 3 + [1.763] * 3 + [1.570] * 4, atol=2e-3)
    blocks = [range(0, 3), range(3, 6), range(6, 10)]
    for rows in blocks:
        for cols in blocks:
            values = [Z[j, k] for j in rows for k in cols if j != k]
            assert np.ptp(values) < 1e-3 and max(values) < 0
    assert np.abs(Z - Z.T).max() > 0.01
    rng = np.random.default_rng(1)
    for _ in range(5):                                      # no nearby point does better
        Z_near = Z + 1e-3 * rng.normal(size=Z.shape)
        b_near = result['b'] + 1e-3 * rng.normal(size=10)
        assert convex_ufm.ufm_objective(Z_near, b_near, README_COUNTS, 0.001, 0.01) \
            >= result['objective'] - 1e-7


@pytest.mark.parametrize('counts', [[50, 50, 10, 10], [50, 50, 20, 20, 5, 5]])
def test_clusters_collapse_exactly_above_their_threshold(counts):
    """Columns of a cluster coincide iff l >= sqrt(n_c)/N; Z = 0 iff l >= sqrt(n_max)/N (the
    largest count is shared here, so theory.py's total level is exact)."""
    N = sum(counts)
    total = theory.hong_total_collapse_threshold(counts)
    thresholds = {n_c: theory.hong_within_cluster_threshold(n_c, N) for n_c in set(counts)}
    levels = sorted({f * t for t in list(thresholds.values()) + [total] for f in (0.7, 1.3)})
    for l in levels:
        Z = convex_ufm.solve_ufm_program(counts, l, 0.01, solver='CLARABEL')['Z']
        for n_c, indices in convex_ufm.equal_count_clusters(counts):
            spread = convex_ufm.column_spread(Z, indices)
            if l >= thresholds[n_c]:
                assert spread < 1e-3, (l, n_c, spread)
            else:
                assert spread > 0.05, (l, n_c, spread)
        predicted = {n_c: l >= thresholds[n_c] for n_c in thresholds}
        assert convex_ufm.cluster_columns_coincide(Z, counts) == predicted
        assert convex_ufm.is_total_collapse(Z) == (l >= total)


def test_total_collapse_level_two_classes_by_hand():
    """K = 2, l_2 = 0: p = n/N and G_0 = (1/N)[[-p_2, p_1], [p_2, -p_1]] D has rank 1, so
    sigma_max = sqrt(2 (p_2^2 n_1 + p_1^2 n_2)) / N; [100, 1] gives 0.0139326."""
    n1, n2 = 100, 1
    N = n1 + n2
    p1, p2 = n1 / N, n2 / N
    expected = np.sqrt(2 * (p2 ** 2 * n1 + p1 ** 2 * n2)) / N
    level = convex_ufm.total_collapse_level([n1, n2], 0.0)
    assert level == pytest.approx(expected, rel=1e-9)
    # the convex program itself: Z = 0 just above that level, not just below it
    above = convex_ufm.solve_ufm_program([n1, n2], 1.05 * level, 0.0, solver='CLARABEL')
    below = convex_ufm.solve_ufm_program([n1, n2], 0.8 * level, 0.0, solver='CLARABEL')
    assert convex_ufm.is_total_collapse(above['Z']) and not convex_ufm.is_total_collapse(below['Z'])


def test_total_collapse_level_matches_theory_when_largest_count_is_shared():
    for counts in (README_COUNTS, [50, 50, 10, 10]):
        assert convex_ufm.total_collapse_level(counts, 0.01) == pytest.approx(
            theory.hong_total_collapse_threshold(counts), rel=1e-9)


def test_unique_largest_class_collapses_below_sqrt_n_max_over_N():
    """[100, 10, 10]: sqrt(n_max)/N = 0.0833 but the KKT level is 0.0418; the solver agrees with
    the KKT level (so theory.py's total threshold is exact only for a shared largest count)."""
    counts = [100, 10, 10]
    level = convex_ufm.total_collapse_level(counts, 0.01)
    assert level == pytest.approx(0.0417855, rel=1e-5)
    assert level < 0.6 * theory.hong_total_collapse_threshold(counts)
    for factor, collapsed in ((0.9, False), (1.1, True)):
        Z = convex_ufm.solve_ufm_program(counts, factor * level, 0.01, solver='CLARABEL')['Z']
        assert convex_ufm.is_total_collapse(Z) == collapsed


def test_optimal_bias_only_is_stationary():
    counts = np.array([7.0, 3.0, 1.0])
    for reg_b in (0.0, 0.01, 2.0):
        b = convex_ufm.optimal_bias_only(counts, reg_b)
        p = np.exp(b) / np.exp(b).sum()
        np.testing.assert_allclose(p - counts / counts.sum() + 2 * reg_b * b, 0, atol=1e-12)


def test_structure_helpers_on_hand_cases():
    assert convex_ufm.class_counts([3, 3, 4], [5000, 4000, 3000]) == README_COUNTS
    clusters = convex_ufm.equal_count_clusters([5, 7, 5, 9])
    assert [(n, idx.tolist()) for n, idx in clusters] == [(5, [0, 2])]
    Z = np.array([[1.0, 0.0, 1.5],
                  [0.0, 2.0, 0.0],
                  [2.0, 0.0, 2.0]])
    assert convex_ufm.column_spread(Z, [0, 2]) == pytest.approx(0.25)
    assert convex_ufm.cluster_columns_coincide(Z, [5, 7, 5], tol=0.3) == {5: True}
    assert convex_ufm.cluster_columns_coincide(Z, [5, 7, 5], tol=0.2) == {5: False}
    assert convex_ufm.is_total_collapse(np.full((2, 2), 1e-4)) and not convex_ufm.is_total_collapse(Z)


@pytest.mark.parametrize('call,needle', [
    (lambda: convex_ufm.solve_ufm_program([5, 0], 0.1, 0.01), 'positive'),
    (lambda: convex_ufm.solve_ufm_program([5], 0.1, 0.01), 'at least 2 classes'),
    (lambda: convex_ufm.solve_ufm_program([5, 3], 0.0, 0.01), 'reg_z'),
    (lambda: convex_ufm.solve_ufm_program([5, 3], 0.1, -1.0), 'reg_b'),
    (lambda: convex_ufm.solve_ufm_program([5, 3], 0.1, 0.01, solver='NOPE'), 'CLARABEL, SCS'),
    (lambda: convex_ufm.solve_ufm_program([5, 3], 0.1, 0.01, solver='OSQP'), 'PSD'),
    (lambda: convex_ufm.class_counts([3, 3], [10]), 'same length'),
])
def test_bad_input_raises_one_line_value_error(call, needle):
    with pytest.raises(ValueError) as info:
        call()
    assert needle in str(info.value) and '\n' not in str(info.value)


def test_failed_solver_falls_back_to_scs(monkeypatch):
    solve_once = convex_ufm._solve_once

    def clarabel_breaks(problem, solver, eps, verbose):
        if solver == 'CLARABEL':
            raise cp.error.SolverError('Solver CLARABEL failed.')
        return solve_once(problem, solver, eps, verbose)

    monkeypatch.setattr(convex_ufm, '_solve_once', clarabel_breaks)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        result = convex_ufm.solve_ufm_program([5, 5, 2], 0.05, 0.01, solver='CLARABEL')
    assert result['solver'] == 'SCS' and result['eps'] == 1e-5
    assert any('CLARABEL failed' in str(w.message) for w in caught)


def test_save_npy_is_atomic_and_readable(tmp_path):
    path = tmp_path / 'sub' / 'z.npy'
    convex_ufm.save_npy(str(path), np.arange(6.0).reshape(2, 3))
    np.testing.assert_array_equal(np.load(path), np.arange(6.0).reshape(2, 3))
    assert os.listdir(tmp_path / 'sub') == ['z.npy']
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask


def test_opt_main_small_problem_end_to_end(tmp_path):
    """[2, 2] x [50, 10], l = 0.04: the minority pair coincides (threshold 0.0264), the majority
    pair does not (0.0589), Z != 0; both files are written and reload with the right shapes."""
    result = run_script('opt_main.py', '--cluster_s', 2, 2, '--sample_s', 50, 10, '--reg_z', 0.04,
                        '--solver', 'CLARABEL', '--sd_z', 'z_small', '--sd_b', 'b_small', cwd=tmp_path)
    assert ('solution agrees with the thresholds of theory.py: yes; with the KKT level: yes'
            in result.stdout)
    assert 'classes [2, 3]: column spread' in result.stdout
    assert sorted(os.listdir(tmp_path / 'hong_results' / 'opt_results')) == ['b_small.npy', 'z_small.npy']
    Z = np.load(tmp_path / 'hong_results' / 'opt_results' / 'z_small.npy')
    b = np.load(tmp_path / 'hong_results' / 'opt_results' / 'b_small.npy')
    assert Z.shape == (4, 4) and b.shape == (4,) and Z.dtype == np.float64
    assert convex_ufm.column_spread(Z, [2, 3]) < 1e-3 < convex_ufm.column_spread(Z, [0, 1])


def test_opt_main_readme_command(tmp_path):
    result = run_script('opt_main.py', '--cluster_s', 3, 3, 4, '--sample_s', 5000, 4000, 3000,
                        '--reg_z', 0.005, '--reg_b', 0.01, cwd=tmp_path)
    assert 'solver: SCS (eps 1e-05), status: optimal' in result.stdout
    assert 'total collapse (Z = 0) iff l >= sqrt(n_max)/N = 0.00181309: l is above' in result.stdout
    assert 'solution agrees with the thresholds of theory.py: yes' in result.stdout
    assert np.abs(np.load(tmp_path / 'hong_results' / 'opt_results' / 'ground_z.npy')).max() < 1e-6
    assert np.load(tmp_path / 'hong_results' / 'opt_results' / 'ground_b.npy').shape == (10,)


@pytest.mark.parametrize('flags,needle', [
    (['--cluster_s', 2, 2, '--sample_s', 50], '--cluster_s and --sample_s must have the same length'),
    (['--sample_s', 5000, 0, 3000], '--sample_s entries must be at least 1'),
    (['--reg_z', -0.1], '--reg_z must be positive'),
    (['--reg_b', -1], '--reg_b must be zero or positive'),
    (['--solver', 'NOPE'], '--solver NOPE is not an installed cvxpy solver'),
])
def test_opt_main_bad_input_one_line_exit_2(flags, needle, tmp_path):
    result = run_script('opt_main.py', *flags, cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert os.listdir(tmp_path) == []
