"""Dang 2023's imbalanced closed form against a direct minimisation that shares no code with it.

The oracle minimises the deep linear unconstrained-features objective of the paper,

    f(W_1, ..., W_M, H) = (1/2N) ||W_M ... W_1 H - Y||_F^2 + (lambda_W/2) sum_l ||W_l||_F^2 + (lambda_H/2) ||H||_F^2,

written out below, in float64 and full batch with L-BFGS, from many starts: random ones at
several scales, and one warm start per subset of classes "alive" (their weights and features
start on their own axis, the others near zero), which covers every candidate the closed form
can choose between. The best minimum found must be the closed form's global minimiser: the
same objective value (evaluated by the oracle's own f at the point built from the predicted
singular values) and the same Gram diagonals. For depth M >= 2 and b/n_k inside the window of
docs/papers.md, the original's largest root gives a point with a strictly larger objective.
"""
import itertools

import numpy as np
import pytest
import torch

from nc_repro import theory

COUNTS = [2, 4, 6]      # K = 3 classes, N = 12 free feature vectors, d = K


def objective(weights, H, Y, lambda_W, lambda_H):
    """The paper's objective, literally (weights W_1 first)."""
    N = Y.shape[1]
    product = weights[0]
    for W in weights[1:]:
        product = W @ product
    return (((product @ H - Y) ** 2).sum() / (2 * N) + lambda_W / 2 * sum((W ** 2).sum() for W in weights)
            + lambda_H / 2 * (H ** 2).sum())


def local_minimum(weights, H, Y, lambda_W, lambda_H):
    params = [p.clone(memory_format=torch.contiguous_format).requires_grad_() for p in [*weights, H]]
    optimizer = torch.optim.LBFGS(params, lr=1, max_iter=3000, tolerance_grad=1e-11, tolerance_change=1e-16,
                                  history_size=50, line_search_fn='strong_wolfe')

    def closure():
        optimizer.zero_grad()
        value = objective(params[:-1], params[-1], Y, lambda_W, lambda_H)
        value.backward()
        return value

    optimizer.step(closure)
    params = [p.detach() for p in params]
    return float(objective(params[:-1], params[-1], Y, lambda_W, lambda_H)), params


def starts(labels, K, depth, generator):
    """Random starts at four scales, then one warm start per subset of living classes."""
    N = len(labels)
    for scale in (0.1, 0.5, 1.0, 2.0):
        yield ([torch.randn(K, K, generator=generator, dtype=torch.float64) * scale for _ in range(depth)],
               torch.randn(K, N, generator=generator, dtype=torch.float64) * scale)
    for alive in itertools.product([0.0, 1.0], repeat=K):
        mask = torch.tensor(alive, dtype=torch.float64)
        weights = [torch.diag(mask) * 1.2 + 0.01 * torch.randn(K, K, generator=generator, dtype=torch.float64)
                   for _ in range(depth)]
        H = 0.3 * mask[labels][None, :] * torch.nn.functional.one_hot(labels, K).T.double()
        yield weights, H + 0.01 * torch.randn(K, N, generator=generator, dtype=torch.float64)


def best_minimum(counts, depth, lambda_W, lambda_H, seed=0):
    K = len(counts)
    labels = torch.repeat_interleave(torch.arange(K), torch.tensor(counts))
    Y = torch.nn.functional.one_hot(labels, K).T.double()                     # (K, N)
    generator = torch.Generator().manual_seed(seed)
    found = [local_minimum(w, H, Y, lambda_W, lambda_H) for w, H in starts(labels, K, depth, generator)]
    return min(found, key=lambda pair: pair[0]), found, labels, Y


def point_of(singular_values, counts, depth, lambda_H):
    """The predicted structure built from per-class singular values s_k: W_l = diag(s) for every
    layer, and every feature of class k equal to a_k e_k with a_k = s_k^M / (s_k^{2M} + N lambda_H),
    the best feature length for that product."""
    s = torch.tensor(singular_values, dtype=torch.float64)
    N = sum(counts)
    labels = torch.repeat_interleave(torch.arange(len(counts)), torch.tensor(counts))
    length = s ** depth / (s ** (2 * depth) + N * lambda_H)
    H = torch.diag(length)[:, labels]
    return [torch.diag(s)] * depth, H


def decays_at(depth, level, ratio):
    """(lambda_W, lambda_H) = (ratio lambda, lambda) placing b/n_1 at ``level`` (n_1 the smallest
    count): b = M N (N lambda_W^M lambda_H)^{1/M} = M N^{1+1/M} ratio lambda^{(M+1)/M}."""
    N = sum(COUNTS)
    lam = (level * COUNTS[0] / (depth * N ** (1 + 1 / depth) * ratio)) ** (depth / (depth + 1))
    return ratio * lam, lam


def window(depth):
    """The window of b/n_k where the largest root is not the global minimiser, from the
    derivation in docs/papers.md written out here: collapse for b/n >= (M-1)^{(M-1)/M}/M;
    a positive root exists for b/n <= max_x M x^{M-1}/(x^M+1)^2, at x = ((M-1)/(M+1))^{1/M}."""
    low = (depth - 1) ** ((depth - 1) / depth) / depth
    peak = ((depth - 1) / (depth + 1)) ** (1 / depth)
    return low, depth * peak ** (depth - 1) / (peak ** depth + 1) ** 2


# (depth, where b/n_1 lies, lambda_W / lambda_H)
CASES = [(2, 'inside', 1.0), (2, 'below', 3.0), (2, 'above', 1.0),
         (3, 'inside', 0.5), (3, 'below', 1.0),
         (6, 'inside', 1.0), (6, 'inside', 4.0), (6, 'below', 1.0), (6, 'above', 0.5)]


@pytest.mark.parametrize('depth,where,ratio', CASES)
def test_closed_form_is_the_best_minimum_found(depth, where, ratio):
    low, high = window(depth)
    level = {'inside': (low + high) / 2, 'below': 0.8 * low, 'above': 1.2 * high}[where]
    lambda_W, lambda_H = decays_at(depth, level, ratio)
    (best_value, best_params), _, labels, Y = best_minimum(COUNTS, depth, lambda_W, lambda_H)

    geometry = theory.d23_geometry(COUNTS, depth, lambda_W, lambda_H)
    predicted_value = float(objective(*point_of(geometry['s'], COUNTS, depth, lambda_H), Y, lambda_W, lambda_H))
    assert best_value == pytest.approx(predicted_value, rel=1e-9)
    assert geometry['objective'] == pytest.approx(predicted_value, rel=1e-12)   # the closed form's own value agrees

    # the geometry of the best minimum: W W^T and the class-mean Gram are diagonal with the predicted entries
    *weights, H = best_params
    product = weights[0]
    for W in weights[1:]:
        product = W @ product
    means = torch.stack([H[:, labels == k].mean(1) for k in range(len(COUNTS))], 1)    # (d, K)
    np.testing.assert_allclose((product @ product.T).numpy(), np.diag(geometry['WWT']), atol=2e-5 * geometry['WWT'].max())
    np.testing.assert_allclose((means.T @ means).numpy(), np.diag(geometry['HTH']), atol=2e-5 * geometry['HTH'].max())
    np.testing.assert_allclose((product @ means).numpy(), np.diag(geometry['WH']), atol=2e-5)

    as_coded = theory.d23_geometry(COUNTS, depth, lambda_W, lambda_H, rule='as_coded', no_root='collapse')
    as_coded_value = float(objective(*point_of(as_coded['s'], COUNTS, depth, lambda_H), Y, lambda_W, lambda_H))
    if where == 'inside':
        # the smallest class: collapsed at the global minimiser, alive at the largest root, which is
        # a local minimum of higher objective that some start reaches
        assert geometry['x'][0] == 0 and as_coded['x'][0] > 0 and all(geometry['x'][1:] > 0)
        assert as_coded_value > best_value + 1e-4
        # ... and a stationary point of f (the original's root solves f's first-order condition)
        params = [p.clone().requires_grad_() for p in point_of(as_coded['s'], COUNTS, depth, lambda_H)[0][:1]]
        weights = params * depth
        H = point_of(as_coded['s'], COUNTS, depth, lambda_H)[1].clone().requires_grad_()
        gradients = torch.autograd.grad(objective(weights, H, Y, lambda_W, lambda_H), params + [H])
        assert max(float(g.abs().max()) for g in gradients) < 1e-9
    assert (geometry['x'][0] > 0) == (where == 'below')
    # class by class, the two rules differ exactly inside the window
    levels = geometry['b'] / np.array(COUNTS, dtype=float)
    inside = (low <= levels) & (levels <= high)
    np.testing.assert_array_equal(as_coded['x'] != geometry['x'], inside)
    assert inside[0] == (where == 'inside')


@pytest.mark.parametrize('depth', [1, 3])
def test_the_synthetic_experiment_setting(depth):
    # the synthetic imbalanced experiment's counts and decays (n = 200, 100, 50, 50, lambda = 5e-4)
    counts, lam = [200, 100, 50, 50], 5e-4
    (best_value, _), _, _, Y = best_minimum(counts, depth, lam, lam)
    geometry = theory.d23_geometry(counts, depth, lam, lam)
    predicted = float(objective(*point_of(geometry['s'], counts, depth, lam), Y, lam, lam))
    assert best_value == pytest.approx(predicted, rel=1e-9)


def brute_force_global_x(level, depth):
    """argmin over a dense grid x >= 0 of 1/(x^M + 1) + level x (phi_k / n_k), written out here."""
    x = np.concatenate([[0.0], np.geomspace(1e-4, 50, 400001)])
    return x[np.argmin(1 / (x ** depth + 1) + level * x)]


@pytest.mark.parametrize('depth', [1, 2, 3, 4, 6, 9])
def test_the_rules_differ_exactly_inside_the_window(depth):
    low, high = window(depth)
    N, lambda_H = 1000.0, 1e-3
    levels = np.r_[np.linspace(0.05, 1.5, 58) * (high if depth > 1 else 1), low * (1 + 1e-6), low * (1 - 1e-6)]
    differs = []
    for level in levels:
        n_k = 10.0
        # lambda_W from b = level n_k: b = M N lambda_W (N lambda_H)^{1/M}
        lambda_W = level * n_k / (depth * N * (N * lambda_H) ** (1 / depth))
        counts = [n_k, N - n_k]
        global_x = theory.d23_singular_values(counts, depth, lambda_W, lambda_H)['x'][0]
        as_coded_x = theory.d23_singular_values(counts, depth, lambda_W, lambda_H, rule='as_coded',
                                                no_root='collapse')['x'][0]
        expected = brute_force_global_x(level, depth)
        assert global_x == pytest.approx(expected, rel=1e-3, abs=1e-3), level
        differs.append(global_x != as_coded_x)
        assert differs[-1] == (depth > 1 and low <= level <= high), level
    assert any(differs) == (depth > 1)
