"""nc_metrics against exact cases, a slow obvious float64 reference, and invariances."""
import numpy as np
import pytest
import torch

import nc_metrics as nm

PRESETS = sorted(nm.CONVENTIONS)


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
        return nm.ClassStatistics.from_features(features, labels, K, batch=batch)
    stats = nm.ClassStatistics(K, features.shape[1])
    for start in range(0, len(labels), batch):
        stats.update(features[start:start + batch], labels[start:start + batch])
    return stats


def test_perfect_simplex_etf_gives_zero_everywhere():
    features, labels, means = simplex_etf_problem(sigma=0.0)
    centred = means - means.mean(0)
    W, b = centred, -centred @ means.mean(0)           # the classifier equal to the centred means
    for name in ('zhou2022', 'zhu2021', 'dang2023'):
        result = nm.measure(features, labels, W, b, nm.CONVENTIONS[name])
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
    value = nm.nc1(stats, nm.CONVENTIONS['zhou2022'])['nc1']
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
    conventions = nm.CONVENTIONS[preset]
    features, labels, W, b = random_problem(counts)
    expected = reference(features, labels, W, b, conventions)
    stats = accumulate(features, labels, len(counts), batch, cached)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(expected['nc1'], rel=1e-10)
    assert nm.nc2_classifier(W, conventions) == pytest.approx(expected['nc2_classifier'], rel=1e-10)
    assert nm.nc2_means(stats, conventions) == pytest.approx(expected['nc2_means'], rel=1e-10)
    assert nm.nc3_duality(W, stats, conventions) == pytest.approx(expected['nc3_duality'], rel=1e-10)
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
    conventions = nm.CONVENTIONS['zhou2022']
    features, labels, W, b = random_problem([25, 40, 15, 30])
    base = nm.nc1(accumulate(features, labels, 4, 9), conventions)['nc1']
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(1))
    assert nm.nc1(accumulate(features[order], labels[order], 4, 9), conventions)['nc1'] == pytest.approx(base, rel=1e-12)
    relabel = torch.tensor([2, 0, 3, 1])
    stats = accumulate(features, relabel[labels], 4, 9)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(base, rel=1e-12)
    W_relabelled = torch.empty_like(W)
    W_relabelled[relabel] = W
    assert nm.nc2_classifier(W_relabelled, conventions) == pytest.approx(nm.nc2_classifier(W, conventions), rel=1e-12)
    stats = accumulate(features * 7.5 + 100.0, labels, 4, 9)
    assert nm.nc1(stats, conventions)['nc1'] == pytest.approx(base, rel=1e-10)
    plain = accumulate(features, labels, 4, 9)
    assert nm.nc3_duality(W * 3, stats, conventions) == pytest.approx(nm.nc3_duality(W, plain, conventions), rel=1e-10)


def test_as_coded_pinv_under_reports_a_small_genuine_direction():
    # the tenth class mean sits almost on the average of the others: Sigma_B has a tiny but
    # genuine (K-1)-th eigenvalue that SciPy's float32 cut-off drops (reference §3.4)
    K, D, n = 10, 64, 200
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64)
    centres[-1] = centres[:-1].mean(0) + 1e-4 * torch.randn(D, generator=generator, dtype=torch.float64)
    labels = torch.arange(K).repeat_interleave(n)
    noise = 0.1 * torch.randn(K * n, D, generator=generator, dtype=torch.float64)
    noise -= noise.view(K, n, D).mean(1).repeat_interleave(n, 0)   # class means exactly the centres
    features = centres[labels] + noise
    stats = accumulate(features, labels, K, 256, cached=True)
    assert nm.nc1(stats, nm.CONVENTIONS['zhou2022']) == pytest.approx(
        nm.nc1(accumulate(features, labels, K, 256), nm.CONVENTIONS['zhou2022']), rel=1e-9)
    result = nm.nc1(stats, nm.CONVENTIONS['zhou2022'])
    expected = reference(features, labels, torch.zeros(K, D), torch.zeros(K), nm.CONVENTIONS['zhou2022'])['nc1']
    assert result['nc1'] == pytest.approx(expected, rel=1e-6)
    assert result['nc1_as_coded'] < result['nc1'] / 10
    assert result['sb_condition'] < 1e-3


def test_shift_keeps_precision_for_collapsed_features_far_from_origin():
    K, D = 5, 32
    generator = torch.Generator().manual_seed(2)
    centres = torch.randn(K, D, generator=generator, dtype=torch.float64) + 1e4
    labels = torch.arange(K).repeat_interleave(100)
    features = centres[labels] + 1e-4 * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    expected = reference(features, labels, torch.zeros(K, D), torch.zeros(K), nm.CONVENTIONS['dang2023'])['nc1']
    for cached in (False, True):
        stats = accumulate(features, labels, K, 37, cached)
        assert nm.nc1(stats, nm.CONVENTIONS['dang2023'])['nc1'] == pytest.approx(expected, rel=1e-8)


def test_gof_targets_are_zero_at_the_predicted_geometry():
    t = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    c = t + 0.5
    U = torch.diag(torch.sqrt(t) / c)                        # U^T U = diag(t/c^2), d = K
    W = torch.diag(c) @ U.T                                  # W = diag(c) U^T
    assert nm.nc2_w_gof(W, t) < 1e-12
    assert nm.nc2_h_gof(U, t, c) < 1e-12 and nm.nc2_h_gof(U, t, c, normalised=False) < 1e-12
    assert nm.nc3_wh_gof(W, U, t, c) < 1e-12
    assert nm.nc3_w_sub_h_gof(W, U, c) < 1e-12
    assert nm.nc3_w_div_h(W, U, c ** 2) < 1e-12
    assert nm.nc2_identity_w(torch.eye(3, dtype=torch.float64) * 2) == pytest.approx(0.0, abs=1e-12)
    assert nm.nc2_h_gof(U * 2, t, c, normalised=False) > 0.1      # the unnormalised form sees scale
