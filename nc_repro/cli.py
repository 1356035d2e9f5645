"""Command-line plumbing shared by every command: the one-line errors and exit codes.

UsageError (exit 2) is bad input the user can fix; RunStopped (exit 1) is a run that cannot go
on. ``run(main, args)`` turns both into one line on stderr naming the command.
"""
import argparse
import os
import sys


class UsageError(ValueError):
    """Bad input the user can fix: reported as one line naming the flag or file, exit code 2."""


class RunStopped(RuntimeError):
    """A run that cannot go on (e.g. a non-finite loss): one line on stderr, exit code 1."""


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2."""

    def error(self, message):
        sys.stderr.write('%s: error: %s (see --help)\n' % (self.prog, message))
        sys.exit(2)


def run(main, args):
    """Call a script's main(args); a UsageError becomes one line on stderr and exit code 2."""
    try:
        return main(args)
    except UsageError as error:
        sys.stderr.write('%s: error: %s\n' % (os.path.basename(sys.argv[0]), error))
        sys.exit(2)
    except RunStopped as error:
        sys.stderr.write('%s: stopped: %s\n' % (os.path.basename(sys.argv[0]), error))
        sys.exit(1)


# ----------------------------------------------------------------------------------------
# Hong & Ling's scripts write the original's relative layout below one output root

OUTPUT_ROOT = 'hong_results'


def add_output_root(parser):
    parser.add_argument('--output_root', type=str, default=OUTPUT_ROOT,
                        help="folder of the original's models/, plots/, data/ and opt_results/ "
                             "(default %s/, so no run writes into the source folders)" % OUTPUT_ROOT)


def output_path(args, *parts):
    """<--output_root>/<parts>: the original's relative layout, below the output root."""
    return os.path.join(args.output_root, *parts)
