"""An independent reference for Dang 2024's imbalanced cross-entropy geometry, sharing no code
with nc_repro/theory.py: a direct minimisation of the unconstrained ReLU-features model

    f(W, H) = (1/N) sum_i CE(W h_i, y_i) + (lambda_W/2) ||W||_F^2 + (lambda_H/2) ||H||_F^2,   H >= 0,

bias-free, written out below, in float64 and full batch with L-BFGS from several random
starts (H = P * P elementwise keeps the features non-negative and the objective smooth). The
measured quantities are read off the best minimum found: per class the logit gap (own logit
minus the mean of the others, at the class-mean feature), the class-mean Gram, W W^T and W H."""
import numpy as np
import torch


def objective(W, H, labels, lambda_W, lambda_H):
    N = H.shape[1]
    logits = (W @ H).T                                                         # (N, K)
    cross_entropy = (torch.logsumexp(logits, 1) - logits[torch.arange(N), labels]).sum() / N
    return cross_entropy + lambda_W / 2 * (W ** 2).sum() + lambda_H / 2 * (H ** 2).sum()


def minimise(counts, lambda_W, lambda_H, dim=None, starts=3, seed=0):
    """(value, W (K, d), H (d, N), labels (N,)) of the best of ``starts`` L-BFGS runs."""
    K, N = len(counts), int(sum(counts))
    dim = dim or K + 2
    labels = torch.repeat_interleave(torch.arange(K), torch.tensor(counts))
    generator = torch.Generator().manual_seed(seed)
    best = None
    for _ in range(starts):
        W = torch.randn(K, dim, generator=generator, dtype=torch.float64).requires_grad_()
        P = torch.rand(dim, N, generator=generator, dtype=torch.float64).requires_grad_()
        optimizer = torch.optim.LBFGS([W, P], lr=1, max_iter=1500, tolerance_grad=1e-12, tolerance_change=1e-16,
                                      history_size=50, line_search_fn='strong_wolfe')

        def closure():
            optimizer.zero_grad()
            value = objective(W, P * P, labels, lambda_W, lambda_H)
            value.backward()
            return value

        for _ in range(2):                      # a second round with a fresh L-BFGS memory
            optimizer.step(closure)
        with torch.no_grad():
            value = float(objective(W, P * P, labels, lambda_W, lambda_H))
            if best is None or value < best[0]:
                best = (value, W.detach().clone(), (P * P).detach().clone())
    return best + (labels,)


def measured_geometry(W, H, labels, K):
    """{'gaps' (K,), 'means' (d, K) class means, 'HTH' (K, K), 'WWT' (K, K), 'WH' (K, K)} of a point;
    WH column k is the logit vector of class k's mean feature."""
    means = torch.stack([H[:, labels == k].mean(1) for k in range(K)], 1)      # (d, K)
    WH = W @ means                                                             # (K, K)
    gaps = [float(WH[k, k] - (WH[:, k].sum() - WH[k, k]) / (K - 1)) for k in range(K)]
    return {'gaps': np.array(gaps), 'means': means.numpy(), 'HTH': (means.T @ means).numpy(),
            'WWT': (W @ W.T).numpy(), 'WH': WH.numpy()}
