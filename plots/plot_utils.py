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


def load_info(path, kind=None):
    """``read_info`` for scripts: a bad file is one line on stderr and exit status 2. ``path``
    may be a run folder (its info.pkl is read). With ``kind`` ('balanced' or 'imbalanced'), an
    info.pkl of the other kind is refused with the figure command that draws it."""
    if os.path.isdir(path):
        path = os.path.join(path, 'info.pkl')
    try:
        info = read_info(path)
    except ValueError as error:
        stop(error)
    found = info_kind(info)
    if kind and found and found != kind:
        stop('%s is the info.pkl of %s run; draw it with %s' % (
            path, 'an imbalanced (dang2023 imbalanced or dang2024)' if found == 'imbalanced' else
            'a balanced (zhou2022 or dang2023)', FIGURE_COMMANDS[found]))
    return info


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


FIGURE_COMMANDS = {'balanced': 'python plots/plot_nc.py <run folder or info.pkl>',
                   'imbalanced': 'python plots/plot_imbalanced.py <run folder>'}


def info_kind(info):
    """'imbalanced' for the imbalanced validator's keys, 'balanced' for validate_NC.py's, else None."""
    if 'NC1' in info or 'NC3_W_div_H' in info or 'NC2_WWT' in info:
        return 'imbalanced'
    if 'collapse_metric' in info or 'NC2_ETF_W' in info:
        return 'balanced'
    return None


def check_drawable(info, keys, path):
    """Refuse (one line, exit 2) an info whose metrics ``keys`` hold no finite value at any
    epoch, naming the reason the validator stored (info_files.UNDEFINED_KEY); warn about some
    undefined epochs."""
    import math
    reasons = [r for r in info.get('nc_undefined') or [] if r]
    values = [float(v) for key in keys for v in info.get(key) or []]
    if values and not any(math.isfinite(v) for v in values):
        stop('%s: no finite NC value at any epoch (%s); nothing to draw'
             % (path, reasons[-1] if reasons else 'not finite'))
    if reasons:
        print('warning: %s: %d epochs have undefined NC values (%s); they are left out of the curves'
              % (path, len(reasons), reasons[-1]))


def save_figure(fig, out_dir, name, formats=('png', 'pdf'), dpi=120):
    """Write <out_dir>/<name>.png and .pdf (temporary file + rename); closes ``fig`` and
    returns the paths."""
    import matplotlib.pyplot as plt
    paths = []
    for fmt in formats:
        path = os.path.join(out_dir, '%s.%s' % (name, fmt))
        buffer = io.BytesIO()
        fig.savefig(buffer, format=fmt, bbox_inches='tight', dpi=dpi)
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
