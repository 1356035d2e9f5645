"""Zhou et al. 2022: rescaled MSE, alpha = k in {1, 5, 15, 20} with M = 1 (mini-ImageNet, SOTA ResNet18; J's plot_k_rmse.py).

  python plots/plot_k_rmse.py [--quick]      # figures/k_rmse/: the ten figures of J's script

Runs: mini_imagenet_RMSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_true_M_1_k_{1,5,15,20}.
Two fixes to J (docs/original_code.md, J-B4 and J-B5): the figures go to their own folder (J's went into plot_M_rmse's
and overwrote them), and the NC2 figure's legend reads alpha = 1, 5, 15, 20 (J reused the five
M-legend entries there, labelling the alpha = 5, 15, 20 curves M = 3, 5, 7).
Flags, the figures and the table of runs, colours and axes: plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['k_rmse'])
