"""Zhou et al. 2022: NC under SGD, Adam and LBFGS (MSE loss, CIFAR-10, ResNet18; J's plot_optim_mse.py).

  python plots/plot_optim_mse.py [--weights_dir model_weights] [--out_dir figures] [--epochs N]
  python plots/plot_optim_mse.py --quick                      # the quick grid's runs (uid + '_quick')
  python plots/plot_optim_mse.py --uids <run> ... [--labels <legend> ...] [--free_y]

Runs: cifar10_MSE_{SGD,Adam}_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_false and
cifar10_MSE_LBFGS_bias_true_batchsize_512_ETFfc_false_fixdim_false_sota_false (the LBFGS uid J's plot
reads; the fixed grid trains it with train_2nd_order.py --batch_size 512).
Reads <weights_dir>/<uid>/info.pkl of each run and writes the ten figures of J's script to
<out_dir>/optim_mse/: resnet18-NC1 ... resnet18-NC4, resnet18-train-acc, resnet18-test-acc,
c_margin_dist, resnet18-nuclear, resnet18-avg-cmargin, c_margin_dist_part (.png and .pdf).
The drawing code and the table of runs, colours and axes are in plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['optim_mse'])
