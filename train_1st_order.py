"""Train a network with SGD or Adam and save a checkpoint per epoch (Zhou 2022, Dang 2023).

Zhou et al. 2022 (recipe zhou2022, checkpoints in model_weights/<uid>/):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --gpu_id 0 --uid <name> --dataset cifar10 --optimizer SGD --batch_size 256 --lr 0.05
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --gpu_id 0 --uid <name> --dataset cifar10 --optimizer Adam --batch_size 64 --lr 0.001
Dang et al. 2023 (recipe dang2023, checkpoints in model_weights/<run name>/):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay
Offline: append --dataset digits (scikit-learn's bundled handwritten digits).

Recipe: seed -> data (preloaded tensors) -> model by name -> run folder and args.txt ->
shuffled mini-batches -> loss of the paper -> SGD/Adam with coupled weight decay (none under
--sep_decay, whose penalties are in the loss) -> StepLR -> epoch_XXX.pth per epoch.
"""
import args as cli
import datasets
import models
from nc_repro import checkpoints, losses, nc_curves, training


def get_args_parser():
    return cli.get_train_parser('Train with a first-order optimiser (SGD, Adam).')


def main(args):
    if args.optimizer in ('LBFGS', 'SdLBFGS'):
        raise cli.UsageError('--optimizer %s needs a closure: use train_2nd_order.py' % args.optimizer)
    device = training.setup(args.seed, args.device, args.gpu_id, args.deterministic)
    curves = nc_curves.make_curves(args.nc_every, args.tensorboard, args.paper)  # None unless --nc_every / --tensorboard
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape).to(device)
    save_every = args.save_every or 1
    loader = datasets.make_train_loader(args, data, device, shuffle=True, model=model)
    run_dir = checkpoints.prepare_run_dir(cli.run_settings(args), device, model, save_every)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    training.fit(model, loader, objective, optimizer, scheduler, run_dir, args.epochs,
                 save_every=save_every, resume=args.resume, curves=curves)
    print('checkpoints: %s' % run_dir)
    return run_dir


if __name__ == '__main__':
    args = cli.parse(get_args_parser(), allowed=cli.BALANCED_PAPERS)
    cli.run(main, args)
