"""Neural Collapse statistics, accumulated batch by batch: the class statistics of features
(``ClassStatistics``) and the per-sample pass against the final class means (``SamplePass``).

Statistics are accumulated in float64 with batched matrix products: per-class counts n_k,
sums and squared norms, and the pooled scatter, all of features shifted by a per-class
reference (the class mean of the first batch that contains the class), which removes the
cancellation of one-pass second moments when features are collapsed far from the origin
(tests/test_nc_metrics.py shows that cancellation without the shift). The measures computed
from them are in ``nc_measures``; ``metrics`` is the public interface of both.
"""
import torch

from nc_repro.nc_measures import nearest_class_mean


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
# the exact per-sample pass

class SamplePass:
    """Per-sample measures against the final class means, batch by batch (NC4, NCC accuracy and
    each class's NC1 contribution), memory O(K D): the second pass over the data.

    means_rows (K_all, D): class means at their label's row; present (K_all,) bool;
    nc1_projection (r, D): diag(1/s) V^T of nc_measures.nc1_directions (or None)."""

    def __init__(self, means_rows, present, nc1_projection=None):
        self._nearest = nearest_class_mean      # the engine's exact NCC rule
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
