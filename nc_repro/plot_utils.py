"""Helpers every figure script shares: read info files, write figures atomically as PNG+PDF.

Figure scripts run as ``python plots/<script>.py``; each puts the project root on sys.path
before importing from the package.
"""
import argparse
import io
import os
import sys

import matplotlib
matplotlib.use('Agg')

from nc_repro import plain_names, safe_load  # noqa: E402
from nc_repro.fileio import atomic_write  # noqa: E402


class FigureInputError(SystemExit):
    """Exit status 2 after a one-line message on stderr (raised by ``load_info``)."""


def read_info(path):
    """info.pkl (or any pickled dict of per-epoch lists) as a dict.

    Raises ValueError with a one-line message naming the file when it is missing, unreadable
    or not a dict; safe_load.UnsafeFile (a ValueError too) when it asks to run code."""
    try:
        info = safe_load.load_pickle(path)
    except FileNotFoundError:
        raise ValueError('%s does not exist; run the validator for that run first' % path) from None
    except OSError as error:
        raise ValueError('%s cannot be opened (%s)' % (path, error.strerror or type(error).__name__)) from None
    except safe_load.DamagedFile as error:
        raise ValueError('%s; re-run its validator' % error) from None
    if not isinstance(info, dict):
        raise ValueError('%s holds a %s, not an info dict' % (path, type(info).__name__))
    return info


def load_info(path):
    """``read_info`` for scripts: a bad file is one line on stderr and exit status 2."""
    try:
        return read_info(path)
    except ValueError as error:
        stop(error)


def stop(message):
    """One line 'error: <message>' on stderr, then exit status 2 (FigureInputError)."""
    sys.stderr.write('error: %s\n' % message)
    raise FigureInputError(2) from None


def check_name(value, flag='--name'):
    """A figure's file name stem from the command line or a grid: a plain name
    (plain_names), else one line and exit status 2."""
    try:
        return plain_names.check_name(value, flag)
    except ValueError as error:
        stop(error)


def save_figure(fig, out_dir, name, formats=('png', 'pdf')):
    """Write <out_dir>/<name>.png and .pdf (temporary file + rename); closes ``fig`` and
    returns the paths."""
    import matplotlib.pyplot as plt
    paths = []
    for fmt in formats:
        path = os.path.join(out_dir, '%s.%s' % (name, fmt))
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches='tight', dpi=120)
        atomic_write(path, lambda f: f.write(buffer.getvalue()))
        paths.append(path)
    plt.close(fig)
    return paths


def out_dir_parser(default='figures'):
    """argparse parent holding ``--out_dir``."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--out_dir', default=default, help='folder for the PNG and PDF files (default: %(default)s)')
    return parser


def scale_for(ax, values):
    """Log y axis where the positive values span a decade or more; symlog (linear below the
    smallest positive value) where such a series also reaches zero, as an NCC mismatch does."""
    values = [float(v) for v in values]
    positive = [v for v in values if v > 0]
    if len(positive) < 2 or min(values) < 0 or max(positive) < 10 * min(positive):
        return
    if len(positive) == len(values):
        ax.set_yscale('log')
    else:
        ax.set_yscale('symlog', linthresh=min(positive))
