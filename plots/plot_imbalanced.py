"""Figures of imbalanced runs (validate_NC_unbalanced.py): the metrics versus epoch, and the
learned versus predicted per-class lengths against the class sizes n_k.

  python plots/plot_imbalanced.py model_weights/<run> [more run folders] [--labels a b]
                                  [--out_dir figures] [--name imbalanced] [--theory_scaling flags|objective]
                                  [--nc1 exact|as_coded]

Reads each run's info.pkl and theory.json. Writes <out_dir>/<name>_metrics.{png,pdf} (NC1 on
a log scale, the recipe's theory metrics, train and test accuracy) and <name>_lengths.{png,pdf}
(feature-mean norms ||h_k|| and classifier-row norms ||w_k|| of the last saved epoch, dots,
against the prediction, lines).

Predictions. dang2023: the absolute lengths of theory.d23_geometry (the global minimiser; a dotted line adds the original's largest root where it differs), ||h_k||^2 = t_k/c_k^2 and
||w_k||^2 = t_k (Dang et al. 2023, imbalanced theorem). With --theory_scaling flags (default,
as the validator) lambda_W and lambda_H are the run's flags; the trainer's data term is the
MSE mean halved, i.e. the theory's objective divided by K (docs/original_code.md, D23-B10), so
--theory_scaling objective uses K lambda_W and K lambda_H, the minimiser the run actually
approaches. dang2024: the targets diag(ReLU(U)^T ReLU(U)) = d_k and diag(W W^T) = T_kk are
known up to a common scale (Dang et al. 2024), so the predicted lengths sqrt(d_k) and
sqrt(T_kk) are drawn with the least-squares scale that best fits the measured ones.
"""
import argparse
import json
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plots import plot_utils  # noqa: E402
from nc_repro import info_files, recipes, theory  # noqa: E402

AS_CODED = {'NC1_collapse_metric': 'NC1_collapse_metric_as_coded', 'NC1': 'NC1_as_coded'}


def metric_keys(recipe, nc1='exact'):
    """The recipe's metric panels; nc1='as_coded' swaps NC1 for the original code's value."""
    keys = [key for key in recipes.get(recipe).info_keys_imbalanced if key not in info_files.ACCURACY_KEYS]
    return [AS_CODED.get(key, key) for key in keys] if nc1 == 'as_coded' else list(keys)


recipe_of, predicted_lengths, fitted_scale = theory.recipe_of, theory.predicted_lengths, theory.fitted_scale


def load_run(run_dir):
    """(info, theory record) of a run folder; a missing file is one line and exit status 2."""
    if os.path.basename(run_dir) == 'info.pkl' and os.path.isfile(run_dir):
        run_dir = os.path.dirname(run_dir) or '.'       # an info.pkl names its run folder
    info = plot_utils.load_info(os.path.join(run_dir, 'info.pkl'), kind='imbalanced')
    plot_utils.check_drawable(info, [key for key in ('NC1', 'NC1_collapse_metric') if key in info],
                              os.path.join(run_dir, 'info.pkl'))
    path = os.path.join(run_dir, 'theory.json')
    try:
        with open(path) as f:
            record = json.load(f)
    except (OSError, ValueError):
        sys.stderr.write('error: %s is missing or unreadable; run validate_NC_unbalanced.py for that run\n' % path)
        raise plot_utils.FigureInputError(2) from None
    return info, record


def draw_metrics(runs, labels, nc1='exact'):
    keys = []
    for info, record in runs:
        keys += [k for k in metric_keys(recipe_of(record), nc1) if info.get(k) and k not in keys]
    panels = keys + ['accuracy']
    fig, axes = plt.subplots(1, len(panels), figsize=(3.3 * len(panels), 3.2), squeeze=False)
    for (info, record), label in zip(runs, labels):
        for ax, key in zip(axes[0], panels):
            if key == 'accuracy':
                line, = ax.plot(info['epoch'], info['train_acc1'], marker='o', ms=3, label=label + ' train')
                ax.plot(info['epoch'], info['test_acc1'], ls='--', color=line.get_color(), label=label + ' test')
            elif info.get(key):
                ax.plot(info['epoch'], [float(v) for v in info[key]], marker='o', ms=3, label=label)
    for ax, key in zip(axes[0], panels):
        if key.startswith('NC1') and all(v > 0 for line in ax.get_lines() for v in line.get_ydata()):
            ax.set_yscale('log')
        ax.set_title(key.replace('_', ' ') if key != 'accuracy' else 'accuracy (%)', fontsize=10)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def draw_lengths(runs, labels, scaling):
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    titles = ('feature-mean norm $\\|\\bar h_k\\|$', 'classifier-row norm $\\|w_k\\|$')
    measured_keys = ('class_mean_norms', 'classifier_row_norms')
    for (info, record), label in zip(runs, labels):
        counts = np.asarray(record['counts'], dtype=float)
        order = np.argsort(counts, kind='stable')
        predictions = predicted_lengths(record, scaling)
        for ax, key, predicted in zip(axes, measured_keys, predictions[:2]):
            measured = np.asarray(info[key][-1], dtype=float)
            note = 'theory' if predictions[2] else 'theory (fitted scale)'
            if not predictions[2]:
                predicted = fitted_scale(predicted, measured) * predicted
            dots = ax.scatter(counts, measured, s=22, label='%s, epoch %d' % (label, info['epoch'][-1]))
            ax.plot(counts[order], predicted[order], color=dots.get_facecolor()[0], lw=1.5,
                    label='%s, %s' % (label, note))
        if recipes.get(recipe_of(record)).imbalanced_theory == 'd23_geometry':   # the original's largest root, where it is not the minimiser
            as_coded = predicted_lengths(record, scaling, rule='as_coded')
            for ax, predicted, other in zip(axes, predictions[:2], as_coded[:2]):
                if not np.allclose(predicted, other):
                    ax.plot(counts[order], other[order], color=dots.get_facecolor()[0], lw=1, ls=':',
                            label="%s, largest root (as coded; not the minimiser)" % label)
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel('class size $n_k$')
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle('learned (dots) vs the global minimiser (lines), lambda from the %s' % (
        'flags' if scaling == 'flags' else "trainer's objective (K lambda)"), fontsize=9)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[plot_utils.out_dir_parser()])
    parser.add_argument('runs', nargs='+', help='run folders holding info.pkl and theory.json (or their info.pkl)')
    parser.add_argument('--labels', nargs='+', default=None)
    parser.add_argument('--name', default='imbalanced', help='file name stem')
    parser.add_argument('--theory_scaling', choices=('flags', 'objective'), default='flags',
                        help="dang2023 lambdas: the run's flags (as the validator) or K times them (the "
                             "trainer's objective)")
    parser.add_argument('--nc1', choices=('exact', 'as_coded'), default='exact',
                        help='NC1 exact (float64, default) or as the original code computed it '
                             '(NC1_collapse_metric_as_coded / NC1_as_coded)')
    args = parser.parse_args(argv)
    plot_utils.check_name(args.name)
    if args.labels and len(args.labels) != len(args.runs):
        parser.error('--labels needs one label per run folder (%d given for %d runs)' % (len(args.labels), len(args.runs)))
    runs = [load_run(run) for run in args.runs]
    labels = args.labels or [os.path.basename(os.path.normpath(run))[:30] for run in args.runs]
    if args.nc1 == 'as_coded':
        for run, (info, record) in zip(args.runs, runs):
            key = metric_keys(recipe_of(record), 'as_coded')[0]
            if not info.get(key):
                parser.error('%s/info.pkl holds no %s; validate it again with this version' % (run, key))
    paths = plot_utils.save_figure(draw_metrics(runs, labels, args.nc1), args.out_dir, args.name + '_metrics')
    paths += plot_utils.save_figure(draw_lengths(runs, labels, args.theory_scaling), args.out_dir, args.name + '_lengths')
    print('figures: %s' % ', '.join(p for p in paths if p.endswith('.png')))
    return paths


if __name__ == '__main__':
    main()
