"""theory.py against independently computed reference tables, brute-force root checks and closed forms."""
import numpy as np
import pytest

from nc_repro import theory
import d24_reference

STEP = [100, 100, 200, 200, 300, 300, 400, 400, 500, 500]
# Reference values of D23's imbalanced theory (float32, as D23's code computes them): b and
# s_k of every second class for the 10-class rows (classes come in equal pairs), all s_k otherwise
TABLE = [
    (STEP, 1, 1e-5, 1e-5, 9e-4, [3.157531, 3.756612, 4.158186, 4.468780, 4.725535]),
    (STEP, 1, 1e-4, 1e-5, 9e-3, [1.769824, 2.107638, 2.333929, 2.508895, 2.653501]),
    (STEP, 3, 1e-5, 1e-5, 0.0279651, [1.777857, 1.938954, 2.039835, 2.114565, 2.174405]),
    (STEP, 6, 1e-5, 1e-5, 0.100337, [1.389380, 1.459955, 1.502876, 1.534089, 1.558743]),
    ([200, 100, 50, 50], 1, 5e-4, 5e-4, 0.04, [3.733917, 3.130495, 2.621272, 2.621272]),
    ([200, 100, 50, 50], 6, 5e-4, 5e-4, 0.917669, [1.459576, 1.388726, 1.321044, 1.321044]),
    ([100] * 4, 1, 5e-4, 5e-4, 0.04, [3.130495] * 4),
]


@pytest.mark.parametrize('counts,depth,lambda_W,lambda_H,b,s', TABLE)
def test_reference_table(counts, depth, lambda_W, lambda_H, b, s):
    result = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, as_coded_float32=True)
    np.testing.assert_array_equal(result['x'].astype(np.float32), result['x'])   # x went through float32
    assert result['b'] == pytest.approx(b, rel=1e-5)
    if len(counts) == 10:
        np.testing.assert_array_equal(result['s'][::2], result['s'][1::2])   # each value twice
        got = result['s'][::2]
    else:
        got = result['s']
    np.testing.assert_allclose(got, s, rtol=0, atol=1.5e-6)                # to the 6 printed decimals
    # the balanced synthetic script does not clamp: same values there (all roots positive)
    unclamped = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, clamp=False, as_coded_float32=True)
    np.testing.assert_array_equal(unclamped['s'], result['s'])


def test_x_values_of_the_table():
    x = theory.d23_singular_values(STEP, 1, 1e-5, 1e-5)['x'][::2]
    np.testing.assert_allclose(x, [332.33, 470.40, 576.35, 665.67, 744.36], atol=5e-3)
    x = theory.d23_singular_values([200, 100, 50, 50], 1, 5e-4, 5e-4)['x']
    np.testing.assert_allclose(x, [69.71068, 49, 34.35534, 34.35534], atol=5e-6)


def _check_largest_root(n_k, N, depth, lambda_W, lambda_H):
    """Independent of the solver: residual of the equation, np.roots of the expanded
    polynomial, and no sign change of the equation on a dense grid above the root (beyond
    the grid, g(x) < M x^{-M-1} < b/n_k)."""
    b = theory.d23_b(N, depth, lambda_W, lambda_H)
    level = b / n_k

    def equation(x):
        return level - depth * x ** (depth - 1) / (x ** depth + 1) ** 2

    all_roots = np.roots(theory.d23_polynomial(n_k, b, depth))
    real = all_roots[np.abs(all_roots.imag) < 1e-6 * np.maximum(1, np.abs(all_roots))].real
    try:
        x = theory.d23_largest_root(n_k, N, depth, lambda_W, lambda_H)
    except ValueError as error:
        assert depth % 2 == 0 and 'no real root' in str(error) and 'n_k=' in str(error)
        assert len(real) == 0
        grid = np.linspace(0, 20, 200001)
        assert np.all(equation(grid) > 0) and np.all(equation(-grid) > 0)
        return None
    assert abs(equation(x)) <= 1e-9 * level
    assert x == pytest.approx(real.max(), rel=1e-7, abs=1e-9)
    end = abs(x) * 10 + 10
    grid = np.linspace(x + 1e-6 * max(1, abs(x)), end, 200001)
    assert np.all(equation(grid) > 0)
    assert depth * end ** (-depth - 1) < level
    return x


@pytest.mark.parametrize('seed', range(16))
def test_root_is_the_largest_real_root_by_brute_force(seed):
    rng = np.random.RandomState(seed)
    depth = int(rng.randint(1, 10))
    counts = rng.randint(20, 600, size=4)
    lambda_W, lambda_H = 10 ** rng.uniform(-6, -3), 10 ** rng.uniform(-6, -3)
    for n_k in counts:
        assert _check_largest_root(n_k, counts.sum(), depth, lambda_W, lambda_H) > 0


def test_brute_force_with_vanishing_classes_every_depth():
    # tiny classes next to large ones: negative largest roots (odd M) and no root (even M)
    outcomes = set()
    for depth in range(1, 10):
        for seed in range(3):
            rng = np.random.RandomState(100 * depth + seed)
            counts = np.r_[rng.randint(1000, 5000, size=2), rng.randint(1, 6, size=2)]
            lambda_W, lambda_H = 10 ** rng.uniform(-3, -1.5), 10 ** rng.uniform(-3, -1.5)
            for n_k in counts:
                x = _check_largest_root(n_k, counts.sum(), depth, lambda_W, lambda_H)
                outcomes.add('none' if x is None else 'negative' if x < 0 else 'positive')
                if x is not None and x < 0:
                    assert depth % 2 == 1 and -1 < x
    assert outcomes == {'none', 'negative', 'positive'}


def test_depth_nine_for_a_hundred_classes_gives_the_largest_root_of_each_polynomial():
    # M = 9 for 100 classes in one call (the original asked sympy for every root, seconds per
    # class): each x_k is a root of its polynomial, no real root lies above it, and s_k grows with n_k
    counts = np.arange(1, 101) * 5
    result = theory.d23_singular_values(counts, 9, 1e-5, 1e-5)
    for n_k, x_k in zip(counts, result['x']):
        coefficients = theory.d23_polynomial(n_k, result['b'], 9)
        scale = np.abs(coefficients).max() * max(1.0, x_k) ** 18
        assert abs(np.polyval(coefficients, x_k)) < 1e-9 * scale, n_k
        roots = np.roots(coefficients)
        real = roots[np.abs(roots.imag) < 1e-7].real
        assert real.max() == pytest.approx(x_k, rel=1e-6), n_k
    assert np.all(np.diff(result['s']) > 0)          # larger classes, larger singular values


def test_clamping_a_class_too_small_to_survive():
    counts, lambda_W, lambda_H = [1000, 1000, 2, 2], 1e-3, 1e-3
    for depth in (1, 3):
        unclamped = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, rule='as_coded', clamp=False)
        assert unclamped['x'][2] < 0 and np.isnan(unclamped['s'][2])     # negative x^M: no real power
        clamped = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, rule='as_coded')
        assert clamped['x'][2] == 0.0 and clamped['s'][2] == 0.0 and clamped['s'][0] > 0
        np.testing.assert_array_equal(clamped['s'][:2], unclamped['s'][:2])
        geometry = theory.d23_geometry(counts, depth, lambda_W, lambda_H)
        assert geometry['WWT'][2] == 0.0 and geometry['HTH'][2] == 0.0 and geometry['WH'][2] == 0.0
        assert geometry['c'][2] == pytest.approx(sum(counts) * lambda_H)
    # M = 1 unclamped keeps the negative x and its value: x = sqrt(n/b) - 1
    N = sum(counts)
    b = N ** 2 * lambda_W * lambda_H
    assert unclamped['x'][2] != 0
    x1 = theory.d23_singular_values(counts, 1, lambda_W, lambda_H, rule='as_coded', clamp=False)['x'][2]
    assert x1 == pytest.approx(np.sqrt(2 / b) - 1, rel=1e-12)


def test_even_depth_without_root_raises_or_collapses():
    counts, lambda_W, lambda_H = [1000, 1000, 2, 2], 1e-3, 1e-3
    with pytest.raises(ValueError, match='no real root'):
        theory.d23_singular_values(counts, 2, lambda_W, lambda_H, rule='as_coded')
    collapsed = theory.d23_geometry(counts, 2, lambda_W, lambda_H, rule='as_coded', no_root='collapse')
    np.testing.assert_array_equal(collapsed['s'][2:], [0.0, 0.0])
    assert collapsed['s'][0] > 0
    # the global minimiser needs no root: such a class is collapsed (phi_k increases on x >= 0)
    np.testing.assert_array_equal(theory.d23_geometry(counts, 2, lambda_W, lambda_H)['s'], collapsed['s'])
    with pytest.raises(ValueError, match='no_root'):
        theory.d23_singular_values(counts, 2, lambda_W, lambda_H, no_root='zero')
    with pytest.raises(ValueError, match='rule'):
        theory.d23_singular_values(counts, 2, lambda_W, lambda_H, rule='largest')


def test_m1_closed_form():
    counts, lambda_W, lambda_H = np.array(STEP, float), 1e-5, 3e-5
    N = counts.sum()
    geometry = theory.d23_geometry(counts, 1, lambda_W, lambda_H, ratio_target='exact')
    b = N ** 2 * lambda_W * lambda_H
    assert geometry['b'] == pytest.approx(b, rel=1e-14)
    np.testing.assert_allclose(geometry['x'], np.sqrt(counts / b) - 1, rtol=1e-12)
    s2 = geometry['s'] ** 2
    np.testing.assert_allclose(s2, N * lambda_H * geometry['x'], rtol=1e-12)
    np.testing.assert_allclose(s2 / (s2 + N * lambda_H), 1 - N * np.sqrt(lambda_W * lambda_H / counts), rtol=1e-10)
    np.testing.assert_allclose(geometry['WH'], 1 - N * np.sqrt(lambda_W * lambda_H / counts), rtol=1e-10)
    np.testing.assert_allclose((s2 + N * lambda_H) ** 2, counts * lambda_H / lambda_W, rtol=1e-10)
    np.testing.assert_allclose(geometry['W_div_H'], counts * lambda_H / lambda_W, rtol=1e-10)
    as_coded = theory.d23_geometry(counts, 1, lambda_W, lambda_H)
    np.testing.assert_array_equal(as_coded['W_div_H'], counts)          # the code's M = 1 target
    deep = theory.d23_geometry(counts, 3, lambda_W, lambda_H)
    np.testing.assert_allclose(deep['W_div_H'], deep['c'] ** 2, rtol=1e-15)


# Dang 2024 against a direct minimisation of the unconstrained ReLU-features model
# (tests/d24_reference.py: (1/N) sum CE + lambda_W/2 ||W||^2 + lambda_H/2 ||H||^2, H >= 0, no formula).
# The minimiser's logit gaps depend on the decays through lambda_W lambda_H only; the original's
# M_array (theory.d24_logit_gaps) has lambda_H cancel out of it, so it equals the minimiser's gaps
# when lambda_H = lambda_W/4 and only then (the strict xfails below).

def _at_the_minimiser(counts, lambda_W, lambda_H):
    _, W, H, labels = d24_reference.minimise(counts, lambda_W, lambda_H)
    return W, d24_reference.measured_geometry(W, H, labels, len(counts))


def _unit(matrix):
    matrix = np.asarray(matrix, dtype=float)
    return matrix / np.linalg.norm(matrix)


@pytest.mark.parametrize('counts,lambda_W,lambda_H,collapsed', [
    ([2, 4, 6, 8], 0.02, 0.005, []),          # every class alive
    ([1, 4, 6, 9], 0.1, 0.025, [0]),          # the class of 1 sample collapses (minority collapse)
])
def test_d24_targets_are_the_direct_minimisers_geometry(counts, lambda_W, lambda_H, collapsed):
    W, measured = _at_the_minimiser(counts, lambda_W, lambda_H)
    targets = theory.d24_targets(counts, lambda_W, lambda_H)
    K = len(counts)
    alive = np.setdiff1d(np.arange(K), collapsed)
    assert np.all(measured['gaps'][collapsed] < 1e-5) and np.all(measured['gaps'][alive] > 0.5)
    np.testing.assert_allclose(targets['M'], measured['gaps'], atol=1e-5)
    # class means: orthogonal, squared lengths d_k (absolute); W H: column k = M_k (e_k - 1/K) (absolute)
    np.testing.assert_allclose(measured['HTH'], np.diag(targets['HTH_diag']), atol=1e-5 * measured['HTH'].max())
    np.testing.assert_allclose(measured['WH'], targets['WH'], atol=1e-5)
    # W W^T and W itself up to scale: T, and rows K sqrt(n_k) mu_k - sum_c sqrt(n_c) mu_c
    np.testing.assert_allclose(_unit(measured['WWT']), _unit(targets['WWT']), atol=1e-5)
    S = theory.d24_classifier_target(measured['means'], counts, means_layout='dK')
    np.testing.assert_allclose(_unit(W.numpy()), _unit(S), atol=1e-5)


@pytest.mark.xfail(strict=True, reason="the original's M_array (theory.d24_logit_gaps) does not depend on lambda_H: "
                   'it gives the minimiser only for lambda_H = lambda_W/4 (issue 31, reported to the lead)')
@pytest.mark.parametrize('counts,lambda_W,lambda_H', [
    ([2, 4, 6, 8], 0.01, 0.01),               # equal decays: the formula's gaps are about 0.7 too large
    ([1, 4, 6, 9], 0.05, 0.05),               # the class of 1 collapses, the formula keeps it alive
    ([2, 4, 6, 8], 0.005, 0.02),
])
def test_d24_logit_gaps_are_the_minimisers_for_other_decays(counts, lambda_W, lambda_H):
    _, measured = _at_the_minimiser(counts, lambda_W, lambda_H)
    np.testing.assert_allclose(theory.d24_logit_gaps(counts, lambda_W, lambda_H), measured['gaps'], atol=1e-3)


@pytest.mark.xfail(strict=True, reason="the original's M_array (theory.d24_logit_gaps) depends on lambda_W alone "
                   '(issue 31, reported to the lead)')
def test_d24_logit_gaps_depend_on_the_decays_only_through_their_product():
    """f(a W, H/a) at (lambda_W, lambda_H) equals f(W, H) at (a^2 lambda_W, lambda_H/a^2): the logits
    W H, hence the gaps of the minimiser, are the same for every (c lambda_W, lambda_H/c)."""
    counts = [100, 100, 200, 300, 500]
    np.testing.assert_allclose(theory.d24_logit_gaps(counts, 4e-4, 1e-5), theory.d24_logit_gaps(counts, 1e-4, 4e-5),
                               rtol=1e-12)


def test_d24_classifier_target_layouts():
    counts = np.array([100, 100, 200, 300, 500.0])
    K = len(counts)
    means = np.random.RandomState(0).rand(K, 3)
    S = theory.d24_classifier_target(means, counts)
    np.testing.assert_array_equal(theory.d24_classifier_target(means.T, counts), S)       # (d, K) input
    square = np.random.RandomState(1).rand(K, K)
    with pytest.raises(ValueError, match='means_layout'):
        theory.d24_classifier_target(square, counts)
    np.testing.assert_array_equal(theory.d24_classifier_target(square, counts, means_layout='dK'),
                                  theory.d24_classifier_target(square.T, counts, means_layout='Kd'))


def test_hong_thresholds_reproduce_the_measured_table():
    # thresholds measured with cvxpy on the README grids: minority_l rows
    assert theory.hong_minority_collapse_lambda(5, 500, 5, 100) == pytest.approx(0.003333, abs=5e-7)
    assert theory.hong_total_collapse_threshold([500] * 5 + [100] * 5) == pytest.approx(0.007454, abs=5e-7)
    assert theory.hong_minority_collapse_lambda(3, 500, 7, 100) == pytest.approx(0.004545, abs=5e-7)
    assert theory.hong_total_collapse_threshold([500] * 3 + [100] * 7) == pytest.approx(0.010164, abs=5e-7)
    # the README grids straddle them as the table says
    grid5 = [0.0027, 0.0030, 0.0033, 0.0039, 0.0045, 0.0051, 0.0057, 0.0063, 0.0069, 0.0075]
    assert sum(l < theory.hong_minority_collapse_lambda(5, 500, 5, 100) for l in grid5) == 3
    assert grid5[-1] > theory.hong_total_collapse_threshold([500] * 5 + [100] * 5) > grid5[-2]
    grid3 = [0.0037, 0.0041, 0.0045, 0.0053, 0.0062, 0.0070, 0.0078, 0.0086, 0.0094, 0.0102]
    assert grid3[2] < theory.hong_minority_collapse_lambda(3, 500, 7, 100) < grid3[3]
    assert grid3[-1] > theory.hong_total_collapse_threshold([500] * 3 + [100] * 7) > grid3[-2]
    # minority_n rows
    assert theory.hong_minority_n_star(5, 5, 100, 0.005) == pytest.approx(300, rel=1e-12)
    assert theory.hong_total_collapse_n_star(5, 5, 100, 0.005) == pytest.approx(1392.8, abs=0.05)
    assert theory.hong_minority_n_star(3, 7, 100, 0.005) == pytest.approx(433.3, abs=0.05)
    assert theory.hong_total_collapse_n_star(3, 7, 100, 0.005) == pytest.approx(3964, abs=0.5)
    # the n_A* values are where the l-thresholds cross l = 0.005
    assert theory.hong_minority_collapse_lambda(5, 300, 5, 100) == pytest.approx(0.005, rel=1e-12)
    n_total = theory.hong_total_collapse_n_star(5, 5, 100, 0.005)
    assert theory.hong_total_collapse_threshold([n_total] * 5 + [100] * 5) == pytest.approx(0.005, rel=1e-12)
    # no majority size avoids total collapse at a large l
    assert theory.hong_total_collapse_n_star(5, 5, 100, 0.1) == 100
    # limit row, l N = 0.1 with n_B = n_A // 2: sqrt(n_B) > 0.1, so never below the threshold
    for n_A in (500, 1000, 5500):
        counts = [n_A] * 5 + [n_A // 2] * 5
        l = 0.1 / sum(counts)
        assert l < theory.hong_within_cluster_threshold(n_A // 2, sum(counts))
        assert l < theory.hong_total_collapse_threshold(counts)


def test_hong_opt_main_and_balanced_closed_form():
    # Hong's README opt_main example, N = 39000, collapse levels
    counts = [5000] * 3 + [4000] * 3 + [3000] * 4
    assert theory.hong_total_collapse_threshold(counts) == pytest.approx(1.81e-3, abs=5e-6)
    assert theory.hong_within_cluster_threshold(3000, 39000) == pytest.approx(1.40e-3, abs=5e-6)
    assert 0.005 > theory.hong_total_collapse_threshold(counts)               # README l: Z = 0
    # balanced: n = 500, K = 10, l = 0.001 gives alpha = 3.5758 (to four decimals; exact 3.575749); zero from 1/(K sqrt(n)) on
    assert theory.hong_balanced_logit_scale(500, 10, 0.001) == pytest.approx(3.5758, abs=1e-4)
    assert theory.hong_balanced_logit_scale(500, 10, 0.001) == pytest.approx(np.log((1 - 9 * np.sqrt(500) / 1000) / (np.sqrt(500) / 1000)), rel=1e-12)
    edge = 1 / (10 * np.sqrt(500))
    assert edge == pytest.approx(theory.hong_total_collapse_threshold([500] * 10), rel=1e-12)
    assert theory.hong_balanced_logit_scale(500, 10, edge) == 0.0
    assert theory.hong_balanced_logit_scale(500, 10, edge * (1 - 1e-9)) == pytest.approx(0.0, abs=1e-7)


@pytest.mark.parametrize('call,match', [
    (lambda: theory.d23_singular_values([100, 0], 1, 1e-3, 1e-3), 'class counts'),
    (lambda: theory.d23_singular_values([100, 50], 0, 1e-3, 1e-3), 'depth'),
    (lambda: theory.d23_singular_values([100, 50], 2.5, 1e-3, 1e-3), 'depth'),
    (lambda: theory.d23_largest_root(100, 150, 2, -1e-3, 1e-3), 'lambda_W'),
    (lambda: theory.d23_singular_values([100, 50], 2, 1e-3, 0.0, no_root='collapse'), 'lambda_H'),
    (lambda: theory.d23_geometry([100, 50], 1, 1e-3, 1e-3, ratio_target='exactly'), 'ratio_target'),
    (lambda: theory.d24_logit_gaps([100, 50], 1e-3, float('nan')), 'lambda_H'),
    (lambda: theory.hong_minority_n_star(5, 5, 100, 0), '^l must be'),
])
def test_bad_input_gives_a_clear_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()
