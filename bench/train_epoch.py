"""Seconds per training epoch of the D23 MLP (width 512, depth_relu 6, batch 128, Adam,
--sep_decay) on CIFAR-10-sized tensors, achieved GFLOP/s, and the ratio to this machine's
float32 matmul rate measured in the same run.

  .venv/bin/python bench/train_epoch.py [--samples 50000] [--epochs 1]

FLOPs counted: the Linear layers only (2 m n k per GEMM; backward = 2x forward), so the
ratio is a lower bound on how well the loop feeds the matrix unit.
"""
import argparse
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import args as cli  # noqa: E402
import datasets  # noqa: E402
import losses  # noqa: E402
import models  # noqa: E402
import training  # noqa: E402

README_MLP = ('--model MLP --dataset cifar10 --depth_relu 6 --depth_linear 1 --width 512 --seed 1 '
              '--loss MSE --lr 0.0001 --optimizer Adam --sep_decay')


def matmul_gflops(size=2048, repeats=10):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size ** 3 * repeats / (time.perf_counter() - start) / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=50000)
    parser.add_argument('--epochs', type=int, default=1)
    bench = parser.parse_args()
    args = cli.parse(cli.get_train_parser(), README_MLP.split())
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (bench.samples, 3, 32, 32), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 10, (bench.samples,), generator=generator)
    train = datasets.ImageSet(images, labels, 1 / 255, datasets.CIFAR_MEAN, datasets.CIFAR_STD)
    loader = datasets.BatchLoader(train, args.batch_size, shuffle=True, generator=generator)
    model = models.build_model(args, 10, (3, 32, 32))
    objective = losses.make_objective(args, 10)
    optimizer = training.make_optimizer(args, model)
    linear_macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear))
    flops_per_epoch = 3 * 2 * linear_macs * bench.samples
    peak = matmul_gflops()
    training.train_one_epoch(model, datasets.BatchLoader(train.subset(range(2048)), 128), objective,
                             optimizer, 0, 1)                                   # warm-up
    start = time.perf_counter()
    for epoch in range(bench.epochs):
        training.train_one_epoch(model, loader, objective, optimizer, epoch + 1, bench.epochs)
    seconds = (time.perf_counter() - start) / bench.epochs
    achieved = flops_per_epoch / seconds / 1e9
    print('threads: %d' % torch.get_num_threads())
    print('float32 matmul (2048^3):      %8.1f GFLOP/s' % peak)
    print('training epoch (%d samples): %8.2f s' % (bench.samples, seconds))
    print('achieved (Linear layers):     %8.1f GFLOP/s' % achieved)
    print('ratio achieved / matmul:      %8.2f   (target >= 0.5)' % (achieved / peak))


if __name__ == '__main__':
    main()
