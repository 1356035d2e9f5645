"""Train on an imbalanced training set (Dang 2023 with MSE, Dang 2024 with cross-entropy).

Dang et al. 2023 (recipe dang2023, inferred from --loss MSE):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias --loss MSE --lr 0.0001 --weight_decay 0.00001 --optimizer Adam --sep_decay --epochs 12000 --patience 6000
Dang et al. 2024 (recipe dang2024, inferred from --loss CrossEntropy):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias --loss CrossEntropy --lr 0.0001 --optimizer Adam --sep_decay --batch_size 256 --feature_decay_rate 0.00001 --weight_decay 0.0001 --epochs 4000 --patience 2000
  CUDA_VISIBLE_DEVICES=0 python train_1st_order_unbalanced.py --model ResNet18 --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 2048 --seed 1 --no-bias --loss CrossEntropy --lr 0.0001 --optimizer Adam --sep_decay --batch_size 32 --feature_decay_rate 0.00001 --weight_decay 0.0001 --epochs 4000 --patience 2000
Offline: append --dataset digits (counts 25, 25, 50, ..., 125).

Recipe: the first n_k training images of each class in file order, visited in that fixed
order every epoch; D23 trains full batch (its scripts overwrite --batch_size with N), D24
honours --batch_size. Models without BatchNorm in the MLP; D24's features are ReLU outputs
(MLP) or the pooled features without the BatchNorm1d (ResNet/VGG). Loss under --sep_decay:
1/2 data term + lambda_W/2 sum_l ||W_l||^2 + lambda_H/2 sum_batch ||h_i||^2. Checkpoints at
epochs 1, 101, 201, ... and the last (D23) or 1, 11, 21, ... and the last (D24).
"""
import args as cli
import datasets
import models
from nc_repro import checkpoints, losses, nc_curves, recipes, training

def get_args_parser():
    return cli.get_train_parser('Train on an imbalanced subset (Dang 2023 MSE, Dang 2024 CE).')


def main(args):
    if args.optimizer in ('LBFGS', 'SdLBFGS'):
        raise cli.UsageError('--optimizer %s is not supported by the imbalanced trainer' % args.optimizer)
    device = training.setup(args.seed, args.device, args.gpu_id, args.deterministic)
    curves = nc_curves.make_curves(args.nc_every, args.tensorboard, args.paper)  # None unless --nc_every / --tensorboard
    recipe = recipes.get(args.paper)
    counts = datasets.imbalanced_counts(args.paper, args.dataset)
    data = datasets.training_data(args, counts)
    model = models.build_model(args, data.num_classes, data.input_shape, unbalanced=True).to(device)
    save_every = args.save_every or recipe.save_every_imbalanced
    # Dang 2023 trains full batch (its script overwrites --batch_size with N); fixed order
    batch_size = len(data.train) if recipe.full_batch_imbalanced else args.batch_size
    loader = datasets.make_train_loader(args, data, device, shuffle=False, batch_size=batch_size,
                                        model=model)
    run_dir = checkpoints.prepare_run_dir(cli.run_settings(args, unbalanced=True), device, model, save_every)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes,
                                      unbalanced=True)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    training.fit(model, loader, objective, optimizer, scheduler, run_dir, args.epochs,
                 save_every=save_every, resume=args.resume, curves=curves)
    print('checkpoints: %s' % run_dir)
    return run_dir


if __name__ == '__main__':
    args = cli.parse(get_args_parser(), unbalanced=True, allowed=cli.IMBALANCED_PAPERS)
    cli.run(main, args)
