"""theory.py against the spec's reference tables, a brute-force root check and closed forms."""
import numpy as np
import pytest

import theory

STEP = [100, 100, 200, 200, 300, 300, 400, 400, 500, 500]
# spec D23 §5.3 "Reference values" (float32, as the code computes them): s_k for every second class
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
    assert result['b'] == pytest.approx(b, rel=1e-5)
    got = result['s'][::2] if len(counts) == 10 else result['s']
    np.testing.assert_allclose(got, s, rtol=1e-6, atol=1.5e-6)


def test_x_values_of_the_table():
    x = theory.d23_singular_values(STEP, 1, 1e-5, 1e-5)['x'][::2]
    np.testing.assert_allclose(x, [332.33, 470.40, 576.35, 665.67, 744.36], atol=6e-3)
    x = theory.d23_singular_values([200, 100, 50, 50], 1, 5e-4, 5e-4)['x']
    np.testing.assert_allclose(x, [69.71068, 49, 34.35534, 34.35534], rtol=1e-6)


@pytest.mark.parametrize('seed', range(12))
def test_root_is_the_largest_real_root_by_brute_force(seed):
    rng = np.random.RandomState(seed)
    depth = int(rng.randint(1, 10))
    counts = rng.randint(20, 600, size=4)
    lambda_W, lambda_H = 10 ** rng.uniform(-6, -3), 10 ** rng.uniform(-6, -3)
    N = counts.sum()
    for n_k in counts:
        x = theory.d23_largest_root(n_k, N, depth, lambda_W, lambda_H)
        b = theory.d23_b(N, depth, lambda_W, lambda_H)
        residual = b / n_k - depth * x ** (depth - 1) / (x ** depth + 1) ** 2
        assert abs(residual) <= 1e-9 * b / n_k
        # no sign change of the equation beyond x: scan a dense grid up to far beyond it
        grid = np.linspace(x + 1e-6 * max(1, abs(x)), abs(x) * 10 + 10, 20001)
        values = b / n_k - depth * grid ** (depth - 1) / (grid ** depth + 1) ** 2
        assert np.all(values > 0)


def test_clamping_a_class_too_small_to_survive():
    counts, depth, lambda_W, lambda_H = [1000, 1000, 2, 2], 1, 1e-3, 1e-3
    unclamped = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, clamp=False)
    assert unclamped['x'][2] < 0
    clamped = theory.d23_singular_values(counts, depth, lambda_W, lambda_H)
    assert clamped['x'][2] == 0.0 and clamped['s'][2] == 0.0 and clamped['s'][0] > 0
    geometry = theory.d23_geometry(counts, depth, lambda_W, lambda_H)
    assert geometry['WWT'][2] == 0.0 and geometry['HTH'][2] == 0.0


def test_m1_closed_form():
    counts, lambda_W, lambda_H = np.array(STEP, float), 1e-5, 3e-5
    N = counts.sum()
    geometry = theory.d23_geometry(counts, 1, lambda_W, lambda_H, ratio_target='exact')
    b = N ** 2 * lambda_W * lambda_H
    np.testing.assert_allclose(geometry['x'], np.sqrt(counts / b) - 1, rtol=1e-12)
    np.testing.assert_allclose(geometry['WH'], 1 - N * np.sqrt(lambda_W * lambda_H / counts), rtol=1e-10)
    np.testing.assert_allclose(geometry['W_div_H'], counts * lambda_H / lambda_W, rtol=1e-10)
    as_coded = theory.d23_geometry(counts, 1, lambda_W, lambda_H)
    np.testing.assert_array_equal(as_coded['W_div_H'], counts)          # the code's M = 1 target


def test_d24_targets_against_the_formulas():
    counts, lambda_W, lambda_H = np.array([100, 100, 200, 300, 500.0]), 1e-4, 1e-5
    K, N = len(counts), counts.sum()
    gaps = theory.d24_logit_gaps(counts, lambda_W, lambda_H)
    for k in range(K):
        inside = (K - 1) * (np.sqrt(counts[k]) / (N * np.sqrt(lambda_H / 2 * lambda_W / 2)
                                                  * np.sqrt((K - 1) / K * lambda_W / lambda_H)) - 1)
        expected = np.log(inside) if inside > 0 and np.log(inside) > 0 else 0.0
        assert gaps[k] == pytest.approx(expected, rel=1e-12)
    assert gaps.min() > 0
    targets = theory.d24_targets(counts, lambda_W, lambda_H)
    w = np.sqrt(counts) * gaps
    for i in range(K):
        for j in range(K):
            if i == j:
                expected = (K - 1) ** 2 * w[i] + sum(w[m] for m in range(K) if m != i)
            else:
                expected = -(K - 1) * (w[i] + w[j]) + sum(w[m] for m in range(K) if m not in (i, j))
            assert targets['WWT'][i, j] == pytest.approx(expected, rel=1e-12)
            assert targets['WH'][i, j] == pytest.approx(gaps[j] * ((i == j) - 1 / K), rel=1e-12)
    means = np.random.RandomState(0).rand(K, 3)
    S = theory.d24_classifier_target(means, counts)
    for k in range(K):
        expected = K * np.sqrt(counts[k]) * means[k] - sum(np.sqrt(counts[c]) * means[c] for c in range(K))
        np.testing.assert_allclose(S[k], expected, rtol=1e-12)
    # a tiny class gets a zero gap (its ln would be negative)
    assert theory.d24_logit_gaps([10000, 1], 1e-2, 1e-2)[1] == 0.0


def test_hong_thresholds_reproduce_the_spec_table():
    assert theory.hong_minority_collapse_lambda(5, 500, 5, 100) == pytest.approx(0.003333, abs=5e-7)
    assert theory.hong_total_collapse_threshold([500] * 5 + [100] * 5) == pytest.approx(0.007454, abs=5e-7)
    assert theory.hong_minority_collapse_lambda(3, 500, 7, 100) == pytest.approx(0.004545, abs=5e-7)
    assert theory.hong_total_collapse_threshold([500] * 3 + [100] * 7) == pytest.approx(0.010164, abs=5e-7)
    assert theory.hong_minority_n_star(5, 5, 100, 0.005) == pytest.approx(300)
    assert theory.hong_total_collapse_n_star(5, 5, 100, 0.005) == pytest.approx(1392.8, abs=0.05)
    assert theory.hong_minority_n_star(3, 7, 100, 0.005) == pytest.approx(433.3, abs=0.05)
    assert theory.hong_total_collapse_n_star(3, 7, 100, 0.005) == pytest.approx(3964, abs=0.5)
    # limit_main: l N = 0.1 with n_B = n_A / 2 never reaches sqrt(n_B)/N
    for n_A in (500, 5500):
        counts = [n_A] * 5 + [n_A // 2] * 5
        l = 0.1 / sum(counts)
        assert l < theory.hong_within_cluster_threshold(n_A // 2, sum(counts))
    # opt_main README example: l = 0.005 is above total collapse sqrt(5000)/39000
    counts = [5000] * 3 + [4000] * 3 + [3000] * 4
    assert theory.hong_total_collapse_threshold(counts) == pytest.approx(np.sqrt(5000) / 39000)
    assert theory.hong_within_cluster_threshold(3000, 39000) == pytest.approx(1.40e-3, abs=5e-6)
