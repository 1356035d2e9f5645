"""torch.compile against eager mode for two training steps of this project (offer --compile?).

  .venv/bin/python bench/compile.py [--rows mlp dang_resnet18] [--steps 10] [--agreement_steps 50]
                                    [--budget 240] [--modes default] [--device cpu]

Rows: bench/train_epoch.py's D23 MLP (Adam, --sep_decay) and Dang's ResNet18 (SGD), batch 128 of
random CIFAR-sized tensors (fixed seed), in the memory format the model package picks. Three
models are built with seed 1 and train in lockstep on the same batches (one step each in turn,
so a shared machine's load hits all alike, each step as training.train_one_epoch runs it):
eager; torch.compile(model, mode) (forward and backward compiled; the penalty and the optimiser
step stay eager); and a rounding reference, eager with other rounding: float64 (mlp) or the
other memory format, contiguous (dang_resnet18; a layout change the project already accepts).
Reported: compile time (first compiled step, cold inductor cache), seconds per step (median of
--steps after 2 warm-up steps), speed-up = eager / compiled, and after --agreement_steps steps
(fewer if a row's run passes --budget seconds; printed) max |eager - compiled| over the state
dict, next to max |eager - reference|, at several steps. The tolerance is float rounding itself:
the weights agree when max |eager - compiled| <= 2 max |eager - reference|, i.e. compiling moves
the weights no further than a change of rounding alone does (a fixed bound such as 1e-4 max
|param| fails for eager against eager-with-other-rounding too: Adam's first steps move
parameters whose gradient is rounding noise by about lr, either way).
Offer --compile only if a row is >= 1.2x faster and its weights agree.
"""
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

CACHE = os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', tempfile.mkdtemp(prefix='nc_compile_bench_'))  # cold
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_epoch import CONV_ROWS, README_MLP, cli, datasets, image_set, losses, models, synchronize, training  # noqa

FLAGS = {'mlp': README_MLP, 'dang_resnet18': CONV_ROWS['dang_resnet18']}
REFERENCE = {'mlp': ('float64', torch.float64, None), 'dang_resnet18': ('contiguous', None, torch.contiguous_format)}
BATCH, ROUNDING_FACTOR, WARMUP, CHECKPOINTS = 128, 2.0, 2, (1, 2, 5, 10, 20, 30, 40, 50, 100)


def build(row, device, dtype=None, memory_format=None):
    """(model, objective, optimizer) from the row's flags, seed 1, the package's memory format."""
    args = cli.parse(cli.get_train_parser(), FLAGS[row].split() + ['--batch_size', str(BATCH)])
    training.set_seed(1)
    model = models.build_model(args, 10, (3, 32, 32)).to(device, dtype)   # same draws, then widened
    model = model.use_memory_format(memory_format) if memory_format is not None else model
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 10)
    return model, objective, training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)


def state(model):  # the float entries of the state dict, in float64
    return {k: v.detach().double() for k, v in model.state_dict().items() if v.is_floating_point()}


def compare(a, b):
    """(max |diff|, max |param|) over the float entries of two state dicts."""
    pairs = [((x - b[k]).abs().max().item(), x.abs().max().item()) for k, x in a.items()]
    return max(d for d, _ in pairs), max(m for _, m in pairs)


def run_row(row, mode, bench, device, batches):
    """Eager, compiled and reference models in lockstep; returns the row's numbers."""
    name, dtype, memory_format = REFERENCE[row]
    result = {'row': row, 'mode': mode, 'reference': name, 'trace': []}
    runs = []
    for variant in ('eager', 'compiled', 'reference'):
        model, objective, optimizer = build(row, device, *((dtype, memory_format) if variant == 'reference' else ()))
        net = torch.compile(model, mode=None if mode == 'default' else mode) if variant == 'compiled' else model
        runs.append((model, net, objective, optimizer, next(model.parameters()).dtype, [], variant))
    result['initial'] = compare(state(runs[0][0]), state(runs[1][0]))[0]
    start, step = time.perf_counter(), 0
    while step < max(bench.agreement_steps, WARMUP + bench.steps):
        images, labels = batches[step % len(batches)]
        for model, net, objective, optimizer, dtype, times, variant in runs:
            synchronize(device)
            begin = time.perf_counter()
            try:
                training.train_one_epoch(net, [(images.to(dtype), labels)], objective, optimizer, 0, 1)
            except Exception as error:                            # noqa: BLE001 - reported in the table
                result['error'] = ('%s run: %s: %s' % (variant, type(error).__name__, error)).splitlines()[0][:150]
                return result
            synchronize(device)
            times.append(time.perf_counter() - begin)
        step += 1
        over = time.perf_counter() - start > bench.budget and step >= WARMUP + bench.steps
        if step in CHECKPOINTS or step == bench.agreement_steps or over:
            eager, compiled, reference = (state(run[0]) for run in runs)
            result['trace'].append((step, *compare(eager, compiled), compare(eager, reference)[0],
                                    compare(compiled, reference)[0]))
            if step <= bench.agreement_steps:
                result['final'] = result['trace'][-1]
        if over:
            print('   %s: %.0f s > --budget after %d steps: stopped (agreement over %d steps, not %d)'
                  % (row, time.perf_counter() - start, step, min(step, bench.agreement_steps), bench.agreement_steps))
            break
    median = [statistics.median(run[5][WARMUP:WARMUP + bench.steps]) for run in runs]
    result.update(eager=median[0], compiled=median[1], compile=runs[1][5][0])
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rows', nargs='+', default=list(FLAGS), choices=list(FLAGS))
    parser.add_argument('--steps', type=int, default=10, help='timed steps after %d warm-up steps' % WARMUP)
    parser.add_argument('--agreement_steps', type=int, default=50)
    parser.add_argument('--budget', type=float, default=240, help='seconds per row, then fewer agreement steps')
    parser.add_argument('--modes', nargs='+', default=['default'], choices=['default', 'max-autotune-no-cudagraphs'])
    parser.add_argument('--device', default='cpu')
    bench = parser.parse_args()
    device, seeded = torch.device(bench.device), torch.Generator().manual_seed(1)
    data = image_set(max(bench.agreement_steps, bench.steps + WARMUP) * BATCH, seeded, device)
    batches = list(datasets.BatchLoader(data, BATCH))             # the same batch sequence for every run
    print('torch %s, device %s, threads %d, batch %d, inductor cache %s' % (
        torch.__version__, device, torch.get_num_threads(), BATCH, CACHE))
    results, offered = [], False
    for row in bench.rows:
        for mode in bench.modes:
            start = time.perf_counter()
            results.append(run_row(row, mode, bench, device, batches))
            print('   %s / %s done in %.0f s' % (row, mode, time.perf_counter() - start), flush=True)
    print('%-14s %-12s %9s %9s %8s %9s %6s %10s %10s %6s %11s' % ('row', 'mode', 'eager s', 'comp. s', 'speed-up',
          'compile s', 'steps', 'max|diff|', 'ratio', 'agree', '|e-ref|'))
    for r in results:
        if 'error' in r:
            print('%-14s %-12s failed: %s' % (r['row'], r['mode'][:12], r['error']))
            continue
        step, diff, scale, ref, _ = r['final']
        speedup, agree = r['eager'] / r['compiled'], diff <= ROUNDING_FACTOR * ref
        offered |= speedup >= 1.2 and agree
        print('%-14s %-12s %9.4f %9.4f %8.2f %9.1f %6d %10.2e %10.2e %6s %11.2e' % (
            r['row'], r['mode'][:12], r['eager'], r['compiled'], speedup, r['compile'], step, diff, diff / scale,
            'yes' if agree else 'no', ref))
        print('%-14s max|param| %.3g; identical initial weights: %s; reference = eager in %s' % (
            '', scale, 'yes' if r['initial'] == 0 else 'NO (%.2e)' % r['initial'], r['reference']))
        print('%-14s %5s %12s %12s %12s' % ('', 'step', '|e - c|', '|e - ref|', '|c - ref|'))
        for step, diff, _, ref, cref in r['trace']:
            print('%-14s %5d %12.2e %12.2e %12.2e' % ('', step, diff, ref, cref))
    print('s = seconds per training step (median of %d after %d warm-up steps); max|diff| = max |eager - compiled| '
          'over the state dict after the steps shown, ratio = max|diff| / max|param|, agree = max|diff| <= %g |e-ref|'
          % (bench.steps, WARMUP, ROUNDING_FACTOR))
    print('torch.compile offered as --compile: %s (rule: speed-up >= 1.2 on a row and weights agree)'
          % ('yes' if offered else 'no'))
    if os.path.basename(CACHE).startswith('nc_compile_bench_'):       # ours: a fresh one per run
        shutil.rmtree(CACHE, ignore_errors=True)


if __name__ == '__main__':
    main()
