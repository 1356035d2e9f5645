"""Train with L-BFGS (Zhou 2022, Figure "different optimizers"), one closure per mini-batch.

  CUDA_VISIBLE_DEVICES=0 python train_2nd_order.py --gpu_id 0 --uid <name> --dataset cifar10 --optimizer LBFGS --lr 0.1 --history_size 10 --batch_size 2048

--optimizer LBFGS is torch.optim.LBFGS with the strong-Wolfe line search (up to 20 iterations
per batch, as J); --optimizer SdLBFGS is J's stochastic damped L-BFGS (optimizers.py), one
update per batch. The loss carries the explicit penalty sum_p lambda/2 ||p||^2 over all
trainable parameters (lambda = --weight_decay); the optimiser has no weight decay. StepLR per
epoch, as J (T's version had no schedule). The batch log goes to log.txt, as J.
"""
import args as cli
import datasets
import models
from nc_repro import checkpoints, losses, nc_curves, training


def get_args_parser():
    return cli.get_train_parser('Train with a second-order optimiser (LBFGS, SdLBFGS).')


def main(args):
    if args.optimizer not in ('LBFGS', 'SdLBFGS'):
        raise cli.UsageError('--optimizer %s: train_2nd_order.py supports LBFGS and SdLBFGS '
                             '(use train_1st_order.py for SGD and Adam)' % args.optimizer)
    device = training.setup(args.seed, args.device, args.gpu_id, args.deterministic)
    curves = nc_curves.make_curves(args.nc_every, args.tensorboard, args.paper)  # None unless --nc_every / --tensorboard
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape).to(device)
    save_every = args.save_every or 1
    loader = datasets.make_train_loader(args, data, device, shuffle=True, model=model)
    run_dir = checkpoints.prepare_run_dir(cli.run_settings(args), device, model, save_every)
    # the penalty is in the loss and the optimiser has no weight decay (Zhou 2022's script)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes,
                                      parameter_penalty=True)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model,
                                        coupled_weight_decay=False)
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    # its batch log is log.txt, with no LR in the epoch headers, as the original's
    training.fit(model, loader, objective, optimizer, scheduler, run_dir, args.epochs,
                 save_every=save_every, log_name='log.txt', header_lr=False, resume=args.resume,
                 curves=curves)
    print('checkpoints: %s' % run_dir)
    return run_dir


if __name__ == '__main__':
    args = cli.parse(get_args_parser(), allowed=cli.BALANCED_PAPERS)
    cli.run(main, args)
