"""Figures of a synthetic run (synthetic_experiment_{balanced,imbalanced}.py): the metrics
versus iteration (log y), and the learned versus closed-form per-class lengths."""
import json
import os

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from plots import plot_utils  # noqa: E402


def draw_metrics(history, title):
    keys = [k for k in history if k not in ('iteration', 'train_acc') and k != 'loss']
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key in ['loss'] + keys:
        values = np.asarray(history[key], dtype=float)
        if np.all(values > 0):
            ax.plot(history['iteration'], values, label=key, lw=1.6)
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.set_ylabel('metric (log scale)')
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3, which='both')
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def draw_lengths(summary):
    counts = summary['counts']
    classes = np.arange(len(counts))
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    panels = [('WWT', '$\\|w_k\\|^2$ (rows of $W_M\\cdots W_1$)'), ('HTH', '$\\|\\bar h_k\\|^2$ (class means)'),
              ('WH', '$w_k^\\top \\bar h_k$')]
    for ax, (key, label) in zip(axes, panels):
        ax.bar(classes - 0.18, summary[key]['learned_diag'], width=0.36, label='learned')
        ax.bar(classes + 0.18, summary[key]['predicted_diag'], width=0.36, label='closed form')
        ax.set_xticks(classes, ['k=%d\nn=%d' % (k, n) for k, n in zip(classes, counts)], fontsize=8)
        ax.set_title(label, fontsize=10)
        ax.grid(alpha=0.3, axis='y')
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def make_figures(run, out_dir=None):
    """Draw both figures of a run folder; returns the written paths."""
    history = plot_utils.load_info(os.path.join(run, 'metrics.pkl'))
    with open(os.path.join(run, 'summary.json')) as f:
        summary = json.load(f)
    out_dir = out_dir or run
    paths = plot_utils.save_figure(draw_metrics(history, os.path.basename(os.path.normpath(run))),
                                   out_dir, 'synthetic_metrics')
    return paths + plot_utils.save_figure(draw_lengths(summary), out_dir, 'synthetic_lengths')
