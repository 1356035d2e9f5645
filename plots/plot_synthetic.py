"""Figures of a synthetic run (synthetic_experiment_{balanced,imbalanced}.py): the metrics
versus iteration (log y), and the learned versus closed-form per-class lengths.

  python plots/plot_synthetic.py synthetic_results/<run name> [--out_dir <run folder>]

Writes <out_dir>/synthetic_metrics.{png,pdf} and synthetic_lengths.{png,pdf}; the default
out_dir is the run folder itself.
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots.synthetic_figures import make_figures  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('run', help='a synthetic run folder')
    parser.add_argument('--out_dir', default=None, help='default: the run folder')
    args = parser.parse_args(argv)
    paths = make_figures(args.run, args.out_dir)
    print('figures: %s' % ', '.join(p for p in paths if p.endswith('.png')))


if __name__ == '__main__':
    main()
