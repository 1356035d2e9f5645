"""One prepared check of the CUDA path: does everything run on the device, and the same way?

  .venv/bin/python bench/gpu_check.py                    # on a CUDA machine, about 2-4 minutes
  .venv/bin/python bench/gpu_check.py --device cpu --smoke --papers dang2023   # the test's run

1. Each paper's README command (Zhou 2022 resnet18 SGD, Dang 2023 ResNet18, Dang 2024
   imbalanced MLP, Hong & Ling block_main ResNet18) on ``digits`` for 2 epochs with --device,
   then its validation and one figure; the written keys (info.pkl, or Hong's
   within_class_vari.pickle and hong_results/plots/*.json) must equal those of the same command run on
   the CPU (the CPU reference uses 2 images per class / width 4, which changes no key).
2. Placement: the model, the data and the optimiser state of a training step built as
   the trainers' recipes build them (Dang's ResNet18 with SGD, the D23 MLP with Adam), and Hong's
   network and data, all on the device (Adam's 0-d ``step`` counters excepted: PyTorch keeps
   them on the host unless capturable).
3. bench/train_epoch.py and bench/validate.py (sections 2 and 3) on the device.

Prints one summary table; exits 1 when any check fails. With --device cuda (the default) on
a machine without CUDA it prints one line and exits 0. --smoke: small data and few rows
(what tests/test_gpu_check.py runs on the CPU); --keep DIR keeps the runs' folders.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nc_repro import safe_load  # noqa: E402
from args import OUTPUT_ROOT  # noqa: E402

PAPERS = ('zhou2022', 'dang2023', 'dang2024', 'hong2023')
D24_FLAGS = ('--model MLP --no-bias --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 1024 --seed 1 '
             '--sep_decay --batch_size 256 --feature_decay_rate 0.00001 --loss CrossEntropy --lr 0.0001 '
             '--weight_decay 0.0001 --optimizer Adam --epochs 4000 --patience 2000')
D23_FLAGS = '--model ResNet18 --dataset cifar10 --depth_linear 1 --width 512 --seed 1'
# paper: (train, validate, figure); {run} is the run folder, found after training
COMMANDS = {
    'zhou2022': (
        'train_1st_order.py --gpu_id 0 --uid gpu_check --dataset cifar10 --optimizer SGD --batch_size 64 --lr 0.05 '
        '--model resnet18 --weight_decay 1e-4 --sep_decay --feature_decay_rate 1e-5',
        'validate_NC.py --gpu_id 0 --dataset cifar10 --batch_size 256 --load_path model_weights/gpu_check/ '
        '--model resnet18',
        'plots/plot_nc.py {run}/info.pkl --out_dir figures'),
    'dang2023': ('train_1st_order.py ' + D23_FLAGS, 'validate_NC.py ' + D23_FLAGS,
                 'plots/plot_nc.py {run}/info.pkl --out_dir figures'),
    'dang2024': ('train_1st_order_unbalanced.py ' + D24_FLAGS, 'validate_NC_unbalanced.py ' + D24_FLAGS,
                 'plots/plot_imbalanced.py {run} --out_dir figures'),
    'hong2023': ('block_main.py --dataset_t cifar10 --structure 1 --network ResNet18', None, None),
}


class Report:
    def __init__(self):
        self.rows = []

    def add(self, check, ok, seconds, detail=''):
        self.rows.append((check, 'ok' if ok else 'FAIL', seconds, detail))
        print('[%s] %s (%.1f s) %s' % ('ok' if ok else 'FAIL', check, seconds, detail), flush=True)
        return ok

    def table(self):
        width = max(len(row[0]) for row in self.rows)
        print('\n%-*s  %-4s  %8s  %s' % (width, 'check', '', 'seconds', 'detail'))
        for check, status, seconds, detail in self.rows:
            print('%-*s  %-4s  %8.1f  %s' % (width, check, status, seconds, detail[:110]))
        failed = sum(row[1] == 'FAIL' for row in self.rows)
        print('%d checks, %d failed' % (len(self.rows), failed))
        return failed


def run_command(command, cwd, timeout):
    """(ok, seconds, last output line) of one project script run with this interpreter."""
    argv = [sys.executable, os.path.join(ROOT, command[0])] + command[1:]
    start = time.perf_counter()
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return False, time.perf_counter() - start, 'timed out after %d s' % timeout
    lines = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    tail = lines[-1].strip() if lines else ''
    if done.returncode != 0:
        tail = 'exit %d: %s' % (done.returncode, ' | '.join(line.strip() for line in lines[-3:]))
    return done.returncode == 0, time.perf_counter() - start, tail


def offline(paper, command, device, small):
    """A README command made offline: digits, 2 epochs, the device; ``small``: 2 images per
    class (ResNet runs) or base width 4 (Hong), as tests/test_readme_commands.py runs them."""
    argv = command.split()
    if paper == 'hong2023':
        return argv + ['--dataset_t', 'digits', '--epoch', '2', '--device', str(device)] + (
            ['--width', '4'] if small else [])
    argv += ['--dataset', 'digits', '--epochs', '2', '--device', str(device)]
    if small and paper in ('zhou2022', 'dang2023'):
        argv += ['--sample_size', '2']
    return argv


def written_keys(paper, folder):
    """{file: keys} of what validation wrote: info.pkl (top level and per_layer entries), or
    Hong's within_class_vari.pickle and hong_results/plots/*.json."""
    found = {}
    if paper == 'hong2023':
        paths = glob.glob(os.path.join(folder, OUTPUT_ROOT, 'models', '*', 'within_class_vari.pickle'))
        paths += glob.glob(os.path.join(folder, OUTPUT_ROOT, 'plots', '*.json'))
    else:
        paths = glob.glob(os.path.join(folder, 'model_weights', '*', 'info.pkl'))
    for path in paths:
        if path.endswith('.json'):
            with open(path) as f:
                data = json.load(f)
        else:
            data = safe_load.load_pickle(path)
        keys = sorted(map(str, data)) if isinstance(data, dict) else [type(data).__name__]
        if isinstance(data, dict) and isinstance(data.get('per_layer'), (list, dict)):
            layers = data['per_layer'] if isinstance(data['per_layer'], list) else [data['per_layer']]
            keys += ['per_layer:' + key for layer in layers if isinstance(layer, dict) for key in sorted(layer)]
        found[os.path.basename(path)] = keys
    return found


def pipeline(paper, device, folder, small, report, timeout, reference=False):
    """Train, validate, draw (not for the CPU reference); returns the written keys (None on
    failure)."""
    train, validate, figure = COMMANDS[paper]
    where = 'cpu reference' if reference else str(device)
    ok, seconds, tail = run_command(offline(paper, train, device, small), folder, timeout)
    if not report.add('%s train (%s)' % (paper, where), ok, seconds, tail):
        return None
    if validate:
        last_only = ['--every', '2'] if small else []       # the last epoch: half the time
        ok, seconds, tail = run_command(offline(paper, validate, device, small) + last_only, folder, timeout)
        if not report.add('%s validate (%s)' % (paper, where), ok, seconds, tail):
            return None
    if figure and not reference:
        run, = glob.glob(os.path.join(folder, 'model_weights', '*'))
        ok, seconds, tail = run_command(figure.format(run=run).split(), folder, timeout)
        pngs = glob.glob(os.path.join(folder, 'figures', '*.png'))
        report.add('%s figure' % paper, ok and bool(pngs), seconds, ', '.join(map(os.path.basename, pngs)) or tail)
    elif paper == 'hong2023' and not reference:
        pngs = glob.glob(os.path.join(folder, OUTPUT_ROOT, 'plots', '*.png'))
        report.add('%s figure' % paper, bool(pngs), 0.0, ', '.join(map(os.path.basename, pngs)) or 'no %s/plots/*.png' % OUTPUT_ROOT)
    keys = written_keys(paper, folder)
    if not keys:
        report.add('%s info written (%s)' % (paper, where), False, 0.0, 'no info.pkl / pickle found')
        return None
    return keys


def on_device(tensors, device):
    """Names of the tensors not on ``device``."""
    return [name for name, tensor in tensors if tensor.device.type != device.type or (
        device.index is not None and tensor.device.index != device.index)]


def optimizer_tensors(optimizer):
    for index, state in enumerate(optimizer.state.values()):
        for key, value in state.items():
            if torch.is_tensor(value) and not (key == 'step' and value.dim() == 0):
                yield 'optimizer state %d %s' % (index, key), value


def placement(device, report):
    """Build and train as the trainers do (select_device, training_data, build_model().to,
    make_train_loader, make_optimizer) and check where every tensor lives."""
    import args as cli
    import datasets
    import hong_runs
    from nc_repro import losses
    import models
    from nc_repro import training
    recipes = (('dang2023 ResNet18 + SGD', D23_FLAGS + ' --optimizer SGD --lr 0.01'),
               ('dang2023 MLP + Adam', '--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 '
                '--seed 1 --loss MSE --lr 0.0001 --optimizer Adam --sep_decay'))
    for name, flags in recipes:
        start = time.perf_counter()
        try:
            args = cli.parse(cli.get_train_parser(), flags.split() + [
                '--dataset', 'digits', '--sample_size', '2', '--device', str(device)])
            device_used = training.select_device(args.device, args.gpu_id)
            data = datasets.training_data(args)
            model = models.build_model(args, data.num_classes, data.input_shape).to(device_used)
            loader = datasets.make_train_loader(args, data, device_used)
            objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes)
            optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
            training.train_one_epoch(model, loader, objective, optimizer, 1, 1)
            batches = list(loader)
            wrong = on_device(list(model.named_parameters()) + list(model.named_buffers()), device)
            wrong += on_device([('train images', loader.data.images), ('train labels', loader.data.labels)]
                               + [('batch images', batches[0][0]), ('batch labels', batches[0][1])], device)
            wrong += on_device(list(optimizer_tensors(optimizer)), device)
            states = len(list(optimizer_tensors(optimizer)))
            memory = 'channels_last' if getattr(model, 'memory_format', None) == torch.channels_last else 'default'
            report.add('placement: %s' % name, not wrong and states > 0, time.perf_counter() - start,
                       ('not on %s: %s' % (device, ', '.join(wrong[:4]))) if wrong else
                       '%d parameters, %d optimizer tensors on %s; %s layout' % (
                           len(list(model.parameters())), states, device, memory))
        except Exception as error:            # a failure is a row of the table, not a crash
            report.add('placement: %s' % name, False, time.perf_counter() - start, repr(error)[:200])
    start = time.perf_counter()
    try:
        network = hong_runs.build_network(argparse.Namespace(network='ResNet18', width=4, depth=2, pool=1),
                                          3, device)
        wrong = on_device(list(network.named_parameters()) + list(network.named_buffers()), device)
        report.add('placement: hong2023 ResNet18', not wrong, time.perf_counter() - start,
                   ('not on %s: %s' % (device, ', '.join(wrong[:4]))) if wrong else 'parameters on %s' % device)
    except Exception as error:
        report.add('placement: hong2023 ResNet18', False, time.perf_counter() - start, repr(error)[:200])


def metrics_api(device, report):
    """nc_repro.metrics on the device: its statistics stay there and its metrics equal the CPU's."""
    from nc_repro.metrics import NeuralCollapse
    start = time.perf_counter()
    try:
        generator = torch.Generator().manual_seed(0)
        labels = torch.arange(10).repeat_interleave(200)
        features = torch.randn(10, 64, generator=generator)[labels] * 3 + torch.randn(2000, 64, generator=generator)
        W, b = torch.randn(10, 64, generator=generator), torch.randn(10, generator=generator)
        results = []
        for where in (device, torch.device('cpu')):
            nc = NeuralCollapse(10)
            for chunk in torch.randperm(2000, generator=generator).split(256):
                nc.update(features[chunk].to(where), labels[chunk].to(where))
            results.append(nc.compute(W.to(where), b.to(where), 'dang2023'))
            if where == device:
                stats_device = nc.statistics.counts.device
        worst = max(abs(results[0][key] - results[1][key]) for key in results[0] if isinstance(results[0][key], float))
        report.add('nc_repro.metrics on %s' % device, worst < 1e-9 and stats_device.type == device.type,
                   time.perf_counter() - start, 'statistics on %s; largest difference to the CPU %.1e' % (stats_device, worst))
    except Exception as error:
        report.add('nc_repro.metrics on %s' % device, False, time.perf_counter() - start, repr(error)[:200])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', help='cuda (default), cuda:N or cpu')
    parser.add_argument('--papers', nargs='+', default=list(PAPERS), choices=PAPERS)
    parser.add_argument('--smoke', action='store_true',
                        help='small data on the device run too, fewer benchmark rows (the CPU test)')
    parser.add_argument('--no_bench', action='store_true', help='skip bench/train_epoch.py and bench/validate.py')
    parser.add_argument('--keep', default=None, help='keep the run folders under this folder')
    parser.add_argument('--timeout', type=int, default=240, help='seconds per command')
    options = parser.parse_args()
    device = torch.device(options.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        print('gpu_check: no CUDA device here (torch %s); nothing checked (use --device cpu to try the script)'
              % torch.__version__)
        return 0
    if device.type == 'cuda':
        device = torch.device('cuda', device.index or 0)
        print('gpu_check on %s (%s), torch %s, CUDA %s' % (device, torch.cuda.get_device_name(device),
                                                           torch.__version__, torch.version.cuda))
    else:
        print('gpu_check on %s, torch %s' % (device, torch.__version__))
    report = Report()
    started = time.perf_counter()
    top = options.keep or tempfile.mkdtemp(prefix='gpu_check_')
    for paper in options.papers:
        folder = os.path.join(top, paper, device.type)
        os.makedirs(folder, exist_ok=True)
        keys = pipeline(paper, device, folder, options.smoke, report, options.timeout)
        if keys is None:
            continue
        if device.type == 'cpu':
            reference = keys
        else:
            reference_folder = os.path.join(top, paper, 'cpu')
            os.makedirs(reference_folder, exist_ok=True)
            reference = pipeline(paper, torch.device('cpu'), reference_folder, True, report, options.timeout,
                                 reference=True)
            if reference is None:
                continue
        report.add('%s keys = cpu keys' % paper, keys == reference, 0.0,
                   '%s: %d keys' % (', '.join(sorted(keys)), sum(map(len, keys.values()))) if keys == reference
                   else 'device %s vs cpu %s' % (keys, reference))
    placement(device, report)
    metrics_api(device, report)
    if not options.no_bench:
        bench_device = str(device)
        train_rows = (['--rows', 'mlp', 'dang_resnet18', '--samples', '2048', '--repeats', '1',
                                         '--batch', '16'] if options.smoke
                      else ['--samples', '50000', '--repeats', '3'])
        ok, seconds, tail = run_command(['bench/train_epoch.py', '--device', bench_device] + train_rows, top,
                                        options.timeout)
        report.add('bench/train_epoch.py', ok, seconds, tail)
        validate_rows = (['--parts', 'resnet18', '--conv_train', '64', '--conv_test', '32', '--checkpoints', '1']
                         if options.smoke else ['--parts', 'mlp', 'resnet18', '--conv_train', '10000',
                                                '--conv_test', '2000'])
        ok, seconds, tail = run_command(['bench/validate.py', '--device', bench_device] + validate_rows, top,
                                        options.timeout)
        report.add('bench/validate.py', ok, seconds, tail)
    failed = report.table()
    print('total %.0f s; run folders in %s' % (time.perf_counter() - started, top))
    if not options.keep and not failed:
        import shutil
        shutil.rmtree(top, ignore_errors=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
