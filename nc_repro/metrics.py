"""Neural Collapse metrics for any PyTorch classifier: a streaming accumulator (``NeuralCollapse``),
a hook that collects the input of named layers (``layer_inputs``), and the same at several layers
at once (``MultiLayer``).

    from nc_repro.metrics import NeuralCollapse, layer_inputs
    nc = NeuralCollapse(num_classes=10)
    for features, labels, logits in layer_inputs(model, 'fc', loader):
        nc.update(features, labels, logits)
    result = nc.compute(model.fc.weight, model.fc.bias, convention='dang2023')

The engine is the one ``validate_NC.py`` uses (nc_statistics: ClassStatistics, SamplePass;
nc_measures: nc1, frame_measures, nearest_class_mean), in float64 on the features' device; needs numpy and torch
only. Formulas, conventions and result keys: docs/metrics.md.

Under torch.distributed, ``compute()`` sums the statistics (and the NC4 counts) of all processes,
so each process of a DDP job gets the metrics of the whole data set; every process must call it.
"""
import math

import torch

from nc_repro import nc_measures, nc_statistics, recipes

class NeuralCollapse:
    """Accumulates per-class statistics of last-layer features over batches; ``compute`` then
    measures NC1 to NC4 against a classifier (W, b) under a paper's convention.

    num_classes: K, labels lie in 0..K-1. keep_features=True keeps the features (float32, on
    their device) and the network's decisions for NC4, which compares each sample with the
    final class means; with False, NC4 is left out and memory stays O(K D + D^2)."""

    def __init__(self, num_classes, keep_features=True):
        if int(num_classes) < 2:
            raise ValueError('num_classes must be at least 2 (got %s)' % num_classes)
        self.num_classes, self.keep_features = int(num_classes), keep_features
        self.reset()

    def reset(self):
        """Forget every batch seen."""
        self.statistics = None
        self._features, self._labels, self._decisions, self._ood = [], [], [], None

    def update(self, features, labels, logits=None):
        """Add a batch: features (B, D), labels (B,) in 0..K-1, and the network's logits (B, K)
        for NC4 (pass them with every batch or with none). Any batch order gives the same
        result up to float64 rounding."""
        features, labels = _checked_batch(features, labels, self.num_classes, self.statistics)
        if self.statistics is None:
            self.statistics = nc_statistics.ClassStatistics(self.num_classes, features.shape[1], features.device)
        if self._features and (logits is not None) != bool(self._decisions):
            raise ValueError('update(): pass logits with every batch or with none')
        self.statistics.update(features, labels)
        if self.keep_features:
            self._features.append(features.detach().float())
            self._labels.append(labels.detach().to(features.device))
            if logits is not None:
                if tuple(logits.shape) != (len(labels), self.num_classes):
                    raise ValueError('logits must have shape (%d, %d), got %s'
                                     % (len(labels), self.num_classes, tuple(logits.shape)))
                self._decisions.append(logits.detach().argmax(1).to(features.device))

    def update_ood(self, features):
        """Add a batch of out-of-distribution features (B, D) for NC5; only their mean is kept."""
        features, _ = _checked_batch(features, torch.zeros(len(features), dtype=torch.long), self.num_classes,
                                     self.statistics)
        x = features.detach().to(torch.float64)
        if self._ood is None:
            self._ood = [torch.zeros(x.shape[1], dtype=torch.float64, device=x.device), 0]
        self._ood[0] += x.sum(0)
        self._ood[1] += len(x)

    def compute(self, weight, bias=None, convention='dang2023', per_class=False, nc1_variants=(),
                cdnv_matrix=False, second_pass=None, dense_limit=4096, riesz_s=1.0, tile=1024, as_coded=True):
        """The metrics of the data seen so far (all processes) against the classifier W (K, D)
        and b (K,); ``convention``: a paper of recipes.PAPERS or a recipes.Conventions.
        Returns a dict of floats (norms as lists) under the keys of docs/metrics.md, with
        ``reasons`` {key: why} for every NaN or negative value.

        per_class: add ``per_class``, a dict of per-class lists (classes seen, label order).
        nc1_variants: any of 'svd', 'pinv' ('NC1_svd', 'NC1_pinv'; 'trace' is NC1_trace_ratio).
        cdnv_matrix: add the K x K ``CDNV_matrix`` (a float64 tensor, NaN on the diagonal).
        second_pass: an iterable over the same data again, of (features, labels) or (features,
        labels, logits) batches, for NC4, the NCC accuracy and the per-class NC1 contributions
        with memory O(K D) (keep_features=True uses the kept features instead).
        dense_limit: above this K the measures that need a K x K matrix (NC2/NC3 frame errors)
        are NaN (with a reason) rather than formed; pairwise measures are tiled at any K.
        weight=None: the measures of the features alone (NC1, CDNV, the means' geometry, NCC
        accuracy), for a layer without a classifier; as_coded=False skips the D x D as-coded NC1."""
        conventions = _conventions(convention)
        unknown = set(nc1_variants) - {'svd', 'pinv', 'trace'}
        if unknown:
            raise ValueError("nc1_variants must be among 'svd', 'pinv', 'trace' (got %s)" % sorted(unknown))
        if self.statistics is None:
            raise ValueError('compute() before any update(): no features seen')
        stats = _summed_over_processes(self.statistics)
        present = stats.present.cpu()
        if stats.num_present < 2:
            raise ValueError('fewer than two classes seen (%d); NC needs at least two' % stats.num_present)
        if weight is None:
            return self._feature_measures(stats, conventions, per_class, nc1_variants, cdnv_matrix, second_pass,
                                          riesz_s, tile, as_coded)
        W = nc_measures.as64_cpu(weight)
        if tuple(W.shape) != (self.num_classes, stats.dim):
            raise ValueError('weight must have shape (num_classes, D) = (%d, %d), got %s'
                             % (self.num_classes, stats.dim, tuple(W.shape)))
        b = torch.zeros(self.num_classes, dtype=torch.float64) if bias is None else nc_measures.as64_cpu(bias)
        if tuple(b.shape) != (self.num_classes,):
            raise ValueError('bias must have shape (%d,), got %s' % (self.num_classes, tuple(b.shape)))
        reasons = {}
        W_seen = W[present]                     # NC2/NC3 over the classes that were seen
        result = self._nc1(stats, conventions, nc1_variants, reasons, as_coded)
        if stats.num_present <= dense_limit:
            result.update(nc_measures.frame_measures(stats, W_seen, conventions))
        else:
            for key in FRAME_KEYS:
                result[key] = nc_measures.nan_because(reasons, key, 'K = %d classes > dense_limit = %d: the K x K '
                                                      'matrix is not formed' % (stats.num_present, dense_limit))
        result['Wh_b_relation_metric'] = nc_measures.bias_relation(W, b, stats.global_mean(conventions).cpu(),
                                                                  conventions.bias_sign)
        centred = nc_measures.centred_means(stats, conventions).to(stats.device)
        W_rows = nc_measures.classifier_rows(W_seen, conventions).to(stats.device)
        variances = stats.class_variances
        means_pairs = nc_measures.pairwise_measures(centred, variances, riesz_s, tile, cdnv_matrix)
        W_pairs = nc_measures.pairwise_measures(W_rows, None, riesz_s, tile)
        result.update(nc_measures.summarise_pairwise(means_pairs, 'means', reasons, with_cdnv=True))
        result.update(nc_measures.summarise_pairwise(W_pairs, 'W', reasons))
        for key, rows in (('equinorm_means', centred), ('equinorm_W', W_rows)):
            result[key] = nc_measures.equinorm(rows)
            if result[key] != result[key]:
                reasons[key] = 'every row is zero: the coefficient of variation is undefined'
        result['self_duality'] = nc_measures.self_duality_distance(W_rows, stats, conventions)
        cosines = nc_measures.duality_cosines(W_rows, centred)
        result['UNC3'] = nc_measures.uniform_duality(cosines, reasons)
        if self._ood is not None:
            ood = _summed([self._ood[0].clone(), torch.tensor(float(self._ood[1]), dtype=torch.float64,
                                                                device=self._ood[0].device)])
            result['NC5_ood_orthogonality'] = nc_measures.ood_orthogonality(stats.class_means, ood[0] / ood[1])
        sample_pass = self._sample_pass(stats, conventions, W, b, second_pass, per_class)
        if sample_pass is not None:
            mismatch, correct, counts, spread = _summed(sample_pass.tensors())
            if int(counts.sum()) != stats.num_samples:
                raise ValueError('second_pass gave %d samples, the first pass %d: pass the same data'
                                 % (int(counts.sum()), stats.num_samples))
            result['NC4_ncc_mismatch'] = float(mismatch.sum() / counts.sum())
            result['NCC_accuracy'] = float(correct.sum() / counts.sum())
        if cdnv_matrix:
            result['CDNV_matrix'] = means_pairs['cdnv_matrix'].cpu()
        result['class_mean_norms'] = torch.linalg.norm(stats.class_means, dim=1).cpu().tolist()
        result['classifier_row_norms'] = torch.linalg.norm(W_seen, dim=1).tolist()
        result['classes_seen'] = stats.num_present
        result['num_samples'] = stats.num_samples
        if per_class:
            result['per_class'] = _per_class(stats, result, means_pairs, cosines, centred, W_rows,
                                             sample_pass and (mismatch, correct, counts, spread), reasons)
        # each paper's own info.pkl name for a result key, added beside it under that paper's convention
        renames = recipes.get(convention).metric_key_renames if isinstance(convention, str) else {}
        for alias, key in renames.items():
            result[alias] = result[key]
        result['reasons'] = reasons
        return result

    def _feature_measures(self, stats, conventions, per_class, nc1_variants, cdnv_matrix, second_pass, riesz_s,
                          tile, as_coded):
        """compute() without a classifier: NC1, CDNV, the means' geometry and the NCC accuracy."""
        reasons = {}
        result = self._nc1(stats, conventions, nc1_variants, reasons, as_coded)
        centred = nc_measures.centred_means(stats, conventions).to(stats.device)
        means_pairs = nc_measures.pairwise_measures(centred, stats.class_variances, riesz_s, tile, cdnv_matrix)
        result.update(nc_measures.summarise_pairwise(means_pairs, 'means', reasons, with_cdnv=True))
        result['equinorm_means'] = nc_measures.equinorm(centred)
        sample_pass = self._sample_pass(stats, conventions, None, None, second_pass, per_class)
        if sample_pass is not None:
            _, correct, counts, _ = _summed(sample_pass.tensors())
            result['NCC_accuracy'] = float(correct.sum() / counts.sum())
        result.update(classes_seen=stats.num_present, num_samples=stats.num_samples, reasons=reasons)
        return result

    def _nc1(self, stats, conventions, variants, reasons, as_coded=True):
        """NC1 exact, as coded, the trace ratio and the named variants, with their reasons."""
        names = {'nc1': 'NC1_collapse_metric', 'nc1_as_coded': 'NC1_collapse_metric_as_coded',
                 'svd': 'NC1_svd', 'pinv': 'NC1_pinv'}
        if float((nc_measures.between_class_factor(stats, conventions) ** 2).sum()) == 0:
            return {key: nc_measures.nan_because(reasons, key, 'every class mean equals the global mean: '
                                                 'Sigma_B = 0 and NC1 divides by zero')
                    for key in ['NC1_collapse_metric', 'NC1_collapse_metric_as_coded', 'NC1_trace_ratio']
                    + ['NC1_' + v for v in variants if v != 'trace']} | {'sb_condition': 0.0}
        nc1 = nc_measures.nc1(stats, conventions, as_coded, variants=[v for v in variants if v != 'trace'])
        result = {names[key]: value for key, value in nc1.items() if key in names and value is not None}
        result['NC1_trace_ratio'] = nc_measures.nc1_trace_ratio(stats, conventions)
        result['sb_condition'] = nc1['sb_condition']
        if 'NC1_svd' in result and not math.isfinite(result['NC1_svd']):
            result['NC1_svd'] = nc_measures.nan_because(
                reasons, 'NC1_svd', 'Sigma_B has rank below K-1 (a zero singular value among the top K-1): '
                'its rank K-1 inverse is infinite; NC1_collapse_metric drops that direction')
        for key in [k for k in names.values() if result.get(k) is not None and result[k] < 0]:
            reasons[key] = ('negative by float64 rounding: Sigma_W is zero to working precision along the '
                            'between-class directions (features collapsed onto their means)')
        return result

    def _sample_pass(self, stats, conventions, W, b, second_pass, per_class):
        """The exact per-sample pass over the kept features or ``second_pass``, or None."""
        if not self.keep_features and second_pass is None:
            return None
        projection = None
        if per_class:     # scaled so that the per-class sums add up to NC1
            Vt, s, keep, divisor, _ = nc_measures.nc1_directions(stats, conventions)
            projection = Vt[keep] / s[keep, None] / (stats.num_samples * divisor) ** 0.5
        sample_pass = nc_statistics.SamplePass(stats._mean_rows(), stats.present, projection)
        if W is not None:
            W, b = W.to(stats.device), b.to(stats.device) * conventions.bias_sign
        if second_pass is None:
            batches = zip(self._features, self._labels, self._decisions or [None] * len(self._features))
        else:
            batches = ((batch[0], batch[1], batch[2] if len(batch) > 2 else None) for batch in second_pass)
        for features, labels, logits in batches:
            x = features.to(stats.device)
            if W is None:
                decisions = None
            elif logits is None:
                decisions = (x.double() @ W.T + b).argmax(1)
            else:
                decisions = logits if logits.dim() == 1 else logits.argmax(1)
            sample_pass.update(x, torch.as_tensor(labels), decisions)
        return sample_pass


FRAME_KEYS = ('NC2_ETF_W', 'NC2_Identity_W', 'NC2_GOF_W', 'NC2_ETF_H', 'NC2_Identity_H', 'NC2_GOF_H', 'NC3_ETF_WH',
              'NC3_Identity_WH', 'NC3_GOF_WH', 'NC3_W_sub_H', 'NC3_W_sub_H_centered')


def _per_class(stats, result, means_pairs, cosines, centred, W_rows, sample_pass, reasons):
    """Per-class lists over the classes seen, in label order (docs/metrics.md, per-class keys)."""
    K = stats.num_present
    rows = {'labels': torch.nonzero(stats.present).squeeze(1).cpu().tolist(),
            'counts': stats.class_counts.cpu().tolist(),
            'variance': stats.class_variances.cpu().tolist(),
            'cdnv_row_mean': (means_pairs['cdnv'] / (K - 1)).cpu().tolist(),
            'max_angle_row': (means_pairs['max_angle'] / (K - 1)).cpu().tolist(),
            'class_mean_norm': result['class_mean_norms'],
            'centred_mean_norm': torch.linalg.norm(centred, dim=1).cpu().tolist(),
            'classifier_row_norm': torch.linalg.norm(W_rows, dim=1).cpu().tolist(),
            'duality_cosine': cosines.cpu().tolist()}
    if bool(means_pairs['coincident_means'].any()):
        reasons['per_class.cdnv_row_mean'] = 'classes with coincident means: their rows leave those pairs out'
    if 'cdnv_matrix' in means_pairs:
        rows['cdnv_row'] = means_pairs['cdnv_matrix'].cpu().tolist()
    if sample_pass is None:
        for key in ('nc1_contribution', 'ncc_mismatch', 'ncc_accuracy'):
            nc_measures.nan_because(reasons, 'per_class.' + key, 'needs the samples again: keep_features=True '
                                    'or compute(second_pass=...)')
            rows[key] = [float('nan')] * K
        return rows
    mismatch, correct, counts, spread = (t[stats.present] for t in sample_pass)
    rows['nc1_contribution'] = spread.cpu().tolist()
    rows['ncc_mismatch'] = (mismatch / counts).cpu().tolist()
    rows['ncc_accuracy'] = (correct / counts).cpu().tolist()
    return rows


def _summed(tensors):
    """The sums over all processes of a list of tensors (unchanged without torch.distributed)."""
    if _distributed():
        for tensor in tensors:
            torch.distributed.all_reduce(tensor)
    return tensors


def _conventions(convention):
    if isinstance(convention, recipes.Conventions):
        return convention
    if convention not in recipes.PAPERS:
        raise ValueError('convention must be one of %s (got %r)' % (', '.join(recipes.PAPERS), convention))
    return recipes.get(convention).conventions


def _checked_batch(features, labels, num_classes, statistics):
    """One-line errors for what the engine cannot take; returns (features, labels) as tensors."""
    if not isinstance(features, torch.Tensor) or features.dim() != 2 or not features.is_floating_point():
        raise ValueError('features must be a floating-point tensor of shape (B, D), got %s'
                         % (tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__))
    labels = torch.as_tensor(labels)
    if labels.dim() != 1 or len(labels) != len(features) or labels.is_floating_point():
        raise ValueError('labels must be an integer tensor of shape (%d,), got %s %s'
                         % (len(features), labels.dtype, tuple(labels.shape)))
    if statistics is not None and features.shape[1] != statistics.dim:
        raise ValueError('features have %d columns, earlier batches had %d' % (features.shape[1], statistics.dim))
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError('labels must lie in 0..%d (got %d..%d)' % (num_classes - 1, int(labels.min()), int(labels.max())))
    if not bool(torch.isfinite(features).all()):
        raise ValueError('features contain NaN or infinity (%d entries)' % int((~torch.isfinite(features)).sum()))
    return features, labels


def _distributed():
    return torch.distributed.is_available() and torch.distributed.is_initialized() and \
        torch.distributed.get_world_size() > 1


def _summed_over_processes(stats):
    """The statistics of all processes: each process's sums are moved to a common per-class
    reference (the count-weighted mean of the processes' references, still near the class mean,
    so no cancellation), then summed with all_reduce. The local statistics are unchanged."""
    if not _distributed():
        return stats
    reduce = torch.distributed.all_reduce
    counts = stats.counts.clone()
    reduce(counts)
    n = stats.counts.double()[:, None]                                       # (K, 1) local
    weighted = stats.reference * n
    reduce(weighted)
    total = counts.double()[:, None]
    common = torch.where(total > 0, weighted / total.clamp(min=1), torch.zeros_like(weighted))
    shift = torch.where(n > 0, stats.reference - common, torch.zeros_like(common))   # d_k (K, D)
    # z' = z + d_k:  S' = S + n d,  q' = q + 2 <S_k, d_k> + n_k |d_k|^2,
    # Q' = Q + S^T d + d^T S + d^T diag(n) d
    sums = stats.shifted_sums + n * shift
    sq_norms = stats.shifted_sq_norms + 2 * (stats.shifted_sums * shift).sum(1) + n[:, 0] * (shift ** 2).sum(1)
    scatter = (stats.shifted_scatter + stats.shifted_sums.T @ shift + shift.T @ stats.shifted_sums
               + shift.T @ (n * shift))
    for tensor in (sums, sq_norms, scatter):
        reduce(tensor)
    total_stats = nc_statistics.ClassStatistics(stats.num_classes, stats.dim, stats.device, reference=common)
    total_stats.has_reference = counts > 0
    total_stats.counts, total_stats.shifted_sums = counts, sums
    total_stats.shifted_sq_norms, total_stats.shifted_scatter = sq_norms, scatter
    return total_stats


def layer_inputs(model, layer, batches, device=None, spatial='flatten'):
    """For each (inputs, labels) of ``batches``: (input of ``layer`` as (B, D), labels, the
    model's logits), from forward pre-hooks with the model in eval mode under
    torch.inference_mode; the model's mode is restored afterwards. ``layer``: a module name of
    ``model.named_modules()`` (torchvision's resnet18: 'fc'), the module itself, or a list of
    names, which gives a dict {name: (B, D) input} for all of them from one forward pass.
    spatial: 'flatten' (B, C*H*W) or 'mean' (B, C: average over the dimensions after the
    channel, for convolutional feature maps). Works on any nn.Module; a model returning a tuple
    gives its first element as the logits."""
    if spatial not in ('flatten', 'mean'):
        raise ValueError("spatial must be 'flatten' or 'mean' (got %r)" % spatial)
    several = isinstance(layer, (list, tuple))
    names = list(layer) if several else [layer]
    modules = dict(model.named_modules())
    for name in names:
        if not isinstance(name, torch.nn.Module) and name not in modules:
            linear = [key for key, module in modules.items() if isinstance(module, torch.nn.Linear)]
            raise ValueError('model has no layer %r; its Linear layers: %s' % (name, ', '.join(linear) or 'none'))
    if device is None:
        device = next(iter(model.parameters())).device
    captured = {}

    def hook(name):
        def keep(module, inputs):
            x = inputs[0]
            captured[name] = x.flatten(1) if spatial == 'flatten' or x.dim() <= 2 else x.flatten(2).mean(2)
        return keep

    handles = [(name if isinstance(name, torch.nn.Module) else modules[name]).register_forward_pre_hook(
        hook(index)) for index, name in enumerate(names)]
    was_training = model.training
    model.eval()
    try:
        for inputs, labels in batches:
            captured.clear()
            with torch.inference_mode():
                output = model(inputs.to(device))
            logits = output[0] if isinstance(output, (tuple, list)) else output
            features = {name: captured[index] for index, name in enumerate(names)} if several else captured[0]
            yield features, labels.to(device), logits
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


class MultiLayer:
    """NC1, CDNV and the NCC accuracy at several named layers of one model from one pass over
    the data: the progressive collapse across depth (Rangamani et al. 2023; the per-layer
    curves of Dang et al. 2023), for any nn.Module.

        ml = MultiLayer(10, ['layer3', 'layer4', 'fc'])
        for features, labels, _ in layer_inputs(model, ml.layers, batches, spatial='mean'):
            ml.update(features, labels)
        ml.compute()   # {'layer3': {'NC1_collapse_metric': ..., 'CDNV': ..., 'NCC_accuracy': ...}, ...}

    Each layer is a NeuralCollapse without a classifier (its memory: O(K D_l + D_l^2), plus the
    features when keep_features=True, which the NCC accuracy needs unless compute() gets a
    second_pass of ({name: features}, labels) batches)."""

    def __init__(self, num_classes, layers, keep_features=True):
        self.layers = list(layers)
        self.accumulators = {name: NeuralCollapse(num_classes, keep_features) for name in self.layers}

    def update(self, features, labels):
        """features: {layer name: (B, D_l)} (layer_inputs with a list of names), labels (B,)."""
        for name in self.layers:
            self.accumulators[name].update(features[name], labels)

    def compute(self, convention='dang2023', second_pass=None):
        """{layer: {NC1_collapse_metric, NC1_trace_ratio, CDNV, NCC_accuracy (when the samples
        are kept or given again), reasons}}; the exact NC1 only (no D x D as-coded inverse)."""
        keys = ('NC1_collapse_metric', 'NC1_trace_ratio', 'CDNV', 'NCC_accuracy', 'classes_seen', 'reasons')
        result = {}
        for name in self.layers:
            again = None if second_pass is None else [(x[name], y) for x, y in second_pass]
            measured = self.accumulators[name].compute(None, convention=convention, second_pass=again,
                                                       as_coded=False)
            result[name] = {key: measured[key] for key in keys if key in measured}
        return result


# ----------------------------------------------------------------------------------------

def measure(features, labels, W, b, conventions, logits=None, num_classes=None):
    """All balanced-data measures of one in-memory problem (synthetic runs, tests)."""
    features = torch.as_tensor(features)
    labels = torch.as_tensor(labels).long()
    K = num_classes or int(labels.max()) + 1
    stats = nc_statistics.ClassStatistics.from_features(features, labels, K)
    W64 = nc_measures.as64_cpu(W)
    b64 = nc_measures.as64_cpu(b) if b is not None else torch.zeros(W64.shape[0], dtype=torch.float64)
    global_mean = stats.global_mean(conventions)
    logits = nc_measures.as64_cpu(features) @ W64.T + b64 if logits is None else nc_measures.as64_cpu(logits)
    means = nc_measures.centred_means(stats, conventions)
    frame = nc_measures.frame_measures(stats, W64, conventions)
    result = nc_measures.nc1(stats, conventions)
    result.update({
        'nc2_classifier': frame['NC2_ETF_W'], 'nc2_means': frame['NC2_ETF_H'], 'nc3_duality': frame['NC3_ETF_WH'],
        'bias_relation': nc_measures.bias_relation(W64, b64, global_mean),
        'ncc_mismatch': nc_measures.ncc_mismatch_count(features, logits.argmax(1), stats.class_means) / len(labels),
        'equinorm_means': nc_measures.equinorm(means), 'equinorm_classifier': nc_measures.equinorm(W64),
        'equiangularity_means': nc_measures.equiangularity(means), 'max_angle_means': nc_measures.max_angle(means)})
    return result
