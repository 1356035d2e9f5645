"""Training speed against this machine's float32 matmul rate: the D23 MLP epoch and one SGD
step of the convolutional models, in the default memory format and in channels_last.

  .venv/bin/python bench/train_epoch.py [--samples 50000] [--epochs 1] [--rows ...]
                                        [--repeats 3] [--device cpu|cuda]

1. The D23 MLP (width 512, depth_relu 6, batch 128, Adam, --sep_decay) on CIFAR-10-sized
   tensors: seconds per epoch; FLOPs = the Linear layers only (2 m n k per GEMM, backward =
   2x forward), a lower bound on how well the loop feeds the matrix unit.
2. Dang's ResNet18 and VGG16 (README flags), Zhou's resnet18 (README flags, and with --SOTA),
   Hong's ResNet18: seconds per training batch of 128 3x32x32 images (forward, objective,
   backward, optimiser step as training.train_one_epoch runs it), GFLOP/s with the FLOPs that
   torch.utils.flop_counter.FlopCounterMode counts for one step, and the ratio to the matmul
   rate; each in the default layout and in torch.channels_last (medians of --repeats
   alternating runs), next to the layout the model package picks (preferred_memory_format).
"""
import argparse
import os
import statistics
import sys
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import args as cli  # noqa: E402
import datasets  # noqa: E402
from nc_repro import losses  # noqa: E402
import models  # noqa: E402
from nc_repro import training  # noqa: E402

README_MLP = ('--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
              '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay')
CONV_ROWS = {   # name: (paper flags at batch 128, or None for Hong's network)
    'dang_resnet18': '--model ResNet18 --dataset cifar10 --depth_linear 1 --width 512 --seed 1',
    'zhou_resnet18': ('--gpu_id 0 --uid bench --dataset cifar10 --optimizer SGD --lr 0.05 --model resnet18 '
                      '--weight_decay 1e-4 --sep_decay --feature_decay_rate 1e-5'),
    'zhou_resnet18_sota': ('--gpu_id 0 --uid bench --dataset cifar10 --optimizer SGD --lr 0.05 --model resnet18 '
                           '--weight_decay 1e-4 --sep_decay --feature_decay_rate 1e-5 --SOTA'),
    'dang_vgg16': '--model VGG16 --dataset cifar10 --depth_linear 1 --width 512 --seed 1',
    'hong_resnet18': None,
}
DEFAULT_ROWS = ['mlp', 'dang_resnet18', 'zhou_resnet18', 'zhou_resnet18_sota', 'dang_vgg16', 'hong_resnet18']
LAYOUTS = (('default', torch.contiguous_format), ('channels_last', torch.channels_last))
BATCH = 128


def synchronize(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def matmul_gflops(size=2048, repeats=10, device='cpu'):
    """float32 C = A B of size^3, best of three timings of ``repeats`` products."""
    device = torch.device(device)
    a, b = torch.randn(size, size, device=device), torch.randn(size, size, device=device)
    a @ b
    best = float('inf')
    for _ in range(3):
        synchronize(device)
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * repeats / best / 1e9


def onednn_gemm_gflops(size=2048, repeats=10, device='cpu'):
    """float32 C = A B of size^3 through oneDNN (the library behind PyTorch's CPU convolutions),
    best of three timings; None on CUDA or without oneDNN. torch.mm on the CPU calls MKL's sgemm,
    which on AMD processors skips the AVX-512 kernels that oneDNN uses, so there this rate can be
    twice torch.mm's, and it is the fairer limit for the convolutional rows."""
    if torch.device(device).type != 'cpu' or not torch.backends.mkldnn.is_available():
        return None
    a, b = torch.randn(size, size).to_mkldnn(), torch.randn(size, size)
    gemm = torch._C._nn.mkldnn_linear       # a @ b.T, the GEMM oneDNN runs for inner products
    gemm(a, b, None)
    best = float('inf')
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(repeats):
            gemm(a, b, None)
        best = min(best, time.perf_counter() - start)
    return 2 * size ** 3 * repeats / best / 1e9


def onednn_note(achieved, device):
    """' oneDNN GEMM N GFLOP/s, ratio r' (the better of two measurements), or '' without one."""
    rates = [rate for rate in (onednn_gemm_gflops(device=device), onednn_gemm_gflops(device=device)) if rate]
    return '; oneDNN GEMM %.0f GFLOP/s, ratio %.2f' % (max(rates), achieved / max(rates)) if rates else ''


def image_set(samples, generator, device):
    images = torch.randint(0, 256, (samples, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (samples,), generator=generator)
    return datasets.ImageSet(images, labels, 1 / 255, datasets.CIFAR_MEAN, datasets.CIFAR_STD).to(device)


def mlp_row(bench, device):
    args = cli.parse(cli.get_train_parser(), README_MLP.split())
    generator = torch.Generator().manual_seed(0)
    train = image_set(bench.samples, generator, device)
    loader = datasets.BatchLoader(train, args.batch_size, shuffle=True, generator=generator)
    model = models.build_model(args, 10, (3, 32, 32)).to(device)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 10)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    linear_macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    flops_per_epoch = 3 * 2 * linear_macs * bench.samples
    training.train_one_epoch(model, datasets.BatchLoader(train.subset(range(min(2048, bench.samples))), 128),
                             objective, optimizer, 0, 1)                        # warm-up
    peak = matmul_gflops(device=device)         # next to the timing: the machine is shared
    synchronize(device)
    start = time.perf_counter()
    for epoch in range(bench.epochs):
        training.train_one_epoch(model, loader, objective, optimizer, epoch + 1, bench.epochs)
    synchronize(device)
    seconds = (time.perf_counter() - start) / bench.epochs
    peak = max(peak, matmul_gflops(device=device))   # the better of before and after: a conservative ratio
    achieved = flops_per_epoch / seconds / 1e9
    print('1. D23 MLP (width 512, depth_relu 6), batch 128, Adam')
    print('   float32 matmul (best of before/after): %8.1f GFLOP/s' % peak)
    print('   training epoch (%d samples): %8.2f s' % (bench.samples, seconds))
    print('   achieved (Linear layers):     %8.1f GFLOP/s' % achieved)
    print('   ratio achieved / matmul:      %8.2f   (target >= 0.6)' % (achieved / peak))
    extra = onednn_note(achieved, device)
    if extra:
        print('   (its Linear layers run on torch.mm%s)' % extra)


def build_conv(name, device, batch):
    """(model, objective, optimizer) as the paper's trainer builds them, at batch 128."""
    torch.manual_seed(0)
    if CONV_ROWS[name] is None:        # Hong & Ling: ResNet18 (k = 64), cross-entropy, SGD
        model = models.build_hong_model('ResNet18', 3, 10, 64).to(device)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

        def objective(model, logits, features, labels):
            return torch.nn.functional.cross_entropy(logits, labels)
        return model, objective, optimizer
    args = cli.parse(cli.get_train_parser(), CONV_ROWS[name].split() + ['--batch_size', str(batch)])
    model = models.build_model(args, 10, (3, 32, 32)).to(device)
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 10)
    return model, objective, training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)


def step_flops(model, objective, optimizer, images, labels):
    """FLOPs of one training step (forward, backward) as FlopCounterMode counts them."""
    with FlopCounterMode(display=False) as counter:
        training.train_one_epoch(model, [(images, labels)], objective, optimizer, 0, 1)
    return counter.get_total_flops()


def original_style_seconds(variant, loader, repeats, device):
    """A training step as the originals take it (an emulation, not their code): the default
    memory format, and after the update a second, eval-mode forward of the batch for the logged
    accuracy (docs/original_code.md, J-B15 and D23-B18). Their per-image PIL decoding in a
    one-worker DataLoader is left out, so the originals' real cost is higher still."""
    model, objective, optimizer, _ = variant
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        training.train_one_epoch(model, loader, objective, optimizer, 1, 1)
        model.eval()
        with torch.no_grad():
            for images, _labels in loader:
                model(images)
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def conv_row(name, bench, device):
    generator = torch.Generator().manual_seed(1)
    data = image_set(bench.batch, generator, device)
    loader = datasets.BatchLoader(data, bench.batch)
    variants = {}
    for label, memory_format in LAYOUTS:
        model, objective, optimizer = build_conv(name, device, bench.batch)
        preferred = models.memory_format_for(model)
        model.use_memory_format(memory_format)
        training.train_one_epoch(model, loader, objective, optimizer, 0, 1)           # warm-up
        variants[label] = (model, objective, optimizer, [])
    images, labels = next(iter(loader))
    flops = step_flops(*variants['default'][:3], images, labels)
    peak = matmul_gflops(device=device)         # next to the timing: the machine is shared
    for repeat in range(bench.repeats):
        order = LAYOUTS if repeat % 2 == 0 else LAYOUTS[::-1]
        for label, _ in order:
            model, objective, optimizer, times = variants[label]
            synchronize(device)
            start = time.perf_counter()
            training.train_one_epoch(model, loader, objective, optimizer, 1, 1)
            synchronize(device)
            times.append(time.perf_counter() - start)
    peak = max(peak, matmul_gflops(device=device))   # the better of before and after: a conservative ratio
    seconds = {label: statistics.median(variants[label][3]) for label, _ in LAYOUTS}
    used = 'channels_last' if preferred == torch.channels_last else 'default'
    if bench.original_style:
        seconds['original-style'] = original_style_seconds(variants['default'], loader, bench.repeats, device)
    faster = min(seconds, key=seconds.get)
    for label, _ in LAYOUTS:
        gflops = flops / seconds[label] / 1e9
        print('   %-20s %-14s %7.3f s/batch %7.1f GFLOP/s  ratio %5.2f%s' % (
            name, label, seconds[label], gflops, gflops / peak, '  <- used' if label == used else ''))
    if bench.original_style:
        gflops = flops / seconds['original-style'] / 1e9
        print('   %-20s %-14s %7.3f s/batch %7.1f GFLOP/s  ratio %5.2f   (this package is %.2fx faster)' % (
            name, 'original-style', seconds['original-style'], gflops, gflops / peak,
            seconds['original-style'] / seconds[used]))
    note = 'channels_last %.2fx the default' % (seconds['default'] / seconds['channels_last'])
    if used == 'default':
        note += '; channels_last not faster here at the time it was measured: default kept' \
            if faster == 'default' else '; default kept (this run measured channels_last faster)'
    elif faster == 'default':
        note += '; channels_last is used but this run measured the default faster'
    note += onednn_note(flops / seconds[used] / 1e9, device)
    print('   %-20s %.1f GFLOP per step (FlopCounterMode), matmul %.0f GFLOP/s; %s' % ('', flops / 1e9, peak, note))
    return seconds, flops


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=50000, help='MLP epoch size')
    parser.add_argument('--epochs', type=int, default=1, help='MLP epochs timed')
    parser.add_argument('--rows', nargs='+', default=DEFAULT_ROWS, choices=DEFAULT_ROWS)
    parser.add_argument('--repeats', type=int, default=3, help='timed batches per layout (conv rows)')
    parser.add_argument('--device', default='cpu', help='cpu (default) or cuda[:n]')
    parser.add_argument('--batch', type=int, default=BATCH, help='conv rows: batch size (default 128)')
    parser.add_argument('--original_style', action='store_true',
                        help="conv rows: also time the originals' step (default layout, extra eval forward)")
    bench = parser.parse_args()
    device = torch.device(bench.device)
    print('device: %s, threads: %d; ratios are to the float32 matmul rate (2048^3), the better of its measurements before and after each row'
          % (device, torch.get_num_threads()))
    if 'mlp' in bench.rows:
        mlp_row(bench, device)
    conv = [row for row in bench.rows if row != 'mlp']
    if conv:
        print('2. convolutional models, one SGD step on a batch of %d 3x32x32 images (median of %d)'
              % (bench.batch, bench.repeats))
        for name in conv:
            conv_row(name, bench, device)


if __name__ == '__main__':
    main()
