"""NC1 (log scale), NC2, NC3, NC4 and accuracy versus epoch from one or several info.pkl.

  python plots/plot_nc.py model_weights/<run>/info.pkl [more info.pkl ...] [--labels a b] [--out_dir figures] [--name nc]

Reads the keys of either recipe: zhou2022 (collapse_metric, ETF_metric, WH_relation_metric,
NC4_ncc_mismatch) or dang2023 (NC1_collapse_metric, NC2_ETF_W or NC2_Identity_W for bias-free
runs, NC3_ETF_WH). Writes <out_dir>/<name>.png and .pdf.
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
    ('$\\mathcal{NC}_1$', ['collapse_metric', 'NC1_collapse_metric'], True),
    ('$\\mathcal{NC}_2$', ['ETF_metric', 'NC2_ETF_W', 'NC2_W'], False),
    ('$\\mathcal{NC}_3$', ['WH_relation_metric', 'NC3_ETF_WH', 'NC3_WH'], False),
    ('$\\mathcal{NC}_4$ (NCC mismatch)', ['NC4_ncc_mismatch'], False),
    ('accuracy (%)', ['train_acc1'], False),
]


def series(info, keys, bias_free):
    for key in keys:
        if bias_free and key == 'NC2_ETF_W' and info.get('NC2_Identity_W'):
            key = 'NC2_Identity_W'       # D23 measures bias-free runs against an orthogonal frame
        if info.get(key):
            return key, [float(v) for v in info[key]]
    return None, None


def draw(infos, labels):
    fig, axes = plt.subplots(1, len(PANELS), figsize=(4.2 * len(PANELS), 3.6))
    for info, label in zip(infos, labels):
        epochs = info['epoch']
        bias_free = not any(abs(float(x)) > 0 for b in info.get('b', [])[-1:] for x in b)
        for ax, (title, keys, log_scale) in zip(axes, PANELS):
            key, values = series(info, keys, bias_free)
            if values is None:
                continue
            line, = ax.plot(epochs, values, marker='o', ms=3, label=label)
            if key == 'train_acc1' and info.get('test_acc1'):
                ax.plot(epochs, info['test_acc1'], ls='--', color=line.get_color(), label=label + ' (test)')
            if log_scale and min(values) > 0:
                ax.set_yscale('log')
    for ax, (title, _, _) in zip(axes, PANELS):
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.grid(alpha=0.3)
    axes[-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], parents=[plot_utils.out_dir_parser()])
    parser.add_argument('info', nargs='+', help='info.pkl files')
    parser.add_argument('--labels', nargs='+', default=None)
    parser.add_argument('--name', default='nc', help='file name stem')
    args = parser.parse_args(argv)
    infos = [plot_utils.load_info(path) for path in args.info]
    labels = args.labels or [os.path.basename(os.path.dirname(os.path.abspath(p)))[:40] for p in args.info]
    paths = plot_utils.save_figure(draw(infos, labels), args.out_dir, args.name)
    print('figure: %s' % paths[0])


if __name__ == '__main__':
    main()
