"""Dang et al. 2023, synthetic imbalanced experiment: free features H for class counts
(200, 100, 50, 50), a bias-free deep linear head of depth M, full-batch SGD (momentum 0.9);
the minimiser's geometry is the closed form of theory.d23_geometry (general orthogonal frame).

  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 1
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 3
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 6

Writes synthetic_results/<run name>/ (metrics, final H and weights, summary against the closed
form, also printed). Plot with plots/plot_synthetic.py <run folder>.
"""
import ufm
from args import run as run_script


def get_args_parser():
    return ufm.get_args_parser(balanced=False)


def main(args):
    return ufm.run(args, balanced=False)


if __name__ == '__main__':
    run_script(main, ufm.parse_args(get_args_parser()))
