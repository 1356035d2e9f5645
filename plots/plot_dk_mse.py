"""Zhou et al. 2022: feature dimension d in {5, 8, 9, 10, 512} around K = 10 (MSE, CIFAR-10, SOTA ResNet18; J's plot_dk_mse.py).

  python plots/plot_dk_mse.py [--weights_dir model_weights] [--out_dir figures] [--epochs N]
  python plots/plot_dk_mse.py --quick                      # the quick grid's runs (uid + '_quick')
  python plots/plot_dk_mse.py --uids <run> ... [--labels <legend> ...] [--free_y]

Runs: cifar10_MSE_SGD_bias_true_batchsize_128_ETFfc_false_fixdim_{5,8,9,10,512}_sota_true.
Reads <weights_dir>/<uid>/info.pkl of each run and writes the ten figures of J's script to
<out_dir>/dk_mse/: resnet18-NC1 ... resnet18-NC4, resnet18-train-acc, resnet18-test-acc,
c_margin_dist, resnet18-nuclear, resnet18-avg-cmargin, c_margin_dist_part (.png and .pdf).
The drawing code and the table of runs, colours and axes are in plots/zhou_figures.py.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the project root
from plots import zhou_figures  # noqa: E402

if __name__ == '__main__':
    zhou_figures.main(zhou_figures.FIGURES['dk_mse'])
