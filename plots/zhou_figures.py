"""The ten figures of Zhou et al. 2022's five plot scripts, drawn by one piece of code.

J's plot_optim_mse.py, plot_etf_mse.py, plot_dk_mse.py, plot_M_rmse.py and plot_k_rmse.py each carry
their own copy of the same ten figure functions. Here they are two functions, ``plot_epoch_metric``
(eight per-epoch curves) and ``plot_margin_distribution`` (the sorted cosine margins of the last
epoch, whole or its smallest 1000), driven by one table per script (``FIGURES``): the runs (uid,
legend label, colour, marker), the y labels, y ticks, y ranges and legend places of J's five scripts.
The five scripts only name their table:

  python plots/plot_optim_mse.py [--weights_dir model_weights] [--out_dir figures] [--epochs N]
  python plots/plot_k_rmse.py --quick                 # the quick grid: every uid + '_quick'
  python plots/plot_dk_mse.py --uids run_a run_b --labels 'd=5' 'd=10'

Everything J draws is kept (figure size, line width, marker size, alpha, fonts, grid, series order,
colours, markers, legends, y ticks and ranges, linear axes, file names). Departures (docs/original_code.md, J-B2 to J-B5):
* Output goes to <out_dir>/<figure set>/ (figures/optim_mse/resnet18-NC1.png and .pdf, ...), one folder
  per script. J joins an absolute '/imgs/...' onto model_weights, so its figures land at the
  filesystem root, and plot_k_rmse.py writes into plot_M_rmse.py's folder, overwriting its PDFs.
* The x axis follows the data. J hard-codes 200 epochs (axis [0, 200], ticks 0, 50, ..., 200, a marker
  every 25 epochs) and 50,000 samples (ticks 0..50,000 step 10,000, a marker every 10,000). Here the
  axis is [0, E] with E the last epoch drawn (or --epochs) and [0, N] with N the run's training samples,
  ticks at quarters (fifths for samples) and a marker every eighth of the points (fifth of the samples);
  200 epochs and 50,000 samples give exactly J's ticks and marker spacing.
* plot_k_rmse.py's NC2 legend. J's plot_ETF there passes the five M-legend entries ('$\\alpha=1, M=1$',
  '$\\alpha=1, M=3$', ...) for its four k curves, so the alpha = 5, 15, 20 curves were labelled M = 3, 5, 7.
  Here every figure of the k set is labelled '$\\alpha=k, M=1$'.
* plot_optim_mse.py reads the LBFGS run named ..._LBFGS_bias_true_batchsize_512_..., as J's plot does;
  J's cmds_mse.sh never produced that run (J-B1, J-B2), our fixed grid does (train_2nd_order.py).
* Each info.pkl is read once (J reads each twice). A missing or unreadable run is one line on stderr
  and the other runs are drawn; when no run can be read the script stops with a one-line error.
* x values are info['epoch'] when our validator stored them (runs validated every few epochs), else
  1..E; J plots list positions 0..E-1. The margin distributions are plotted against the sample index.
* --free_y leaves the y range to matplotlib (J's ranges suit 200-epoch CIFAR runs, not quick runs).
"""
import argparse
import dataclasses
import os
import sys
from dataclasses import dataclass

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from nc_repro import safe_load  # noqa: E402
from plots import plot_utils  # noqa: E402

# J's drawing constants (common to its plot scripts): one (10, 8) figure per panel, thick translucent curves.
FIGSIZE = (10, 8)
LINE_WIDTH, ALPHA, MARKER_SIZE = 5, 0.7, 16
LABEL_FONTSIZE, TICK_FONTSIZE, LEGEND_FONTSIZE = 40, 30, 30
PARTIAL_MARGINS = 1000          # J's plot_part_cos_margin_distribution(k=1000)

# Keys a Zhou 2022 info.pkl must hold to be drawn (the keys J's validate_NC.py pickles); nuclear_metric may be absent or [].
REQUIRED_KEYS = ('collapse_metric', 'ETF_metric', 'WH_relation_metric', 'Wh_b_relation_metric',
                 'avg_cos_margin', 'all_cos_margin', 'train_acc1', 'test_acc1')


@dataclass(frozen=True)
class Series:
    """One run of a figure set: where its info.pkl is and how its curve looks."""
    uid: str
    label: str
    color: str
    marker: str
    part_marker: str = None     # J draws its 'X' curves with 'v' in the partial-margin figure


@dataclass(frozen=True)
class Panel:
    """One of J's ten figure functions: what it plots and the file it writes."""
    name: str                   # key into a figure set's axes table
    function: str               # J's function name
    file_name: str
    info_key: str
    ylabel: str
    kind: str                   # 'epoch', 'margin' (all samples) or 'margin_part' (smallest 1000)


@dataclass(frozen=True)
class Axis:
    """The y side of a panel: ticks as np.arange(start, stop, step) arguments, as J writes them,
    the y range, the legend location, and a y label replacing the panel's default."""
    yticks: tuple
    ylim: tuple
    legend_loc: str = 'best'    # J's loc=1 is 'upper right', loc=4 'lower right', none is 'best'
    ylabel: str = None


@dataclass(frozen=True)
class FigureSet:
    """The table behind one of J's plot scripts."""
    name: str                   # output sub-folder
    title: str
    series: tuple
    axes: dict


# J's main() order; the y labels common to all J plot scripts.
PANELS = (
    Panel('NC1', 'plot_collapse', 'resnet18-NC1', 'collapse_metric', r'$\mathcal{NC}_1$', 'epoch'),
    Panel('NC2', 'plot_ETF', 'resnet18-NC2', 'ETF_metric', r'$\mathcal{NC}_2$', 'epoch'),
    Panel('NC3', 'plot_WH_relation', 'resnet18-NC3', 'WH_relation_metric', r'$\mathcal{NC}_3$', 'epoch'),
    Panel('NC4', 'plot_residual', 'resnet18-NC4', 'Wh_b_relation_metric', r'$\mathcal{NC}_4$', 'epoch'),
    Panel('train_acc', 'plot_train_acc', 'resnet18-train-acc', 'train_acc1', 'Training accuracy', 'epoch'),
    Panel('test_acc', 'plot_test_acc', 'resnet18-test-acc', 'test_acc1', 'Testing accuracy', 'epoch'),
    Panel('margin', 'plot_cos_margin_distribution', 'c_margin_dist', 'all_cos_margin',
          r'$\mathcal{P}_{CM}$', 'margin'),
    Panel('nuclear', 'plot_nuclear', 'resnet18-nuclear', 'nuclear_metric', 'NF_metric', 'epoch'),
    Panel('avg_margin', 'plot_avg_cos_margin', 'resnet18-avg-cmargin', 'avg_cos_margin', r'$\bar{CM}$', 'epoch'),
    Panel('margin_part', 'plot_part_cos_margin_distribution', 'c_margin_dist_part', 'all_cos_margin',
          r'$\mathcal{P}_{CM}$', 'margin_part'),
)

# J's plot_optim_mse.py
OPTIM_AXES = {
    'NC1': Axis((-2, 6.01, 2), (-0.2, 6), 'upper right'),
    'NC2': Axis((0, 0.81, .2), (-0.02, 0.8), 'upper right'),
    'NC3': Axis((0, 1.01, 0.2), (0, 1), 'upper right'),
    'NC4': Axis((0, 0.51, 0.1), (0, 0.5), 'upper right'),
    'train_acc': Axis((20, 110, 20), (20, 102), 'lower right'),
    'test_acc': Axis((30, 80.1, 10), (30, 80), 'lower right'),
    'margin': Axis((-1.2, 1.21, 0.4), (-1.2, 1.2), 'lower right'),
    'nuclear': Axis((0, 8.1, 2), (0, 8), 'upper right'),
    'avg_margin': Axis((-0.4, 1.21, 0.4), (-0.4, 1.2), 'lower right'),
    'margin_part': Axis((-1.2, 1.21, 0.4), (-1.2, 1.2), 'lower right'),
}

# J's plot_etf_mse.py: default legend place except the two margin distributions.
ETF_AXES = {
    'NC1': Axis((0, 12.1, 4), (-0.4, 12)),
    'NC2': Axis((-0.2, 1.21, .2), (-0.02, 1.2)),
    'NC3': Axis((0, 1.21, 0.2), (0, 1.2)),
    'NC4': Axis((0, 1.01, 0.2), (0, 1.0)),
    'train_acc': Axis((40, 110, 20), (20, 102)),
    'test_acc': Axis((20, 100.1, 10), (20, 100)),
    'margin': Axis((-1.2, 1.3, 0.4), (-1.2, 1.3), 'lower right'),
    'nuclear': Axis((0, 6.1, 1), (0, 6)),
    'avg_margin': Axis((-0.4, 1.21, 0.4), (-0.4, 1.2)),
    'margin_part': Axis((-1.2, 1.21, 0.4), (-1.2, 1.2), 'lower right'),
}

# J's plot_dk_mse.py, plot_M_rmse.py, plot_k_rmse.py: plot_etf_mse.py's ticks and ranges, the
# default legend place everywhere, three other y labels.
DK_AXES = dict(ETF_AXES)
DK_AXES.update({
    'margin': dataclasses.replace(ETF_AXES['margin'], legend_loc='best', ylabel='Cos Margin Distribution'),
    'nuclear': dataclasses.replace(ETF_AXES['nuclear'], ylabel='Avg. class NF_metric'),
    'avg_margin': dataclasses.replace(ETF_AXES['avg_margin'], ylabel='Avg. Cos Margin'),
    'margin_part': dataclasses.replace(ETF_AXES['margin_part'], legend_loc='best'),
})

_CIFAR_SOTA = 'cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_%s_fixdim_%s_sota_true'
_MINI_RMSE = 'mini_imagenet_RMSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_true_M_%d_k_%d'
# J's five-curve style sequence (plot_etf_mse.py to plot_k_rmse.py): cyan v, blue o, green s, red X ('v' when partial), purple >.
_STYLES = (('c', 'v', None), ('b', 'o', None), ('g', 's', None), ('r', 'X', 'v'), ('purple', '>', None))


def _styled(uids_and_labels):
    return tuple(Series(uid, label, color, marker, part)
                 for (uid, label), (color, marker, part) in zip(uids_and_labels, _STYLES))


FIGURES = {
    'optim_mse': FigureSet('optim_mse', 'NC under SGD, Adam and LBFGS (MSE, CIFAR-10, ResNet18)', (
        Series('cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_false', 'SGD', 'r', 'v'),
        Series('cifar10_MSE_Adam_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_false', 'Adam', 'b', 'o'),
        Series('cifar10_MSE_LBFGS_bias_true_batchsize_512_ETFfc_false_fixdim_false_sota_false', 'LBFGS', 'g', 's'),
    ), OPTIM_AXES),
    'etf_mse': FigureSet('etf_mse', 'learned versus fixed simplex-ETF classifier, d=512 and d=10', _styled([
        (_CIFAR_SOTA % ('false', 'false'), 'learned classifier, d=512'),
        (_CIFAR_SOTA % ('true', 'false'), 'fixed classifier, d=512'),
        (_CIFAR_SOTA % ('false', '10'), 'learned classifier, d=10'),
        (_CIFAR_SOTA % ('true', '10'), 'fixed classifier, d=10'),
    ]), ETF_AXES),
    'dk_mse': FigureSet('dk_mse', 'feature dimension d around K = 10', _styled([
        (_CIFAR_SOTA % ('false', d), 'd=%d' % d) for d in (5, 8, 9, 10, 512)]), DK_AXES),
    'M_rmse': FigureSet('M_rmse', 'rescaled MSE, M varied with alpha = k = 1 (mini-ImageNet)', _styled([
        (_MINI_RMSE % (M, 1), r'$\alpha=1, M=%d$' % M) for M in (1, 3, 5, 7, 10)]), DK_AXES),
    'k_rmse': FigureSet('k_rmse', 'rescaled MSE, alpha = k varied with M = 1 (mini-ImageNet)', _styled([
        (_MINI_RMSE % (1, k), r'$\alpha=%d, M=1$' % k) for k in (1, 5, 15, 20)]), DK_AXES),
}

# styles for runs beyond a table's length (--uids with more runs than the paper's figure)
_EXTRA_MARKERS = ('D', '^', '<', 'P', '*', 'h')


# ----------------------------------------------------------------------------------------
# ticks and data

def even_ticks(total, parts):
    """Ticks splitting [0, total] into ``parts`` equal integer steps when ``total`` divides,
    else matplotlib's integer ticks inside [0, total]. even_ticks(200, 4) is J's epoch ticks
    [0, 50, 100, 150, 200]; even_ticks(50000, 5) its sample ticks 0..50000 step 10000."""
    total = int(total)
    if total >= parts and total % parts == 0:
        return list(range(0, total + 1, total // parts))
    ticks = MaxNLocator(nbins=parts, integer=True).tick_values(0, max(total, 1))
    return [int(t) for t in ticks if 0 <= t <= max(total, 1)]


def marker_spacing(num_points, markers):
    """J's markevery rescaled: 25 for 200 epochs (8 markers), 10000 for 50000 samples (5)."""
    return max(1, int(round(num_points / markers)))


def run_epochs(info):
    """Epoch number of each entry of the per-epoch lists: info['epoch'] when stored, else 1..E."""
    length = len(info['collapse_metric'])
    epochs = info.get('epoch')
    if epochs is not None and len(epochs) == length:
        return [int(e) for e in epochs]
    return list(range(1, length + 1))


def epoch_series(info, key, last_epoch=None):
    """(epochs, values) of one per-epoch key, up to ``last_epoch`` (all when None)."""
    values = [float(v) for v in info.get(key, [])]
    epochs = run_epochs(info)
    if len(epochs) != len(values):          # nuclear_metric: always [] in J's files
        epochs = list(range(1, len(values) + 1))
    kept = [i for i, epoch in enumerate(epochs) if last_epoch is None or epoch <= last_epoch]
    return [epochs[i] for i in kept], [values[i] for i in kept]


def last_margins(info, last_epoch=None):
    """The sorted cosine margins (N,) of the last epoch drawn, or None when there is none."""
    indices = [i for i, epoch in enumerate(run_epochs(info)) if last_epoch is None or epoch <= last_epoch]
    if not indices:
        return None
    return np.asarray(info['all_cos_margin'][indices[-1]], dtype=np.float64).ravel()


def last_epoch_drawn(runs, epochs_flag=None):
    """Right end of the epoch axis: --epochs when given, else the latest epoch of any run (>= 1)."""
    if epochs_flag is not None:
        return epochs_flag
    return max([1] + [max(run_epochs(info), default=0) for _, info in runs])


# ----------------------------------------------------------------------------------------
# the figures

def _finish(fig, ax, panel, axis, free_y):
    ax.set_ylabel(axis.ylabel or panel.ylabel, fontsize=LABEL_FONTSIZE)
    ax.tick_params(labelsize=TICK_FONTSIZE)
    if not free_y:
        ax.set_yticks(np.arange(*axis.yticks))
        ax.set_ylim(*axis.ylim)           # after the ticks, as J's plt.axis after plt.yticks
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc=axis.legend_loc, fontsize=LEGEND_FONTSIZE)
    return fig


def plot_epoch_metric(panel, axis, runs, last_epoch, free_y=False):
    """One per-epoch metric of every run against the epoch (J's plot_collapse, plot_ETF,
    plot_WH_relation, plot_residual, plot_train_acc, plot_test_acc, plot_nuclear, plot_avg_cos_margin)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.grid(True)
    drawn = 0
    for series, info in runs:
        epochs, values = epoch_series(info, panel.info_key, last_epoch)
        drawn += len(values)
        if not values:
            continue
        ax.plot(epochs, values, color=series.color, marker=series.marker, ms=MARKER_SIZE,
                markevery=marker_spacing(len(values), 8), linewidth=LINE_WIDTH, alpha=ALPHA, label=series.label)
    if not drawn:                           # J's nuclear figure: blank, as the original, but said why
        ax.text(0.5, 0.5, '%s is empty in every info.pkl\n(J computes it and never stores it)' % panel.info_key,
                transform=ax.transAxes, ha='center', va='center', fontsize=TICK_FONTSIZE * 0.8, color='0.35')
    ax.set_xlabel('Epoch', fontsize=LABEL_FONTSIZE)
    ax.set_xticks(even_ticks(last_epoch, 4))
    ax.set_xlim(0, last_epoch)
    return _finish(fig, ax, panel, axis, free_y)


def plot_margin_distribution(panel, axis, runs, last_epoch, free_y=False, smallest=None):
    """The last drawn epoch's sorted cosine margins against the sample index (J's
    plot_cos_margin_distribution), or only the ``smallest`` of them (plot_part_cos_margin_distribution)."""
    fig, ax = plt.subplots(figsize=FIGSIZE)
    ax.grid(True)
    num_samples = 1
    for series, info in runs:
        margins = last_margins(info, last_epoch)
        if margins is None:
            continue
        if smallest is not None:
            margins = margins[:smallest]
        marker = series.part_marker if smallest is not None and series.part_marker else series.marker
        num_samples = max(num_samples, len(margins))
        ax.plot(margins, color=series.color, marker=marker, ms=MARKER_SIZE, markevery=marker_spacing(len(margins), 5),
                linewidth=LINE_WIDTH, alpha=ALPHA, label=series.label)
    ax.set_xlabel('Index', fontsize=LABEL_FONTSIZE)
    ax.set_xticks(even_ticks(num_samples, 5))
    ax.set_xlim(0, num_samples)
    return _finish(fig, ax, panel, axis, free_y)


def draw_panel(panel, axis, runs, last_epoch, free_y=False):
    if panel.kind == 'epoch':
        return plot_epoch_metric(panel, axis, runs, last_epoch, free_y)
    smallest = PARTIAL_MARGINS if panel.kind == 'margin_part' else None
    return plot_margin_distribution(panel, axis, runs, last_epoch, free_y, smallest)


def draw_figure_set(figure_set, runs, out_dir, epochs=None, free_y=False):
    """Write the ten figures of ``figure_set`` for ``runs`` [(Series, info dict)] into
    <out_dir>/<figure_set.name>/ as PNG and PDF; returns the written paths."""
    folder = os.path.join(out_dir, figure_set.name)
    last_epoch = last_epoch_drawn(runs, epochs)
    paths = []
    for panel in PANELS:
        fig = draw_panel(panel, figure_set.axes[panel.name], runs, last_epoch, free_y)
        paths += plot_utils.save_figure(fig, folder, panel.file_name)
    return paths


# ----------------------------------------------------------------------------------------
# runs and command line

def select_series(figure_set, uids=None, labels=None, quick=False):
    """The runs to draw: the table's, its quick-grid uids (uid + '_quick'), or --uids styled by
    position; --labels replaces the legend entries. Raises ValueError on a label-count mismatch."""
    series = list(figure_set.series)
    if quick:
        series = [dataclasses.replace(s, uid=s.uid + '_quick') for s in series]
    if uids:
        styled = []
        for i, uid in enumerate(uids):
            if i < len(series):
                label = series[i].label if len(uids) == len(series) else uid
                styled.append(dataclasses.replace(series[i], uid=uid, label=label))
            else:
                styled.append(Series(uid, uid, 'C%d' % (i % 10), _EXTRA_MARKERS[i % len(_EXTRA_MARKERS)]))
        series = styled
    if labels:
        if len(labels) != len(series):
            raise ValueError('--labels has %d names for %d runs; give one per run, in the order of --uids'
                             % (len(labels), len(series)))
        series = [dataclasses.replace(s, label=label) for s, label in zip(series, labels)]
    return tuple(series)


def load_runs(weights_dir, series):
    """[(Series, info)] of the runs whose <weights_dir>/<uid>/info.pkl reads as a Zhou 2022 info
    dict, and one message per run that does not."""
    runs, problems = [], []
    for s in series:
        path = os.path.join(weights_dir, s.uid, 'info.pkl')
        try:
            info = plot_utils.read_info(path)
        except safe_load.UnsafeFile:
            raise
        except ValueError as error:
            problems.append('skipping run %s: %s' % (s.uid, error))
            continue
        absent = [key for key in REQUIRED_KEYS if key not in info]
        if absent:
            problems.append('skipping run %s: %s has no %s; validate it with --paper zhou2022'
                            % (s.uid, path, ', '.join(absent)))
            continue
        runs.append((s, info))
    return runs, problems


def get_args_parser(figure_set):
    parser = argparse.ArgumentParser(
        description='Zhou et al. 2022, %s: ten figures, as drawn by J.' % figure_set.title,
        parents=[plot_utils.out_dir_parser()])
    parser.add_argument('--weights_dir', default='model_weights',
                        help='folder holding <uid>/info.pkl (default: %(default)s)')
    parser.add_argument('--epochs', type=int, default=None,
                        help='draw epochs 1..N, x axis [0, N] (default: up to the latest epoch of any run)')
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument('--uids', nargs='+', default=None,
                      help='run folders to draw instead of the paper\'s (%d by default)' % len(figure_set.series))
    runs.add_argument('--quick', action='store_true', help="draw the quick grid's runs: every uid + '_quick'")
    parser.add_argument('--labels', nargs='+', default=None, help='legend entries, one per run')
    parser.add_argument('--free_y', action='store_true',
                        help="let matplotlib choose the y ranges instead of the paper's (for short runs)")
    return parser


def main(figure_set, argv=None):
    parser = get_args_parser(figure_set)
    args = parser.parse_args(argv)
    if args.epochs is not None and args.epochs < 1:
        parser.error('--epochs must be at least 1 (got %d)' % args.epochs)
    try:
        series = select_series(figure_set, args.uids, args.labels, args.quick)
    except ValueError as error:
        parser.error(str(error))
    try:
        runs, problems = load_runs(args.weights_dir, series)
    except safe_load.UnsafeFile as error:
        plot_utils.stop(error)
    for problem in problems:
        print('warning: %s' % problem, file=sys.stderr)
    if not runs:
        parser.error('none of the %d runs has a readable info.pkl under %s; train and validate them first, '
                     'or pass --weights_dir / --uids / --quick' % (len(series), args.weights_dir))
    paths = draw_figure_set(figure_set, runs, args.out_dir, args.epochs, args.free_y)
    print('%d runs drawn: %d figures in %s (PNG and PDF)'
          % (len(runs), len(paths) // 2, os.path.join(args.out_dir, figure_set.name)))
    return paths
