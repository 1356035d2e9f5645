"""Dang et al. 2023, synthetic balanced experiment: free features H (400 x d, 100 per class,
K = 4) and a deep linear head, full-batch SGD (momentum 0.9) on
||W_M...W_1 H + b - Y||^2/(2N) + lambda_W/2 sum ||W_l||^2 + lambda_H/2 ||H||^2.

  python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1
  python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1 --no-bias

Writes synthetic_results/<run name>/: metrics.pkl and metrics.json (every --log_every
iterations), final_state.pt (H and the weights), summary.json/summary.txt (learned vs
closed-form geometry, also printed). Plot with plots/plot_synthetic.py <run folder>.
"""
import ufm
from args import run as run_script


def get_args_parser():
    return ufm.get_args_parser(balanced=True)


def main(args):
    return ufm.run(args, balanced=True)


if __name__ == '__main__':
    run_script(main, ufm.parse_args(get_args_parser()))
