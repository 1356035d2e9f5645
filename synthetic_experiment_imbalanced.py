"""Dang et al. 2023, synthetic imbalanced experiment: free features H for class counts
(200, 100, 50, 50), a bias-free deep linear head of depth M, full-batch SGD (momentum 0.9);
the minimiser's geometry is the closed form of theory.d23_geometry (general orthogonal frame).

  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 1
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 3
  python synthetic_experiment_imbalanced.py --hidden 2048 --num_iteration 30000 --depth_linear 6

Writes synthetic_results/<run name>/ (metrics, final H and weights, summary against the closed
form, also printed). Plot with plots/plot_synthetic.py <run folder>.
"""
import args as cli
import synthetic_experiment_balanced


def get_args_parser():
    return cli.get_synthetic_parser(balanced=False)


def main(args):
    """The balanced script's recipe with the imbalanced counts (200, 100, 50, 50) and no bias."""
    return synthetic_experiment_balanced.main(args, balanced=False)


if __name__ == '__main__':
    cli.run(main, cli.parse_synthetic(get_args_parser()))
