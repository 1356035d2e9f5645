"""The one-line errors and exit codes shared by every command.

UsageError (exit 2) is bad input the user can fix; RunStopped (exit 1) is a run that cannot go
on. ``run(main, flags)`` turns both into one line on stderr naming the command.
"""
import os
import sys


class UsageError(ValueError):
    """Bad input the user can fix: reported as one line naming the flag or file, exit code 2."""


class RunStopped(RuntimeError):
    """A run that cannot go on (e.g. a non-finite loss): one line on stderr, exit code 1."""


def run(main, flags):
    """Call a script's main(flags) (its parsed flags); a UsageError becomes one line on stderr and exit code 2."""
    try:
        return main(flags)
    except UsageError as error:
        sys.stderr.write('%s: error: %s\n' % (os.path.basename(sys.argv[0]), error))
        sys.exit(2)
    except RunStopped as error:
        sys.stderr.write('%s: stopped: %s\n' % (os.path.basename(sys.argv[0]), error))
        sys.exit(1)
