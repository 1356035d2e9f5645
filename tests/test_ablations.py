"""Ablations never destroy, mislead or crash (issue 34): one run per folder, --resume continues,
every flag honoured or refused, no crash and no silent non-finite number."""
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

import args as cli
import datasets
import models
import train_1st_order
import validate_NC
from nc_repro import checkpoints, fileio, info_files, nc_curves, run_dirs, training, validation
from plots import plot_utils
from conftest import ROOT, run_script

D23 = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '2', '--width', '16', '--seed', '1',
       '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam', '--weights_root', 'mw']


def parse(parser, argv, **kwargs):
    return cli.parse(parser, argv, **kwargs)


def train(argv, cwd):
    """train_1st_order in this process, from ``cwd``; returns the run folder."""
    old = os.getcwd()
    os.chdir(cwd)
    try:
        args = parse(train_1st_order.get_args_parser(), argv, allowed=('zhou2022', 'dang2023'))
        return os.path.join(str(cwd), train_1st_order.main(args))
    finally:
        os.chdir(old)


def weights(folder, epoch):
    return checkpoints.load_state_dict(checkpoints.checkpoint_path(folder, epoch))


def test_an_ablation_over_a_flag_the_name_leaves_out_gets_its_own_folder(tmp_path, capsys):
    first = train(D23 + ['--epochs', '1', '--sep_decay', '--feature_decay_rate', '0.01'], tmp_path)
    before = weights(first, 1)
    second = train(D23 + ['--epochs', '1'], tmp_path)
    assert second == first + '__sep_decay_False-feature_decay_rate_0.0001'
    after = weights(first, 1)
    assert all(torch.equal(before[key], after[key]) for key in before)     # never overwritten
    with open(os.path.join(second, 'run.json')) as f:
        assert json.load(f)['training_flags']['sep_decay'] is False
    # a validator given the same flags finds each run
    os.chdir(tmp_path)
    for flags, folder in ((D23 + ['--epochs', '1'], second),
                          (D23 + ['--epochs', '1', '--sep_decay', '--feature_decay_rate', '0.01'], first)):
        args = parse(validate_NC.get_args_parser(), flags, evaluation=True, allowed=('zhou2022', 'dang2023'))
        assert os.path.join(str(tmp_path), run_dirs.run_dir(cli.run_settings(args))) == folder


def test_resume_with_more_epochs_continues_a_finished_run_bit_identically(tmp_path, capsys):
    (tmp_path / 'a').mkdir()
    short = train(D23 + ['--epochs', '2'], tmp_path / 'a')
    longer = train(D23 + ['--epochs', '3', '--resume'], tmp_path / 'a')
    assert 'continuing %s (2 epochs)' % os.path.relpath(short, tmp_path / 'a') in capsys.readouterr().out
    (tmp_path / 'b').mkdir()
    straight = train(D23 + ['--epochs', '3'], tmp_path / 'b')
    resumed, expected = weights(longer, 3), weights(straight, 3)
    assert all(torch.equal(resumed[key], expected[key]) for key in expected)
    assert checkpoints.saved_epochs(short) == [1, 2]                        # the short run is kept


def test_resume_refusals_and_nothing_to_resume(tmp_path, capsys):
    zhou = ['--uid', 'r', '--dataset', 'digits', '--model', 'MLP', '--width', '8', '--depth', '2',
            '--lr', '0.05', '--weights_root', 'mw']
    folder = train(zhou + ['--epochs', '1', '--resume'], tmp_path)
    assert '--resume: nothing to resume in' in capsys.readouterr().out
    with pytest.raises(cli.UsageError, match=r'other training flags \(--lr 0.01 here, 0.05 there'):
        train(zhou + ['--epochs', '2', '--resume', '--lr', '0.01'], tmp_path)
    with open(os.path.join(folder, checkpoints.RESUME_NAME), 'wb') as f:
        f.write(b'truncated')
    with pytest.raises(cli.UsageError, match='resume.pth cannot be read'):
        train(zhou + ['--epochs', '2', '--resume'], tmp_path)
    assert checkpoints.saved_epochs(folder) == [1]                          # nothing overwritten
    train(zhou + ['--epochs', '1', '--force'], tmp_path)
    assert '--force: emptied' in capsys.readouterr().out


def test_force_empties_the_folder_so_the_validator_sees_only_the_new_run(tmp_path, capsys):
    zhou = ['--uid', 'r', '--dataset', 'digits', '--model', 'MLP', '--width', '8', '--depth', '2',
            '--lr', '0.05', '--weights_root', 'mw']
    folder = train(zhou + ['--epochs', '2'], tmp_path)
    (tmp_path / 'mw' / 'r' / 'info.pkl').write_bytes(b'old')
    train(zhou + ['--epochs', '1', '--force'], tmp_path)
    assert checkpoints.saved_epochs(folder) == [1] and not os.path.exists(os.path.join(folder, 'info.pkl'))


@pytest.mark.parametrize('flags, warned', [
    (['--model', 'MLP', '--depth_relu', '2', '--data_augmentation'], '--data_augmentation has no effect'),
    (['--uid', 'x', '--model', 'MLP', '--M', '3'], '--M 3.0 has no effect'),
    (['--model', 'MLP', '--depth_relu', '2', '--feature_decay_rate', '0.01'], '--feature_decay_rate 0.01 has no effect'),
    (['--model', 'MLP', '--depth_relu', '2', '--history_size', '3'], '--history_size 3 has no effect'),
])
def test_a_flag_without_effect_is_named_and_left_out_of_the_run(flags, warned, capsys):
    args = parse(train_1st_order.get_args_parser(), flags + ['--dataset', 'digits'])
    assert warned in capsys.readouterr().out
    dest = warned.split()[0][2:]
    assert getattr(args, dest) == cli.get_eval_parser().get_default(dest) or dest == 'feature_decay_rate'
    assert 'data_augmentation_True' not in run_dirs.paper_run_dir(cli.run_settings(args))


def test_sample_size_in_the_imbalanced_scripts_is_refused(capsys):
    import train_1st_order_unbalanced
    with pytest.raises(SystemExit) as stop:
        parse(train_1st_order_unbalanced.get_args_parser(), ['--model', 'MLP', '--dataset', 'digits',
              '--loss', 'CrossEntropy', '--sample_size', '5'], unbalanced=True, allowed=('dang2023', 'dang2024'))
    assert stop.value.code == 2 and '--sample_size has no effect' in capsys.readouterr().err


def test_digits_has_1438_training_images_and_batchnorm_never_sees_a_batch_of_one(capsys):
    args = parse(train_1st_order.get_args_parser(), D23 + ['--batch_size', '1437'])
    data = datasets.training_data(args)
    assert len(data.train) == 1438
    model = models.build_model(args, data.num_classes, data.input_shape)
    loader = datasets.make_train_loader(args, data, 'cpu', model=model)
    assert [len(labels) for _, labels in loader] == [1438]
    assert 'joins the batch before it' in capsys.readouterr().out
    args.batch_size = 1
    with pytest.raises(cli.UsageError, match='--batch_size 1: the model has BatchNorm'):
        datasets.make_train_loader(args, data, 'cpu', model=model)


def test_an_exploding_loss_stops_the_run(tmp_path):
    result = run_script('train_1st_order_unbalanced.py', '--model', 'MLP', '--dataset', 'digits',
                        '--depth_relu', '2', '--width', '16', '--no-bias', '--loss', 'CrossEntropy',
                        '--optimizer', 'Adam', '--sep_decay', '--batch_size', '256', '--epochs', '2',
                        '--lr', '1e3', cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert 'it exploded; lower --lr' in result.stderr and 'Traceback' not in result.stderr
    assert not any(name.startswith('epoch_') for _, _, files in os.walk(tmp_path) for name in files)


def feature_pass_of(h, labels):
    return validation.FeaturePass([h], torch.zeros(len(labels), 10), labels)


def test_dead_features_are_undefined_not_collapse(capsys):
    labels = torch.arange(10).repeat(5)
    info = {'epoch': [1]}
    metrics = info_files.record_undefined(info, 2, {'NC1': 0.0, 'train_acc1': 10.0, 'per_layer': {'NC1': [0.0]}},
                                          feature_pass_of(torch.zeros(50, 4), labels))
    assert np.isnan(metrics['NC1']) and metrics['train_acc1'] == 10.0 and np.isnan(metrics['per_layer']['NC1'][0])
    assert info['nc_undefined'][0] is None and 'dead features' in info['nc_undefined'][1]
    assert 'warning: epoch 2: dead features' in capsys.readouterr().out
    info['NC1'] = [0.5, metrics['NC1']]
    series = info_files.scalar_series(info)
    assert series['NC1'] == [0.5, None] and 'dead features' in series['nc_undefined'][1]
    json.loads(json.dumps(series, allow_nan=False))
    healthy = info_files.record_undefined(info, 3, {'NC1': float('inf')}, feature_pass_of(torch.randn(50, 4), labels))
    assert healthy['NC1'] == float('inf') and info['nc_undefined'][-1] == 'not finite: NC1'


def test_json_records_hold_no_infinity(tmp_path, capsys):
    found = fileio.write_json(str(tmp_path / 'r.json'), {'block': {'within_over_gap': float('inf')}, 'ok': 1.0})
    text = (tmp_path / 'r.json').read_text()
    assert 'Infinity' not in text and json.loads(text)['non_finite'] == {'block.within_over_gap': 'inf'}
    assert found and 'block.within_over_gap not finite' in capsys.readouterr().out


def test_plots_take_a_folder_and_send_a_wrong_kind_file_to_its_command(tmp_path, capsys):
    (tmp_path / 'info.pkl').write_bytes(pickle.dumps({'epoch': [1], 'NC1': [0.1], 'NC2_WWT': [0.2]}))
    assert plot_utils.load_info(str(tmp_path))['NC1'] == [0.1]
    with pytest.raises(SystemExit) as stop:
        plot_utils.load_info(str(tmp_path / 'info.pkl'), kind='balanced')
    assert stop.value.code == 2 and 'plots/plot_imbalanced.py' in capsys.readouterr().err
    (tmp_path / 'info.pkl').write_bytes(pickle.dumps({'epoch': [1], 'NC1': [float('nan')], 'nc_undefined': ['dead']}))
    with pytest.raises(SystemExit):
        plot_utils.check_drawable(plot_utils.load_info(str(tmp_path)), ['NC1'], 'info.pkl')
    assert 'no finite NC value at any epoch (dead)' in capsys.readouterr().err


def test_bad_tensorboard_and_weights_root_are_one_line_before_training(tmp_path):
    (tmp_path / 'file').write_text('')
    with pytest.raises(cli.UsageError, match='is a file, not a folder'):
        nc_curves.check_log_dir(str(tmp_path / 'file'))
    with pytest.raises(cli.UsageError, match='is a file, not a folder'):
        nc_curves.check_log_dir(str(tmp_path / 'file' / 'sub'))
    nc_curves.check_log_dir(str(tmp_path / 'new' / 'dir'))
    with pytest.raises(cli.UsageError, match='cannot create the run folder'):
        checkpoints.lock_run_dir(str(tmp_path / 'file' / 'run'))


def test_wait_waits_for_the_epochs_the_recipe_saves(tmp_path):
    for epoch in (1, 11, 13):
        (tmp_path / checkpoints.checkpoint_name(epoch)).write_bytes(b'x')
    args = parse(validate_NC.get_args_parser(), D23 + ['--epochs', '13', '--wait', '0.01'], evaluation=True)
    assert validation.select_epochs(str(tmp_path), cli.epoch_choice(args, str(tmp_path), save_every=10),
                                    poll_seconds=0.01) == [1, 11, 13]
    with pytest.raises(cli.UsageError, match='epoch_002.pth is missing'):
        validation.select_epochs(str(tmp_path), cli.epoch_choice(args, str(tmp_path), save_every=1), poll_seconds=0.01)


def test_narrow_models_keep_the_default_layout(monkeypatch):
    monkeypatch.delenv('NC_REPRO_MEMORY_FORMAT', raising=False)
    narrow, wide = (models.build_hong_model('ResNet18', 1, width=width) for width in (4, 16))
    assert narrow.memory_format == torch.contiguous_format
    assert wide.memory_format == torch.channels_last


def test_a_width_4_resnet_trains_on_an_odd_batch_without_a_native_crash():
    """The shape that corrupted the heap in channels_last (Hong ResNet18 --width 4, batch 3), in a
    child process so that a crash fails this test only."""
    code = ('import torch, models\n'
            'm = models.build_hong_model("ResNet18", 1, width=4)\n'
            'for _ in range(3):\n'
            '    m(torch.randn(3, 1, 32, 32))[0].sum().backward()\n'
            'print("ok")\n')
    result = subprocess.run([sys.executable, '-c', code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0 and 'ok' in result.stdout, result.stderr[-2000:]


@pytest.mark.slow
def test_readme_width_4_hong_command_trains(tmp_path):
    """The README's `--width 4` Hong command (625 images: a last batch of 113) crashed natively
    in channels_last (exit 139)."""
    result = run_script('minority_n_main.py', '--ka', '5', '--nalist', '400', '--dataset_t', 'digits',
                        '--epoch', '2', '--width', '4', cwd=tmp_path, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
