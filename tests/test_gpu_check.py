"""bench/gpu_check.py, the prepared CUDA check, runs on the CPU here so it cannot rot; and a
model kept in channels_last still writes and reads the usual state-dict layout."""
import io

import pytest
import torch

import args as cli
import models
from conftest import run_script


def test_without_cuda_it_says_so_in_one_line(tmp_path):
    if torch.cuda.is_available():
        pytest.skip('this machine has CUDA')
    result = run_script('bench/gpu_check.py', cwd=tmp_path)
    assert result.stdout.strip().count('\n') == 0 and 'no CUDA' in result.stdout


@pytest.mark.slow
def test_gpu_check_on_the_cpu_passes(tmp_path):
    result = run_script('bench/gpu_check.py', '--device', 'cpu', '--smoke', '--papers', 'dang2023',
                        '--keep', tmp_path / 'runs', cwd=tmp_path, timeout=900)
    table = result.stdout[result.stdout.index('\ncheck'):]
    for check in ('dang2023 train', 'dang2023 validate', 'dang2023 figure', 'dang2023 keys = cpu keys',
                  'placement: dang2023 ResNet18 + SGD', 'placement: dang2023 MLP + Adam',
                  'bench/train_epoch.py', 'bench/validate.py'):
        assert check in table, check
    assert 'FAIL' not in table and ' 0 failed' in table


@pytest.mark.parametrize('flags', [
    '--model ResNet18 --dataset cifar10 --depth_linear 1 --width 16 --seed 1',
    '--gpu_id 0 --uid x --model resnet18 --SOTA --dataset cifar10'])
def test_channels_last_checkpoints_keep_the_usual_layout(flags):
    args = cli.parse(cli.get_train_parser(), flags.split())
    torch.manual_seed(0)
    fast = models.build_model(args, 10, (3, 32, 32))
    assert fast.memory_format == torch.channels_last
    x = torch.randn(8, 3, 32, 32)
    optimizer = torch.optim.SGD(fast.parameters(), lr=0.01, momentum=0.9)
    fast(x)[0].square().mean().backward()
    optimizer.step()                                  # parameters and BatchNorm statistics move
    buffer = io.BytesIO()
    torch.save(fast.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer)
    plain = models._build_model(args, 10, (3, 32, 32))          # the default layout
    expected = plain.state_dict()
    assert list(saved) == list(expected)
    for key, value in saved.items():
        assert value.shape == expected[key].shape and value.stride() == expected[key].stride(), key
    plain.load_state_dict(saved)
    fast.eval(), plain.eval()
    with torch.no_grad():
        a, b = fast(x)[0], plain(x)[0]
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5 * float(a.abs().max()))
