"""Every paper command printed in README.md runs verbatim, with only the offline flags the
README itself names appended (--dataset digits and a few epochs, --sample_size 2 for the
ResNets; --dataset_t digits --epoch 1 --width 4 for Hong & Ling; fewer iterations for the
synthetic runs), and each validator then writes its info.pkl. The commands are read from the
README, so the README cannot drift from the code.

cifar10_random is run in-process on CIFAR-10 python pickles written by the test (torchvision's
md5 check is the only thing patched), since digits has no random-label variant."""
import glob
import os
import pickle
import re
import shlex

import numpy as np
import pytest
import torchvision

import args as cli
import train_1st_order
import validate_NC
from conftest import ROOT, run_script
from test_datasets import write_cifar10

PREFIX = re.compile(r'^(CUDA_VISIBLE_DEVICES=0 )?python (\S+\.py)(.*)$')
# Commands whose full-size network takes minutes (or, L-BFGS on ResNet18, 40 s) even on digits.
SLOW = re.compile(r'_unbalanced.py --model ResNet18|minority_[ln]_main|limit_main|train_2nd_order.py')
# The README's balanced ResNet commands also get --sample_size 2 (20 digits images).
RESNET = re.compile(r'--model (?!MLP)|--uid')
# Grid launchers, not paper commands (tests/test_sweep.py runs them).
LAUNCHERS = ('sweep.py', 'figures.py', 'reproduce.py')     # tested in test_sweep.py, test_reproduce.py


def readme_commands():
    """[(script, argv)] of every command line inside the README's code blocks, in order."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        blocks = re.findall(r'^```\n(.*?)^```', f.read(), flags=re.S | re.M)
    commands = []
    for block in blocks:
        for line in block.splitlines():
            match = PREFIX.match(line.split('#')[0].strip())
            if match and not match.group(2).startswith('plots/') and match.group(2) not in LAUNCHERS:
                commands.append((match.group(2), shlex.split(match.group(3).replace('<name>', 'readme'))))
    return commands


COMMANDS = readme_commands()
TRAINERS = ('train_1st_order.py', 'train_2nd_order.py', 'train_1st_order_unbalanced.py')


def last_epoch(script, argv):
    """The README's offline epoch count (3 imbalanced, 2 balanced), cut to 1 where one epoch
    costs minutes here: L-BFGS on resnet18 and its validation, the imbalanced ResNet18."""
    second_order = script == 'train_2nd_order.py' or '--load_path' in argv
    if second_order or ('unbalanced' in script and '--model ResNet18' in ' '.join(argv)):
        return '1'
    return '3' if 'unbalanced' in script else '2'


def offline(script, argv):
    """The flags appended to run a README command offline and briefly."""
    if 'unbalanced' in script:
        return argv + ['--dataset', 'digits', '--epochs', last_epoch(script, argv)]
    if script in TRAINERS or script.startswith('validate'):
        subset = ['--sample_size', '2'] if RESNET.search(' '.join(argv)) or '--model' not in argv else []
        return argv + ['--dataset', 'digits', '--epochs', last_epoch(script, argv)] + subset
    if script.startswith('synthetic'):
        return argv + ['--num_iteration', '20', '--log_every', '10']
    if script == 'opt_main.py':
        return argv
    return argv + ['--dataset_t', 'digits', '--epoch', '1', '--width', '4']


def cases(commands):
    """pytest params of these (script, argv): the fast suite (make test) runs the first README
    command of each script; its other commands and the SLOW ones are marked slow (make test-all,
    and CI's make test-slow, run every one)."""
    params, seen = [], set()
    for script, argv in commands:
        name = '%s %s' % (script, ' '.join(argv))
        marks = [pytest.mark.slow] if SLOW.search(name) or script in seen else []
        seen.add(script)
        params.append(pytest.param(script, argv, id=name[:90], marks=marks))
    return params


def validator_for(script, argv):
    """(validator, argv) the README prints for this training command, or None: the imbalanced
    and D23 validators take the trainer's flags; Zhou's validates the LBFGS run's folder."""
    if script == 'train_1st_order_unbalanced.py':
        return 'validate_NC_unbalanced.py', argv
    for other, other_argv in COMMANDS:
        same_data = dataset_of(other_argv) == dataset_of(argv)
        if other == 'validate_NC.py' and (other_argv == argv or (
                script == 'train_2nd_order.py' and '--load_path' in other_argv and same_data)):
            return other, other_argv
    return None


def dataset_of(argv):
    return argv[argv.index('--dataset') + 1] if '--dataset' in argv else None


def test_the_readme_prints_every_papers_commands():
    scripts = [script for script, _ in COMMANDS]
    for expected, count in (('train_1st_order.py', 8), ('train_1st_order_unbalanced.py', 3), ('validate_NC.py', 2),
                            ('validate_NC_unbalanced.py', 1), ('synthetic_experiment_imbalanced.py', 3),
                            ('minority_l_main.py', 2), ('opt_main.py', 1)):
        assert scripts.count(expected) >= count, expected
    assert [script for script, argv in COMMANDS if 'cifar10_random' in argv] == ['train_1st_order.py', 'validate_NC.py']


@pytest.mark.parametrize('script,argv', cases([(s, a) for s, a in COMMANDS
                                               if s in TRAINERS and 'cifar10_random' not in a]))
def test_training_command_then_its_validator(script, argv, tmp_path):
    run_script(script, *offline(script, argv), cwd=tmp_path)
    assert glob.glob(str(tmp_path / 'model_weights' / '*' / 'epoch_*.pth'))
    validator = validator_for(script, argv)
    if validator is None:
        return
    run_script(validator[0], *offline(*validator), cwd=tmp_path)
    info_path, = glob.glob(str(tmp_path / 'model_weights' / '*' / 'info.pkl'))
    with open(info_path, 'rb') as f:
        info = pickle.load(f)
    assert info['epoch'][-1] == int(last_epoch(script, argv))
    nc1 = info.get('collapse_metric') or info.get('NC1_collapse_metric') or info.get('NC1')
    assert len(nc1) == len(info['epoch']) and np.isfinite(nc1).all()
    if 'unbalanced' in script:
        assert os.path.exists(os.path.join(os.path.dirname(info_path), 'theory.json'))
        assert len(info['NC2_W']) == len(info['epoch'])


def readme_outputs():
    """{script: [glob]} from the README's "writes" tables: every backticked path of a row whose
    first cell is a script, with <...> and .. as wildcards and {a, b} expanded; Hong & Ling's
    paths are relative to their output root, hong_results/ (the README says so)."""
    with open(os.path.join(ROOT, 'README.md')) as f:
        rows = re.findall(r'^\| `(\w+\.py)` \|(.*)\|\s*$', f.read(), flags=re.M)
    outputs = {}
    for script, cells in rows:
        for path in re.findall(r'`([^`]*/[^`]*)`', cells.split('|')[-1]):
            pattern = re.sub(r'<[^>]*>|\.\.', '*', path)
            braces = re.match(r'(.*)\{(.*)\}(.*)', pattern)
            names = [braces.group(1) + name.strip() + braces.group(3) for name in braces.group(2).split(',')] \
                if braces else [pattern]
            root = '' if script.startswith('synthetic') else 'hong_results/'
            outputs.setdefault(script, []).extend(root + name for name in names)
    return outputs


OUTPUTS = readme_outputs()


def test_the_readme_names_the_outputs_of_every_experiment_script():
    experiments = {s for s, _ in COMMANDS if s not in TRAINERS and not s.startswith('validate')}
    assert experiments <= set(OUTPUTS), experiments - set(OUTPUTS)
    assert 'hong_results/opt_results/*.npy' in OUTPUTS['opt_main.py']


@pytest.mark.parametrize('script,argv', cases([(s, a) for s, a in COMMANDS
                                               if s not in TRAINERS and not s.startswith('validate')]))
def test_experiment_command_writes_what_the_readme_says(script, argv, tmp_path):
    result = run_script(script, *offline(script, argv), cwd=tmp_path, timeout=1800)
    for pattern in OUTPUTS[script]:
        assert glob.glob(str(tmp_path / pattern)), '%s wrote no %s:\n%s' % (script, pattern, result.stdout[-2000:])
    if script == 'opt_main.py':
        assert len(glob.glob(str(tmp_path / 'hong_results' / 'opt_results' / '*.npy'))) == 2


def test_cifar10_random_command_on_written_cifar10_files(tmp_path, monkeypatch):
    (script, argv), (_, validate_argv) = [(s, a) for s, a in COMMANDS if 'cifar10_random' in a]
    monkeypatch.setattr(torchvision.datasets.cifar, 'check_integrity', lambda *a, **k: True)
    write_cifar10(str(tmp_path), per_batch=20, n_test=20)
    monkeypatch.chdir(tmp_path)
    args = cli.parse(train_1st_order.get_args_parser(),
                     argv + ['--data_dir', str(tmp_path), '--sample_size', '5', '--epochs', '2'])
    train_1st_order.main(args)
    run_dir, = glob.glob(str(tmp_path / 'model_weights' / '*'))
    assert os.path.exists(os.path.join(run_dir, 'epoch_002.pth'))
    with open(tmp_path / 'cifar10_random_label' / 'train_label.pkl', 'rb') as f:
        labels = np.asarray(pickle.load(f)['label'])
    assert np.bincount(labels, minlength=10).tolist() == [10] * 10
    validate_args = cli.parse(validate_NC.get_args_parser(),
                              validate_argv + ['--data_dir', str(tmp_path), '--sample_size', '5', '--epochs', '2'],
                              evaluation=True, allowed=('zhou2022', 'dang2023'))
    validate_NC.main(validate_args)
    with open(os.path.join(run_dir, 'info.pkl'), 'rb') as f:
        assert pickle.load(f)['epoch'] == [1, 2]
