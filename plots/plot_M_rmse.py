"""Zhou et al. 2022: rescaled MSE, M in {1, 3, 5, 7, 10} with alpha = k = 1 (mini-ImageNet, SOTA ResNet18; J's plot_M_rmse.py).

  python plots/plot_M_rmse.py [--weights_dir model_weights] [--out_dir figures] [--epochs N]
  python plots/plot_M_rmse.py --quick                      # the quick grid's runs (uid + '_quick')
  python plots/plot_M_rmse.py --uids <run> ... [--labels <legend> ...] [--free_y]

Runs: mini_imagenet_RMSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_false_sota_true_M_{1,3,5,7,10}_k_1.
Reads <weights_dir>/<uid>/info.pkl of each run and writes the ten figures of J's script to
<out_dir>/M_rmse/: resnet18-NC1 ... resnet18-NC4, resnet18-train-acc, resnet18-test-acc,
c_margin_dist, resnet18-nuclear, resnet18-avg-cmargin, c_margin_dist_part (.png and .pdf).
The drawing code and the table of runs, colours and axes are in plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['M_rmse'])
