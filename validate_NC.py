"""Measure Neural Collapse at every saved epoch of a balanced run; write info.pkl/info.json.

Zhou et al. 2022 (recipe zhou2022: the run folder comes from --load_path, slash optional):
  CUDA_VISIBLE_DEVICES=0 python validate_NC.py --gpu_id 0 --dataset cifar10 --batch_size 256 --load_path model_weights/<uid>/
Dang et al. 2023 (recipe dang2023: the same flags as training name the run folder):
  CUDA_VISIBLE_DEVICES=0 python validate_NC.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay

Recipe: data without augmentation -> model from the flags -> for each saved epoch (tqdm):
load the state dict, one forward pass over train and test, NC metrics (nc_repro/metrics.py) under
the paper's conventions, append to info.pkl (the paper's key names) and info.json.
"""
import os

import args as cli
import datasets
import models
from nc_repro import recipes, run_dirs, training, validation


def get_args_parser():
    return cli.get_eval_parser('Validate NC metrics over saved checkpoints.')


def main(args):
    recipe = recipes.get(args.paper)
    if recipe.user_names_run_folder and not (args.load_path or args.uid):
        raise cli.UsageError('--load_path is required (the run folder, e.g. model_weights/<uid>/)')
    device = training.select_device(args.device, args.gpu_id)
    training.set_seed(args.seed)
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape).to(device)
    run_dir = run_dirs.run_dir(cli.run_settings(args))
    choice = cli.epoch_choice(args, run_dir, save_every=args.save_every or 1)
    validation.validate_run(model, data, run_dir, device, choice, args.batch_size,
                            validation.BALANCED_METRICS[recipe.validation_metrics],
                            recipe.conventions, recipe.info_keys)
    print('info: %s' % os.path.join(run_dir, 'info.pkl'))


if __name__ == '__main__':
    args = cli.parse(get_args_parser(), evaluation=True, allowed=cli.BALANCED_PAPERS)
    cli.run(main, args)
