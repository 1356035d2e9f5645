"""The papers' README commands parse to the right recipe, model, loss, optimiser, schedule
and defaults (the args.py parsers and README commands of J, T and D23)."""
import shlex

import pytest

import args as cli
import models
from nc_repro import losses, training

ZHOU_SGD = '--gpu_id 0 --uid run --dataset cifar10 --optimizer SGD --batch_size 256 --lr 0.05'
ZHOU_ADAM = '--gpu_id 0 --uid run --dataset cifar10 --optimizer Adam --batch_size 64 --lr 0.001'
ZHOU_RANDOM = ('--dataset cifar10_random --optimizer SGD --batch_size 64 --lr 0.01 --model MLP '
               '--width 512 --depth 3 --weight_decay 1e-4')
ZHOU_SEP = ('--dataset cifar10 --optimizer SGD --batch_size 64 --lr 0.05 --model resnet18 '
            '--weight_decay 1e-4 --sep_decay --feature_decay_rate 1e-5')
DANG_MLP = ('--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
            '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay')
DANG_RESNET = '--model ResNet18 --dataset cifar10 --depth_linear 1 --width 512 --seed 1'

CASES = [
    # command, expected attributes
    (ZHOU_SGD, dict(paper='zhou2022', model='resnet18', loss='MSE', optimizer='SGD', lr=0.05,
                    weight_decay=5e-4, patience=40, gamma=0.1, batch_size=256, epochs=200, seed=6,
                    data_dir='../data', bias=True, sep_decay=False)),
    (ZHOU_ADAM, dict(paper='zhou2022', optimizer='Adam', lr=0.001, batch_size=64, weight_decay=5e-4)),
    (ZHOU_SGD + ' --ETF', dict(paper='zhou2022', ETF_fc=True)),
    (ZHOU_SGD + ' --fixdim 10', dict(fixdim=10, ETF_fc=False)),
    (ZHOU_SGD + ' --SOTA', dict(SOTA=True)),
    (ZHOU_RANDOM, dict(paper='zhou2022', dataset='cifar10_random', model='MLP', width=512, depth=3,
                       weight_decay=1e-4, lr=0.01)),
    (ZHOU_SEP, dict(paper='zhou2022', sep_decay=True, feature_decay_rate=1e-5, model='resnet18')),
    (DANG_MLP, dict(paper='dang2023', model='MLP', depth_relu=6, depth_linear=1, width=512, seed=1,
                    loss='MSE', lr=0.0001, optimizer='Adam', sep_decay=True, weight_decay=1e-4,
                    feature_decay_rate=1e-4, patience=50, data_dir='~/data', batch_size=128)),
    (DANG_RESNET, dict(paper='dang2023', model='ResNet18', optimizer='SGD', lr=0.001, loss='MSE',
                       weight_decay=1e-4, patience=50, sep_decay=False)),
]


def parse(command):
    return cli.parse(cli.get_train_parser(), shlex.split(command))


@pytest.mark.parametrize('command,expected', CASES)
def test_readme_commands_resolve(command, expected):
    args = parse(command)
    for dest, value in expected.items():
        assert getattr(args, dest) == value, dest


def test_recipe_line_is_printed_first(capsys):
    parse(DANG_MLP)
    assert capsys.readouterr().out.splitlines()[0] == 'recipe: dang2023 (inferred from --depth_relu)'
    parse(ZHOU_SGD)
    assert capsys.readouterr().out.splitlines()[0] == 'recipe: zhou2022 (inferred from --uid)'
    parse('--paper dang2023 --model MLP')
    assert capsys.readouterr().out.splitlines()[0] == 'recipe: dang2023 (from --paper)'


def test_explicit_paper_defaults_follow_recipe():
    args = parse('--paper dang2023 --model MLP')
    assert (args.lr, args.weight_decay, args.dataset, args.patience) == (0.001, 1e-4, 'mnist', 50)
    args = parse('--paper zhou2022')
    assert (args.lr, args.weight_decay, args.dataset, args.patience) == (0.1, 5e-4, 'cifar10', 40)


def test_mixed_recipe_flags_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        parse('--uid a --depth_linear 3')
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and '--uid' in err and '--depth_linear' in err


def test_multistep_schedule_and_optimiser_objects():
    import torch
    args = parse(DANG_MLP + ' --decay_type multistep_100_150')
    model = models.build_model(args, 10, (3, 32, 32))
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    assert isinstance(optimizer, torch.optim.Adam)
    assert optimizer.param_groups[0]['weight_decay'] == 0.0           # --sep_decay
    scheduler = training.make_scheduler(cli.settings(training.ScheduleSettings, args), optimizer)
    assert isinstance(scheduler, torch.optim.lr_scheduler.MultiStepLR)
    assert sorted(scheduler.milestones) == [100, 150]
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 10)
    assert objective.penalty == 'dang_sep_decay' and objective.data_scale == 1.0
    args = parse(DANG_RESNET)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), models.build_model(args, 10, (3, 32, 32)))
    assert isinstance(optimizer, torch.optim.SGD)
    assert optimizer.param_groups[0]['momentum'] == 0.9
    assert optimizer.param_groups[0]['weight_decay'] == 1e-4


def test_models_follow_recipe():
    args = parse(ZHOU_SGD)
    model = models.build_model(args, 10, (3, 32, 32))
    assert type(model).__name__ == 'ResNet' and model.normalize_returned_features
    args = parse(DANG_RESNET)
    model = models.build_model(args, 10, (3, 32, 32))
    assert type(model).__name__ == 'CifarResNet' and len(model.head_layers()) == 1
    args = parse(DANG_MLP.replace('--depth_linear 1', '--depth_linear 3'))
    model = models.build_model(args, 10, (3, 32, 32))
    assert [tuple(l.weight.shape) for l in model.head_layers()] == [(512, 512), (512, 512), (10, 512)]
    assert [l.bias is None for l in model.head_layers()] == [True, True, False]


@pytest.mark.parametrize('command,message', [
    ('--paper zhou2022 --depth 0', '--depth must be at least 1'),
    ('--paper dang2023 --model MLP --depth_linear 0', '--depth_linear must be at least 1'),
    ('--paper zhou2022 --decay_type cosine', '--decay_type'),
    ('--paper zhou2022 --dataset imagenet', "invalid choice: 'imagenet'"),
])
def test_bad_values_give_one_line(command, message, capsys):
    with pytest.raises(SystemExit) as stop:
        parse(command)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err
