"""NC1, NC2, NC3, NC4 and accuracy versus epoch from one or several info.pkl (log axes where a
panel's values span a decade or more), and a table of each metric's first and last value.

  python plots/plot_nc.py model_weights/<run>/info.pkl (or model_weights/<run>) [more ...] [--labels a b] [--out_dir figures] [--name nc] [--nc1 exact|as_coded]

Reads the keys of either recipe: zhou2022 (collapse_metric, ETF_metric, WH_relation_metric,
NC4_ncc_mismatch) or dang2023 (NC1_collapse_metric, NC2_ETF_W or NC2_Identity_W for bias-free
runs, NC3_ETF_WH). Writes <out_dir>/<name>.png and .pdf. --nc1 as_coded draws the NC1 the
original code computed (collapse_metric_as_coded / NC1_collapse_metric_as_coded: float32,
SciPy pseudo-inverse) instead of the exact float64 value (the default).
"""
import argparse
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from plots import plot_utils  # noqa: E402

# panel title -> candidate info keys, first present wins
PANELS = [
    ('$\\mathcal{NC}_1$', ['collapse_metric', 'NC1_collapse_metric']),
    ('$\\mathcal{NC}_2$', ['ETF_metric', 'NC2_ETF_W', 'NC2_W']),
    ('$\\mathcal{NC}_3$', ['WH_relation_metric', 'NC3_ETF_WH', 'NC3_WH']),
    ('$\\mathcal{NC}_4$ (NCC mismatch)', ['NC4_ncc_mismatch']),
    ('accuracy (%)', ['train_acc1']),
]


NC1_KEYS = {'exact': ['collapse_metric', 'NC1_collapse_metric'],
            'as_coded': ['collapse_metric_as_coded', 'NC1_collapse_metric_as_coded']}


def panels(nc1='exact'):
    """PANELS with the NC1 panel reading the exact or the as-coded value."""
    return [(PANELS[0][0] + (' as coded' if nc1 == 'as_coded' else ''), NC1_KEYS[nc1])] + PANELS[1:]


def series(info, keys, bias_free):
    for key in keys:
        if bias_free and key == 'NC2_ETF_W' and info.get('NC2_Identity_W'):
            key = 'NC2_Identity_W'       # D23 measures bias-free runs against an orthogonal frame
        if info.get(key):
            return key, [float(v) for v in info[key]]
    return None, None


def draw(infos, labels, nc1='exact'):
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for ax, (title, keys) in zip(axes, panels(nc1)):
        drawn = []
        for info, label in zip(infos, labels):
            key, values = series(info, keys, is_bias_free(info))
            if values is None:
                continue
            line, = ax.plot(info['epoch'], values, marker='o', ms=3, label=label)
            drawn += values
            if key == 'train_acc1' and info.get('test_acc1'):
                ax.plot(info['epoch'], info['test_acc1'], ls='--', color=line.get_color(), label=label + ' (test)')
        if key != 'train_acc1':
            plot_utils.scale_for(ax, drawn)
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def is_bias_free(info):
    return not any(abs(float(x)) > 0 for b in info.get('b', [])[-1:] for x in b)


def summary_rows(info, nc1='exact'):
    """[(metric key, first value, last value, first / last)] for the panels' metrics."""
    rows = []
    for _, keys in panels(nc1):
        key, values = series(info, keys, is_bias_free(info))
        if values:
            fold = values[0] / values[-1] if values[-1] > 0 else float('inf')
            rows.append((key, values[0], values[-1], fold))
    return rows


def print_summary(info, label, nc1='exact'):
    epochs = info['epoch']
    print('%s: epoch %d -> %d' % (label, epochs[0], epochs[-1]))
    print('  %-20s %12s %12s %14s' % ('metric', 'first', 'last', 'first / last'))
    for key, first, last, fold in summary_rows(info, nc1):
        change = ('-' if key == 'train_acc1' else 'reaches 0' if last == 0 else '%.3gx' % fold)
        print('  %-20s %12.4g %12.4g %14s' % (key, first, last, change))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[plot_utils.out_dir_parser()])
    parser.add_argument('info', nargs='+', help='info.pkl files or run folders')
    parser.add_argument('--labels', nargs='+', default=None)
    parser.add_argument('--name', default='nc', help='file name stem')
    parser.add_argument('--nc1', choices=sorted(NC1_KEYS), default='exact',
                        help='NC1 exact (float64, default) or as the original code computed it')
    args = parser.parse_args(argv)
    plot_utils.check_name(args.name)
    args.info = [os.path.join(p, 'info.pkl') if os.path.isdir(p) else p for p in args.info]
    infos = [plot_utils.load_info(path, kind='balanced') for path in args.info]
    for path, info in zip(args.info, infos):
        if not any(info.get(key) for key in NC1_KEYS[args.nc1]):
            parser.error('%s holds no %s NC1 (%s); validate it again with this version'
                         % (path, args.nc1, ' or '.join(NC1_KEYS[args.nc1])))
        plot_utils.check_drawable(info, NC1_KEYS[args.nc1], path)
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p)))[:40] for p in args.info]
    paths = plot_utils.save_figure(draw(infos, labels, args.nc1), args.out_dir, args.name)
    for info, label in zip(infos, labels):
        print_summary(info, label, args.nc1)
    print('figure: %s' % paths[0])


if __name__ == '__main__':
    main()
