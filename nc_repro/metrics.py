"""Neural Collapse metrics for any PyTorch classifier: a streaming accumulator (``NeuralCollapse``)
and a hook that collects the input of a named classifier layer (``layer_inputs``).

    from nc_repro.metrics import NeuralCollapse, layer_inputs
    nc = NeuralCollapse(num_classes=10)
    for features, labels, logits in layer_inputs(model, 'fc', loader):
        nc.update(features, labels, logits)
    result = nc.compute(model.fc.weight, model.fc.bias, convention='dang2023')

The engine is the one ``validate_NC.py`` uses (nc_metrics: ClassStatistics, nc1,
frame_measures, nearest_class_mean), in float64 on the features' device; needs numpy and torch
only. Formulas, conventions and result keys: docs/metrics.md.

Under torch.distributed, ``compute()`` sums the statistics (and the NC4 counts) of all processes,
so each process of a DDP job gets the metrics of the whole data set; every process must call it.
"""
import torch

from nc_repro import nc_metrics

PAPER_CONVENTIONS = ('zhou2022', 'dang2023', 'dang2024', 'hong2023')

# each paper's own info.pkl name for a result key, added beside it under that convention
PAPER_ALIASES = {
    'zhou2022': {'collapse_metric': 'NC1_collapse_metric',
                 'collapse_metric_as_coded': 'NC1_collapse_metric_as_coded',
                 'ETF_metric': 'NC2_ETF_W', 'WH_relation_metric': 'NC3_ETF_WH',
                 'NC2_means_ETF': 'NC2_ETF_H'},
    'dang2023': {},
    'dang2024': {'NC1': 'NC1_collapse_metric', 'NC1_as_coded': 'NC1_collapse_metric_as_coded'},
    'hong2023': {},
}


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
        self._features, self._decisions = [], []

    def update(self, features, labels, logits=None):
        """Add a batch: features (B, D), labels (B,) in 0..K-1, and the network's logits (B, K)
        for NC4 (pass them with every batch or with none). Any batch order gives the same
        result up to float64 rounding."""
        features, labels = _checked_batch(features, labels, self.num_classes, self.statistics)
        if self.statistics is None:
            self.statistics = nc_metrics.ClassStatistics(self.num_classes, features.shape[1], features.device)
        if self._features and (logits is not None) != bool(self._decisions):
            raise ValueError('update(): pass logits with every batch or with none')
        self.statistics.update(features, labels)
        if self.keep_features:
            self._features.append(features.detach().float())
            if logits is not None:
                if tuple(logits.shape) != (len(labels), self.num_classes):
                    raise ValueError('logits must have shape (%d, %d), got %s'
                                     % (len(labels), self.num_classes, tuple(logits.shape)))
                self._decisions.append(logits.detach().argmax(1).to(features.device))

    def compute(self, weight, bias=None, convention='dang2023'):
        """The metrics of the data seen so far (all processes) against the classifier W (K, D)
        and b (K,); ``convention``: a name of PAPER_CONVENTIONS or an nc_metrics.Conventions.
        Returns a dict of floats (norms as lists) under the keys of docs/metrics.md."""
        conventions = _conventions(convention)
        if self.statistics is None:
            raise ValueError('compute() before any update(): no features seen')
        stats = _summed_over_processes(self.statistics)
        present = stats.present.cpu()
        if stats.num_present < 2:
            raise ValueError('fewer than two classes seen (%d); NC needs at least two' % stats.num_present)
        W = nc_metrics._as64(weight)
        if tuple(W.shape) != (self.num_classes, stats.dim):
            raise ValueError('weight must have shape (num_classes, D) = (%d, %d), got %s'
                             % (self.num_classes, stats.dim, tuple(W.shape)))
        b = torch.zeros(self.num_classes, dtype=torch.float64) if bias is None else nc_metrics._as64(bias)
        if tuple(b.shape) != (self.num_classes,):
            raise ValueError('bias must have shape (%d,), got %s' % (self.num_classes, tuple(b.shape)))
        W_seen = W[present]                     # NC2/NC3 over the classes that were seen
        nc1 = nc_metrics.nc1(stats, conventions)
        result = {'NC1_collapse_metric': nc1['nc1'], 'NC1_collapse_metric_as_coded': nc1['nc1_as_coded'],
                  'NC1_trace_ratio': nc_metrics.nc1_trace_ratio(stats, conventions),
                  'sb_condition': nc1['sb_condition']}
        result.update(nc_metrics.frame_measures(stats, W_seen, conventions))
        result['Wh_b_relation_metric'] = nc_metrics.bias_relation(W, b, stats.global_mean(conventions).cpu())
        if self.keep_features:
            result['NC4_ncc_mismatch'] = self._ncc_mismatch(stats, W, b)
        result['class_mean_norms'] = torch.linalg.norm(stats.class_means, dim=1).cpu().tolist()
        result['classifier_row_norms'] = torch.linalg.norm(W_seen, dim=1).tolist()
        result['classes_seen'] = stats.num_present
        result['num_samples'] = stats.num_samples
        for alias, key in PAPER_ALIASES.get(convention if isinstance(convention, str) else '', {}).items():
            result[alias] = result[key]
        return result

    def _ncc_mismatch(self, stats, W, b):
        """NC4: fraction of samples whose nearest class mean (over the classes seen) is not the
        network's decision (argmax of the logits given to update, or of W h + b)."""
        device = stats.device
        features = torch.cat(self._features).to(device)
        present_labels = torch.nonzero(stats.present).squeeze(1)                # (K_seen,)
        nearest = present_labels[nc_metrics.nearest_class_mean(features, stats.class_means).to(device)]
        if self._decisions:
            decisions = torch.cat(self._decisions).to(device)
        else:
            decisions = (features.double() @ W.to(device).T + b.to(device)).argmax(1)
        counts = torch.tensor([float((nearest != decisions).sum()), float(len(decisions))],
                              dtype=torch.float64, device=device)
        if _distributed():
            torch.distributed.all_reduce(counts)
        return float(counts[0] / counts[1])


def _conventions(convention):
    if isinstance(convention, nc_metrics.Conventions):
        return convention
    if convention not in PAPER_CONVENTIONS:
        raise ValueError('convention must be one of %s (got %r)' % (', '.join(PAPER_CONVENTIONS), convention))
    return nc_metrics.CONVENTIONS[convention]


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
    total_stats = nc_metrics.ClassStatistics(stats.num_classes, stats.dim, stats.device, reference=common)
    total_stats.has_reference = counts > 0
    total_stats.counts, total_stats.shifted_sums = counts, sums
    total_stats.shifted_sq_norms, total_stats.shifted_scatter = sq_norms, scatter
    return total_stats


def layer_inputs(model, layer, batches, device=None):
    """For each (inputs, labels) of ``batches``: (input of ``layer`` flattened to (B, D), labels,
    the model's logits), from a forward pre-hook with the model in eval mode under
    torch.inference_mode; the model's mode is restored afterwards. ``layer``: a module name of
    ``model.named_modules()`` (torchvision's resnet18: 'fc') or the module itself. Works on any
    nn.Module; a model returning a tuple gives its first element as the logits."""
    modules = dict(model.named_modules())
    if isinstance(layer, torch.nn.Module):
        module = layer
    elif layer in modules:
        module = modules[layer]
    else:
        linear = [name for name, module in modules.items() if isinstance(module, torch.nn.Linear)]
        raise ValueError('model has no layer %r; its Linear layers: %s' % (layer, ', '.join(linear) or 'none'))
    if device is None:
        device = next(iter(model.parameters())).device
    captured = []
    handle = module.register_forward_pre_hook(lambda hooked, inputs: captured.append(inputs[0]))
    was_training = model.training
    model.eval()
    try:
        for inputs, labels in batches:
            captured.clear()
            with torch.inference_mode():
                output = model(inputs.to(device))
            logits = output[0] if isinstance(output, (tuple, list)) else output
            yield captured[-1].flatten(1), labels.to(device), logits
    finally:
        handle.remove()
        model.train(was_training)
