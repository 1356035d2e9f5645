"""Dang et al. 2023, synthetic imbalanced experiment: free features H for class counts
(200, 100, 50, 50), a bias-free deep linear head of depth M, full-batch SGD (momentum 0.9);
the minimiser's geometry is the closed form of theory.d23_geometry (general orthogonal frame).

  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 1
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 3
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 6

Writes synthetic_results/<run name>/ (metrics, final H and weights, summary against the closed
form, also printed). Plot with plots/plot_synthetic.py <run folder>.
"""
import os

import numpy as np
import torch

import args as cli
from nc_repro import synthetic, ufm
from nc_repro.synthetic_figures import make_figures

BALANCED = False


def get_args_parser():
    return cli.get_synthetic_parser(balanced=BALANCED)


def main(args):
    counts = ufm.class_counts(args, balanced=BALANCED)
    bias = False
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    args.init_std = ufm.initial_std(args, counts, bias)
    model = ufm.DeepLinearUFM(sum(counts), args.hidden, len(counts), args.depth_linear, bias, args.init_std)
    labels = ufm.make_labels(counts)
    geometry = synthetic.closed_form(args, counts, balanced=BALANCED)
    folder = synthetic.run_folder(args, balanced=BALANCED)
    history, seconds = synthetic.optimise(model, labels, counts, args, BALANCED, geometry)
    summary = synthetic.compare_with_theory(model, labels, counts, geometry, bias)
    synthetic.save_results(folder, args, model, labels, history, summary, seconds)
    figures = [path for path in make_figures(folder) if path.endswith('.png')]
    print('%d iterations in %.1f s; results in %s; figures %s' % (
        args.num_iteration, seconds, folder, ', '.join(os.path.basename(path) for path in figures)))
    return folder


if __name__ == '__main__':
    cli.run(main, cli.parse_synthetic(get_args_parser()))
