"""Train a network with SGD or Adam and save a checkpoint per epoch (Zhou 2022, Dang 2023).

Zhou et al. 2022 (recipe zhou2022, checkpoints in model_weights/<uid>/):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --gpu_id 0 --uid <name> --dataset cifar10 --optimizer SGD --batch_size 256 --lr 0.05
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --gpu_id 0 --uid <name> --dataset cifar10 --optimizer Adam --batch_size 64 --lr 0.001
Dang et al. 2023 (recipe dang2023, checkpoints in model_weights/<run name>/):
  CUDA_VISIBLE_DEVICES=0 python train_1st_order.py --model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay
Offline: append --dataset digits (scikit-learn's bundled handwritten digits).
"""
import args as cli
import checkpoints
import datasets
import losses
import models
import training


def get_args_parser():
    return cli.get_train_parser('Train with a first-order optimiser (SGD, Adam).')


def main(args):
    if args.optimizer in ('LBFGS', 'SdLBFGS'):
        raise cli.UsageError('--optimizer %s needs a closure: use train_2nd_order.py' % args.optimizer)
    device = training.select_device(args)
    training.set_seed(args.seed)
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape).to(device)
    run_dir = checkpoints.prepare_run_dir(args)
    loader = datasets.make_train_loader(args, data, device)
    objective = losses.make_objective(args, data.num_classes)
    optimizer = training.make_optimizer(args, model)
    scheduler = training.make_scheduler(args, optimizer)
    training.fit(model, loader, objective, optimizer, scheduler, run_dir, args.epochs,
                 save_every=args.save_every or 1)
    print('checkpoints: %s' % run_dir)


if __name__ == '__main__':
    args = cli.parse(get_args_parser())
    cli.run(main, args)
