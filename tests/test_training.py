"""The shared training loop on the bundled digits data: the loss goes down, the network fits
the training set, checkpoints appear under the recipe's names and reload exactly."""
import json
import os
import shlex

import torch

import args as cli
import datasets
import models
from nc_repro import checkpoints, losses, training
from conftest import run_script

DANG_MLP = ('--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
            '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay')


def train_in_process(command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.parse(cli.get_train_parser(), shlex.split(command))
    training.set_seed(args.seed)
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape)
    run_dir = checkpoints.prepare_run_dir(cli.run_settings(args), 'cpu', model, save_every=1)
    loader = datasets.make_train_loader(args, data, 'cpu')
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes)
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    history = training.fit(model, loader, objective, optimizer, scheduler, run_dir, args.epochs)
    return args, data, model, run_dir, history


def test_dang_mlp_fits_digits_and_checkpoints_reload(tmp_path, monkeypatch):
    args, data, model, run_dir, history = train_in_process(DANG_MLP + ' --dataset digits --epochs 30 --lr 0.001',
                                                           tmp_path, monkeypatch)
    assert run_dir == os.path.join('model_weights', 'digits-MLP-MSE-Adam-width_512-depth_relu_6-'
                                   'depth_linear_1-bias_True-lr_0.001-data_augmentation_False-epochs_30-seed_1')
    assert checkpoints.saved_epochs(run_dir) == list(range(1, 31))
    assert history[-1]['loss'] < 0.8 * history[0]['loss']
    logged = [json.loads(line) for line in open(os.path.join(run_dir, 'train_log.jsonl'))]
    assert [row['epoch'] for row in logged] == list(range(1, 31))
    # reload the last checkpoint into a fresh model: identical outputs, 100% train accuracy
    fresh = models.build_model(args, data.num_classes, data.input_shape)
    fresh.load_state_dict(checkpoints.load_state_dict(checkpoints.checkpoint_path(run_dir, 30)))
    model.eval(), fresh.eval()
    images = data.train.normalise(data.train.images)
    with torch.no_grad():
        logits, _ = fresh(images)
        assert torch.equal(logits, model(images)[0])
    assert (logits.argmax(1) == data.train.labels).float().mean().item() == 1.0


def test_zhou_uid_layout_and_force(tmp_path, monkeypatch):
    command = ('--gpu_id 0 --uid sgd_run --dataset cifar10 --optimizer SGD --batch_size 256 --lr 0.05 '
               '--model MLP --width 64 --depth 2 --dataset digits --epochs 2')
    args, data, model, run_dir, history = train_in_process(command, tmp_path, monkeypatch)
    assert run_dir == os.path.join('model_weights', 'sgd_run')
    assert sorted(os.listdir(run_dir)) == ['.lock', 'args.json', 'args.txt', 'epoch_001.pth', 'epoch_002.pth',
                                           'log.txt', 'resume.pth', 'run.json', 'train_log.jsonl', 'train_log.txt']
    assert open(os.path.join(run_dir, 'args.txt')).read().startswith('Namespace(')
    import torchvision                        # run.json reads the version without importing it
    assert json.load(open(os.path.join(run_dir, 'run.json')))['torchvision'] == torchvision.__version__
    log = open(os.path.join(run_dir, 'train_log.txt')).read().splitlines()
    assert log[0].startswith('# of model parameters: ')
    assert log[1] == '-' * 21 + ' Training ' + '-' * 31
    assert 'Training Epoch: [1 | 2] LR: 0.050000' in log
    result = run_script('train_1st_order.py', *shlex.split(command), cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'train_1st_order.py: error: model_weights/sgd_run already exists; pass --force to overwrite '
        'it, --resume to continue it, or choose another --uid']
    run_script('train_1st_order.py', *shlex.split(command), '--force', cwd=tmp_path)


def test_save_every_and_step_schedule(tmp_path, monkeypatch):
    command = DANG_MLP + ' --dataset digits --epochs 5 --width 32 --patience 2 --gamma 0.5'
    monkeypatch.chdir(tmp_path)
    args = cli.parse(cli.get_train_parser(), shlex.split(command))
    assert [e for e in range(1, 6) if checkpoints.is_saved_epoch(e, 5, 2)] == [1, 3, 5]
    assert [e for e in range(1, 12001) if checkpoints.is_saved_epoch(e, 12000, 100)][:3] == [1, 101, 201]
    model = models.build_model(args, 10, (1, 8, 8))
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    rates = []
    for _ in range(5):
        rates.append(optimizer.param_groups[0]['lr'])
        optimizer.step(), scheduler.step()
    assert rates == [1e-4, 1e-4, 5e-5, 5e-5, 2.5e-5]


def test_non_finite_loss_stops_with_last_good_checkpoint(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = cli.parse(cli.get_train_parser(), shlex.split(
        '--paper zhou2022 --model MLP --width 16 --depth 1 --dataset digits --epochs 4 --lr 1e30 '
        '--uid diverge'))
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape)
    run_dir = checkpoints.prepare_run_dir(cli.run_settings(args), 'cpu', model, save_every=1)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    try:
        training.fit(model, datasets.make_train_loader(args, data, 'cpu'),
                     losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 10), optimizer,
                     training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer), run_dir, args.epochs)
    except training.TrainingDiverged as error:
        assert 'at epoch' in str(error)
    else:
        raise AssertionError('a learning rate of 1e30 must diverge')
