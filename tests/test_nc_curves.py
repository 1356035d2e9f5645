"""--nc_every and --tensorboard on every trainer: NC curves in train_log.jsonl and TensorBoard, with
the trained weights of a run without them, bit for bit."""
import glob
import json
import os

import pytest
import torch

from conftest import run_script

DANG = ('--model MLP --dataset digits --depth_relu 2 --depth_linear 2 --width 64 --seed 1 --loss MSE '
        '--optimizer Adam --sep_decay --lr 0.001 --batch_size 64 --epochs 6')


def run_folder(cwd, pattern=os.path.join('model_weights', '*')):
    folders = glob.glob(os.path.join(cwd, pattern))
    assert len(folders) == 1
    return folders[0]


def jsonl(run_dir):
    return [json.loads(line) for line in open(os.path.join(run_dir, 'train_log.jsonl'))]


def test_nc_every_and_tensorboard_log_nc_curves_and_leave_the_weights_bit_identical(tmp_path):
    pytest.importorskip('tensorboard')
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    with_flags, without = tmp_path / 'with', tmp_path / 'without'
    with_flags.mkdir(), without.mkdir()
    result = run_script('train_1st_order.py', *DANG.split(), '--nc_every', '3', '--tensorboard', 'tb', cwd=with_flags)
    run_script('train_1st_order.py', *DANG.split(), cwd=without)
    assert 'NC1=' in result.stderr                                           # on the progress bar
    measured, plain = run_folder(with_flags), run_folder(without)
    lines = jsonl(measured)
    assert [line['epoch'] for line in lines if 'nc' in line] == [3, 6]
    assert all(0 <= line['nc']['NC4_ncc_mismatch'] <= 1 for line in lines if 'nc' in line)
    assert lines[5]['nc']['NC1_collapse_metric'] < lines[2]['nc']['NC1_collapse_metric']
    assert [{k: v for k, v in line.items() if k not in ('nc', 'seconds')} for line in lines] == \
        [{k: v for k, v in line.items() if k != 'seconds'} for line in jsonl(plain)]
    for epoch in range(1, 7):
        name = 'epoch_%03d.pth' % epoch
        a = torch.load(os.path.join(measured, name), weights_only=True)
        b = torch.load(os.path.join(plain, name), weights_only=True)
        assert a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a), name
    events = EventAccumulator(str(with_flags / 'tb'))
    events.Reload()
    nc1 = events.Scalars('nc/NC1_collapse_metric')
    assert [event.step for event in nc1] == [3, 6]
    assert nc1[1].value == pytest.approx(lines[5]['nc']['NC1_collapse_metric'], rel=1e-6)
    assert [event.step for event in events.Scalars('train/loss')] == list(range(1, 7))
    assert {'train/train_acc1', 'train/lr', 'nc/NC2_ETF_W', 'nc/NC3_ETF_WH', 'nc/NC4_ncc_mismatch'} <= \
        set(events.Tags()['scalars'])


@pytest.mark.parametrize('script, flags, convention_key, folder', [
    ('train_2nd_order.py', '--gpu_id 0 --uid l --dataset digits --optimizer LBFGS --lr 0.1 --history_size 5 '
                           '--batch_size 2048 --epochs 2 --model MLP --width 32 --depth 2', 'collapse_metric', None),
    ('train_1st_order_unbalanced.py', '--model MLP --dataset digits --depth_relu 2 --depth_linear 1 --width 64 --seed 1 '
                                      '--no-bias --loss CrossEntropy --lr 0.001 --optimizer Adam --sep_decay --epochs 2 '
                                      '--feature_decay_rate 0.00001 --patience 2000', 'NC1', None),
    ('block_main.py', '--dataset_t digits --epoch 2 --width 4 --seed 1', 'NC1_collapse_metric',
     os.path.join('hong_results', 'models', '*')),
])
def test_the_other_trainers_take_nc_every_with_their_paper_convention(tmp_path, script, flags, convention_key, folder):
    run_script(script, *flags.split(), '--nc_every', '1', cwd=tmp_path)
    lines = jsonl(run_folder(tmp_path, *([folder] if folder else [])))
    assert len(lines) == 2 and all(convention_key in line['nc'] for line in lines)


def test_a_bad_nc_every_stops_before_anything_is_written(tmp_path):
    result = run_script('train_1st_order.py', *DANG.split(), '--nc_every', '0', cwd=tmp_path, check=False)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        'train_1st_order.py: error: --nc_every must be a positive number of epochs (got 0)']
    assert os.listdir(tmp_path) == []
