"""Hong & Ling 2023, Figures 1 & 2: NC1 during training and the block structure of the logits
for imbalanced classes in clusters of equal size (the original's block_main.py).

  python block_main.py --dataset_t cifar10 --structure 1 --network ResNet18

Trains one network (checkpoints model_epoch=<e> at epochs 1-5, every 10th and the last), writes
NC1 per checkpoint to <save_dir>/within_class_vari.pickle, and the figures
plots/001_<network>_<dataset>_<structure>_{NC1,Z}_plot.png (and .pdf).

  python block_main.py --quick

--quick (hong_args.QUICK for the network and training) trains 600 epochs with seed 0, lambda_H
= 2e-5 and lambda_W = 2e-3 (l = 4e-4), each unless given; why these values: docs/hong.md.

Record (not in the reference): plots/001_<network>_<dataset>_<structure>.json (the figures'
stem + '.json'), keys: script, settings, quick, dataset_t, network, epoch, structure,
class_counts, clusters (cluster index per class: equal counts share one), lambda_H, lambda_W,
lambda_b, weight_decay, level_l (2 sqrt(lambda_W lambda_H)), level_l_with_weight_decay, prediction,
nc1_epochs, nc1_values (NC1 per saved checkpoint), nc1_first_epoch, nc1_first, nc1_last_epoch,
nc1_last, nc1_drop (first / last), train_accuracy, logits_pre (pre = M W^T, rows = true class,
columns = logit, no bias), bias, block (hong_analysis.block_structure of logits_pre:
block_contrast = within-block rms / between-block rms of the off-diagonal entries, near 0 for
sharp blocks, about 1 or more without blocks; within_over_gap; per_cluster; diagonal spreads),
convex_logits_pre and convex_block (the convex UFM program at level_l_with_weight_decay and
lambda_b + weight_decay / 2; null with --no_convex).
Every path above is below --output_root (default hong_results/), in the original's layout.
"""
import math
import os
import pickle

import numpy as np
import torch
from tqdm import tqdm

import args as cli
import hong_args
import hong_runs
from nc_repro import convex_ufm, hong_analysis, safe_load, training
from nc_repro.fileio import atomic_write
from plots import hong_figures as plot_hong


PAPER_REG = (1e-6, 1e-3)          # (lambda_H, lambda_W) of the README run
QUICK_REG = (2e-5, 2e-3)          # --quick: (l/20, 5 l) at l = 4e-4
QUICK_EPOCHS, QUICK_SEED = 600, 0


def get_args_parser():
    parser = hong_args.get_common_parser('Hong & Ling 2023: NC1 and block structure (block_main).', 1000,
                                         quick_extra='; lambda_H %g, lambda_W %g, seed %d unless given' % (
                                             QUICK_REG + (QUICK_SEED,)), quick_epochs=QUICK_EPOCHS)
    parser.add_argument('--structure', type=int, default=1, help='1: 4x5000, 3x4000, 3x3000; other: 4x5000, 2x3000, 4x1000')
    parser.add_argument('--reg_h', type=float, default=None,
                        help='lambda_H, the feature penalty (default %g; %g with --quick)' % (PAPER_REG[0], QUICK_REG[0]))
    parser.add_argument('--reg_w', type=float, default=None,
                        help='lambda_W, the classifier ridge (default %g; %g with --quick)' % (PAPER_REG[1], QUICK_REG[1]))
    parser.add_argument('--ka', type=int, default=5, help='parsed and unused, as in the original')
    parser.add_argument('--nalist', type=int, default=5, help='parsed and unused, as in the original')
    parser.add_argument('--seed', type=int, default=None,
                        help='not in the reference (the original sets no seed)')
    parser.add_argument('--solver', type=str, default=convex_ufm.FAITHFUL_SOLVER,
                        help='not in the reference: cvxpy solver for the convex-program reference (default SCS)')
    parser.add_argument('--no_convex', action='store_true', help='not in the reference: skip the convex program')
    return parser


WEIGHT_DECAY = 5e-4


def structure_counts(structure):
    """The class counts of --structure: 1, or anything else (the original's two patterns)."""
    if structure == 1:
        return [5000] * 4 + [4000] * 3 + [3000] * 3
    return [5000] * 4 + [3000] * 2 + [1000] * 4


def save_dir_name(args):
    """models/001_<network>_train_0<structure> (cifar10), ..._f_train_0<s> (fashion_mnist);
    digits, non-paper ResNet widths and the MLP's shape are named too."""
    kind = {'cifar10': 'train', 'fashion_mnist': 'f_train'}.get(args.dataset_t, args.dataset_t + '_train')
    return cli.output_path(args, 'models', '001_%s_%s_0%d%s' % (args.network, kind, args.structure, hong_runs.network_suffix(args)))


def checkpoint_file(save_dir, epoch):
    return os.path.join(save_dir, 'model_epoch=%d' % epoch)


def is_checkpoint_epoch(epoch, epochs):
    """simple_train_batch saves at epochs 1-5 and every 10th; the last epoch too (the original
    lost it unless E % 10 == 0, so re-runs retrained and the final load failed: docs/original_code.md, Hong-B5)."""
    return epoch <= 5 or epoch % 10 == 0 or epoch == epochs


def nc1_per_checkpoint(args, model, data, save_dir, device):
    """{epoch: NC1} over the saved checkpoints, cached in within_class_vari.pickle (the original
    checked that name but opened within_class_record.pickle on re-runs: docs/original_code.md, Hong-B2)."""
    path = os.path.join(save_dir, 'within_class_vari.pickle')
    nc1 = {}
    if os.path.exists(path):
        nc1 = safe_load.load_pickle(path)
        if not isinstance(nc1, dict):
            raise cli.UsageError('%s holds a %s, not the {epoch: NC1} dict this script writes; delete it'
                                 % (path, type(nc1).__name__))
    epochs = [e for e in range(1, args.epoch + 1)
              if is_checkpoint_epoch(e, args.epoch) and os.path.exists(checkpoint_file(save_dir, e))]
    missing = [e for e in epochs if e not in nc1]
    final_state = {name: value.clone() for name, value in model.state_dict().items()}
    for epoch in tqdm(missing, desc='NC1', unit='checkpoint', disable=not missing):
        model.load_state_dict(safe_load.load_torch(checkpoint_file(save_dir, epoch), device))
        nc1[epoch] = hong_analysis.hong_nc1(hong_analysis.class_statistics(model, data, device))
    model.load_state_dict(final_state)
    if missing:
        atomic_write(path, lambda f: pickle.dump(nc1, f))
    for epoch in epochs:
        print('epoch %d: NC1 = %.6g' % (epoch, nc1[epoch]))
    return {epoch: nc1[epoch] for epoch in epochs}


def main(args):
    device = training.select_device(args.device, args.gpu_id)
    settings_line = hong_args.describe_settings(args)
    for index, flag in enumerate(('reg_h', 'reg_w')):
        if getattr(args, flag) is None:
            setattr(args, flag, (QUICK_REG if args.quick else PAPER_REG)[index])
    if args.quick and args.seed is None:
        args.seed = QUICK_SEED
    print('lambda_H %g, lambda_W %g (flag units)%s; seed %s' % (args.reg_h, args.reg_w, ' (quick)' if args.quick else '',
                                                                args.seed))
    if args.seed is not None:
        training.set_seed(args.seed)
    counts = structure_counts(args.structure)
    scale = hong_analysis.offline_scale(args.dataset_t, [counts])
    counts = hong_analysis.scaled_counts(counts, scale)
    hong_analysis.announce_scale(scale)
    lambdas = (args.reg_h / math.sqrt(scale), args.reg_w / math.sqrt(scale), args.reg_b)
    level = 2 * math.sqrt(lambdas[0] * lambdas[1])
    effective_level = 2 * math.sqrt((lambdas[1] + WEIGHT_DECAY / 2) * lambdas[0])
    prediction = hong_analysis.collapse_prediction(counts, level)
    print('%s\n(l = 2 sqrt(lambda_W lambda_H); with the weight decay on W, 2 sqrt((lambda_W + %g) '
          'lambda_H) = %.4g)' % (prediction, WEIGHT_DECAY / 2, effective_level))
    data = hong_runs.rendered_data(args, counts, '001_data_%d' % args.structure, device)
    save_dir = save_dir_name(args)
    model = hong_runs.train_model(args, data, lambdas, WEIGHT_DECAY, 'batch', save_dir,
                                  is_checkpoint_epoch, checkpoint_file, device)
    nc1 = nc1_per_checkpoint(args, model, data, save_dir, device)
    stem = cli.output_path(args, 'plots', '001_%s_%s_%d' % (args.network, args.dataset_t, args.structure))
    stats, accuracy = hong_analysis.class_statistics(model, data, device, with_accuracy=True)
    pre = hong_analysis.logit_matrix(model, stats)
    paths = plot_hong.nc1_curve(nc1, stem + '_NC1_plot', note=prediction,
                                lr_switch=int(args.epoch / 3) if int(args.epoch / 3) != int(args.epoch / 6) else None)
    paths += plot_hong.logit_heatmap(pre, counts, stem + '_Z_plot', note=prediction)
    convex = None
    if not args.no_convex:
        convex = convex_ufm.solve_ufm_program(counts, effective_level, args.reg_b + WEIGHT_DECAY / 2,
                                              solver=args.solver)['Z'].T
    record = block_record(args, settings_line, counts, lambdas, level, effective_level, prediction, nc1, pre,
                          model.classifier_bias().float().numpy(), accuracy, convex)
    hong_runs.write_record(stem, record)
    block = record['block']
    print('NC1 %.4g (epoch %d) -> %.4g (epoch %d): %.3g x lower; training accuracy %.1f %%'
          % (record['nc1_first'], record['nc1_first_epoch'], record['nc1_last'], record['nc1_last_epoch'],
             record['nc1_drop'], accuracy))
    over_gap = ('%.3g' % block['within_over_gap'] if block['logit_gap'] > 0 else
                'undefined (the logit gap is %.3g: no margin between the diagonal and the rest)' % block['logit_gap'])
    print('block structure of pre: block contrast %.3g (within-block rms %.3g / between-block rms %.3g), '
          'within-block rms / logit gap %s%s' % (
              block['block_contrast'], block['within_rms'], block['between_rms'], over_gap,
              '' if convex is None else '; convex program: block contrast %.3g' % record['convex_block']['block_contrast']))
    print('figures: %s; record: %s.json' % (', '.join(paths), stem))


def block_record(args, settings_line, counts, lambdas, level, effective_level, prediction, nc1, pre, bias,
                 accuracy, convex):
    """The JSON record (keys in the module docstring)."""
    epochs = sorted(nc1)
    first, last = nc1[epochs[0]], nc1[epochs[-1]]
    return dict(hong_runs.record_start('block_main.py', settings_line, args), **{
        'dataset_t': args.dataset_t, 'network': args.network, 'epoch': args.epoch, 'structure': args.structure,
        'class_counts': counts, 'clusters': hong_analysis.count_clusters(counts),
        'lambda_H': lambdas[0], 'lambda_W': lambdas[1], 'lambda_b': lambdas[2], 'weight_decay': WEIGHT_DECAY,
        'level_l': level, 'level_l_with_weight_decay': effective_level, 'prediction': prediction,
        'nc1_epochs': epochs, 'nc1_values': [nc1[e] for e in epochs],
        'nc1_first_epoch': epochs[0], 'nc1_first': first, 'nc1_last_epoch': epochs[-1], 'nc1_last': last,
        'nc1_drop': first / last if last > 0 else float('inf'),
        'train_accuracy': accuracy,
        'logits_pre': np.asarray(pre).tolist(), 'bias': np.asarray(bias, dtype=float).tolist(),
        'block': hong_analysis.block_structure(pre, counts),
        'convex_logits_pre': None if convex is None else np.asarray(convex).tolist(),
        'convex_block': None if convex is None else hong_analysis.block_structure(convex, counts),
    })


if __name__ == '__main__':
    cli.run(main, hong_args.parse(get_args_parser()))
