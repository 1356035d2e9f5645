"""nc_repro.metrics at ImageNet and vocabulary scale, on synthetic features streamed in batches.

    python bench/metrics_scale.py                      # every row (a few minutes on 2 cores)
    python bench/metrics_scale.py --rows gemm imagenet # some rows
    python bench/metrics_scale.py --threads 1          # the figures of docs/metrics.md (a shared machine)

Rows (each in a process of its own, so that its peak resident memory is its own):
* gemm: this machine's float64 GEMM rate, (B x D)^T (B x D) with B = 2048, D = 2048.
* imagenet: N = 1.28 M, D = 2048, K = 1000, every measure except NC4 in one pass
  (keep_features=False, memory O(K D + D^2)); update() is timed on --fraction of N and
  extrapolated linearly to N (its cost is one B x D^2 GEMM per batch), and its rate is given as
  a ratio to the gemm row; compute() does not depend on N and is timed whole.
* nc4: the same fraction again through compute(second_pass=...): NC4, the NCC accuracy and the
  per-class NC1 contributions, exact, memory O(K D) (plus the fraction's batches, made
  beforehand: 0.1 GB); the pass's time (compute with it less compute without) extrapolated to N.
* vocab: K = 50,257, D = 768 (the GPT-2 vocabulary): NC1 exact and by pinv at the full K; the
  tiled pairwise pass (CDNV, GNC2, equiangularity, max-angle) timed at K/16 and K/8 and
  extrapolated to K by its cost law K^2 D, with peak memory at those K (tiles of 1024 x 1024).
* distributed: 2 gloo processes with half the batches each against one process with all
  (K = 100, D = 256, N = 20,000): the largest relative difference of the scalar results.
Peak memory is the process's peak resident set (ru_maxrss), torch itself included (~0.3 GB).
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
from nc_repro import nc_measures, nc_statistics, recipes  # noqa: E402
from nc_repro.metrics import NeuralCollapse  # noqa: E402

IMAGENET = dict(N=1_281_167, D=2048, K=1000)
VOCAB = dict(K=50_257, D=768)
BATCH = 2048


class Clock:
    """Wall and CPU seconds (all threads) of the blocks run under it: the machine is shared, so
    the wall time can exceed the CPU time when other processes hold the cores."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._start = (time.perf_counter(), time.process_time())
        return self

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._start[0]
        self.cpu += time.process_time() - self._start[1]


def peak_gb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20       # kB -> GB (Linux)


def synthetic_batch(index, K, D, batch=BATCH):
    """Batch ``index`` of a fixed synthetic data set: float32 features near K class means."""
    generator = torch.Generator().manual_seed(index)
    labels = torch.randint(0, K, (batch,), generator=generator)
    means = torch.randn(K, D, generator=torch.Generator().manual_seed(10 ** 6)) * 2
    return means[labels] + torch.randn(batch, D, generator=generator), labels


def gemm_rate(B=BATCH, D=2048, repeats=5):
    z = torch.randn(B, D, dtype=torch.float64)
    out = torch.zeros(D, D, dtype=torch.float64)
    out.addmm_(z.T, z)
    start = time.perf_counter()
    for _ in range(repeats):
        out.addmm_(z.T, z)
    seconds = (time.perf_counter() - start) / repeats
    return {'gflops': 2 * B * D * D / seconds / 1e9, 'seconds_per_gemm': seconds}


def first_pass(nc, batches, K, D):
    clock = Clock()
    for index in range(batches):
        features, labels = synthetic_batch(index, K, D)
        with clock:
            nc.update(features, labels)
    return clock


def row_imagenet(fraction):
    K, D, N = IMAGENET['K'], IMAGENET['D'], IMAGENET['N']
    batches = max(2, round(fraction * N / BATCH))
    nc = NeuralCollapse(K, keep_features=False)
    update = first_pass(nc, batches, K, D)
    W = torch.randn(K, D, generator=torch.Generator().manual_seed(1))
    with Clock() as compute:
        result = nc.compute(W, torch.zeros(K), 'dang2023', per_class=True, nc1_variants=('svd', 'pinv', 'trace'))
    gemm = gemm_rate()
    per_batch = update.wall / batches
    return {'samples_measured': batches * BATCH, 'update_s_measured': update.wall, 'update_cpu_s': update.cpu,
            'update_s_extrapolated_to_N': per_batch * N / BATCH, 'compute_s': compute.wall,
            'compute_cpu_s': compute.cpu,
            'update_gemm_ratio': gemm['seconds_per_gemm'] / per_batch, 'gemm_gflops': gemm['gflops'],
            'peak_gb': peak_gb(), 'NC1': result['NC1_collapse_metric'], 'CDNV': result['CDNV'],
            'keys_with_reasons': sorted(result['reasons'])}


def row_nc4(fraction):
    K, D, N = IMAGENET['K'], IMAGENET['D'], IMAGENET['N']
    batches = max(2, round(fraction * N / BATCH))
    nc = NeuralCollapse(K, keep_features=False)
    first_pass(nc, batches, K, D)
    W = torch.randn(K, D, generator=torch.Generator().manual_seed(1))
    again = [synthetic_batch(index, K, D) for index in range(batches)]       # the same batches, made beforehand
    conventions = recipes.conventions('dang2023')
    with Clock() as clock:      # the pass alone (compute() runs it after the one-pass measures)
        sample_pass = nc._sample_pass(nc.statistics, conventions, W.double(), torch.zeros(K, dtype=torch.float64),
                                      again, per_class=True)
    result = nc.compute(W, torch.zeros(K), 'dang2023', as_coded=False, second_pass=again)
    assert int(sample_pass.counts.sum()) == batches * BATCH
    return {'samples_measured': batches * BATCH, 'second_pass_s_measured': clock.wall, 'second_pass_cpu_s': clock.cpu,
            'second_pass_s_extrapolated_to_N': clock.wall * N / (batches * BATCH), 'peak_gb': peak_gb(),
            'NC4': result['NC4_ncc_mismatch'], 'NCC_accuracy': result['NCC_accuracy']}


def row_vocab():
    K, D = VOCAB['K'], VOCAB['D']
    generator = torch.Generator().manual_seed(2)
    means = torch.randn(K, D, generator=generator, dtype=torch.float64)
    stats = nc_statistics.ClassStatistics(K, D)
    update = Clock()
    for repeat in range(2):               # two samples of every class
        for start in range(0, K, 8192):
            labels = torch.arange(start, min(start + 8192, K))
            features = means[labels] + 0.1 * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
            with update:
                stats.update(features, labels)
    conventions = recipes.conventions('dang2023')
    with Clock() as nc1_clock:
        nc1 = nc_measures.nc1(stats, conventions, as_coded=False, variants=('pinv',))
    centred = nc_measures.centred_means(stats, conventions)
    variances = stats.class_variances
    law = []
    for part in (16, 8):
        k = K // part
        with Clock() as clock:
            rows = nc_measures.pairwise_measures(centred[:k], variances[:k], tile=1024)
        law.append({'K': k, 'seconds': clock.wall, 'cpu_s': clock.cpu, 'CDNV': float(rows['cdnv'].sum()) / (k * (k - 1))})
    extrapolated = law[-1]['seconds'] * (K / law[-1]['K']) ** 2
    return {'update_s': update.wall, 'update_cpu_s': update.cpu, 'nc1_exact_and_pinv_s': nc1_clock.wall,
            'nc1_cpu_s': nc1_clock.cpu, 'NC1': nc1['nc1'], 'NC1_pinv': nc1['pinv'],
            'pairwise_law': law, 'pairwise_s_extrapolated_to_K': extrapolated, 'peak_gb': peak_gb()}


def distributed_worker(rank, world, init, out):
    torch.distributed.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    print(json.dumps(small_problem(rank, world)), file=open(out + '.%d' % rank, 'w'))
    torch.distributed.destroy_process_group()


def small_problem(rank=0, world=1, K=100, D=256, batches=10):
    nc = NeuralCollapse(K, keep_features=True)
    for index in range(rank, batches, world):
        features, labels = synthetic_batch(index, K, D)
        nc.update(features, labels)
    W = torch.randn(K, D, generator=torch.Generator().manual_seed(3))
    result = nc.compute(W, torch.zeros(K), 'hong2023', nc1_variants=('svd', 'pinv'))
    return {key: value for key, value in result.items() if isinstance(value, float)}


def row_distributed():
    with tempfile.TemporaryDirectory() as scratch:
        init, out = 'file://' + os.path.join(scratch, 'rendezvous'), os.path.join(scratch, 'result')
        code = 'import sys; sys.path.insert(0, %r); import metrics_scale as m; m.distributed_worker(%%d, 2, %r, %r)' \
            % (os.path.dirname(os.path.abspath(__file__)), init, out)
        workers = [subprocess.Popen([sys.executable, '-c', code % rank]) for rank in range(2)]
        assert [worker.wait(timeout=600) for worker in workers] == [0, 0]
        results = [json.load(open(out + '.%d' % rank)) for rank in range(2)]
    single = small_problem()
    worst = max(abs(r[key] - value) / max(abs(value), 1e-300) for r in results for key, value in single.items()
                if value == value and value != 0)
    return {'keys_compared': len(single), 'max_relative_difference': worst}


ROWS = {'gemm': lambda args: gemm_rate(), 'imagenet': lambda args: row_imagenet(args.fraction),
        'nc4': lambda args: row_nc4(args.fraction), 'vocab': lambda args: row_vocab(),
        'distributed': lambda args: row_distributed()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--rows', nargs='*', default=list(ROWS), choices=list(ROWS))
    parser.add_argument('--fraction', type=float, default=0.01, help='fraction of ImageNet N measured (default 0.01)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads(),
                        help="torch threads (default: torch's own); on a loaded machine 1 avoids the spin-waits "
                             'of multithreaded LAPACK (an SVD of 1000 x 2048: 3.6 s on 1 thread, 27 s on 2 at load 18)')
    parser.add_argument('--one', default=None, help=argparse.SUPPRESS)      # run one row in this process
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(ROWS[args.one](args)))
        return
    print('torch %s, %d threads, %s, load average %.1f' % (torch.__version__, torch.get_num_threads(),
                                                            time.strftime('%Y-%m-%d'), os.getloadavg()[0]))
    for name in args.rows:
        env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
        output = subprocess.run([sys.executable, __file__, '--one', name, '--fraction', str(args.fraction),
                                 '--threads', str(args.threads)], capture_output=True, text=True, check=True,
                                env=env).stdout
        print('%-12s %s' % (name, output.strip()), flush=True)


if __name__ == '__main__':
    main()
