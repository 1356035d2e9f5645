"""The info files of a validated run: info.pkl (the paper's per-epoch lists, J's layout) and
info.json (the scalar series, readable), rewritten atomically after every epoch, and the
epochs whose NC metrics are undefined (dead or diverged features), marked NaN with the reason
under ``UNDEFINED_KEY``.
"""
import json
import os
import pickle

import numpy as np
import torch
from tqdm import tqdm

from nc_repro import fileio



def append_epoch(info, epoch, metrics):
    """Append one epoch's values to the dict of per-epoch lists (J's info.pkl layout); a dict
    value (per_layer) becomes a dict of per-epoch lists."""
    info.setdefault('epoch', []).append(epoch)
    for key, value in metrics.items():
        if isinstance(value, dict):
            for name, layer_values in value.items():
                info.setdefault(key, {}).setdefault(name, []).append(layer_values)
        else:
            info.setdefault(key, []).append(value)


def scalar_series(info):
    """The per-epoch scalar series (and per-layer lists), for info.json; non-finite values
    become None (null), with the reason under UNDEFINED_KEY."""
    series = {}
    for key, values in info.items():
        if isinstance(values, dict):
            series[key] = {name: [[float(x) for x in layers] for layers in per_epoch]
                           for name, per_epoch in values.items()}
        elif values and all(isinstance(v, (int, float, np.floating, np.integer)) for v in values):
            series[key] = [float(v) for v in values]
    if UNDEFINED_KEY in info:
        series[UNDEFINED_KEY] = info[UNDEFINED_KEY]
    return fileio.finite_json_values(series)


def write_info(run_dir, info):
    fileio.atomic_write(os.path.join(run_dir, 'info.pkl'), lambda f: pickle.dump(info, f))
    fileio.atomic_write_text(os.path.join(run_dir, 'info.json'),
                                  json.dumps(scalar_series(info), indent=1, allow_nan=False) + '\n')


# ----------------------------------------------------------------------------------------
# epochs whose NC metrics are undefined

UNDEFINED_KEY = 'nc_undefined'     # per epoch: None, or why that epoch's NC metrics are NaN
ACCURACY_KEYS = ('train_acc1', 'train_acc5', 'test_acc1', 'test_acc5')


def undefined_reason(train):
    """Why NC metrics cannot be read from these features (a validation.FeaturePass), or None:
    features that are not finite (the weights diverged), or dead features, where every class
    has the same mean (e.g. every ReLU is off), so NC1 comes out 0 without any collapse."""
    h = train.layer_inputs[0]
    if not bool(torch.isfinite(h).all()):
        return 'features are not finite (the weights diverged)'
    present = torch.unique(train.labels)
    means = torch.stack([h[train.labels == k].double().mean(0) for k in present])
    if float((means - means.mean(0)).abs().max()) <= 1e-7 * max(1.0, float(means.abs().max())):
        return 'dead features: every class has the same mean feature, so NC metrics are undefined (not collapse)'
    return None


def nonfinite_keys(metrics):
    return sorted(key for key, value in metrics.items()
                  if isinstance(value, (float, np.floating)) and not np.isfinite(value))


def mark_undefined(metrics, reason):
    """The epoch's metrics with every NC scalar (all floats but the accuracies, per layer too)
    set to NaN, because ``reason``."""
    marked = {}
    for key, value in metrics.items():
        if isinstance(value, dict):
            marked[key] = {name: [float('nan')] * len(layers) for name, layers in value.items()}
        elif isinstance(value, (float, np.floating)) and key not in ACCURACY_KEYS:
            marked[key] = float('nan')
        else:
            marked[key] = value
    return marked


def record_undefined(info, epoch, metrics, train):
    """Check one epoch's metrics. Dead or non-finite features, or a non-finite metric, give a
    warning line and the reason in info[UNDEFINED_KEY] (None for the good epochs, created at
    the first bad one); returns the metrics to store (NaN for undefined NC values)."""
    reason = undefined_reason(train)
    if reason:
        metrics = mark_undefined(metrics, reason)
    elif nonfinite_keys(metrics):
        reason = 'not finite: %s' % ', '.join(nonfinite_keys(metrics))
    if reason:
        tqdm.write('warning: epoch %d: %s; its NC values are NaN in info.pkl and null in info.json '
                   '(reason under "%s")' % (epoch, reason, UNDEFINED_KEY))
        info.setdefault(UNDEFINED_KEY, [None] * len(info.get('epoch', [])))
    if UNDEFINED_KEY in info:
        info[UNDEFINED_KEY].append(reason)
    return metrics
