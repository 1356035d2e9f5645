"""The metric engine against the classic per-sample algorithm, and where validation time goes.

  .venv/bin/python bench/validate.py [--samples 50000] [--dim 512]

1. Same 50,000 x 512 float32 features, K = 10: seconds of the engine (float64 class
   statistics, then NC1, NC2, NC3 and ||W mu_G + b||; as validation runs it, from the feature
   cache, and in its streaming full-scatter mode) and of the classic algorithms: Zhou 2022's
   validate_NC.py (per-sample Python loop with host copies, chunks of d x d outer products,
   float32 scipy pinv) and Zhu 2021's (per-sample rank-1 updates). Target: >= 20x against
   Zhou 2022's.
2. One D23 MLP checkpoint (width 512, depth_relu 6) on CIFAR-10-sized tensors (50,000 train +
   10,000 test images): seconds of the two forward passes and of everything else
   (statistics and metrics); the share outside the forward pass. Target: <= 25%.
3. One D23 ResNet18 checkpoint (README flags) on digits-sized synthetic 3x32x32 sets
   (--conv_train 1024 + --conv_test 256 images): seconds per checkpoint as validation runs it
   (load the file, the two eval-mode forward passes, statistics and metrics) against its
   forward-only limit: the forward FLOPs over both sets (FlopCounterMode) at the float32
   matmul rate measured in the same run.

  --parts metrics mlp resnet18 picks the sections; --device cuda runs 2 and 3 there.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
import scipy.linalg
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import args as cli  # noqa: E402
import datasets  # noqa: E402
import models  # noqa: E402
from nc_repro import frames, nc_measures, nc_statistics, recipes, validation  # noqa: E402
from train_epoch import matmul_gflops, onednn_gemm_gflops, synchronize  # noqa: E402

README_RESNET18 = '--model ResNet18 --dataset cifar10 --depth_linear 1 --width 512 --seed 1'


def classic_measures(sigma_w, means, mu_G, W, b, K):
    """The originals' finishing arithmetic: float32 scipy pinv NC1, ETF errors of the centred
    W and of W Hbar, ||W mu_G + b||."""
    sigma_b = sum(torch.outer(m - mu_G, m - mu_G) for m in means) / K
    nc1 = np.trace(sigma_w.numpy() @ scipy.linalg.pinv(sigma_b.numpy())) / K
    H = torch.stack([m - mu_G for m in means], 1)
    P = (torch.eye(K) - 1 / K) / (K - 1) ** 0.5
    Wc = W - W.mean(0)
    G, A = Wc @ Wc.T, Wc @ H
    return nc1, float((G / G.norm() - P).norm()), float((A / A.norm() - P).norm()), float((W @ mu_G + b).norm())


def classic_zhou(features, labels, W, b, K, chunk=1024):
    """J's validate_NC.py compute_info + compute_Sigma_W (its per-checkpoint pipeline):
    a Python loop over samples copying each feature to the host into per-class lists and
    adding it to the class sum; then Sigma_W per class in chunks of ``chunk`` rows, each a
    (chunk, D, D) tensor of outer products summed; float32 scipy pinv; centred W."""
    N, D = features.shape
    mu_G = features.sum(0) / N
    per_class, class_sums = [[] for _ in range(K)], [torch.zeros(D) for _ in range(K)]
    for i in range(N):
        y = int(labels[i].item())
        per_class[y].append(features[i].numpy().copy())
        class_sums[y] += features[i]
    means = [class_sums[k] / len(per_class[k]) for k in range(K)]
    sigma_w = torch.zeros(D, D)
    for k in range(K):
        rows = torch.from_numpy(np.array(per_class[k]))
        for start in range(0, len(rows), chunk):
            diff = rows[start:start + chunk] - means[k]                    # (B, D)
            sigma_w += (diff[:, :, None] * diff[:, None, :]).sum(0)        # (B, D, D) summed
    return classic_measures(sigma_w / N, means, mu_G, W, b, K)


def classic(features, labels, W, b, K):
    """T's validate_NC.py arithmetic: per-sample loops, one rank-1 update per sample, float32
    pinv (T uses the raw W in NC2/NC3; centred here so the numbers compare with J's)."""
    N, D = features.shape
    mu_G = torch.zeros(D)
    class_sums, counts = [torch.zeros(D) for _ in range(K)], [0] * K
    for i in range(N):
        y = int(labels[i].item())
        mu_G += features[i]
        class_sums[y] += features[i]
        counts[y] += 1
    mu_G /= N
    means = [class_sums[k] / counts[k] for k in range(K)]
    sigma_w = torch.zeros(D, D)
    for i in range(N):
        diff = (features[i] - means[int(labels[i].item())])[:, None]
        sigma_w += diff @ diff.T
    return classic_measures(sigma_w / N, means, mu_G, W, b, K)


def engine(features, labels, W, b, K, streaming=False, batch=1024):
    """streaming: full float64 scatter, one pass; otherwise the validators' mode (class sums in
    one pass, then Sigma_W along the K-1 between-class directions from the kept features)."""
    conventions = recipes.conventions('zhou2022')
    if streaming:
        stats = nc_statistics.ClassStatistics(K, features.shape[1])
        for start in range(0, len(labels), batch):
            stats.update(features[start:start + batch], labels[start:start + batch])
    else:
        stats = nc_statistics.ClassStatistics.from_features(features, labels, K)
    rows, means, etf = nc_measures.classifier_rows(W, conventions), nc_measures.centred_means(stats, conventions), \
        frames.simplex_etf_gram(K)
    return (nc_measures.nc1(stats, conventions)['nc1'], nc_measures.alignment_error(rows @ rows.T, etf),
            nc_measures.alignment_error(rows @ means.T, etf),
            nc_measures.bias_relation(W, b, stats.global_mean(conventions)))


def timed(function, *args, repeats=1):
    """Best of ``repeats`` runs (the machine is shared: minima are the stable statistic)."""
    best = float('inf')
    for _ in range(repeats):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def random_images(count, generator):
    return datasets.ImageSet(torch.randint(0, 256, (count, 3, 32, 32), dtype=torch.uint8, generator=generator),
                             torch.randint(0, 10, (count,), generator=generator), 1 / 255,
                             datasets.CIFAR_MEAN, datasets.CIFAR_STD)


def forward_flops_per_image(model, data, batch, device):
    """FLOPs of one eval-mode forward (features, then every head layer), per image."""
    model.eval()
    images = data.subset(range(min(batch, len(data)))).to(device)
    x = next(iter(datasets.BatchLoader(images, batch)))[0]
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        h = model.features(x)
        for layer in model.head_layers():
            h = layer(h)
    return counter.get_total_flops() / len(x)


def resnet18_checkpoint(bench, device, generator, K=10):
    """Section 3: seconds per checkpoint against the forward-only limit."""
    args = cli.parse(cli.get_train_parser(), README_RESNET18.split())
    model = models.build_model(args, K, (3, 32, 32)).to(device)
    train, test = random_images(bench.conv_train, generator), random_images(bench.conv_test, generator)
    batch = args.batch_size
    peak = matmul_gflops(device=device)
    per_image = forward_flops_per_image(model, train, batch, device)
    limit = per_image * (len(train) + len(test)) / (peak * 1e9)
    conventions = recipes.conventions('dang2023')
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, 'epoch_001.pth')
        torch.save(model.state_dict(), path)
        times, forward = [], []
        for _ in range(bench.checkpoints + 1):          # the first one warms up
            synchronize(device)
            start = time.perf_counter()
            validation.load_checkpoint(model, path, device)
            train_pass = validation.feature_pass(model, train, batch, device)
            test_pass = validation.feature_pass(model, test, batch, device)
            synchronize(device)
            middle = time.perf_counter()
            validation.dang_balanced_metrics(model, train_pass, test_pass, K, conventions)
            times.append(time.perf_counter() - start)
            forward.append(middle - start)
    seconds, forward_seconds = min(times[1:]), min(forward[1:])
    memory = 'channels_last' if model.memory_format == torch.channels_last else 'default'
    print('3. one D23 ResNet18 checkpoint (%s layout, %s), %d train + %d test 3x32x32 images'
          % (memory, device, len(train), len(test)))
    print('   float32 matmul rate          %8.1f GFLOP/s' % peak)
    print('   forward FLOPs per image      %8.2f GFLOP (FlopCounterMode)' % (per_image / 1e9))
    print('   forward-only limit           %8.2f s   (FLOPs of both passes at the matmul rate)' % limit)
    print('   per checkpoint               %8.2f s   (best of %d; forward passes %.2f s)'
          % (seconds, bench.checkpoints, forward_seconds))
    print('   limit / per checkpoint       %8.2f   (1 = the matmul rate throughout)' % (limit / seconds))
    onednn = onednn_gemm_gflops(device=device)
    if onednn:      # the convolutions run on oneDNN, which on AMD hosts outruns torch.mm (MKL)
        onednn_limit = per_image * (len(train) + len(test)) / (onednn * 1e9)
        print('   at the oneDNN GEMM rate      %8.2f s   (%.0f GFLOP/s; limit / per checkpoint %.2f)'
              % (onednn_limit, onednn, onednn_limit / seconds))
    return seconds, limit


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--samples', type=int, default=50000)
    parser.add_argument('--dim', type=int, default=512)
    parser.add_argument('--parts', nargs='+', default=['metrics', 'mlp', 'resnet18'],
                        choices=['metrics', 'mlp', 'resnet18'])
    parser.add_argument('--conv_train', type=int, default=1024, help='ResNet18 row: training images')
    parser.add_argument('--conv_test', type=int, default=256, help='ResNet18 row: test images')
    parser.add_argument('--checkpoints', type=int, default=1, help='ResNet18 row: timed checkpoints (after one warm-up)')
    parser.add_argument('--device', default='cpu', help='sections 2 and 3: cpu (default) or cuda[:n]')
    bench = parser.parse_args()
    device = torch.device(bench.device)
    K = 10
    generator = torch.Generator().manual_seed(0)
    if 'metrics' in bench.parts:
        metric_section(bench, generator, K)
    if 'mlp' in bench.parts:
        mlp_section(device, generator, K)
    if 'resnet18' in bench.parts:
        resnet18_checkpoint(bench, device, generator, K)


def metric_section(bench, generator, K):
    labels = torch.randint(0, K, (bench.samples,), generator=generator)
    centres = torch.randn(K, bench.dim, generator=generator) * 2
    features = torch.relu(centres[labels] + torch.randn(bench.samples, bench.dim, generator=generator))
    W, b = torch.randn(K, bench.dim, generator=generator), torch.randn(K, generator=generator)

    engine_seconds, ours = timed(engine, features, labels, W, b, K, repeats=3)
    streaming_seconds, streamed = timed(engine, features, labels, W, b, K, True, repeats=3)
    zhou_seconds, theirs = timed(classic_zhou, features, labels, W, b, K)
    classic_seconds, _ = timed(classic, features, labels, W, b, K, repeats=2)
    print('1. NC metrics of %d x %d float32 features, K = %d' % (bench.samples, bench.dim, K))
    print('   engine, feature cache       %8.2f s   NC1 %.10g' % (engine_seconds, ours[0]))
    print('   engine, streaming scatter   %8.2f s   NC1 %.10g' % (streaming_seconds, streamed[0]))
    print('   Zhou 2022 validate_NC loop  %8.2f s   NC1 %.10g (float32)' % (zhou_seconds, theirs[0]))
    print('   Zhu 2021 rank-1 loop        %8.2f s' % classic_seconds)
    print('   (engine: best of 3 runs; rank-1 loop: best of 2)')
    print('   ratio Zhou 2022 loop / engine  %6.1fx   (target >= 20x)' % (zhou_seconds / engine_seconds))
    print('   ratio Zhu 2021 loop / engine   %6.1fx   (streaming scatter: %.1fx and %.1fx)' % (
        classic_seconds / engine_seconds, zhou_seconds / streaming_seconds, classic_seconds / streaming_seconds))
    print('   max relative difference of NC1..NC4: %.2e' % max(
        abs(a - c) / abs(a) for a, c in zip(ours, theirs)))


def mlp_section(device, generator, K):
    class Args:
        paper, model, width, depth_relu, depth_linear, bias = 'dang2023', 'MLP', 512, 6, 1, True
    model = models.build_model(Args, K, (3, 32, 32)).to(device).eval()
    mean, std = datasets.CIFAR_MEAN, datasets.CIFAR_STD
    train = datasets.ImageSet(torch.randint(0, 256, (50000, 3, 32, 32), dtype=torch.uint8, generator=generator),
                              torch.randint(0, K, (50000,), generator=generator), 1 / 255, mean, std)
    test = datasets.ImageSet(torch.randint(0, 256, (10000, 3, 32, 32), dtype=torch.uint8, generator=generator),
                             torch.randint(0, K, (10000,), generator=generator), 1 / 255, mean, std)
    forward_seconds = 0.0
    start = time.perf_counter()
    train_pass = validation.feature_pass(model, train, 1024, device)
    test_pass = validation.feature_pass(model, test, 1024, device)
    synchronize(device)
    forward_seconds = time.perf_counter() - start
    metric_seconds, _ = timed(validation.dang_balanced_metrics, model, train_pass, test_pass, K,
                              recipes.conventions('dang2023'))
    share = metric_seconds / (metric_seconds + forward_seconds)
    print('2. one D23 MLP checkpoint (width 512, depth_relu 6), CIFAR-10-sized train + test')
    print('   forward passes              %8.2f s' % forward_seconds)
    print('   statistics and metrics      %8.2f s' % metric_seconds)
    print('   share outside the forward   %8.1f%%   (target <= 25%%)' % (100 * share))


if __name__ == '__main__':
    main()
