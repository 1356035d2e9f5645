"""Closed-form Neural Collapse geometry of the papers, in numpy (no symbolic algebra).

* Dang et al. 2023, bias-free MSE with a deep linear head of depth M on imbalanced data
  (spec D23 §5.3): singular values s_k of the global minimiser and the predicted Gram
  diagonals of W = W_M...W_1 and of the class means.
* Dang et al. 2024, cross-entropy with unconstrained ReLU features (spec D23 App. B): the
  logit gaps M_k and the targets of NC2_H, NC2_W, NC2_WWT and NC3_WH.
* Hong & Ling 2023, cross-entropy UFM with imbalanced data (spec Hong §9): the collapse
  thresholds of the regularisation level l.
"""
import numpy as np


# ----------------------------------------------------------------------------------------
# Dang et al. 2023

def d23_b(N, depth, lambda_W, lambda_H):
    """b = M N (N lambda_W^M lambda_H)^{1/M} (spec D23 §5.3)."""
    return depth * N * (N * lambda_W ** depth * lambda_H) ** (1.0 / depth)


def d23_polynomial(n_k, b, depth):
    """Coefficients (highest degree first) of b (x^M + 1)^2 - n_k M x^{M-1}, whose real roots
    are those of b/n_k - M x^{M-1}/(x^M + 1)^2 = 0 (x^M = -1 is never a root of the latter)."""
    M = depth
    coefficients = np.zeros(2 * M + 1)
    coefficients[0] += b                      # b x^{2M}
    coefficients[M] += 2 * b                  # 2b x^M
    coefficients[2 * M] += b                  # b
    coefficients[2 * M - (M - 1)] -= n_k * M  # - n_k M x^{M-1}
    return coefficients


def d23_largest_root(n_k, N, depth, lambda_W, lambda_H):
    """The largest real root x of b/n_k - M x^{M-1}/(x^M + 1)^2 = 0 (D23 §5.3; the original
    solves it with sympy and takes max of the real roots). Companion-matrix roots polished by
    Newton steps on the polynomial."""
    b = d23_b(N, depth, lambda_W, lambda_H)
    coefficients = d23_polynomial(n_k, b, depth)
    roots = np.roots(coefficients)
    real = roots[np.abs(roots.imag) <= 1e-7 * np.maximum(1.0, np.abs(roots))].real
    if len(real) == 0:
        raise ValueError('no real root for n_k=%s, N=%s, depth=%s, lambda_W=%s, lambda_H=%s'
                         % (n_k, N, depth, lambda_W, lambda_H))
    x = real.max()
    derivative = np.polyder(coefficients)
    for _ in range(3):
        slope = np.polyval(derivative, x)
        if slope != 0:
            x -= np.polyval(coefficients, x) / slope
    return float(x)


def d23_singular_values(counts, depth, lambda_W, lambda_H, clamp=True, as_coded_float32=False):
    """{'b', 'x' (K,), 's' (K,)}: s_k = (N lambda_H x_k^M)^{1/(2M)} with x_k the largest real
    root, clamped at 0 when clamp (the imbalanced scripts; the balanced synthetic script does
    not clamp). as_coded_float32 casts x to float32 first, as the original."""
    counts = np.asarray(counts, dtype=np.float64)
    N = counts.sum()
    x = np.array([d23_largest_root(n, N, depth, lambda_W, lambda_H) for n in counts])
    if as_coded_float32:
        x = x.astype(np.float32).astype(np.float64)
    if clamp:
        x = np.maximum(x, 0.0)
    with np.errstate(invalid='ignore'):
        s = (N * lambda_H * x ** depth) ** (1.0 / (2 * depth))
    return {'b': d23_b(N, depth, lambda_W, lambda_H), 'x': x, 's': s}


def d23_geometry(counts, depth, lambda_W, lambda_H, clamp=True, ratio_target='as_coded'):
    """Predicted geometry of the global minimiser (D23 §5.3), t = s^{2M}, c = t + N lambda_H:
    'WWT' = diag of W W^T = t, 'HTH' = diag of U^T U = t/c^2, 'WH' = diag of W U = t/c (W h_k =
    t_k/c_k e_k), off-diagonals 0; 'W_div_H' = ||w_k||^2/||h_k||^2: as coded n_k when M = 1 and
    c^2 otherwise (ratio_target='as_coded'; n_k equals c^2 only when lambda_W = lambda_H,
    bug B10), or c^2 always ('exact')."""
    values = d23_singular_values(counts, depth, lambda_W, lambda_H, clamp)
    counts = np.asarray(counts, dtype=np.float64)
    t = values['s'] ** (2 * depth)
    c = t + counts.sum() * lambda_H
    if ratio_target == 'as_coded':
        ratio = counts.copy() if depth == 1 else c ** 2
    elif ratio_target == 'exact':
        ratio = c ** 2
    else:
        raise ValueError("ratio_target must be 'as_coded' or 'exact'")
    return dict(values, t=t, c=c, WWT=t, HTH=t / c ** 2, WH=t / c, W_div_H=ratio)


# ----------------------------------------------------------------------------------------
# Dang et al. 2024

def d24_logit_gaps(counts, lambda_W, lambda_H):
    """M_k (the code's M_array; spec D23 App. B): inside_k = (K-1)(sqrt(n_k) / (N sqrt(
    (lambda_H/2)(lambda_W/2)) sqrt(((K-1)/K) lambda_W/lambda_H)) - 1), M_k = ln(inside_k) when
    inside_k > 0 and ln(inside_k) > 0, else 0."""
    counts = np.asarray(counts, dtype=np.float64)
    K, N = len(counts), counts.sum()
    scale = N * np.sqrt((lambda_H / 2) * (lambda_W / 2)) * np.sqrt((K - 1) / K * lambda_W / lambda_H)
    inside = (K - 1) * (np.sqrt(counts) / scale - 1)
    gaps = np.zeros(K)
    positive = inside > 0
    gaps[positive] = np.log(inside[positive])
    return np.where(gaps > 0, gaps, 0.0)


def d24_targets(counts, lambda_W, lambda_H):
    """The 2024 code's targets: 'M' (K,), 'HTH_diag' d_k = sqrt(((K-1)/K)(lambda_W/lambda_H)/n_k) M_k
    (NC2_H), 'WWT' T (K, K) (NC2_WWT) and 'WH' Q (K, K), column i = M_i (e_i - 1/K) (NC3_WH)."""
    counts = np.asarray(counts, dtype=np.float64)
    K = len(counts)
    gaps = d24_logit_gaps(counts, lambda_W, lambda_H)
    weighted = np.sqrt(counts) * gaps                                   # sqrt(n_m) M_m
    total = weighted.sum()
    T = -(K - 1) * (weighted[:, None] + weighted[None, :]) + (total - weighted[:, None] - weighted[None, :])
    np.fill_diagonal(T, (K - 1) ** 2 * weighted + (total - weighted))
    Q = (np.eye(K) - 1.0 / K) * gaps[None, :]
    return {'M': gaps, 'HTH_diag': np.sqrt((K - 1) / K * (lambda_W / lambda_H) / counts) * gaps,
            'WWT': T, 'WH': Q}


def d24_classifier_target(class_means, counts):
    """S (K, d) of NC2_W: row k = K sqrt(n_k) mu_k - sum_c sqrt(n_c) mu_c; class_means (K, d)."""
    means = np.asarray(class_means, dtype=np.float64)
    roots = np.sqrt(np.asarray(counts, dtype=np.float64))[:, None]
    return len(roots) * roots * means - (roots * means).sum(0, keepdims=True)


# ----------------------------------------------------------------------------------------
# Hong & Ling 2023 (spec Hong §9, derived from the KKT conditions of the convex UFM program
# with the nuclear-norm level l = 2 sqrt(lambda_W lambda_H))

def hong_within_cluster_threshold(n_c, N):
    """The columns of a cluster of classes with n_c samples each coincide iff l >= sqrt(n_c)/N."""
    return float(np.sqrt(n_c) / N)


def hong_minority_collapse_lambda(k_A, n_A, k_B, n_B):
    """lambda_MC = sqrt(n_B) / (k_A n_A + k_B n_B): the minority classes collapse above it."""
    return hong_within_cluster_threshold(n_B, k_A * n_A + k_B * n_B)


def hong_total_collapse_threshold(counts):
    """Z = 0 (every feature collapsed, the bias carries the prior) iff l >= sqrt(n_max)/N."""
    counts = np.asarray(counts, dtype=np.float64)
    return float(np.sqrt(counts.max()) / counts.sum())


def hong_minority_n_star(k_A, k_B, n_B, l):
    """Majority size above which the minority collapses at level l:
    n_A* = (sqrt(n_B)/l - k_B n_B) / k_A (minority_n experiment)."""
    return float((np.sqrt(n_B) / l - k_B * n_B) / k_A)


def hong_total_collapse_n_star(k_A, k_B, n_B, l):
    """Majority size n_A above which everything collapses at level l: the larger root of
    sqrt(n_A) = l (k_A n_A + k_B n_B), i.e. sqrt(n_A) = (1 + sqrt(1 - 4 l^2 k_A k_B n_B))/(2 l k_A);
    nan when sqrt(n_A)/N stays below l for every n_A (collapse at any size)."""
    discriminant = 1 - 4 * l ** 2 * k_A * k_B * n_B
    if discriminant < 0:
        return float('nan')
    return float(((1 + np.sqrt(discriminant)) / (2 * l * k_A)) ** 2)
