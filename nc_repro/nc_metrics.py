"""The Neural Collapse metric engine: streaming class statistics first, pure measures second.

Statistics (``ClassStatistics``) are accumulated batch by batch in float64 with batched
matrix products: per-class counts n_k, sums and squared norms, and the pooled scatter, all of
features shifted by a per-class reference (the class mean of the first batch that contains the
class), which removes the cancellation of one-pass second moments when features are collapsed
far from the origin (tests/test_nc_metrics.py shows that cancellation without the shift).

Measures are functions of those statistics and of the classifier; each docstring names the
paper and formula. Where the papers' codes differ, the choice is a named field of
``Conventions`` and each paper's as-coded choice is a preset in ``CONVENTIONS``.

Notation: K classes present, N samples, features h_i in R^D, class means mu_k, global mean
mu_G (sample mean, or mean of class means), M~ = [mu_k - mu_G] (K x D), classifier W (K x D),
bias b, P = (I_K - 11^T/K)/sqrt(K-1) the unit-Frobenius simplex-ETF Gram target.
"""
from dataclasses import dataclass

import numpy as np
import torch

from nc_repro import frames
from nc_repro.nc_measures import equiangularity, equinorm, max_angle  # noqa: F401 (Papyan's NC2 measures)


@dataclass(frozen=True)
class Conventions:
    """Choices on which the classic codes (T, J, D23, Hong, Papyan 2020's measurement code) disagree."""
    global_mean: str          # 'sample': (1/N) sum_i h_i;  'classes': (1/K) sum_k mu_k
    between_weights: str      # 'uniform': Sigma_B = (1/K) sum_k ...;  'counts': weights n_k/N (Hong)
    nc1_divide_by_K: bool     # NC1 = tr(Sigma_W Sigma_B^+)/K, or without /K (Papyan's Colab code)
    center_classifier: bool   # NC2/NC3 on W - 1 w_bar^T (Zhou 2022) or on the raw W (Zhu 2021, D23)
    pinv: str                 # the original's pseudo-inverse, for the as-coded NC1:
                              # 'scipy_float32' (T, J, D23) or 'float64_rcond1e-10' (Hong)
    bias_sign: int = 1        # logits W h + b (+1, every paper here) or W h - b (-1)


CONVENTIONS = {
    'zhou2022': Conventions('sample', 'uniform', True, True, 'scipy_float32'),
    'zhu2021': Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    'dang2023': Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    'dang2024': Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    'hong2023': Conventions('sample', 'counts', True, False, 'float64_rcond1e-10'),
    'papyan2020': Conventions('classes', 'uniform', False, False, 'scipy_float32'),
}


class ClassStatistics:
    """Per-class statistics of features, exact in float64.

    Two ways to get the within-class second moments that NC1 needs:
    * streaming (scatter=True): the pooled shifted scatter Q (D x D) is accumulated with one
      float64 GEMM per batch; the features are seen once and can be discarded.
    * from a feature cache (``ClassStatistics.from_features``, scatter=False): only counts and
      sums are accumulated; NC1 then needs Sigma_W only along the <= K-1 between-class
      directions, v^T Sigma_W v, computed in float64 from the cached features in one more
      pass of 2 N D (K-1) flops instead of 2 N D^2. Validation keeps the
      features anyway (for NC4 and the margins), so it uses this mode.
    """

    def __init__(self, num_classes, dim, device='cpu', reference=None, scatter=True):
        self.num_classes, self.dim, self.device = num_classes, dim, torch.device(device)
        kw = dict(dtype=torch.float64, device=self.device)
        self.reference = torch.zeros(num_classes, dim, **kw)                  # R (K, D)
        self.has_reference = torch.zeros(num_classes, dtype=torch.bool, device=self.device)
        if reference is not None:
            self.reference.copy_(torch.as_tensor(reference, **kw))
            self.has_reference[:] = True
        self.counts = torch.zeros(num_classes, dtype=torch.long, device=self.device)  # n (K,)
        self.shifted_sums = torch.zeros(num_classes, dim, **kw)              # S (K, D)
        self.shifted_scatter = torch.zeros(dim, dim, **kw) if scatter else None  # Q (D, D)
        self.shifted_sq_norms = torch.zeros(num_classes, **kw)               # q (K,)
        self.cached = None

    def _check_labels(self, labels):
        if len(labels) and (labels.min() < 0 or labels.max() >= self.num_classes):
            raise ValueError('labels must lie in 0..%d' % (self.num_classes - 1))

    @classmethod
    def from_features(cls, features, labels, num_classes, batch=4096):
        """Statistics of an in-memory feature matrix (N, D), keeping it for NC1's projections.

        The features are grouped by class once (free when they already are, as validation
        delivers them), so every later pass works on contiguous per-class blocks with a
        broadcast subtraction instead of a per-sample gather. Class sums are taken around the
        class's first sample (a class without spread has a mean equal to its samples bit for
        bit); second moments come from the cache when asked for."""
        stats = cls(num_classes, features.shape[1], scatter=False)
        labels = torch.as_tensor(labels).long()
        stats._check_labels(labels)
        if len(labels) > 1 and bool((labels[1:] < labels[:-1]).any()):
            order = torch.argsort(labels, stable=True)
            features, labels = features[order.to(features.device)], labels[order]
        counts = torch.bincount(labels, minlength=num_classes)
        stats.counts += counts.to(stats.device)
        ends = torch.cumsum(counts, 0).tolist()
        stats.class_slices = [(k, end - int(counts[k]), end) for k, end in enumerate(ends) if counts[k] > 0]
        stats.cached = (features, labels)
        for k, first, _ in stats.class_slices:
            stats.reference[k] = features[first].to(stats.device, torch.float64)
            stats.has_reference[k] = True
        for k, x in stats._cached_blocks(batch):
            stats.shifted_sums[k] += (x - stats.reference[k]).sum(0)
        return stats

    def _cached_blocks(self, batch=4096):
        """(class, float64 block of that class's cached features), class by class."""
        features = self.cached[0]
        for k, first, end in self.class_slices:
            for start in range(first, end, batch):
                yield k, features[start:min(start + batch, end)].to(self.device, torch.float64)

    def update(self, features, labels):
        """Add a batch: features (B, D) of any float dtype, labels (B,) in 0..K-1."""
        x = features.detach().to(self.device, torch.float64)                 # (B, D)
        y = labels.detach().to(self.device, torch.long)                      # (B,)
        self._check_labels(y)
        batch_counts = torch.bincount(y, minlength=self.num_classes)
        new = (batch_counts > 0) & ~self.has_reference
        if new.any():      # reference = this batch's mean of each newly seen class
            batch_sums = torch.zeros_like(self.reference).index_add_(0, y, x)
            self.reference[new] = batch_sums[new] / batch_counts[new, None]
            self.has_reference |= new
        z = x - self.reference[y]                                            # (B, D)
        self.counts += batch_counts
        self.shifted_sums.index_add_(0, y, z)
        self.shifted_sq_norms.index_add_(0, y, (z * z).sum(1))
        if self.shifted_scatter is not None:
            self.shifted_scatter.addmm_(z.T, z)                              # one GEMM per batch

    # ---- finished statistics (present classes only, in label order) ----
    @property
    def present(self):
        return self.counts > 0

    @property
    def num_present(self):
        return int(self.present.sum())

    @property
    def num_samples(self):
        return int(self.counts.sum())

    @property
    def class_counts(self):
        return self.counts[self.present].double()                           # (K,)

    @property
    def class_means(self):
        """mu_k = R_k + S_k / n_k, (K, D)."""
        p = self.present
        return self.reference[p] + self.shifted_sums[p] / self.counts[p, None]

    def global_mean(self, conventions):
        kind = conventions if isinstance(conventions, str) else conventions.global_mean
        means = self.class_means
        if kind == 'sample':
            return (self.class_counts[:, None] * means).sum(0) / self.num_samples
        if kind == 'classes':
            return means.mean(0)
        raise ValueError("global mean convention must be 'sample' or 'classes' (got %r)" % kind)

    def within_class_quadratic(self, directions, batch=8192):
        """diag(V Sigma_W V^T) for directions V (r, D): the within-class variance along each
        direction, from the scatter or from the feature cache (float64 either way)."""
        V = directions.to(torch.float64)
        if self.shifted_scatter is not None:
            return ((V @ self.within_class_cov) * V).sum(1)
        if self.cached is None:
            raise ValueError('statistics without scatter need the cached features (from_features)')
        rows = self._mean_rows()
        total = torch.zeros(len(V), dtype=torch.float64, device=self.device)
        for k, x in self._cached_blocks(batch):
            z = (x - rows[k]) @ V.T        # centre first: no cancellation when collapsed (B, r)
            total += (z * z).sum(0)
        return total / self.num_samples

    def _mean_rows(self):
        """Class means at their label's row, zeros for absent classes (K_all, D)."""
        rows = torch.zeros(self.num_classes, self.dim, dtype=torch.float64, device=self.device)
        rows[self.present] = self.class_means
        return rows

    @property
    def within_class_cov(self):
        """Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T = (Q - sum_k S_k S_k^T/n_k)/N."""
        if self.shifted_scatter is None:
            raise ValueError('this ClassStatistics keeps no scatter; use within_class_quadratic')
        p = self.present
        S, n = self.shifted_sums[p], self.counts[p].double()
        sigma_w = (self.shifted_scatter - (S / n[:, None]).T @ S) / self.num_samples
        return (sigma_w + sigma_w.T) / 2

    @property
    def class_variances(self):
        """v_k = tr Sigma_k = (1/n_k) sum_{y_i=k} ||h_i - mu_k||^2 (biased)."""
        p = self.present
        n = self.counts[p].double()
        if self.shifted_scatter is None:     # from the cache, around the final means
            rows, squares = self._mean_rows(), torch.zeros_like(self.shifted_sq_norms)
            for k, x in self._cached_blocks():
                squares[k] += ((x - rows[k]) ** 2).sum()
            return squares[p] / n
        return self.shifted_sq_norms[p] / n - ((self.shifted_sums[p] / n[:, None]) ** 2).sum(1)


# ----------------------------------------------------------------------------------------
# NC1

def between_class_factor(stats, conventions):
    """A (K, D) with Sigma_B = A^T A: A = diag(sqrt(w)) (M - 1 m^T), w = 1/K or n_k/N."""
    centred = stats.class_means - stats.global_mean(conventions)
    if conventions.between_weights == 'uniform':
        weights = torch.full((stats.num_present,), 1.0 / stats.num_present, dtype=torch.float64,
                             device=centred.device)
    elif conventions.between_weights == 'counts':
        weights = stats.class_counts / stats.num_samples
    else:
        raise ValueError("between_weights must be 'uniform' or 'counts'")
    return weights.sqrt()[:, None] * centred


def nc1_directions(stats, conventions):
    """Sigma_B's range as the exact NC1 uses it: (V (r, D), s (r,), kept (r,) bool, divisor).

    The thin SVD A = U diag(s) V^T of the between-class factor gives Sigma_B = V diag(s^2) V^T;
    r = min(K-1, D); ``kept`` drops directions with s_i <= s_0 max(K, D) eps64 (degenerate);
    divisor K or 1 (conventions.nc1_divide_by_K)."""
    K = stats.num_present
    factor = between_class_factor(stats, conventions)                        # (K, D)
    _, s, Vt = torch.linalg.svd(factor, full_matrices=False)                 # s (min(K,D),), Vt (., D)
    r = min(K - 1, stats.dim)
    s, Vt = s[:r], Vt[:r]
    keep = s > s[0] * max(K, stats.dim) * torch.finfo(torch.float64).eps if r > 0 else s > 0
    return Vt, s, keep, (K if conventions.nc1_divide_by_K else 1), factor


def nc1(stats, conventions, as_coded=True, sigma_w_swap=None, variants=()):
    """NC1 = tr(Sigma_W Sigma_B^+) / K (Papyan, Han & Donoho 2020, Eq. in Fig. 6).

    'nc1': exact, float64, with Sigma_B's pseudo-inverse taken in its K-1 dimensional range
    (nc1_directions): NC1 = (1/K) sum_{i<r, kept} v_i^T Sigma_W v_i / s_i^2.
    'nc1_as_coded': Sigma_W and Sigma_B as the original computed them (float32 with SciPy's
    pinv for T/J/D23, float64 with rcond 1e-10 for Hong), which under-reports NC1 when a
    between-class direction is small (the float32 cut-off drops it; docs/original_code.md, "NC1 as
    the originals computed it").
    'sb_condition': s_{r-1}/s_0, small values mean the as-coded number is unreliable.
    as_coded=False skips the original's D x D pseudo-inverse ('nc1_as_coded' is then None).
    variants (docs/metrics.md): 'svd', the rank K-1 truncated SVD of Sigma_B without a cut-off
    (svds(Sigma_B, k=K-1)); 'pinv', Sigma_B formed in float64 with the cut-off D eps64 sigma_max.

    sigma_w_swap=(seen, replaced, labels): the as-coded Sigma_W sees the rows ``seen`` (m, D)
    in place of ``replaced`` (Dang 2024's stale first batch, validation.stale_feature_rows)."""
    Vt, s, keep, divisor, factor = nc1_directions(stats, conventions)
    blocks = {'exact': Vt[keep]}
    if as_coded:
        blocks['as_coded'], as_coded_inverse = as_coded_pseudo_inverse(factor, conventions.pinv)
    if 'pinv' in variants:
        blocks['pinv'], pinv_inverse = as_coded_pseudo_inverse(factor, 'float64_default')
    if 'svd' in variants:
        blocks['svd'] = Vt
    quadratic = stats.within_class_quadratic(torch.cat(list(blocks.values())))
    parts = dict(zip(blocks, quadratic.split([len(b) for b in blocks.values()])))
    if as_coded and sigma_w_swap is not None:
        parts['as_coded'] = parts['as_coded'] + swapped_rows_quadratic(stats, blocks['as_coded'], *sigma_w_swap)
    result = {'nc1': float((parts['exact'] / s[keep] ** 2).sum()) / divisor}
    # tr(Sigma_W pinv(Sigma_B)) = sum_i u_i^T Sigma_W u_i / sigma_i over pinv's kept eigenpairs
    result['nc1_as_coded'] = float((parts['as_coded'] * as_coded_inverse).sum()) / divisor if as_coded else None
    if 'pinv' in variants:
        result['pinv'] = float((parts['pinv'] * pinv_inverse).sum()) / divisor
    if 'svd' in variants:
        result['svd'] = float((parts['svd'] / s ** 2).sum()) / divisor
    result['sb_condition'] = float(s[-1] / s[0]) if len(s) and s[0] > 0 else 0.0
    return result


def swapped_rows_quadratic(stats, directions, seen, replaced, labels):
    """Change of diag(V Sigma_W V^T) when Sigma_W's pass sees ``seen`` instead of ``replaced``
    (both (m, D), with class labels (m,)), each centred at its label's class mean."""
    rows = stats._mean_rows()[torch.as_tensor(labels).long().to(stats.device)]    # (m, D)
    V = directions.to(torch.float64)

    def spread(x):
        z = (torch.as_tensor(x).to(stats.device, torch.float64) - rows) @ V.T    # (m, r)
        return (z * z).sum(0)

    return (spread(seen) - spread(replaced)) / stats.num_samples


def as_coded_pseudo_inverse(factor, pinv):
    """The eigenpairs the original's pseudo-inverse of Sigma_B = A^T A keeps: (U (r, D), 1/sigma (r,)).

    'scipy_float32': Sigma_B rounded to float32 and scipy.linalg.pinv's rule (singular values
    below max(D, D) eps32 sigma_max dropped), T/J/D23. 'float64_rcond1e-10': numpy's pinv with
    rcond 1e-10 in float64 (Hong). The symmetric Sigma_B's SVD is its eigen-decomposition."""
    sigma_b = (factor.T @ factor).cpu()
    if pinv == 'scipy_float32':
        matrix, relative = sigma_b.float().numpy(), max(sigma_b.shape) * np.finfo(np.float32).eps
    elif pinv == 'float64_rcond1e-10':
        matrix, relative = sigma_b.numpy(), 1e-10
    elif pinv == 'float64_default':
        matrix, relative = sigma_b.numpy(), max(sigma_b.shape) * np.finfo(np.float64).eps
    else:
        raise ValueError("pinv must be 'scipy_float32', 'float64_rcond1e-10' or 'float64_default'")
    # singular values of a symmetric matrix are |eigenvalues|: eigh, in the original's precision
    # (LAPACK through numpy: the metrics need numpy and torch only)
    eigenvalues, U = np.linalg.eigh(matrix)
    sigma = np.abs(eigenvalues)
    kept = sigma > relative * sigma.max()
    directions = torch.from_numpy(np.ascontiguousarray(U[:, kept].T)).double().to(factor.device)
    return directions, torch.from_numpy(1.0 / sigma[kept].astype(np.float64)).to(factor.device)


def nc1_trace_ratio(stats, conventions):
    """tr(Sigma_W) / tr(Sigma_B) (Tirer, Huang & Niles-Weed 2023); tr Sigma_W = sum_k n_k v_k / N."""
    factor = between_class_factor(stats, conventions)
    within = (stats.class_counts * stats.class_variances).sum() / stats.num_samples
    return float(within / (factor ** 2).sum())


# ----------------------------------------------------------------------------------------
# matrix-alignment measures (NC2, NC3)

def _as64(matrix):
    return torch.as_tensor(matrix).detach().to(torch.float64).cpu()


def alignment_error(A, target, normalised=True):
    """|| A/||A||_F - T/||T||_F ||_F in [0, 2], the normalised distance of a matrix to its
    target used for NC2 and NC3 by Zhu et al. 2021, Zhou 2022 and Dang 2023/2024; with
    normalised=False the plain || A - T ||_F (Dang 2023's balanced synthetic script). The targets
    are named values: frames.simplex_etf_gram(K), frames.orthogonal_frame_gram(K), or the
    diagonal closed forms of theory.d23_geometry / theory.d24_targets."""
    A, target = _as64(A), _as64(target)
    if not normalised:
        return float(torch.linalg.norm(A - target))
    return float(torch.linalg.norm(A / torch.linalg.norm(A) - target / torch.linalg.norm(target)))


def classifier_rows(W, conventions):
    """W~ = W - 1 w_bar^T when conventions.center_classifier (J), the raw W otherwise (T), in
    float64: the classifier of Zhou 2022's NC2 (ETF_metric) and NC3 (WH_relation_metric)."""
    W = _as64(W)
    return W - W.mean(0, keepdim=True) if conventions.center_classifier else W


def centred_means(stats, conventions):
    """M~ = [mu_k - mu_G] (K, D)."""
    return (stats.class_means - stats.global_mean(conventions)).cpu()


def frame_measures(stats, W, conventions):
    """NC2 and NC3 of the classifier W (K, D) and the class means against the three reference
    frames, under D23's key names (its validator's per-layer measures):

    * simplex ETF (Papyan 2020's NC2/NC3; Zhou 2022): W~ W~^T, M~ M~^T and W~ M~^T against
      frames.simplex_etf_gram(K), with W~ = classifier_rows(W) and M~ the centred means;
    * orthogonal frame (D23's bias-free balanced theorem): W W^T, U^T U and W U against I_K,
      with U = [mu_k] (D, K) the uncentred means;
    * general orthogonal frame (orthogonal, lengths free: D23's imbalanced theorem, D24): the
      same three matrices against their own diagonals, so no hyperparameter enters (the closed
      -form lengths of theory.d23_geometry / d24_targets are validate_NC_unbalanced.py's);
    * NC3 as a difference: W against U^T (and against M~), both normalised.
    All are nc_metrics.alignment_error values in [0, 2]."""
    W = _as64(W)
    W_rows = classifier_rows(W, conventions)
    means = stats.class_means.T.cpu()                                        # U (D, K)
    centred = centred_means(stats, conventions).T                            # M~^T (D, K)
    K = W.shape[0]
    etf, orthogonal = frames.simplex_etf_gram(K), frames.orthogonal_frame_gram(K)
    gram_W, gram_H, cross = W @ W.T, means.T @ means, W @ means

    def own_diagonal(matrix):
        return torch.diag(torch.diagonal(matrix))

    return {
        'NC2_ETF_W': alignment_error(W_rows @ W_rows.T, etf),
        'NC2_Identity_W': alignment_error(gram_W, orthogonal),
        'NC2_GOF_W': alignment_error(gram_W, own_diagonal(gram_W)),
        'NC2_ETF_H': alignment_error(centred.T @ centred, etf),
        'NC2_Identity_H': alignment_error(gram_H, orthogonal),
        'NC2_GOF_H': alignment_error(gram_H, own_diagonal(gram_H)),
        'NC3_ETF_WH': alignment_error(W_rows @ centred, etf),
        'NC3_Identity_WH': alignment_error(cross, orthogonal),
        'NC3_GOF_WH': alignment_error(cross, own_diagonal(cross)),
        'NC3_W_sub_H': alignment_error(W, means.T),
        'NC3_W_sub_H_centered': alignment_error(W, centred.T),
    }


def bias_relation(W, b, global_mean, bias_sign=1):
    """J's 'Wh_b_relation_metric' (its plots' NC4): || W mu_G + b ||_2 with the raw W (- b
    under a convention with bias_sign=-1)."""
    return float(torch.linalg.norm(_as64(W) @ _as64(global_mean) + bias_sign * _as64(b)))


def self_duality_distance(W, stats, conventions):
    """|| W^T/||W||_F - M~^T/||M~||_F ||_F^2 (Papyan 2020's NC3 as in the Colab code)."""
    return alignment_error(_as64(W), centred_means(stats, conventions)) ** 2


# ----------------------------------------------------------------------------------------
# per-sample measures, batched

def cosine_margins(features, labels, W, global_mean, conventions, chunk=8192):
    """J's cosine margin per sample (J's validate_NC.py): c_ik = (W h_i)_k / (||h_i - mu_G|| ||w~_k||)
    with the raw W in the numerator and the centred rows w~_k in the norm; margin_i =
    c_{i,y_i} - max_{k != y_i} c_ik. Returns (N,) float64."""
    W = _as64(W)
    row_norms = torch.linalg.norm(W - W.mean(0, keepdim=True), dim=1)      # (K,) centred rows
    mu = _as64(global_mean)
    margins = []
    for start in range(0, len(labels), chunk):
        h = _as64(features[start:start + chunk])                             # (B, D)
        y = torch.as_tensor(labels[start:start + chunk]).long().cpu()
        cosines = (h @ W.T) / (torch.linalg.norm(h - mu, dim=1, keepdim=True) * row_norms)
        true = cosines.gather(1, y[:, None]).squeeze(1)
        others = cosines.scatter(1, y[:, None], float('-inf')).max(1).values
        margins.append(true - others)
    return torch.cat(margins)


def nearest_class_mean(features, class_means, chunk=8192):
    """argmin_k ||h_i - mu_k|| in float64, equal to the decision of the direct differences
    (Papyan 2020's NCC classifier; never decided by the expanded form, which cancels far from the
    origin).

    Fast path: scores s_k = ||o_k||^2 - 2 <h - m, o_k> = ||h - mu_k||^2 - ||h - m||^2, with m the
    mean of the class means and o_k = mu_k - m: centring removes the common offset that makes
    ||h||^2 + ||mu||^2 - 2<h, mu> cancel far from the origin, and leaves one (B, D) x (D, K)
    product per chunk. The scores still cancel when two class means nearly coincide while
    others are far (minority collapse): their rounding error is below
    tol_i = 8 (D + 2) eps64 (||h_i - m|| + max_k ||o_k||) max_k ||o_k|| (dot-product bound
    gamma_D, Higham 2002 §3.1), so every sample whose two best scores are closer than tol_i is
    decided again from the direct differences ||h_i - mu_k||^2. Ties go to the lowest index."""
    means = _as64(class_means)
    centre = means.mean(0)
    offsets = means - centre                                                 # (K, D)
    sq_norms = (offsets ** 2).sum(1)                                         # (K,)
    largest = sq_norms.max().sqrt()                                          # max_k ||o_k||
    unit_error = 8 * (means.shape[1] + 2) * torch.finfo(torch.float64).eps
    decisions = []
    for start in range(0, len(features), chunk):
        x = _as64(features[start:start + chunk])                             # (B, D)
        h = x - centre                                                       # (B, D)
        scores = sq_norms - 2 * h @ offsets.T                                # (B, K)
        choice = scores.argmin(1)                                            # (B,)
        if len(means) > 1:
            best_two = scores.topk(2, dim=1, largest=False).values           # (B, 2)
            tolerance = unit_error * (torch.linalg.norm(h, dim=1) + largest) * largest  # (B,)
            close = best_two[:, 1] - best_two[:, 0] <= tolerance             # (B,)
            if close.any():
                direct = ((x[close, None, :] - means[None]) ** 2).sum(2)     # (b, K)
                choice[close] = direct.argmin(1)
        decisions.append(choice)
    return torch.cat(decisions)


def ncc_mismatch_count(features, predictions, class_means):
    """NC4 (Papyan 2020): number of samples whose nearest-class-mean decision differs from the
    network's decision (argmax of the logits, bias included)."""
    ncc = nearest_class_mean(features, class_means)
    return int((ncc != torch.as_tensor(predictions).long().cpu()).sum())


# ----------------------------------------------------------------------------------------
# Dang et al. 2023: the one measure that is not an alignment

def length_ratio_error(W, U, r):
    """Dang 2023's NC3_W_div_H = || diag(W W^T)/diag(U^T U) - r ||_2: squared classifier-row
    over class-mean lengths against the closed form r (n_k for M = 1 as coded, c_k^2 otherwise;
    unnormalised). W: (K, d) product, U: (d, K) uncentred class means."""
    W, U = _as64(W), _as64(U)
    ratios = (W ** 2).sum(1) / (U ** 2).sum(0)
    return float(torch.linalg.norm(ratios - _as64(r)))


# ----------------------------------------------------------------------------------------

def measure(features, labels, W, b, conventions, logits=None, num_classes=None):
    """All balanced-data measures of one in-memory problem (synthetic runs, tests)."""
    features = torch.as_tensor(features)
    labels = torch.as_tensor(labels).long()
    K = num_classes or int(labels.max()) + 1
    stats = ClassStatistics.from_features(features, labels, K)
    W64 = _as64(W)
    b64 = _as64(b) if b is not None else torch.zeros(W64.shape[0], dtype=torch.float64)
    global_mean = stats.global_mean(conventions)
    logits = _as64(features) @ W64.T + b64 if logits is None else _as64(logits)
    means = centred_means(stats, conventions)
    frame = frame_measures(stats, W64, conventions)
    result = nc1(stats, conventions)
    result.update({
        'nc2_classifier': frame['NC2_ETF_W'], 'nc2_means': frame['NC2_ETF_H'], 'nc3_duality': frame['NC3_ETF_WH'],
        'bias_relation': bias_relation(W64, b64, global_mean),
        'ncc_mismatch': ncc_mismatch_count(features, logits.argmax(1), stats.class_means) / len(labels),
        'equinorm_means': equinorm(means), 'equinorm_classifier': equinorm(W64),
        'equiangularity_means': equiangularity(means), 'max_angle_means': max_angle(means)})
    return result
