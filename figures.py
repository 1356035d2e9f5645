"""Draw every figure of an experiment grid from its finished runs, naming the missing ones.

  python figures.py grids/d23_mlp_depth.yaml [--quick] [--work_dir sweeps/d23_mlp_depth]

Runs the grid's figure commands from the work folder (where sweep.py ran the jobs); the
figures go where each plot script writes them (figures/ under the work folder by default).
"""
import argparse
import os
import subprocess
import sys

import args as cli
from args import UsageError
from reproduction import grids, job_runs


def get_args_parser():
    parser = argparse.ArgumentParser(description="Draw a grid's figures from its finished runs.")
    parser.add_argument('grid', help='grid file (grids/<name>.yaml, or just <name>)')
    parser.add_argument('--quick', action='store_true', help="the grid's quick variant")
    parser.add_argument('--work_dir', default=None, help='folder the jobs ran in (default sweeps/<grid name>)')
    parser.add_argument('--set', nargs='*', default=[], metavar='FLAG=VALUE', dest='settings',
                        help='the flag overrides the runs were swept with (sweep.py --set)')
    parser.add_argument('--allow_outside', action='append', default=[], metavar='DIR',
                        help="let the grid's path flags (data_dir, weights_root, ...) point into DIR, outside "
                             'the work folder (repeatable); without it they must stay inside the work folder')
    return parser


def draw_grid(grid, jobs, work_dir, quick=False, rerun_hint=None):
    """Run the grid's figure commands over its finished jobs; returns the number that failed.
    Missing runs are named; no finished run at all is a UsageError."""
    commands, missing = job_runs.figure_commands(grid, jobs, work_dir, quick)
    if not commands:                    # the grid's scripts draw their own figures
        return 0
    for name in missing:
        print('missing run %s (not finished%s)' % (name, '; run: ' + rerun_hint if rerun_hint else ''))
    if len(missing) == len(jobs):
        raise UsageError('no run of grid %s has finished in %s' % (grid['name'], work_dir))
    failed = 0
    for argv in commands:
        command = [sys.executable, os.path.join(grids.ROOT, argv[0])] + argv[1:]
        print('$ %s' % ' '.join(argv), flush=True)
        failed += subprocess.call(command, cwd=work_dir) != 0
    print('figures of grid %s drawn from %d runs, under %s' % (grid['name'], len(jobs) - len(missing), work_dir))
    return failed


def main(args):
    grid = grids.load_grid(args.grid)
    jobs = grids.expand(grid, args.quick, grids.parse_settings(args.settings))
    work_dir = grids.work_folder(grid, args.work_dir)
    grids.check_paths(grid, work_dir, [os.path.abspath(root) for root in args.allow_outside])
    hint = 'python sweep.py %s%s' % (args.grid, ' --quick' if args.quick else '')
    return 1 if draw_grid(grid, jobs, work_dir, args.quick, hint) else 0


if __name__ == '__main__':
    sys.exit(cli.run(main, get_args_parser().parse_args()))
