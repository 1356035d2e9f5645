"""Zhou et al. 2022: NC under SGD, Adam and LBFGS (MSE loss, CIFAR-10, ResNet18; J's plot_optim_mse.py).

  python plots/plot_optim_mse.py [--quick]      # figures/optim_mse/: the ten figures of J's script

Runs: cifar10_MSE_{SGD,Adam}_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_false and
cifar10_MSE_LBFGS_bias_true_batchsize_512_ETFfc_false_fixdim_false_sota_false (the LBFGS uid J's plot
reads; the fixed grid trains it with train_2nd_order.py --batch_size 512).
Flags, the figures and the table of runs, colours and axes: plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['optim_mse'])
