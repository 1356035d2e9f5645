"""Zhou et al. 2022: rescaled MSE, M in {1, 3, 5, 7, 10} with alpha = k = 1 (mini-ImageNet, SOTA ResNet18; J's plot_M_rmse.py).

  python plots/plot_M_rmse.py [--quick]      # figures/M_rmse/: the ten figures of J's script

Runs: mini_imagenet_RMSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_true_M_{1,3,5,7,10}_k_1.
Flags, the figures and the table of runs, colours and axes: plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['M_rmse'])
