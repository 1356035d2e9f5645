"""Zhou et al. 2022: learned versus fixed simplex-ETF classifier, d=512 and d=10 (MSE, CIFAR-10, SOTA ResNet18; J's plot_etf_mse.py).

  python plots/plot_etf_mse.py [--quick]      # figures/etf_mse/: the ten figures of J's script

Runs: cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_{false,true}_fixdim_{false,10}_sota_true.
Flags, the figures and the table of runs, colours and axes: plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['etf_mse'])
