"""Closed-form Neural Collapse geometry of the papers, in numpy/scipy (no symbolic algebra).

* Dang et al. 2023, bias-free MSE with a deep linear head of depth M on imbalanced data
  (the imbalanced theorem; docs/papers.md, Dang 2023): singular values s_k of the global minimiser and the predicted Gram
  diagonals of W = W_M...W_1 and of the class means.
* Dang et al. 2024, cross-entropy with unconstrained ReLU features (D24's validator; docs/papers.md, Dang 2024): the
  logit gaps M_k and the targets of NC2_H, NC2_W, NC2_WWT and NC3_WH.
* Hong & Ling 2023, cross-entropy UFM with imbalanced data (docs/papers.md, Hong & Ling 2023): the collapse
  thresholds of the nuclear-norm level l and the balanced closed form.
* The reference frames (simplex ETF, orthogonal frame) and their Gram targets are in frames.py.

Every function accepts array-likes and returns numpy floats/arrays in float64.
"""
import numpy as np
from scipy.optimize import brentq

from nc_repro import recipes

_RTOL = 4 * np.finfo(np.float64).eps   # brentq's tightest relative tolerance


def _positive(name, value):
    """value as a float, or a one-line ValueError naming the argument."""
    value = float(value)
    if not (np.isfinite(value) and value > 0):
        raise ValueError('%s must be a positive finite number, got %r' % (name, value))
    return value


def _depth(depth):
    """depth M as an int >= 1, or a one-line ValueError."""
    if int(depth) != depth or depth < 1:
        raise ValueError('depth (the number of linear layers M) must be an integer >= 1, got %r' % (depth,))
    return int(depth)


def _counts(counts):
    """Class counts as a float64 vector of positive entries, or a one-line ValueError."""
    counts = np.asarray(counts, dtype=np.float64).reshape(-1)                  # (K,)
    if len(counts) == 0 or not np.all(np.isfinite(counts)) or np.any(counts <= 0):
        raise ValueError('class counts must be a non-empty list of positive numbers, got %r' % (counts.tolist(),))
    return counts


# ----------------------------------------------------------------------------------------
# Dang et al. 2023: bias-free MSE, deep linear head

def d23_b(N, depth, lambda_W, lambda_H):
    """b = M N (N lambda_W^M lambda_H)^{1/M} (Dang et al. 2023, imbalanced theorem)."""
    return depth * N * (N * lambda_W ** depth * lambda_H) ** (1.0 / depth)


def d23_polynomial(n_k, b, depth):
    """Coefficients (highest degree first, for np.roots / np.polyval) of
    b (x^M + 1)^2 - n_k M x^{M-1}, whose real roots are those of
    b/n_k - M x^{M-1}/(x^M + 1)^2 = 0 (Dang et al. 2023, imbalanced theorem; x^M = -1 is never a root of the latter)."""
    M = depth
    coefficients = np.zeros(2 * M + 1)                                         # (2M+1,) degree 2M..0
    coefficients[0] += b                      # b x^{2M}
    coefficients[M] += 2 * b                  # 2b x^M
    coefficients[2 * M] += b                  # b
    coefficients[M + 1] -= n_k * M            # -n_k M x^{M-1}
    return coefficients


def d23_largest_root(n_k, N, depth, lambda_W, lambda_H):
    """The largest real root x of b/n_k - M x^{M-1}/(x^M + 1)^2 = 0, b = d23_b(...)
    (Dang et al. 2023, imbalanced theorem; D23's validate_NC_unbalanced.py asks sympy for
    every real root and takes the max).

    Solved by bracketing on the shape of g(x) = M x^{M-1}/(x^M + 1)^2:
    * M = 1: g = 1/(x+1)^2, so x = sqrt(n_k/b) - 1 exactly (negative when n_k < b);
    * M >= 2 and x > 0: g' has the sign of (M-1) - (M+1) x^M, so g rises to its maximum at
      x* = ((M-1)/(M+1))^{1/M}, then falls to 0; when g(x*) >= b/n_k the largest root lies in
      [x*, inf), bounded above by (M n_k/b)^{1/(M+1)} because g(x) < M x^{-M-1};
    * otherwise there is no positive root. Odd M: exactly one root in (-1, 0) (with y = -x,
      b/n_k (1 - y^M)^2 - M y^{M-1} falls from b/n_k > 0 at y = 0 to -M at y = 1), the roots
      below -1 being smaller. Even M: g <= 0 for x <= 0, so no real root at all, which raises
      ValueError naming the inputs (the original crashes on max of an empty list).
    """
    n_k, N = _positive('n_k', n_k), _positive('N', N)
    lambda_W, lambda_H = _positive('lambda_W', lambda_W), _positive('lambda_H', lambda_H)
    M = _depth(depth)
    b = d23_b(N, M, lambda_W, lambda_H)
    level = b / n_k
    if M == 1:
        return float(np.sqrt(n_k / b) - 1)

    def equation(x):
        return level - M * x ** (M - 1) / (x ** M + 1) ** 2

    peak = ((M - 1) / (M + 1)) ** (1.0 / M)
    at_peak = equation(peak)
    if at_peak <= 0:
        upper = 2 * max(peak, (M * n_k / b) ** (1.0 / (M + 1)))
        if at_peak == 0:
            return float(peak)
        return float(brentq(equation, peak, upper, xtol=1e-300, rtol=_RTOL, maxiter=500))
    if M % 2 == 1:
        y = brentq(lambda y: level * (1 - y ** M) ** 2 - M * y ** (M - 1), 0.0, 1.0,
                   xtol=1e-300, rtol=_RTOL, maxiter=500)
        return float(-y)
    raise ValueError('no real root of b/n_k = M x^(M-1)/(x^M+1)^2 for n_k=%g, N=%g, depth=%d, lambda_W=%g, '
                     'lambda_H=%g (b/n_k=%g exceeds the maximum %g of the right side); lower the decays'
                     % (n_k, N, M, lambda_W, lambda_H, level, level - at_peak))


def d23_class_objective(x, n_k, b, depth):
    """phi_k(x) = n_k/(x^M + 1) + b x, the share of class k in 2N times the deep linear
    unconstrained-features objective on the predicted structure (Dang et al. 2023, imbalanced
    theorem; docs/papers.md, "the per-class objective"): with t_k = s_k^{2M} = N lambda_H x^M
    the objective is (1/2N) sum_k phi_k(x_k). Its stationarity condition phi_k'(x) = 0 is the
    equation of d23_largest_root."""
    x = np.asarray(x, dtype=np.float64)
    return n_k / (x ** depth + 1) + b * x


def d23_collapse_level(depth):
    """beta_M = (M-1)^{(M-1)/M} / M: at the global minimiser class k is collapsed (x_k = 0)
    iff b/n_k >= beta_M (docs/papers.md, "which stationary point is the global minimiser").
    phi_k(x) < phi_k(0) = n_k for some x > 0 iff b/n_k < x^{M-1}/(x^M + 1), whose maximum over
    x > 0 is beta_M, reached at x = (M-1)^{1/M}; M = 1 gives beta_1 = 1, the sign of the root
    sqrt(n_k/b) - 1. At b/n_k = beta_M exactly, 0 and (M-1)^{1/M} tie; the collapsed one is taken."""
    M = _depth(depth)
    return float((M - 1) ** ((M - 1) / M) / M) if M > 1 else 1.0


def d23_root_level(depth):
    """The largest b/n_k for which b/n_k = M x^{M-1}/(x^M+1)^2 has a positive root: the
    maximum of the right side, at x = ((M-1)/(M+1))^{1/M} (M >= 2); for M = 1 the root
    sqrt(n_k/b) - 1 is positive iff b/n_k < 1. For M >= 2 the as-coded largest root and the
    global minimiser differ exactly for d23_collapse_level(M) <= b/n_k <= d23_root_level(M)."""
    M = _depth(depth)
    if M == 1:
        return 1.0
    peak = ((M - 1) / (M + 1)) ** (1.0 / M)
    return float(M * peak ** (M - 1) / (peak ** M + 1) ** 2)


def d23_class_minima(n_k, N, depth, lambda_W, lambda_H):
    """The local minimisers of phi_k over x >= 0, smallest first: x = 0 when phi_k'(0) > 0
    (always for M >= 2, where phi_k'(0) = b; for M = 1 when b >= n_k), and the largest root of
    d23_largest_root when it is positive (beyond it phi_k' > 0, before it phi_k' < 0). phi_k
    has no other local minimum on x >= 0: between 0 and the largest root lies at most one
    other stationary point, a maximum (g = M x^{M-1}/(x^M+1)^2 rises then falls)."""
    n_k, N = _positive('n_k', n_k), _positive('N', N)
    M = _depth(depth)
    b = d23_b(N, M, _positive('lambda_W', lambda_W), _positive('lambda_H', lambda_H))
    minima = [0.0] if (M >= 2 or b >= n_k) else []
    try:
        root = d23_largest_root(n_k, N, M, lambda_W, lambda_H)
    except ValueError:                       # even M, no real root: phi_k increases on x >= 0
        root = -1.0
    if root > 0:
        minima.append(root)
    return minima


def d23_global_root(n_k, N, depth, lambda_W, lambda_H):
    """argmin over x >= 0 of phi_k (d23_class_objective): the largest root when
    phi_k(root) < phi_k(0) = n_k, else 0 (Dang et al. 2023, imbalanced theorem, the global
    minimiser; docs/papers.md). Equivalent to the threshold b/n_k < d23_collapse_level(M)."""
    minima = d23_class_minima(n_k, N, depth, lambda_W, lambda_H)
    b = d23_b(N, depth, lambda_W, lambda_H)
    values = d23_class_objective(np.array(minima), n_k, b, depth)
    alive = minima[-1] > 0 and values[-1] < n_k
    return float(minima[-1]) if alive else 0.0


def _as_coded_root(n_k, N, depth, lambda_W, lambda_H, no_root):
    """d23_largest_root, or 0.0 for a class without a real root when no_root == 'collapse'."""
    try:
        return d23_largest_root(n_k, N, depth, lambda_W, lambda_H)
    except ValueError:
        if no_root == 'collapse' and depth % 2 == 0:
            return 0.0
        raise


RULES = ('global', 'as_coded')


def d23_singular_values(counts, depth, lambda_W, lambda_H, rule='global', clamp=True, as_coded_float32=False,
                        no_root='raise'):
    """{'b': float, 'x': (K,), 's': (K,)} with s_k = (N lambda_H x_k^M)^{1/(2M)} (Dang et al.
    2023, imbalanced theorem).

    rule='global' (default): x_k = d23_global_root, the global minimiser of the objective
    (x_k >= 0 always; clamp and no_root play no part).
    rule='as_coded': x_k = d23_largest_root, as D23's validate_NC_unbalanced.py. For M >= 2 it
    predicts a living class where the global minimiser has collapsed it whenever
    d23_collapse_level(M) <= b/n_k <= d23_root_level(M) (docs/original_code.md, D23-B21).
      clamp: x_k < 0 becomes 0, so s_k = 0 (minority collapse), as in validate_NC_unbalanced.py
      and synthetic_experiment_imbalanced.py; synthetic_experiment_balanced.py does not clamp
      (an unclamped negative x_k with odd M gives s_k = nan, as the original's fractional power).
      no_root: a class with no real root (even M, b/n_k above d23_root_level) makes the
      original crash; 'raise' (default) raises the ValueError of d23_largest_root, 'collapse'
      gives it x_k = 0 and s_k = 0.
    as_coded_float32: cast x to float32 before computing s, as the original does (the
    reference values of tests/test_theory.py are computed that way).
    """
    if rule not in RULES:
        raise ValueError("rule must be 'global' or 'as_coded', got %r" % (rule,))
    if no_root not in ('raise', 'collapse'):
        raise ValueError("no_root must be 'raise' or 'collapse', got %r" % (no_root,))
    counts = _counts(counts)                                                   # (K,)
    M = _depth(depth)
    lambda_W, lambda_H = _positive('lambda_W', lambda_W), _positive('lambda_H', lambda_H)
    N = counts.sum()
    sizes, index = np.unique(counts, return_inverse=True)
    if rule == 'global':
        roots = np.array([d23_global_root(n, N, M, lambda_W, lambda_H) for n in sizes])
    else:
        roots = np.array([_as_coded_root(n, N, M, lambda_W, lambda_H, no_root) for n in sizes])
    x = roots[index.reshape(-1)]                                               # (K,)
    if as_coded_float32:
        x = x.astype(np.float32).astype(np.float64)
    if clamp:
        x = np.maximum(x, 0.0)
    with np.errstate(invalid='ignore'):
        s = (N * lambda_H * x ** M) ** (1.0 / (2 * M))                          # (K,)
    return {'b': float(d23_b(N, M, lambda_W, lambda_H)), 'x': x, 's': s}


def d23_geometry(counts, depth, lambda_W, lambda_H, rule='global', clamp=True, ratio_target='as_coded',
                 as_coded_float32=False, no_root='raise'):
    """Predicted geometry of the global minimiser (Dang et al. 2023, imbalanced theorem;
    docs/papers.md, Dang 2023), with t = s^{2M} and c = t + N lambda_H, all (K,) vectors (the
    off-diagonals of every Gram are 0):
      'WWT' = diag(W W^T) = t,  'HTH' = diag(U^T U) = t/c^2,  'WH' = diag(W U) = t/c,
      'W_div_H' = r, the target of ||w_k||^2/||h_k||^2 (NC3_W_div_H),
    plus 'b', 'x', 's', 't', 'c' (W = W_M...W_1, U = uncentred class means, w_k = c_k h_k),
    'phi' (K,), each class's d23_class_objective at x_k, and 'objective' = sum(phi)/(2N), the
    value of the objective at this geometry. rule, clamp, as_coded_float32 and no_root as in
    d23_singular_values (rule='as_coded': the original's stationary point, not always the minimiser).

    ratio_target='as_coded' gives r = n_k when M = 1 and c^2 when M > 1, as the original; the
    exact ratio is c^2 = n_k lambda_H/lambda_W for M = 1 (the closed form of the theorem), equal to n_k
    only when lambda_W = lambda_H (docs/original_code.md, D23-B10), so ratio_target='exact' gives c^2 always.
    """
    if ratio_target not in ('as_coded', 'exact'):
        raise ValueError("ratio_target must be 'as_coded' or 'exact', got %r" % (ratio_target,))
    values = d23_singular_values(counts, depth, lambda_W, lambda_H, rule, clamp, as_coded_float32, no_root)
    counts = _counts(counts)                                                   # (K,)
    t = values['s'] ** (2 * depth)                                             # (K,)
    c = t + counts.sum() * lambda_H                                            # (K,)
    ratio = counts.copy() if (ratio_target == 'as_coded' and depth == 1) else c ** 2
    phi = d23_class_objective(values['x'], counts, values['b'], depth)        # (K,)
    return dict(values, t=t, c=c, WWT=t, HTH=t / c ** 2, WH=t / c, W_div_H=ratio, phi=phi,
                objective=float(phi.sum() / (2 * counts.sum())))


# ----------------------------------------------------------------------------------------
# Dang et al. 2024: cross-entropy, unconstrained ReLU features

def d24_logit_gaps(counts, lambda_W, lambda_H):
    """M_k, the code's `M_array` (Dang et al. 2024; D24's validate_NC_unbalanced.py):
    inside_k = (K-1) (sqrt(n_k) / (N sqrt((lambda_H/2)(lambda_W/2)) sqrt(((K-1)/K) lambda_W/lambda_H)) - 1),
    M_k = ln(inside_k) if inside_k > 0 and ln(inside_k) > 0, else 0. Unrelated to the depth M."""
    counts = _counts(counts)                                                   # (K,)
    lambda_W, lambda_H = _positive('lambda_W', lambda_W), _positive('lambda_H', lambda_H)
    K, N = len(counts), counts.sum()
    scale = N * np.sqrt((lambda_H / 2) * (lambda_W / 2)) * np.sqrt((K - 1) / K * lambda_W / lambda_H)
    inside = (K - 1) * (np.sqrt(counts) / scale - 1)                           # (K,)
    gaps = np.zeros(K)                                                         # (K,)
    positive = inside > 0
    gaps[positive] = np.log(inside[positive])
    return np.where(gaps > 0, gaps, 0.0)


def d24_targets(counts, lambda_W, lambda_H):
    """Targets of the 2024 validator (Dang et al. 2024; D24's validate_NC_unbalanced.py), W = full product,
    U = uncentred class means:
      'M' (K,): d24_logit_gaps;
      'HTH_diag' (K,): d_k = sqrt(((K-1)/K)(lambda_W/lambda_H)/n_k) M_k (NC2_H, diag target);
      'WWT' (K, K): T_ii = (K-1)^2 sqrt(n_i) M_i + sum_{m != i} sqrt(n_m) M_m,
                    T_ij = -(K-1)(sqrt(n_i) M_i + sqrt(n_j) M_j) + sum_{m not in {i,j}} sqrt(n_m) M_m (NC2_WWT);
      'WH' (K, K): Q, column i = M_i (e_i - 1/K) (NC3_WH).
    NC2_W's target depends on the measured means: d24_classifier_target."""
    counts = _counts(counts)                                                   # (K,)
    K = len(counts)
    gaps = d24_logit_gaps(counts, lambda_W, lambda_H)                          # (K,)
    weighted = np.sqrt(counts) * gaps                                          # (K,) sqrt(n_m) M_m
    total = weighted.sum()
    pair = weighted[:, None] + weighted[None, :]                               # (K, K)
    T = -(K - 1) * pair + (total - pair)                                       # (K, K)
    np.fill_diagonal(T, (K - 1) ** 2 * weighted + (total - weighted))
    Q = (np.eye(K) - 1.0 / K) * gaps[None, :]                                  # (K, K)
    d = np.sqrt((K - 1) / K * (lambda_W / lambda_H) / counts) * gaps           # (K,)
    return {'M': gaps, 'HTH_diag': d, 'WWT': T, 'WH': Q}


def d24_classifier_target(class_means, counts, means_layout=None):
    """S (K, d), the NC2_W target of the 2024 validator (Dang et al. 2024; D24's validate_NC_unbalanced.py):
    row k = K sqrt(n_k) mu_k - sum_c sqrt(n_c) mu_c.

    class_means: (K, d) rows or (d, K) columns (nc_measures' U); means_layout 'Kd' or 'dK'
    says which, and may be omitted when only one axis has length K."""
    means = np.asarray(class_means, dtype=np.float64)
    counts = _counts(counts)                                                   # (K,)
    K = len(counts)
    if means.ndim != 2 or K not in means.shape:
        raise ValueError('class_means must be (K, d) or (d, K) with K=%d classes, got shape %s' % (K, means.shape))
    if means_layout is None:
        if means.shape[0] == means.shape[1]:
            raise ValueError("class_means is square (%d x %d): pass means_layout='Kd' or 'dK'" % means.shape)
        means_layout = 'Kd' if means.shape[0] == K else 'dK'
    if means_layout == 'dK':
        means = means.T                                                        # (K, d)
    elif means_layout != 'Kd':
        raise ValueError("means_layout must be 'Kd', 'dK' or None, got %r" % (means_layout,))
    if means.shape[0] != K:
        raise ValueError('class_means has %d classes along the %r layout, counts has %d' % (means.shape[0], means_layout, K))
    weighted = np.sqrt(counts)[:, None] * means                                # (K, d) sqrt(n_k) mu_k
    return K * weighted - weighted.sum(0, keepdims=True)                       # (K, d)


# ----------------------------------------------------------------------------------------
# Hong & Ling 2023: CE UFM on imbalanced data, nuclear-norm level l (docs/papers.md, Hong & Ling 2023;
# derived from the KKT conditions of the convex program, confirmed with cvxpy)

def hong_within_cluster_threshold(n_c, N):
    """The logit columns of a cluster of >= 2 classes with n_c samples each coincide iff
    l >= sqrt(n_c)/N (Hong & Ling 2023, collapse within a cluster; docs/papers.md, Hong & Ling 2023)."""
    return float(np.sqrt(_positive('n_c', n_c)) / _positive('N', N))


def hong_minority_collapse_lambda(k_A, n_A, k_B, n_B):
    """lambda_MC = sqrt(n_B)/(k_A n_A + k_B n_B): k_B >= 2 minority classes of n_B samples
    collapse for l >= lambda_MC (Hong & Ling 2023, minority collapse; docs/papers.md, Hong & Ling 2023)."""
    N = _positive('k_A', k_A) * _positive('n_A', n_A) + _positive('k_B', k_B) * _positive('n_B', n_B)
    return hong_within_cluster_threshold(n_B, N)


def hong_total_collapse_threshold(counts):
    """Z = 0 (all features collapsed, the bias carries the log-prior) iff l >= sqrt(n_max)/N
    (Hong & Ling 2023, total collapse; sigma_max(G_0) measured = sqrt(n_max)/N)."""
    counts = _counts(counts)                                                   # (K,)
    return float(np.sqrt(counts.max()) / counts.sum())


def hong_minority_n_star(k_A, k_B, n_B, l):
    """n_A* = (sqrt(n_B)/l - k_B n_B)/k_A: at a fixed level l the minority collapses iff
    n_A >= n_A* (Hong & Ling 2023, minority_n experiment; docs/papers.md, Hong & Ling 2023). A value <= n_B
    means the minority is collapsed for every majority size."""
    k_A, k_B = _positive('k_A', k_A), _positive('k_B', k_B)
    n_B, l = _positive('n_B', n_B), _positive('l', l)
    return float((np.sqrt(n_B) / l - k_B * n_B) / k_A)


def hong_total_collapse_n_star(k_A, k_B, n_B, l):
    """Majority size n_A (>= n_B) from which everything collapses at a fixed level l (Hong &
    Ling 2023, the minority_n sweeps): l >= sqrt(n_A)/(k_A n_A + k_B n_B) holds
    for sqrt(n_A) at or above the larger root (1 + sqrt(1 - 4 l^2 k_A k_B n_B))/(2 l k_A);
    when the discriminant is negative it holds for every n_A, and the result is n_B."""
    k_A, k_B = _positive('k_A', k_A), _positive('k_B', k_B)
    n_B, l = _positive('n_B', n_B), _positive('l', l)
    discriminant = 1 - 4 * l ** 2 * k_A * k_B * n_B
    if discriminant < 0:
        return n_B
    return float(max(n_B, ((1 + np.sqrt(discriminant)) / (2 * l * k_A)) ** 2))


def hong_balanced_logit_scale(n, K, l):
    """alpha of the balanced optimum Z = alpha (I - 11^T/K), b = 0 (Hong & Ling 2023,
    balanced case of the convex program; docs/papers.md, Hong & Ling 2023): alpha = ln((1 - (K-1) l sqrt(n))/(l sqrt(n))) when
    l < 1/(K sqrt(n)) (= sqrt(n)/N, total collapse), else 0."""
    n, l = _positive('n', n), _positive('l', l)
    if int(K) != K or K < 2:
        raise ValueError('K (number of classes) must be an integer >= 2, got %r' % (K,))
    root = l * np.sqrt(n)
    if root >= 1.0 / K:
        return 0.0
    return float(np.log((1 - (K - 1) * root) / root))


# ----------------------------------------------------------------------------------------
# per-class lengths predicted for an imbalanced run (theory.json of validate_NC_unbalanced.py)

def recipe_of(record):
    """The paper of a theory.json record: its 'paper', or for records older than that field
    the recipe whose geometry it holds (D23's has the singular values 's', D24's not)."""
    return record.get('paper') or ('dang2023' if 's' in record else 'dang2024')


def predicted_lengths(record, scaling='flags', rule='global'):
    """(||h_k||, ||w_k||, absolute) predicted per class from a theory.json record.

    dang2023: the absolute lengths of d23_geometry, ||h_k||^2 = t_k / c_k^2 and ||w_k||^2 = t_k.
    scaling='flags' plugs in lambda_W and lambda_H as given (as the validator does); the
    trainer's data term is the MSE mean halved, the theory's objective divided by K (README,
    imbalanced runs), so scaling='objective' uses K lambda_W and K lambda_H, the minimiser of the
    objective the run actually trains; rule 'global' (the minimiser) or 'as_coded' (the
    original's largest root, d23_singular_values). dang2024: sqrt(d_k) and sqrt(T_kk) of
    d24_targets, known up to a common scale (absolute=False)."""
    counts = record['counts']
    if recipes.get(recipe_of(record)).imbalanced_theory == 'd23_geometry':
        factor = len(counts) if scaling == 'objective' else 1.0
        geometry = d23_geometry(counts, record['depth_linear'], factor * record['lambda_W'],
                                factor * record['lambda_H'], rule=rule, no_root='collapse')
        return np.sqrt(geometry['HTH']), np.sqrt(geometry['WWT']), True
    targets = d24_targets(counts, record['lambda_W'], record['lambda_H'])
    return np.sqrt(targets['HTH_diag']), np.sqrt(np.clip(np.diag(targets['WWT']), 0, None)), False


def fitted_scale(predicted, measured):
    """argmin_a ||a predicted - measured||^2 (1 when the prediction is all zeros)."""
    norm = float(predicted @ predicted)
    return float(predicted @ measured) / norm if norm > 0 else 1.0
