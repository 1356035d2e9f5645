"""Zhou et al. 2022: feature dimension d in {5, 8, 9, 10, 512} around K = 10 (MSE, CIFAR-10, SOTA ResNet18; J's plot_dk_mse.py).

  python plots/plot_dk_mse.py [--quick]      # figures/dk_mse/: the ten figures of J's script

Runs: cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_{5,8,9,10,512}_sota_true.
Flags, the figures and the table of runs, colours and axes: plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['dk_mse'])
