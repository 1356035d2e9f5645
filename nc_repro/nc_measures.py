"""Neural Collapse measures beyond the ETF errors of nc_metrics: one function per measure.

Every measure here is a function of the float64 class statistics of ``nc_metrics.ClassStatistics``
and of the classifier; each docstring names the paper and the definition it implements.
Values that cannot be computed are NaN and the reason is written into a ``reasons`` dict
(key -> sentence); a negative value is explained there too. Nothing in this module forms a
K x K matrix unless asked for (``cdnv_matrix=True``): pairwise measures run over tiles of
``tile`` x ``tile`` class pairs, so memory is O(K D + tile^2) at any K.

Notation as in nc_metrics: M~ = [mu_k - mu_G] (K, D) centred class means, v_k = tr Sigma_k the
within-class variance of class k, W~ the classifier rows of the convention.
"""
import math

import torch

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
# the exact per-sample pass

class SamplePass:
    """Per-sample measures against the final class means, batch by batch (NC4, NCC accuracy and
    each class's NC1 contribution), memory O(K D): the second pass over the data.

    means_rows (K_all, D): class means at their label's row; present (K_all,) bool;
    nc1_projection (r, D): diag(1/s) V^T of nc_metrics.nc1_directions (or None)."""

    def __init__(self, means_rows, present, nc1_projection=None):
        from nc_repro.nc_metrics import nearest_class_mean        # noqa: the engine's exact NCC rule
        self._nearest = nearest_class_mean
        self.means_rows, self.present = means_rows, present
        self.labels_of_present = torch.nonzero(present).squeeze(1)
        self.projection = nc1_projection
        K, kw = len(present), dict(dtype=torch.float64, device=means_rows.device)
        self.mismatch, self.ncc_correct = torch.zeros(K, **kw), torch.zeros(K, **kw)
        self.counts, self.nc1_spread = torch.zeros(K, **kw), torch.zeros(K, **kw)

    def update(self, features, labels, decisions):
        """features (B, D), labels (B,), the network's decisions (B,) or None (no NC4)."""
        device = self.means_rows.device
        x = features.detach().to(device, torch.float64)
        y = labels.detach().to(device, torch.long)
        nearest = self.labels_of_present[self._nearest(x, self.means_rows[self.present]).to(device)]
        self.counts.index_add_(0, y, torch.ones_like(y, dtype=torch.float64))
        if decisions is not None:
            self.mismatch.index_add_(0, y, (nearest != decisions.to(device)).double())
        self.ncc_correct.index_add_(0, y, (nearest == y).double())
        if self.projection is not None:
            z = (x - self.means_rows[y]) @ self.projection.T                # (B, r)
            self.nc1_spread.index_add_(0, y, (z * z).sum(1))

    def tensors(self):
        return [self.mismatch, self.ncc_correct, self.counts, self.nc1_spread]


def equiangularity(vectors):
    """Papyan et al. 2020's equiangularity of the rows of ``vectors`` (see pairwise_measures)."""
    return summarise_pairwise(pairwise_measures(vectors), 'rows', {})['equiangularity_rows']


def max_angle(vectors):
    """Papyan et al. 2020's max-angle measure of the rows of ``vectors`` (see pairwise_measures)."""
    return summarise_pairwise(pairwise_measures(vectors), 'rows', {})['max_angle_rows']
