"""Iterations per second of the balanced synthetic README run against a faithful
every-iteration reference, in one run.

  .venv/bin/python bench/synthetic.py

default:   python synthetic_experiment_balanced.py --hidden 64 --num_iteration 30000 --lr 0.1
           (metrics every 100 iterations)
reference: the same problem with metrics after every iteration (--log_every 1), including the
           original's float32 pseudo-inverse NC1 on the CPU (--as_coded_nc1), timed on 2,000
           iterations. Targets: ratio >= 10x, and the 30,000 default iterations under 60 s.
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import args as cli  # noqa: E402
import synthetic_experiment_balanced  # noqa: E402


def iterations_per_second(flags):
    parser = synthetic_experiment_balanced.get_args_parser()
    with tempfile.TemporaryDirectory() as folder:
        args = cli.parse_synthetic(parser, flags + ['--out_dir', folder])
        start = time.perf_counter()
        synthetic_experiment_balanced.main(args)
        seconds = time.perf_counter() - start
    return args.num_iteration / seconds, seconds


def main():
    readme = ['--hidden', '64', '--lr', '0.1']
    default_rate, default_seconds = iterations_per_second(readme + ['--num_iteration', '30000'])
    reference_rate, _ = iterations_per_second(readme + ['--num_iteration', '2000', '--log_every', '1',
                                                        '--as_coded_nc1'])
    print('default   (metrics every 100 it.)   %8.0f it/s   30,000 iterations in %.1f s (target < 60 s)'
          % (default_rate, default_seconds))
    print('reference (metrics every iteration) %8.0f it/s' % reference_rate)
    print('ratio                               %8.1fx (target >= 10x)' % (default_rate / reference_rate))


if __name__ == '__main__':
    main()
