"""Neural Collapse measures: pure functions of the float64 class statistics
(``nc_statistics.ClassStatistics``) and of the classifier, one function per measure.

Each docstring names the paper and the formula it implements. Where the papers' codes differ,
the choice is a named field of ``recipes.Conventions``; each paper's as-coded choice is its
recipe's ``conventions`` (``recipes.conventions(name)``, which also knows 'zhu2021' and
'papyan2020').

Values that cannot be computed are NaN and the reason is written into a ``reasons`` dict
(key -> sentence); a negative value is explained there too. Nothing in this module forms a
K x K matrix unless asked for (``cdnv_matrix=True``): pairwise measures run over tiles of
``tile`` x ``tile`` class pairs, so memory is O(K D + tile^2) at any K.

Notation: K classes present, N samples, features h_i in R^D, class means mu_k, global mean
mu_G (sample mean, or mean of class means), M~ = [mu_k - mu_G] (K x D) the centred class
means, v_k = tr Sigma_k the within-class variance of class k, classifier W (K x D), bias b,
W~ the classifier rows of the convention, P = (I_K - 11^T/K)/sqrt(K-1) the unit-Frobenius
simplex-ETF Gram target.
"""
import math

import numpy as np
import torch

from nc_repro import frames

EPS64 = torch.finfo(torch.float64).eps


def _as64(matrix):
    return torch.as_tensor(matrix).detach().to(torch.float64)


def nan_because(reasons, key, reason):
    """Record why ``key`` is undefined and return NaN."""
    reasons[key] = reason
    return float('nan')


# ----------------------------------------------------------------------------------------
# pairwise measures over tiles of class pairs

def _tile_squared_distances(a, b, sq_a, sq_b, gram=None):
    """||a_i - b_j||^2 (ta, tb) by the expanded form, with every pair whose value lies within
    the expanded form's rounding bound (8 (D+2) eps64 (||a_i|| + ||b_j||)^2, Higham 2002 §3.1)
    recomputed from the direct differences: exact for coincident and nearly coincident rows.
    ``gram``: a @ b.T when already computed."""
    gram = a @ b.T if gram is None else gram
    squared = (sq_a[:, None] + sq_b[None, :] - 2 * gram).clamp(min=0)
    bound = 8 * (a.shape[1] + 2) * EPS64 * (sq_a.sqrt()[:, None] + sq_b.sqrt()[None, :]) ** 2
    close = torch.nonzero(squared <= bound)
    for start in range(0, len(close), 4096):                     # few pairs; bounded memory
        i, j = close[start:start + 4096].unbind(1)
        squared[i, j] = ((a[i] - b[j]) ** 2).sum(1)
    return squared


def pairwise_measures(vectors, variances=None, riesz_s=1.0, tile=1024, matrix=False):
    """One tiled pass over the ordered pairs k != l of the rows of ``vectors`` (K, D), usually
    the centred class means M~ or the classifier rows W~. Returns sums from which:

    * CDNV (Galanti, Gyorgy & Hutter 2022, class-distance normalised variance):
      V(k, l) = (v_k + v_l) / (2 ||mu_k - mu_l||^2), needs ``variances`` v (K,);
    * equiangularity (Papyan, Han & Donoho 2020, Fig. 3): Std_{k != l} cos(k, l);
    * max-angle (Papyan et al. 2020, Fig. 4): Avg_{k != l} |cos(k, l) + 1/(K-1)|;
    * GNC2 hyperspherical uniformity (Liu et al. 2023, "hyperspherical uniformity gap"): the
      mean pairwise energy of the unit vectors u_k = x_k/||x_k||, with the logarithmic kernel
      log(1/||u_k - u_l||) and the Riesz s-kernel ||u_k - u_l||^(-s).
    Returns a dict of float64 tensors: per-row sums (K,) and, with matrix=True, the K x K CDNV
    matrix (NaN on the diagonal)."""
    X = _as64(vectors)
    K = len(X)
    sq = (X * X).sum(1)
    norms = sq.sqrt()
    unit = X / norms[:, None].clamp(min=torch.finfo(torch.float64).tiny)
    unit_sq = (unit * unit).sum(1)
    etf_cosine = -1.0 / (K - 1)
    rows = {name: torch.zeros(K, dtype=torch.float64, device=X.device)
            for name in ('cosine_shift', 'cosine_shift_sq', 'max_angle', 'log_kernel', 'riesz_kernel',
                         'cdnv', 'coincident_means', 'coincident_directions')}
    cdnv = torch.full((K, K), float('nan'), dtype=torch.float64, device=X.device) if matrix else None
    for r0 in range(0, K, tile):
        r1 = min(r0 + tile, K)
        for c0 in range(0, K, tile):
            c1 = min(c0 + tile, K)
            off_diagonal = torch.arange(r0, r1, device=X.device)[:, None] != torch.arange(c0, c1, device=X.device)[None]
            unit_gram = unit[r0:r1] @ unit[c0:c1].T
            cosine = unit_gram.clamp(-1, 1)
            shift = torch.where(off_diagonal, cosine - etf_cosine, torch.zeros_like(cosine))
            rows['cosine_shift'][r0:r1] += shift.sum(1)
            rows['cosine_shift_sq'][r0:r1] += (shift * shift).sum(1)
            rows['max_angle'][r0:r1] += shift.abs().sum(1)
            unit_distance = _tile_squared_distances(unit[r0:r1], unit[c0:c1], unit_sq[r0:r1], unit_sq[c0:c1],
                                                   unit_gram)
            same_direction = off_diagonal & (unit_distance == 0)
            rows['coincident_directions'][r0:r1] += same_direction.sum(1)
            safe = torch.where(off_diagonal & ~same_direction, unit_distance, torch.ones_like(unit_distance))
            rows['log_kernel'][r0:r1] += torch.where(off_diagonal, -0.5 * safe.log(), torch.zeros_like(safe)).sum(1)
            rows['riesz_kernel'][r0:r1] += torch.where(off_diagonal, safe ** (-riesz_s / 2), torch.zeros_like(safe)).sum(1)
            if variances is not None:
                distance = _tile_squared_distances(X[r0:r1], X[c0:c1], sq[r0:r1], sq[c0:c1])
                same_mean = off_diagonal & (distance == 0)
                rows['coincident_means'][r0:r1] += same_mean.sum(1)
                v = _as64(variances).to(X.device)
                ratio = (v[r0:r1, None] + v[None, c0:c1]) / (2 * torch.where(same_mean | ~off_diagonal,
                                                                          torch.ones_like(distance), distance))
                ratio = torch.where(off_diagonal & ~same_mean, ratio, torch.zeros_like(ratio))
                rows['cdnv'][r0:r1] += ratio.sum(1)
                if matrix:
                    cdnv[r0:r1, c0:c1] = torch.where(off_diagonal, torch.where(same_mean, float('nan'), ratio),
                                                     cdnv[r0:r1, c0:c1])
    rows['zero_vectors'] = norms == 0
    if matrix:
        rows['cdnv_matrix'] = cdnv
    return rows


def summarise_pairwise(rows, prefix, reasons, riesz_s=1.0, with_cdnv=False):
    """The scalar measures of ``pairwise_measures`` sums under ``prefix`` ('means' or 'W')."""
    K = len(rows['log_kernel'])
    pairs = K * (K - 1)
    result = {}
    names = ('equiangularity_' + prefix, 'max_angle_' + prefix, 'GNC2_log_' + prefix, 'GNC2_riesz_' + prefix)
    if bool(rows['zero_vectors'].any()):
        first = int(torch.nonzero(rows['zero_vectors'])[0])
        for name in names:
            result[name] = nan_because(reasons, name, 'row %d of the %s is zero (a centred mean equal to mu_G or a '
                                       'zero classifier row): its angles are undefined' % (first, prefix))
    else:
        total, squares = float(rows['cosine_shift'].sum()), float(rows['cosine_shift_sq'].sum())
        variance = (squares - total * total / pairs) / (pairs - 1) if pairs > 1 else float('nan')
        result[names[0]] = math.sqrt(max(variance, 0.0)) if pairs > 1 else nan_because(
            reasons, names[0], 'one pair of classes: the standard deviation of one cosine is undefined')
        result[names[1]] = float(rows['max_angle'].sum()) / pairs
        if bool(rows['coincident_directions'].any()):
            for name in names[2:]:
                result[name] = nan_because(reasons, name, 'two rows of the %s point the same way: the '
                                           'energy of coincident points is infinite' % prefix)
        else:
            result[names[2]] = float(rows['log_kernel'].sum()) / pairs
            result[names[3]] = float(rows['riesz_kernel'].sum()) / pairs
            if result[names[2]] < 0:
                reasons[names[2]] = ('negative by definition when the unit vectors are more than distance 1 '
                                     'apart on average (log(1/r) < 0 for r > 1; simplex ETF: -log(2K/(K-1))/2)')
    if with_cdnv:
        if bool(rows['coincident_means'].any()):
            first = int(torch.nonzero(rows['coincident_means'])[0])
            result['CDNV'] = nan_because(reasons, 'CDNV', 'class %d has the same mean as another class: '
                                         'its CDNV is a division by zero' % first)
        else:
            result['CDNV'] = float(rows['cdnv'].sum()) / pairs
    return result


# ----------------------------------------------------------------------------------------
# norms and duality

def equinorm(vectors):
    """Papyan, Han & Donoho 2020, Fig. 2: Std_k ||x_k|| / Avg_k ||x_k|| (unbiased std) of the
    rows: the centred class means or the classifier rows. NaN when every row is zero."""
    norms = torch.linalg.norm(_as64(vectors), dim=1)
    return float(norms.std() / norms.mean())


def duality_cosines(classifier_rows, centred_means):
    """cos(w_k, mu_k - mu_G) per class (K,): each class's distance to self-duality."""
    W, M = _as64(classifier_rows), _as64(centred_means)
    return (W * M).sum(1) / (torch.linalg.norm(W, dim=1) * torch.linalg.norm(M, dim=1))


def uniform_duality(cosines, reasons):
    """UNC3 (Wu & Papyan 2024, "Linguistic Collapse", uniform duality): the coefficient of
    variation Std_k / Avg_k of cos(w_k, mu_k - mu_G); 0 when every class is equally aligned."""
    mean = float(cosines.mean())
    if not math.isfinite(mean):
        return nan_because(reasons, 'UNC3', 'a classifier row or a centred class mean is zero: its cosine is undefined')
    if mean == 0:
        return nan_because(reasons, 'UNC3', 'the mean duality cosine is 0: the coefficient of variation is undefined')
    value = float(cosines.std()) / mean
    if value < 0:
        reasons['UNC3'] = 'negative because the mean duality cosine is negative (W points away from the means)'
    return value


def ood_orthogonality(class_means, ood_mean):
    """NC5 (Ben Ammar et al. 2024, NECO, ID/OOD orthogonality): Avg_k |cos(mu_k, mu_G^OOD)|
    between the in-distribution class means (uncentred) and the mean of the OOD features."""
    M, g = _as64(class_means), _as64(ood_mean).to(_as64(class_means).device)
    cosines = (M @ g) / (torch.linalg.norm(M, dim=1) * torch.linalg.norm(g))
    return float(cosines.abs().mean())


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

def as64_cpu(matrix):
    """A float64 CPU copy of a tensor or array (the engine's measures compare on the CPU)."""
    return torch.as_tensor(matrix).detach().to(torch.float64).cpu()


def alignment_error(A, target, normalised=True):
    """|| A/||A||_F - T/||T||_F ||_F in [0, 2], the normalised distance of a matrix to its
    target used for NC2 and NC3 by Zhu et al. 2021, Zhou 2022 and Dang 2023/2024; with
    normalised=False the plain || A - T ||_F (Dang 2023's balanced synthetic script). The targets
    are named values: frames.simplex_etf_gram(K), frames.orthogonal_frame_gram(K), or the
    diagonal closed forms of theory.d23_geometry / theory.d24_targets."""
    A, target = as64_cpu(A), as64_cpu(target)
    if not normalised:
        return float(torch.linalg.norm(A - target))
    return float(torch.linalg.norm(A / torch.linalg.norm(A) - target / torch.linalg.norm(target)))


def classifier_rows(W, conventions):
    """W~ = W - 1 w_bar^T when conventions.center_classifier (J), the raw W otherwise (T), in
    float64: the classifier of Zhou 2022's NC2 (ETF_metric) and NC3 (WH_relation_metric)."""
    W = as64_cpu(W)
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
    All are alignment_error values in [0, 2]."""
    W = as64_cpu(W)
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
    return float(torch.linalg.norm(as64_cpu(W) @ as64_cpu(global_mean) + bias_sign * as64_cpu(b)))


def self_duality_distance(W, stats, conventions):
    """|| W^T/||W||_F - M~^T/||M~||_F ||_F^2 (Papyan 2020's NC3 as in the Colab code)."""
    return alignment_error(as64_cpu(W), centred_means(stats, conventions)) ** 2


# ----------------------------------------------------------------------------------------
# per-sample measures, batched

def cosine_margins(features, labels, W, global_mean, conventions, chunk=8192):
    """J's cosine margin per sample (J's validate_NC.py): c_ik = (W h_i)_k / (||h_i - mu_G|| ||w~_k||)
    with the raw W in the numerator and the centred rows w~_k in the norm; margin_i =
    c_{i,y_i} - max_{k != y_i} c_ik. Returns (N,) float64."""
    W = as64_cpu(W)
    row_norms = torch.linalg.norm(W - W.mean(0, keepdim=True), dim=1)      # (K,) centred rows
    mu = as64_cpu(global_mean)
    margins = []
    for start in range(0, len(labels), chunk):
        h = as64_cpu(features[start:start + chunk])                             # (B, D)
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
    means = as64_cpu(class_means)
    centre = means.mean(0)
    offsets = means - centre                                                 # (K, D)
    sq_norms = (offsets ** 2).sum(1)                                         # (K,)
    largest = sq_norms.max().sqrt()                                          # max_k ||o_k||
    unit_error = 8 * (means.shape[1] + 2) * torch.finfo(torch.float64).eps
    decisions = []
    for start in range(0, len(features), chunk):
        x = as64_cpu(features[start:start + chunk])                             # (B, D)
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
    W, U = as64_cpu(W), as64_cpu(U)
    ratios = (W ** 2).sum(1) / (U ** 2).sum(0)
    return float(torch.linalg.norm(ratios - as64_cpu(r)))


# ----------------------------------------------------------------------------------------
# Papyan et al. 2020's NC2 measures of one set of vectors

def equiangularity(vectors):
    """Papyan et al. 2020's equiangularity of the rows of ``vectors`` (see pairwise_measures)."""
    return summarise_pairwise(pairwise_measures(vectors), 'rows', {})['equiangularity_rows']


def max_angle(vectors):
    """Papyan et al. 2020's max-angle measure of the rows of ``vectors`` (see pairwise_measures)."""
    return summarise_pairwise(pairwise_measures(vectors), 'rows', {})['max_angle_rows']
