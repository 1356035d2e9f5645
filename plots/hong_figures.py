"""Figures of Hong & Ling 2023 (as Hong's main scripts draw them), with the collapse thresholds
(docs/papers.md, Hong & Ling 2023) drawn on them (not in the reference). Called by block_main.py, minority_l_main.py, minority_n_main.py
and limit_main.py; each function writes <stem>.png (the original's name) and <stem>.pdf."""
import math
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.colors import LogNorm, SymLogNorm  # noqa: E402

from plots.plot_utils import save_figure  # noqa: E402

PANELS_PER_ROW = 5


def _save(fig, stem):
    folder, name = os.path.split(stem)
    os.makedirs(folder or '.', exist_ok=True)
    return save_figure(fig, folder or '.', name)


def nc1_curve(nc1_by_epoch, stem, note=None, lr_switch=None):
    """block_main's NC1 plot: NC1 against epoch, log y (Hong's block_main.py)."""
    epochs = sorted(nc1_by_epoch)
    fig, ax = plt.subplots()
    ax.plot(epochs, [nc1_by_epoch[e] for e in epochs], marker='o', ms=3)
    ax.set_yscale('log')
    ax.set_xlabel('epoch number')
    ax.set_ylabel('$NC_1$')
    if lr_switch:
        ax.axvline(lr_switch, color='gray', ls=':', lw=1, label='lr 0.01 -> 0.001')
        ax.legend(loc='upper right', fontsize=8)
    if note:
        ax.set_title(note, fontsize=7)
    return _save(fig, stem)


def cluster_edges(counts):
    """Positions (k - 0.5) where the class count changes: the predicted block boundaries."""
    return [k - 0.5 for k in range(1, len(counts)) if counts[k] != counts[k - 1]]


def logit_heatmap(pre, counts, stem, note=None):
    """block_main's Z plot: (pre - min + 0.01) / (max - min) with LogNorm, gray (Hong's block_main.py).
    Red dotted lines (not in the reference) separate the clusters of equal class counts, the
    blocks the theory predicts."""
    span = max(float(pre.max() - pre.min()), 1e-12)
    fig, ax = plt.subplots()
    ax.imshow((pre - pre.min() + 0.01) / span, norm=LogNorm(), cmap='gray')
    for edge in cluster_edges(counts):
        ax.axvline(edge, color='red', ls=':', lw=1)
        ax.axhline(edge, color='red', ls=':', lw=1)
    if note:
        ax.set_title(note, fontsize=7)
    return _save(fig, stem)


def sweep_heatmaps(matrices, values, ka, title, stem, collapsed=None, note=None):
    """minority_l / minority_n: one panel per sweep value in ascending order showing pre^T
    (x = true class, y = logit) with SymLogNorm(0.03) over the global min/max, ticks at [0, ka],
    white dashed lines at ka - 0.5 (Hong's minority_n_main.py). 2 x 5 panels for the README's ten values; more
    rows for more values (the original raised IndexError, docs/original_code.md, Hong-B17). Panels whose setting the
    theory predicts to be minority-collapsed get a red frame (not in the reference)."""
    order = np.argsort(values, kind='stable')
    rows = max(2, math.ceil(len(values) / PANELS_PER_ROW))
    K = matrices[0].shape[0]
    vmin, vmax = min(float(m.min()) for m in matrices), max(float(m.max()) for m in matrices)
    fig, axes = plt.subplots(rows, PANELS_PER_ROW, sharex=True, sharey=True,
                             figsize=(4 / 2 * PANELS_PER_ROW + 1, 4 * rows / 2))
    image = None
    for ax, index in zip(axes.flat, order):
        image = ax.imshow(matrices[index].T, cmap='gray',
                          norm=SymLogNorm(linthresh=0.03, vmin=vmin, vmax=vmax))
        ax.set_xticks([0, ka])
        ax.set_yticks([0, ka])
        ax.plot([ka - 0.5, ka - 0.5], [-0.5, K - 0.5], 'w--')
        ax.plot([-0.5, K - 0.5], [ka - 0.5, ka - 0.5], 'w--')
        ax.set_title(title(values[index]))
        if collapsed is not None and collapsed[index]:
            for spine in ax.spines.values():
                spine.set_edgecolor('red')
                spine.set_linewidth(2)
    for ax in list(axes.flat)[len(values):]:
        ax.axis('off')
    fig.colorbar(image, cax=fig.add_axes([0.9, 0.15, 0.02, 0.7]))
    if note:
        fig.suptitle(note, fontsize=8)
    return _save(fig, stem)


def collapse_score_curve(values, scores, xlabel, stem, thresholds, convex_scores=None, log_x=False, small=None):
    """Not in the reference: the minority-collapse score of the trained networks (and of the
    convex program's solution) against the swept quantity, with the thresholds (docs/papers.md, Hong & Ling 2023) as
    vertical lines. thresholds: [(value, label)]; ``small``: the cut-off below which a score
    counts as collapsed, drawn as a horizontal line."""
    order = np.argsort(values, kind='stable')
    x = np.asarray(values, dtype=float)[order]
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(x, np.asarray(scores)[order], 'o-', color='k', label='network')
    if convex_scores is not None:
        ax.plot(x, np.asarray(convex_scores)[order], 's--', color='tab:blue', ms=4, label='convex UFM program')
    for (value, label), colour in zip(thresholds, ('tab:red', 'tab:orange', 'tab:green')):
        if value is not None and math.isfinite(value):
            ax.axvline(value, color=colour, ls=':', lw=1.5, label=label)
    if small is not None:
        ax.axhline(small, color='gray', ls='--', lw=1, label='collapsed below %g' % small)
    if log_x:
        ax.set_xscale('log')
    ax.set_xlabel(xlabel)
    ax.set_ylabel('minority spread / max logit norm')
    ax.legend(fontsize=7)
    return _save(fig, stem)


def limit_cosines(nalist, A, B, AB, stem, convex=None, convex_effective=None, note=None):
    """limit_main's figure (Fig. 9): A red -. , B blue : , AB black -- (lw 2.5), the
    simplex-ETF cosine -1/(K-1) in yellow, x = nalist in the order given. ``convex`` (A, B, AB)
    adds the convex program's values at the level l as crosses, ``convex_effective`` those at
    the effective level (l with the weight decay on W) as circles, and ``note`` a title line
    (none of these are in the reference)."""
    fig, ax = plt.subplots(figsize=(5, 3))
    ax.plot(nalist, A, 'r-.', lw=2.5)
    ax.plot(nalist, B, 'b:', lw=2.5)
    ax.plot(nalist, AB, 'k--', lw=2.5)
    ax.plot([min(nalist), max(nalist)], [-1 / 9, -1 / 9], 'y')
    legend = ['A', 'B', 'AB', 'ETF angle']
    if convex is not None:
        for series, colour in zip(convex, ('r', 'b', 'k')):
            ax.plot(nalist, series, colour + 'x', ms=5, lw=0)
        legend += ['A (convex)', 'B (convex)', 'AB (convex)']
    if convex_effective is not None:
        for series, colour in zip(convex_effective, ('r', 'b', 'k')):
            ax.plot(nalist, series, colour + 'o', ms=4, mfc='none', lw=0)
        legend += ['A (convex, effective l)', 'B (convex, effective l)', 'AB (convex, effective l)']
    if note:
        ax.set_title(note, fontsize=7)
    ax.set_xlim(min(nalist), max(nalist))
    ax.set_xlabel('$n_A$', size=12)
    ax.set_ylabel('cosine angle', size=12)
    ax.legend(legend, fontsize=7)
    return _save(fig, stem)
