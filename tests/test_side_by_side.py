"""bench/side_by_side.py, the whole-process timing against the original scripts: it runs end to
end (with this checkout standing in for the original, which is not part of the project) on
CIFAR-10 files written in the genuine format, and a checkout without the script is one line."""
import re

import pytest

from conftest import ROOT, run_script
from test_datasets import write_cifar10


def test_a_checkout_without_the_training_script_is_one_line(tmp_path):
    result = run_script('bench/side_by_side.py', '--original', tmp_path, cwd=tmp_path, check=False)
    assert result.returncode == 2
    error = result.stderr.strip().splitlines()[-1]
    assert 'has no train_1st_order.py' in error and str(tmp_path) in error
    assert 'Traceback' not in result.stderr and result.stdout == ''


@pytest.mark.slow
def test_both_sides_train_one_epoch_on_the_same_files(tmp_path):
    write_cifar10(str(tmp_path / 'data'), per_batch=20)
    result = run_script('bench/side_by_side.py', '--original', ROOT, '--data_dir', tmp_path / 'data',
                        '--rows', 'dang_mlp', '--repeats', '1', cwd=tmp_path, timeout=300)
    row = re.search(r'^dang_mlp +([\d.]+)s +([\d.]+)s +([\d.]+)x', result.stdout, re.M)
    assert row, result.stdout
    original, ours, speed_up = map(float, row.groups())
    assert original > 0 and ours > 0 and abs(speed_up - original / ours) < 0.02
