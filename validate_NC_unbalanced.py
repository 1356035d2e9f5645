"""Measure Neural Collapse on an imbalanced run against the papers' closed-form geometry.

Dang et al. 2023 (recipe dang2023, --loss MSE): the general-orthogonal-frame targets of
theory.d23_geometry, from --weight_decay (lambda_W), --feature_decay_rate (lambda_H),
--depth_linear and the class counts:
  CUDA_VISIBLE_DEVICES=0 python validate_NC_unbalanced.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias --loss MSE --lr 0.0001 --weight_decay 0.00001 --optimizer Adam --sep_decay --epochs 12000 --patience 6000
Dang et al. 2024 (recipe dang2024, --loss CrossEntropy): the CE/ReLU targets of
theory.d24_targets, plus the original's CSV matrices:
  CUDA_VISIBLE_DEVICES=0 python validate_NC_unbalanced.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias --loss CrossEntropy --lr 0.0001 --optimizer Adam --sep_decay --batch_size 256 --feature_decay_rate 0.00001 --weight_decay 0.0001 --epochs 4000 --patience 2000

--nc1_stale_features (dang2024 only) computes NC1_as_coded with the 2024 validator's stale
first Sigma_W batch (docs/original_code.md); NC1 and the default NC1_as_coded are clean.

The dang2023 targets are those of the global minimiser; the same metrics against the original's
largest real root (which is not always the minimiser for a depth M >= 2; docs/original_code.md,
D23-B21) are kept beside them under the suffix _as_coded, and theory.json holds both geometries.

Writes into the run folder: info.pkl / info.json (per saved epoch: NC1 exact and as coded, the theory metrics,
train and test accuracy, per-class class-mean and classifier-row norms; dang2023 also every
head layer under per_layer), theory.json (the predicted geometry), test_log.txt, and for
dang2024 HTH.csv, ReLU_HTH.csv, W.csv, ReLU_H.csv, WTW.csv, WH.csv. As in the originals,
the theory takes lambda from the flags although the trainer's data term is the MSE mean
halved (docs/original_code.md, D23-B10); --lr defaults to 0.1 here, as the originals' imbalanced
validators (pass the training --lr).
"""
import functools
import os

import args as cli
import datasets
import models
from nc_repro import fileio, recipes, run_dirs, theory, training, validation


def get_args_parser():
    return cli.get_eval_parser('Validate NC metrics of an imbalanced run against the theory.')


def main(args):
    device = training.select_device(args.device, args.gpu_id)
    training.set_seed(args.seed)
    recipe = recipes.get(args.paper)
    counts = datasets.imbalanced_counts(args.paper, args.dataset)
    data = datasets.training_data(args, counts)
    model = models.build_model(args, data.num_classes, data.input_shape, unbalanced=True).to(device)
    run_dir = run_dirs.run_dir(cli.run_settings(args, unbalanced=True))
    lambdas = (args.weight_decay, args.feature_decay_rate)
    if recipe.imbalanced_theory == 'd23_geometry':
        geometry = theory.d23_geometry(counts, args.depth_linear, *lambdas)
        as_coded = theory.d23_geometry(counts, args.depth_linear, *lambdas, rule='as_coded', no_root='collapse')
        metrics = functools.partial(validation.dang_imbalanced_metrics, geometry=geometry,
                                    as_coded_geometry=as_coded)
    else:
        geometry = theory.d24_targets(counts, *lambdas)
        metrics = functools.partial(validation.dang2024_metrics, targets=geometry, counts=counts,
                                    run_dir=run_dir, stale_features=args.nc1_stale_features)
    choice = cli.epoch_choice(args, run_dir, save_every=args.save_every or recipe.save_every_imbalanced)
    validation.validate_run(model, data, run_dir, device, choice, args.batch_size, metrics,
                            recipe.conventions, recipe.info_keys_imbalanced)
    record = {'paper': args.paper, 'counts': counts, 'lambda_W': lambdas[0], 'lambda_H': lambdas[1],
              'depth_linear': args.depth_linear, **as_lists(geometry)}
    if recipe.imbalanced_theory == 'd23_geometry':
        record.update(rule='global', as_coded=as_lists(as_coded))
    fileio.write_json(os.path.join(run_dir, 'theory.json'), record)
    print('info: %s' % os.path.join(run_dir, 'info.pkl'))


def as_lists(geometry):
    return {key: value.tolist() if hasattr(value, 'tolist') else value for key, value in geometry.items()}


if __name__ == '__main__':
    args = cli.parse(get_args_parser(), unbalanced=True, evaluation=True, allowed=cli.IMBALANCED_PAPERS)
    cli.run(main, args)
