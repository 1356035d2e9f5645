"""Bad input gives one line naming the flag or file, exit code 2, and writes nothing."""
import os

import pytest

from conftest import run_script

BASE = ['--paper', 'dang2023', '--model', 'MLP', '--width', '16', '--epochs', '1']


@pytest.mark.parametrize('flags,needle', [
    (['--paper', 'dang2023', '--model', 'ResNet999', '--dataset', 'digits'], '--model ResNet999'),
    (['--paper', 'zhou2022', '--model', 'resnet18', '--dataset', 'nope'], '--dataset'),
    (['--paper', 'zhou2022', '--dataset', 'mini_imagenet', '--data_dir', 'missing'], '--data_dir missing'),
    (BASE + ['--dataset', 'digits', '--depth_relu', '0'], '--depth_relu must be at least 1'),
    (BASE + ['--dataset', 'digits', '--optimizer', 'RMSprop'], '--optimizer RMSprop'),
])
def test_one_line_error_and_nothing_written(flags, needle, tmp_path):
    result = run_script('train_1st_order.py', *flags, cwd=tmp_path, check=False)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], result.stderr
    assert 'Traceback' not in result.stderr
    assert os.listdir(tmp_path) == []
