"""The metric engine (nc_statistics, nc_measures) against exact cases, a slow obvious float64 reference, and invariances.

Also: NCC decisions where two class means nearly coincide (minority collapse); the as-coded NC1
against the originals' literal float32 SciPy and float64 rcond-1e-10 computations; absent
classes, caller-supplied references, D < K-1, float16/float32 inputs; Papyan's equinorm /
equiangularity / max-angle, Tirer's trace ratio, the Dang 2023/2024 alignment measures on
hand-computable cases; clear errors on bad input.
"""
import numpy as np
import pytest
import scipy.linalg
import torch

from nc_repro import frames
from nc_repro import metrics, nc_statistics, recipes
from nc_repro import nc_measures as nm


def nc2_classifier(W, conventions):
    """Zhou 2022's ETF_metric, from the public pieces as nc_repro.validation puts them together."""
    rows = nm.classifier_rows(W, conventions)
    return nm.alignment_error(rows @ rows.T, frames.simplex_etf_gram(len(rows)))


def nc2_means(stats, conventions):
    means = nm.centred_means(stats, conventions)
    return nm.alignment_error(means @ means.T, frames.simplex_etf_gram(len(means)))


def nc3_duality(W, stats, conventions):
    rows, means = nm.classifier_rows(W, conventions), nm.centred_means(stats, conventions)
    return nm.alignment_error(rows @ means.T, frames.simplex_etf_gram(len(rows)))


PRESETS = sorted(recipes.PAPERS + tuple(recipes.OTHER_CONVENTIONS))


def simplex_etf_problem(K=4, D=8, r=2.0, sigma=0.0, offset=3.0, seed=0):
    """Class means on a rotated simplex ETF of radius r around ``offset``; each class has the
    2D samples mu_k +- sigma sqrt(D) q_j, so Sigma_W = sigma^2 I exactly."""
    rng = np.random.RandomState(seed)
    rotation, _ = np.linalg.qr(rng.randn(D, D))
    etf = np.eye(K) - 1.0 / K
    etf /= np.linalg.norm(etf, axis=1, keepdims=True)
    means = np.zeros((K, D))
    means[:, :K] = r * etf
    means = means @ rotation.T + offset
    features, labels = [], []
    for k in range(K):
        for j in range(D):
            for sign in (1, -1):
                features.append(means[k] + sign * sigma * np.sqrt(D) * rotation[:, j])
                labels.append(k)
    order = rng.permutation(len(labels))
    return torch.tensor(np.array(features)[order]), torch.tensor(labels)[order], torch.tensor(means)


def accumulate(features, labels, K, batch, cached=False):
    """Streaming statistics with the full scatter, or (cached=True) counts and sums only with
    NC1's projections taken from the kept features."""
    if cached:
        return nc_statistics.ClassStatistics.from_features(features, labels, K, batch=batch)
    stats = nc_statistics.ClassStatistics(K, features.shape[1])
    for start in range(0, len(labels), batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    return stats


def test_perfect_simplex_etf_gives_zero_everywhere():
    features, labels, means = simplex_etf_problem(sigma=0.0)
    centred = means - means.mean(0)
    W, b = centred, -centred @ means.mean(0)           # the classifier equal to the centred means
    for name in ('zhou2022', 'zhu2021', 'dang2023'):
        result = metrics.measure(features, labels, W, b, recipes.conventions(name))
        assert result['nc1'] == 0.0
        assert result['nc2_classifier'] < 1e-12 and result['nc2_means'] < 1e-12
        assert result['nc3_duality'] < 1e-12
        assert result['ncc_mismatch'] == 0.0
        assert result['equinorm_means'] < 1e-12 and result['max_angle_means'] < 1e-12


@pytest.mark.parametrize('batch', [1, 5, 7, 64])
def test_hand_computed_nc1(batch):
    # Sigma_W = sigma^2 I; Sigma_B = r^2/(K-1) * projector onto the K-1 ETF directions, so
    # NC1 = (1/K) sigma^2 (K-1) (K-1)/r^2
    K, sigma, r = 4, 0.3, 2.0
    features, labels, _ = simplex_etf_problem(K=K, sigma=sigma, r=r)
    stats = accumulate(features, labels, K, batch)
    value = nm.nc1(stats, recipes.conventions('zhou2022'))['nc1']
    assert value == pytest.approx(sigma ** 2 * (K - 1) ** 2 / (K * r ** 2), rel=1e-12)


# ---- slow obvious reference ----

def reference(features, labels, W, b, conventions):
    X, y = features.numpy().astype(np.float64), labels.numpy()
    W, b = W.numpy().astype(np.float64), b.numpy().astype(np.float64)
    classes = sorted(set(y.tolist()))
    K, N, D = len(classes), len(y), X.shape[1]
    means = np.array([X[y == k].mean(0) for k in classes])
    counts = np.array([(y == k).sum() for k in classes], dtype=np.float64)
    mu_G = X.mean(0) if conventions.global_mean == 'sample' else means.mean(0)
    sigma_w = np.zeros((D, D))
    for index, k in enumerate(classes):
        for row in X[y == k]:
            diff = row - means[index]
            sigma_w += np.outer(diff, diff)
    sigma_w /= N
    weights = np.full(K, 1.0 / K) if conventions.between_weights == 'uniform' else counts / N
    sigma_b = sum(w * np.outer(m - mu_G, m - mu_G) for w, m in zip(weights, means))
    values, vectors = np.linalg.eigh(sigma_b)
    top = np.argsort(values)[::-1][:min(K - 1, D)]
    pinv = vectors[:, top] @ np.diag(1 / values[top]) @ vectors[:, top].T
    nc1 = np.trace(sigma_w @ pinv) / (K if conventions.nc1_divide_by_K else 1)
    Wc = W - W.mean(0) if conventions.center_classifier else W
    P = (np.eye(K) - 1.0 / K) / np.sqrt(K - 1)

    def etf(G):
        return np.linalg.norm(G / np.linalg.norm(G) - P)

    H = (means - mu_G).T
    margins = []
    row_norms = np.linalg.norm(W - W.mean(0), axis=1)
    for row, label in zip(X, y):
        c = (W @ row) / (np.linalg.norm(row - mu_G) * row_norms)
        margins.append(c[label] - np.max(np.delete(c, label)))
    return {'nc1': nc1, 'nc2_classifier': etf(Wc @ Wc.T), 'nc2_means': etf(H.T @ H),
            'nc3_duality': etf(Wc @ H), 'bias_relation': np.linalg.norm(W @ mu_G + b),
            'margins': np.array(margins)}


def random_problem(counts, D=16, seed=0, spread=0.5):
    generator = torch.Generator().manual_seed(seed)
    K = len(counts)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64) * 3 + 5
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=generator)]
    features = centres[labels] + spread * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    W = torch.randn(K, D, generator=generator, dtype=torch.float64)
    b = torch.randn(K, generator=generator, dtype=torch.float64)
    return features, labels, W, b


@pytest.mark.parametrize('counts', [[30, 30, 30, 30, 30], [80, 40, 20, 10, 5]], ids=['balanced', 'imbalanced'])
@pytest.mark.parametrize('preset', PRESETS)
@pytest.mark.parametrize('batch', [1, 7, 10 ** 6])
@pytest.mark.parametrize('cached', [False, True], ids=['scatter', 'cache'])
def test_engine_matches_slow_reference(counts, preset, batch, cached):
    conventions = recipes.conventions(preset)
    features, labels, W, b = random_problem(counts)
    expected = reference(features, labels, W, b, conventions)
    stats = accumulate(features, labels, len(counts), batch, cached)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(expected['nc1'], rel=1e-10)
    W_rows, means, etf = nm.classifier_rows(W, conventions), nm.centred_means(stats, conventions), frames.simplex_etf_gram(len(counts))
    assert nm.alignment_error(W_rows @ W_rows.T, etf) == pytest.approx(expected['nc2_classifier'], rel=1e-10)
    assert nm.alignment_error(means @ means.T, etf) == pytest.approx(expected['nc2_means'], rel=1e-10)
    assert nm.alignment_error(W_rows @ means.T, etf) == pytest.approx(expected['nc3_duality'], rel=1e-10)
    mu_G = stats.global_mean(conventions)
    assert nm.bias_relation(W, b, mu_G) == pytest.approx(expected['bias_relation'], rel=1e-10)
    margins = nm.cosine_margins(features, labels, W, mu_G, conventions).numpy()
    np.testing.assert_allclose(margins, expected['margins'], rtol=1e-10, atol=1e-12)
    # within-class variances agree with the definition
    variances = [((features[labels == k] - features[labels == k].mean(0)) ** 2).sum(1).mean()
                 for k in range(len(counts))]
    np.testing.assert_allclose(stats.class_variances.numpy(), variances, rtol=1e-10)


def test_ncc_decision_is_exact_for_collapsed_features_far_from_origin():
    centres = torch.tensor([[1e6, 0.0], [1e6, 1e-6], [1e6, 3e-6]], dtype=torch.float64)
    features = centres[[0, 1, 2, 1]] + torch.tensor([[0, 4e-7], [0, -4e-7], [0, -0.9e-6], [0, 0.4e-6]], dtype=torch.float64)
    assert nm.nearest_class_mean(features, centres).tolist() == [0, 1, 2, 1]


def test_ncc_mismatch_against_loop():
    features, labels, W, b = random_problem([20, 20, 20], spread=3.0, seed=3)
    stats = accumulate(features, labels, 3, 8)
    predictions = (features @ W.T + b).argmax(1)
    means = stats.class_means
    expected = sum(int(torch.argmin(torch.stack([torch.linalg.norm(x - m) for m in means])) != p)
                   for x, p in zip(features, predictions))
    assert nm.ncc_mismatch_count(features, predictions, means) == expected > 0


def test_invariances():
    conventions = recipes.conventions('zhou2022')
    features, labels, W, b = random_problem([25, 40, 15, 30])
    base = nm.nc1(accumulate(features, labels, 4, 9), conventions)['nc1']
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    assert nm.nc1(accumulate(features[order], labels[order], 4, 9), conventions)['nc1'] == pytest.approx(base, rel=1e-12)
    relabel = torch.tensor([2, 0, 3, 1])
    stats = accumulate(features, relabel[labels], 4, 9)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(base, rel=1e-12)
    W_relabelled = torch.empty_like(W)
    W_relabelled[relabel] = W
    assert nc2_classifier(W_relabelled, conventions) == pytest.approx(nc2_classifier(W, conventions), rel=1e-12)
    stats = accumulate(features * 7.5 + 100.0, labels, 4, 9)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(base, rel=1e-10)
    plain = accumulate(features, labels, 4, 9)
    assert nc3_duality(W * 3, stats, conventions) == pytest.approx(nc3_duality(W, plain, conventions), rel=1e-10)


def test_as_coded_pinv_under_reports_a_small_genuine_direction():
    # the tenth class mean sits almost on the average of the others: Sigma_B has a tiny but
    # genuine (K-1)-th eigenvalue that SciPy's float32 cut-off drops
    K, D, n = 10, 64, 200
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64)
    centres[-1] = centres[:-1].mean(0) + 1e-4 * torch.randn(D, generator=generator, dtype=torch.float64)
    labels = torch.arange(K).repeat_interleave(n)
    noise = 0.1 * torch.randn(K * n, D, generator=generator, dtype=torch.float64)
    noise -= noise.view(K, n, D).mean(1).repeat_interleave(n, 0)   # class means exactly the centres
    features = centres[labels] + noise
    stats = accumulate(features, labels, K, 256, cached=True)
    assert nm.nc1(stats, recipes.conventions('zhou2022')) == pytest.approx(
        nm.nc1(accumulate(features, labels, K, 256), recipes.conventions('zhou2022')), rel=1e-9)
    result = nm.nc1(stats, recipes.conventions('zhou2022'))
    expected = reference(features, labels, torch.zeros(K, D), torch.zeros(K), recipes.conventions('zhou2022'))['nc1']
    assert result['nc1'] == pytest.approx(expected, rel=1e-6)
    assert result['nc1_as_coded'] < result['nc1'] / 10
    assert result['sb_condition'] < 1e-3


def test_shift_keeps_precision_for_collapsed_features_far_from_origin():
    K, D = 5, 32
    generator = torch.Generator().manual_seed(2)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64) + 1e4
    labels = torch.arange(K).repeat_interleave(100)
    features = centres[labels] + 1e-4 * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    expected = reference(features, labels, torch.zeros(K, D), torch.zeros(K), recipes.conventions('dang2023'))['nc1']
    for cached in (False, True):
        stats = accumulate(features, labels, K, 37, cached)
        assert nm.nc1(stats, recipes.conventions('dang2023'))['nc1'] == pytest.approx(expected, rel=1e-8)


def test_gof_targets_are_zero_at_the_predicted_geometry():
    t = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    c = t + 0.5
    U = torch.diag(torch.sqrt(t) / c)                        # U^T U = diag(t/c^2), d = K
    W = torch.diag(c) @ U.T                                  # W = diag(c) U^T
    assert nm.alignment_error(W @ W.T, torch.diag(t)) < 1e-12                                  # NC2_W
    assert nm.alignment_error(U.T @ U, torch.diag(t / c ** 2)) < 1e-12                         # NC2_H
    assert nm.alignment_error(U.T @ U, torch.diag(t / c ** 2), normalised=False) < 1e-12
    assert nm.alignment_error(W @ U, torch.diag(t / c)) < 1e-12                                # NC3_WH
    assert nm.alignment_error(W, torch.diag(c) @ U.T) < 1e-12                                  # NC3_W_sub_H
    assert nm.length_ratio_error(W, U, c ** 2) < 1e-12                                         # NC3_W_div_H
    assert nm.alignment_error(4 * torch.eye(3, dtype=torch.float64), frames.orthogonal_frame_gram(3)) == pytest.approx(0.0, abs=1e-12)
    # the unnormalised form sees scale
    assert nm.alignment_error(4 * U.T @ U, torch.diag(t / c ** 2), normalised=False) > 0.1


# ---- cases beyond the reference comparison ----


def problem(counts, D=12, spread=0.5, offset=5.0, seed=0, dtype=torch.float64):
    """Gaussian classes around random centres far from the origin, labels shuffled."""
    generator = torch.Generator().manual_seed(seed)
    K = len(counts)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64) * 3 + offset
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    labels = labels[torch.randperm(len(labels), generator=generator)]
    features = centres[labels] + spread * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    return features.to(dtype), labels


def streamed(features, labels, num_classes, batch=7, reference=None):
    stats = nc_statistics.ClassStatistics(num_classes, features.shape[1], reference=reference)
    for start in range(0, len(labels), batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    return stats


def slow_statistics(features, labels, weights='uniform', global_mean='sample'):
    """Materialised float64: (sigma_w, sigma_b, K) by explicit loops over the present classes."""
    X, y = features.double().numpy(), labels.numpy()
    classes = sorted(set(y.tolist()))
    N, D = X.shape
    means = {k: X[y == k].mean(0) for k in classes}
    mu_G = X.mean(0) if global_mean == 'sample' else np.mean([means[k] for k in classes], 0)
    sigma_w = np.zeros((D, D))
    for row, k in zip(X, y):
        sigma_w += np.outer(row - means[k], row - means[k])
    sigma_w /= N
    sigma_b = np.zeros((D, D))
    for k in classes:
        w = 1.0 / len(classes) if weights == 'uniform' else (y == k).sum() / N
        sigma_b += w * np.outer(means[k] - mu_G, means[k] - mu_G)
    return sigma_w, sigma_b, len(classes)


def slow_nc1(features, labels, conventions):
    """tr(Sigma_W Sigma_B^+)/K with Sigma_B^+ from eigh's top min(K-1, D) eigenpairs."""
    sigma_w, sigma_b, K = slow_statistics(features, labels, conventions.between_weights, conventions.global_mean)
    values, vectors = np.linalg.eigh(sigma_b)
    top = np.argsort(values)[::-1][:min(K - 1, sigma_b.shape[0])]
    pinv = vectors[:, top] @ np.diag(1.0 / values[top]) @ vectors[:, top].T
    return np.trace(sigma_w @ pinv) / (K if conventions.nc1_divide_by_K else 1)


# ---- nearest class mean (NC4) ----

def test_ncc_matches_direct_differences_for_nearly_coincident_means():
    means = torch.tensor([[0.0, 0.0], [1e-6, 0.0], [1e3, 0.0]], dtype=torch.float64)
    features = torch.tensor([[0.4e-6, 0.0], [0.6e-6, 0.0], [0.45e-6, 1e-7], [0.55e-6, -1e-7]], dtype=torch.float64)
    assert nm.nearest_class_mean(features, means).tolist() == [0, 1, 0, 1]


def test_ncc_equals_a_per_sample_loop_under_minority_collapse():
    # two minority means 1e-9 apart among well separated ones; samples on the line through them
    generator = torch.Generator().manual_seed(4)
    K, D = 8, 64
    means = torch.randn(K, D, generator=generator, dtype=torch.float64) * 10
    means[-1] = means[-2] + 1e-9 * torch.randn(D, generator=generator, dtype=torch.float64)
    steps = torch.linspace(-1.5, 2.5, 101, dtype=torch.float64)[:, None]
    features = torch.cat([means[-2] + steps * (means[-1] - means[-2]),
                          means[torch.arange(60) % K] + torch.randn(60, D, generator=generator, dtype=torch.float64)])
    expected = []
    for h in features:
        distances = [float(((h - m) ** 2).sum()) for m in means]
        expected.append(distances.index(min(distances)))
    assert nm.nearest_class_mean(features, means, chunk=16).tolist() == expected
    predictions = torch.tensor(expected)
    predictions[:10] = 0
    assert nm.ncc_mismatch_count(features, predictions, means) == sum(e != 0 for e in expected[:10])


# ---- as-coded NC1 against the originals' literal computations ----

def literal_float32_scipy_nc1(features, labels):
    """T/J/D23: float32 statistics, scipy.linalg.pinv on the float32 Sigma_B, trace / K."""
    sigma_w, sigma_b, K = slow_statistics(features, labels)
    return float(np.trace(sigma_w.astype(np.float32) @ scipy.linalg.pinv(sigma_b.astype(np.float32)))) / K


def tiny_direction_problem(epsilon, K=10, D=48, n=30):
    """Class K's mean at the average of the others plus epsilon noise: Sigma_B's
    (K-1)-th eigenvalue is tiny but genuine."""
    generator = torch.Generator().manual_seed(7)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64) + 3
    centres[-1] = centres[:-1].mean(0) + epsilon * torch.randn(D, generator=generator, dtype=torch.float64)
    labels = torch.arange(K).repeat_interleave(n)
    noise = 0.2 * torch.randn(K * n, D, generator=generator, dtype=torch.float64)
    noise -= noise.view(K, n, D).mean(1).repeat_interleave(n, 0)
    return centres[labels] + noise, labels


@pytest.mark.parametrize('epsilon', [1e-1, 1e-4])
def test_as_coded_scipy_float32_reproduces_the_literal_original(epsilon):
    features, labels = tiny_direction_problem(epsilon)
    result = nm.nc1(streamed(features, labels, 10, batch=64), recipes.conventions('zhou2022'))
    literal = literal_float32_scipy_nc1(features, labels)
    assert result['nc1_as_coded'] == pytest.approx(literal, rel=1e-3)
    # the eigh reference squares Sigma_B's condition number (s_min/s_max ~ 1e-5 here): 1e-8 from
    # a 40-digit mpmath value, while the engine's thin SVD of the K x D factor was within 1e-12
    rel = 1e-10 if epsilon > 1e-2 else 1e-6
    assert result['nc1'] == pytest.approx(slow_nc1(features, labels, recipes.conventions('zhou2022')), rel=rel)
    if epsilon < 1e-3:   # the float32 cut-off dropped a genuine direction: under-reported
        assert literal < result['nc1'] / 10


@pytest.mark.parametrize('epsilon', [1e-1, 1e-4])
def test_as_coded_hong_is_float64_pinv_rcond_1e_10_count_weighted_over_10(epsilon):
    features, labels = tiny_direction_problem(epsilon)
    keep = labels >= 0
    keep[labels == 3] = torch.arange(int((labels == 3).sum())) < 12        # make it imbalanced
    features, labels = features[keep], labels[keep]
    sigma_w, sigma_b, K = slow_statistics(features, labels, weights='counts')
    literal = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rtol=1e-10)) / 10
    result = nm.nc1(streamed(features, labels, 10, batch=33), recipes.conventions('hong2023'))
    assert result['nc1_as_coded'] == pytest.approx(literal, rel=1e-8)
    assert result['nc1'] == pytest.approx(literal, rel=1e-8)               # rcond 1e-10 keeps it


def test_as_coded_can_be_skipped():
    features, labels = problem([20, 30, 25])
    result = nm.nc1(streamed(features, labels, 3), recipes.conventions('zhou2022'), as_coded=False)
    assert result['nc1_as_coded'] is None
    assert result['nc1'] == pytest.approx(slow_nc1(features, labels, recipes.conventions('zhou2022')), rel=1e-10)


# ---- statistics edge cases ----

@pytest.mark.parametrize('preset', sorted(recipes.PAPERS + tuple(recipes.OTHER_CONVENTIONS)))
def test_absent_classes_are_dropped_and_K_is_the_present_count(preset):
    conventions = recipes.conventions(preset)
    features, labels = problem([30, 0, 12, 25, 0, 9])
    for stats in (streamed(features, labels, 6), nc_statistics.ClassStatistics.from_features(features, labels, 6)):
        assert stats.num_present == 4 and stats.present.tolist() == [True, False, True, True, False, True]
        assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(slow_nc1(features, labels, conventions), rel=1e-10)


def test_references_and_late_classes():
    # collapsed classes (spread 1e-3) far from the origin (offset 50), class 3 only in the last batches
    features, labels = problem([40, 25, 10, 5], offset=50.0, spread=1e-3)
    order = torch.argsort(labels, stable=True)
    sigma_w, _, _ = slow_statistics(features, labels)
    true_means = torch.stack([features[labels == k].mean(0) for k in range(4)])

    def error(reference):
        stats = streamed(features[order], labels[order], 4, batch=9, reference=reference)
        np.testing.assert_allclose(stats.class_means.numpy(), true_means.numpy(), rtol=1e-13)
        return np.linalg.norm(stats.within_class_cov.numpy() - sigma_w) / np.linalg.norm(sigma_w)

    assert error(None) < 1e-12                       # first-batch class means
    assert error(true_means + 0.01) < 1e-12          # a caller's reference near the means
    # no shift (reference 0): the cancellation of one-pass second moments is real and visible
    assert 1e-9 < error(torch.zeros(4, 12)) < 1e-4
    stats = streamed(features[order], labels[order], 4, batch=9)
    trace = (stats.class_counts * stats.class_variances).sum() / stats.num_samples
    assert float(trace) == pytest.approx(np.trace(sigma_w), rel=1e-10)


def test_feature_dimension_below_K_minus_1():
    features, labels = problem([15, 20, 25, 10, 30, 18], D=3)
    for preset in ('zhou2022', 'papyan2020', 'hong2023'):
        conventions = recipes.conventions(preset)
        stats = streamed(features, labels, 6, batch=5)
        assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(slow_nc1(features, labels, conventions), rel=1e-10)


@pytest.mark.parametrize('dtype', [torch.float16, torch.float32])
def test_low_precision_inputs_are_accumulated_exactly(dtype):
    features, labels = problem([30, 20, 25], dtype=dtype)
    conventions = recipes.conventions('dang2023')
    stats = streamed(features, labels, 3, batch=11)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(slow_nc1(features.double(), labels, conventions), rel=1e-10)


def test_cached_statistics_refuse_the_full_scatter_with_a_clear_message():
    features, labels = problem([5, 5])
    with pytest.raises(ValueError, match='within_class_quadratic'):
        nc_statistics.ClassStatistics.from_features(features, labels, 2).within_class_cov


def test_bad_labels_and_conventions_raise_value_errors():
    features, labels = problem([5, 5])
    with pytest.raises(ValueError, match='labels must lie in 0..1'):
        nc_statistics.ClassStatistics(2, 12).update(features, labels + 1)
    with pytest.raises(ValueError, match='labels must lie in 0..1'):
        nc_statistics.ClassStatistics.from_features(features, labels - 1, 2)
    with pytest.raises(ValueError, match='global mean convention'):
        streamed(features, labels, 2).global_mean('median')


# ---- invariances of the scale-free measures ----

def test_translation_and_scale_invariances():
    conventions = recipes.conventions('papyan2020')
    features, labels = problem([20, 35, 15, 30])
    W = torch.randn(4, 12, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    base = streamed(features, labels, 4)
    shifted = streamed(features - 17.0, labels, 4)
    scaled = streamed(features * 0.01, labels, 4)
    for other in (shifted, scaled):
        assert nm.nc1(other, conventions)['nc1'] == pytest.approx(nm.nc1(base, conventions)['nc1'], rel=1e-9)
        assert nc2_means(other, conventions) == pytest.approx(nc2_means(base, conventions), rel=1e-9)
        assert nc3_duality(W * 4, other, conventions) == pytest.approx(nc3_duality(W, base, conventions), rel=1e-9)
        centred, base_centred = nm.centred_means(other, conventions), nm.centred_means(base, conventions)
        assert nm.equinorm(centred) == pytest.approx(nm.equinorm(base_centred), rel=1e-9)
        assert nm.equiangularity(centred) == pytest.approx(nm.equiangularity(base_centred), rel=1e-9)
    assert nm.nc1_trace_ratio(scaled, conventions) == pytest.approx(nm.nc1_trace_ratio(base, conventions), rel=1e-9)


# ---- Papyan and Tirer measures against loops ----

def test_papyan_measures_and_trace_ratio_against_loops():
    generator = torch.Generator().manual_seed(5)
    V = torch.randn(5, 7, generator=generator, dtype=torch.float64)
    norms = [float(np.linalg.norm(v)) for v in V.numpy()]
    assert nm.equinorm(V) == pytest.approx(np.std(norms, ddof=1) / np.mean(norms), rel=1e-12)
    cosines = [float(V[k] @ V[l] / (V[k].norm() * V[l].norm())) for k in range(5) for l in range(5) if k != l]
    assert nm.equiangularity(V) == pytest.approx(np.std(cosines, ddof=1), rel=1e-12)
    assert nm.max_angle(V) == pytest.approx(np.mean([abs(c + 1 / 4) for c in cosines]), rel=1e-12)

    features, labels = problem([30, 10, 20], seed=2)
    for preset in ('zhou2022', 'hong2023', 'papyan2020'):
        conventions = recipes.conventions(preset)
        sigma_w, sigma_b, _ = slow_statistics(features, labels, conventions.between_weights, conventions.global_mean)
        assert nm.nc1_trace_ratio(streamed(features, labels, 3), conventions) == pytest.approx(
            np.trace(sigma_w) / np.trace(sigma_b), rel=1e-10)


def test_self_duality_distance_is_squared_normalised_difference():
    features, labels = problem([10, 10, 10])
    stats = streamed(features, labels, 3)
    centred = nm.centred_means(stats, recipes.conventions('papyan2020'))
    assert nm.self_duality_distance(centred * 3, stats, recipes.conventions('papyan2020')) < 1e-24
    assert nm.self_duality_distance(-centred, stats, recipes.conventions('papyan2020')) == pytest.approx(4.0, rel=1e-12)


# ---- exact values of the alignment measures (D23, D24) ----

def test_alignment_and_etf_errors_exact_values():
    T = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    assert nm.alignment_error(5 * T, T) == pytest.approx(0.0, abs=1e-15)
    assert nm.alignment_error(-T, T) == pytest.approx(2.0, rel=1e-15)
    assert nm.alignment_error(torch.eye(2), torch.tensor([[0.0, 1.0], [1.0, 0.0]])) == pytest.approx(2 ** 0.5, rel=1e-15)
    assert nm.alignment_error(torch.eye(2), frames.simplex_etf_gram(2)) == pytest.approx((2 - 2 ** 0.5) ** 0.5, rel=1e-14)
    assert nm.alignment_error(7 * frames.simplex_etf_gram(6), frames.simplex_etf_gram(6)) == pytest.approx(0.0, abs=1e-15)
    assert nm.alignment_error(T, 2 * T, normalised=False) == pytest.approx(float(torch.linalg.norm(T)), rel=1e-15)


def test_dang2023_measures_on_hand_cases():
    W = torch.diag(torch.tensor([2.0, 3.0], dtype=torch.float64))         # (K, d)
    U = torch.diag(torch.tensor([1.0, 0.5], dtype=torch.float64))         # (d, K)
    # squared length ratios 4/1 and 9/0.25 = 36 against r = (4, 30)
    orthogonal = frames.orthogonal_frame_gram
    assert nm.length_ratio_error(W, U, torch.tensor([4.0, 30.0])) == pytest.approx(6.0, rel=1e-15)    # NC3_W_div_H
    assert nm.alignment_error(W @ W.T, orthogonal(2)) == pytest.approx(                             # NC2_Identity_W
        float(np.linalg.norm(np.diag([4, 9]) / np.sqrt(97) - np.eye(2) / np.sqrt(2))), rel=1e-14)
    assert nm.alignment_error(W, (W.T * 0.1).T) == pytest.approx(0.0, abs=1e-15)                     # NC3_W_sub_H
    assert nm.alignment_error(torch.eye(3) @ (2 * torch.eye(3)), orthogonal(3)) == pytest.approx(0.0, abs=1e-15)
    C = frames.simplex_etf_gram(4) * 3                                      # C^T C ∝ P, WC ∝ P
    etf = frames.simplex_etf_gram(4)
    assert nm.alignment_error(C.T @ C, etf) < 1e-14 and nm.alignment_error(torch.eye(4, dtype=torch.float64) @ C, etf) < 1e-14
    t, c = torch.tensor([4.0, 1.0], dtype=torch.float64), torch.tensor([2.0, 3.0], dtype=torch.float64)
    U = torch.eye(2, dtype=torch.float64)
    assert nm.alignment_error(U.T @ U, torch.diag(t / c ** 2), normalised=False) == pytest.approx(
        ((1 - 1) ** 2 + (1 - 1 / 9) ** 2) ** 0.5, rel=1e-14)
    assert nm.alignment_error(torch.eye(2), torch.diag(c) @ U.T, normalised=False) == pytest.approx(
        ((1 - 2) ** 2 + (1 - 3) ** 2) ** 0.5, rel=1e-14)


def test_dang2024_measures_on_hand_cases():
    U = torch.tensor([[2.0, -1.0], [-3.0, 1.0]], dtype=torch.float64)     # ReLU(U) = diag(2, 1)
    relu = torch.relu(U)
    assert nm.alignment_error(relu.T @ relu, torch.diag(torch.tensor([4.0, 1.0]))) == pytest.approx(0.0, abs=1e-15)
    expected = (2 - 2 * 5 / 34 ** 0.5) ** 0.5                              # diag(4,1)/sqrt17 vs I/sqrt2
    assert nm.alignment_error(relu.T @ relu, torch.eye(2)) == pytest.approx(expected, rel=1e-14)
    W = torch.tensor([[1.0, 2.0], [0.5, -1.0]], dtype=torch.float64)
    assert nm.alignment_error(W, 3 * W) == pytest.approx(0.0, abs=1e-15)                            # NC2_W
    assert nm.alignment_error(W @ W.T, W @ W.T * 2) == pytest.approx(0.0, abs=1e-15)                # NC2_WWT
    assert nm.alignment_error(W @ torch.eye(2, dtype=torch.float64), -W) == pytest.approx(2.0, rel=1e-15)   # NC3_WH


# ---- the convenience entry point ----

def test_measure_on_an_etf_with_spread_and_given_logits():
    K, D, r, sigma = 4, 8, 2.0, 0.3
    rotation, _ = np.linalg.qr(np.random.RandomState(1).randn(D, D))
    etf = (np.eye(K) - 1.0 / K) / np.linalg.norm(np.eye(K) - 1.0 / K, axis=1, keepdims=True)
    means = np.zeros((K, D))
    means[:, :K] = r * etf
    means = means @ rotation.T + 2.0
    rows, labels = [], []
    for k in range(K):
        for j in range(D):
            for sign in (1, -1):
                rows.append(means[k] + sign * sigma * np.sqrt(D) * rotation[:, j])
                labels.append(k)
    features, labels = torch.tensor(np.array(rows)), torch.tensor(labels)
    W = torch.tensor(means - means.mean(0))
    b = -W @ torch.tensor(means.mean(0))                                     # logits = W (h - mean)
    result = metrics.measure(features, labels, W, b, recipes.conventions('zhou2022'))
    assert result['nc1'] == pytest.approx(sigma ** 2 * (K - 1) ** 2 / (K * r ** 2), rel=1e-12)
    assert result['nc2_classifier'] < 1e-12 and result['nc3_duality'] < 1e-12
    # every sample is sigma sqrt(D) = 0.85 from its mean and >= 2.4 from the others: NCC = label
    assert nm.nearest_class_mean(features, torch.tensor(means)).tolist() == labels.tolist()
    wrong = torch.nn.functional.one_hot((labels + 1) % K, K).double()       # net always says label + 1
    assert metrics.measure(features, labels, W, b, recipes.conventions('zhou2022'), logits=wrong)['ncc_mismatch'] == 1.0
    assert result['ncc_mismatch'] == 0.0 and result['bias_relation'] < 1e-12
