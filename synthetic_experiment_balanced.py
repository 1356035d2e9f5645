"""Dang et al. 2023, synthetic balanced experiment: free features H (400 x d, 100 per class,
K = 4) and a deep linear head, full-batch SGD (momentum 0.9) on
||W_M...W_1 H + b - Y||^2/(2N) + lambda_W/2 sum ||W_l||^2 + lambda_H/2 ||H||^2.

  python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1
  python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1 --no-bias

Writes synthetic_results/<run name>/: metrics.pkl and metrics.json (every --log_every
iterations), final_state.pt (H and the weights), summary.json/summary.txt (learned vs
closed-form geometry, also printed). Plot with plots/plot_synthetic.py <run folder>.
"""
import os

import numpy as np
import torch

import args as cli
from nc_repro import synthetic, ufm
from plots.synthetic_figures import make_figures


def get_args_parser():
    return cli.get_synthetic_parser(balanced=True)


def main(args, balanced=True):
    """The recipe of both synthetic scripts (synthetic_experiment_imbalanced.py calls it with
    balanced=False): counts, seed, initial scale, model, labels, closed form, run folder,
    optimise, compare and save, figures."""
    counts = ufm.class_counts(args.num_classes, balanced=balanced)
    bias = args.bias if balanced else False
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    args.init_std = ufm.initial_std(counts, args.hidden, args.depth_linear, bias, args.lr, args.init_std)
    settings = cli.settings(synthetic.SyntheticSettings, args, balanced=balanced, flags=dict(vars(args)))
    model = ufm.DeepLinearUFM(sum(counts), args.hidden, len(counts), args.depth_linear, bias, args.init_std)
    labels = ufm.make_labels(counts)
    geometry = synthetic.closed_form(settings, counts)
    folder = synthetic.run_folder(settings)
    history, seconds = synthetic.optimise(model, labels, counts, settings, geometry)
    summary = synthetic.compare_with_theory(model, labels, counts, geometry, bias)
    synthetic.save_results(folder, settings, model, labels, history, summary, seconds)
    figures = [path for path in make_figures(folder) if path.endswith('.png')]
    print('%d iterations in %.1f s; results in %s; figures %s' % (
        args.num_iteration, seconds, folder, ', '.join(os.path.basename(path) for path in figures)))
    return folder


if __name__ == '__main__':
    cli.run(main, cli.parse_synthetic(get_args_parser()))
