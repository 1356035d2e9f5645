"""Hong & Ling 2023, Figures 1 & 2: NC1 during training and the block structure of the logits
for imbalanced classes in clusters of equal size (spec Hong §3.1, §7.2, §7.3).

  python block_main.py --dataset_t cifar10 --structure 1 --network ResNet18

Trains one network (checkpoints model_epoch=<e> at epochs 1-5, every 10th and the last), writes
NC1 per checkpoint to <save_dir>/within_class_vari.pickle, and the figures
plots/001_<network>_<dataset>_<structure>_{NC1,Z}_plot.png (and .pdf).
"""
import math
import os
import pickle

import torch
from tqdm import tqdm

import args as cli
import hong_experiments as hong
import training
from fileio import atomic_write
from plots import plot_hong


def get_args_parser():
    parser = hong.get_common_parser('Hong & Ling 2023: NC1 and block structure (block_main).', 1000)
    parser.add_argument('--structure', type=int, default=1, help='1: 4x5000, 3x4000, 3x3000; other: 4x5000, 2x3000, 4x1000')
    parser.add_argument('--reg_h', type=float, default=1e-6, help='lambda_H, the feature penalty')
    parser.add_argument('--reg_w', type=float, default=1e-3, help='lambda_W, the classifier ridge')
    parser.add_argument('--ka', type=int, default=5, help='parsed and unused, as in the original')
    parser.add_argument('--nalist', type=int, default=5, help='parsed and unused, as in the original')
    parser.add_argument('--seed', type=int, default=None,
                        help='not in the reference (the original sets no seed)')
    return parser


WEIGHT_DECAY = 5e-4


def structure_counts(structure):
    """spec Hong §4.2: structure 1 or anything else."""
    if structure == 1:
        return [5000] * 4 + [4000] * 3 + [3000] * 3
    return [5000] * 4 + [3000] * 2 + [1000] * 4


def save_dir_name(args):
    """models/001_<network>_train_0<structure> (cifar10), ..._f_train_0<s> (fashion_mnist);
    digits and non-paper widths are named too."""
    kind = {'cifar10': 'train', 'fashion_mnist': 'f_train'}.get(args.dataset_t, args.dataset_t + '_train')
    width = '' if args.width == 64 or not args.network.startswith('ResNet') else '_width=%d' % args.width
    return os.path.join('models', '001_%s_%s_0%d%s' % (args.network, kind, args.structure, width))


def checkpoint_file(save_dir, epoch):
    return os.path.join(save_dir, 'model_epoch=%d' % epoch)


def is_checkpoint_epoch(epoch, epochs):
    """simple_train_batch saves at epochs 1-5 and every 10th; the last epoch too (the original
    lost it unless E % 10 == 0, so re-runs retrained and the final load failed: bug 5)."""
    return epoch <= 5 or epoch % 10 == 0 or epoch == epochs


def nc1_per_checkpoint(args, model, data, save_dir, device):
    """{epoch: NC1} over the saved checkpoints, cached in within_class_vari.pickle (the original
    checked that name but opened within_class_record.pickle on re-runs: bug 2)."""
    path = os.path.join(save_dir, 'within_class_vari.pickle')
    nc1 = {}
    if os.path.exists(path):
        with open(path, 'rb') as f:
            nc1 = pickle.load(f)
    epochs = [e for e in range(1, args.epoch + 1)
              if is_checkpoint_epoch(e, args.epoch) and os.path.exists(checkpoint_file(save_dir, e))]
    missing = [e for e in epochs if e not in nc1]
    final_state = {name: value.clone() for name, value in model.state_dict().items()}
    for epoch in tqdm(missing, desc='NC1', unit='checkpoint', disable=not missing):
        model.load_state_dict(torch.load(checkpoint_file(save_dir, epoch), map_location=device, weights_only=True))
        nc1[epoch] = hong.hong_nc1(hong.class_statistics(model, data, device))
    model.load_state_dict(final_state)
    if missing:
        atomic_write(path, lambda f: pickle.dump(nc1, f))
    for epoch in epochs:
        print('epoch %d: NC1 = %.6g' % (epoch, nc1[epoch]))
    return {epoch: nc1[epoch] for epoch in epochs}


def main(args):
    device = training.select_device(args)
    if args.seed is not None:
        training.set_seed(args.seed)
    counts = structure_counts(args.structure)
    scale = hong.offline_scale(args, [counts])
    counts = hong.scaled_counts(counts, scale)
    hong.announce_scale(scale)
    lambdas = (args.reg_h / math.sqrt(scale), args.reg_w / math.sqrt(scale), args.reg_b)
    level = 2 * math.sqrt(lambdas[0] * lambdas[1])
    prediction = hong.collapse_prediction(counts, level)
    print('%s\n(l = 2 sqrt(lambda_W lambda_H); with the weight decay on W, 2 sqrt((lambda_W + %g) '
          'lambda_H) = %.4g)' % (prediction, WEIGHT_DECAY / 2,
                                 2 * math.sqrt((lambdas[1] + WEIGHT_DECAY / 2) * lambdas[0])))
    data = hong.rendered_data(args, counts, '001_data_%d' % args.structure, device)
    save_dir = save_dir_name(args)
    model = hong.train_model(args, data, lambdas, WEIGHT_DECAY, 'batch', save_dir,
                             is_checkpoint_epoch, checkpoint_file, device)
    nc1 = nc1_per_checkpoint(args, model, data, save_dir, device)
    stem = os.path.join('plots', '001_%s_%s_%d' % (args.network, args.dataset_t, args.structure))
    stats = hong.class_statistics(model, data, device)
    pre = hong.logit_matrix(model, stats)
    paths = plot_hong.nc1_curve(nc1, stem + '_NC1_plot', note=prediction,
                                lr_switch=int(args.epoch / 3) if int(args.epoch / 3) != int(args.epoch / 6) else None)
    paths += plot_hong.logit_heatmap(pre, counts, stem + '_Z_plot', note=prediction)
    print('figures: %s' % ', '.join(paths))


if __name__ == '__main__':
    cli.run(main, hong.parse(get_args_parser()))
