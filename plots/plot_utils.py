"""Helpers every figure script shares: read info files, write figures atomically as PNG+PDF."""
import argparse
import io
import os
import pickle
import sys

import matplotlib
matplotlib.use('Agg')

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from checkpoints import atomic_write  # noqa: E402


class FigureInputError(SystemExit):
    pass


def load_info(path):
    """info.pkl as a dict; a missing or unreadable file is one line naming it (exit 2)."""
    try:
        with open(path, 'rb') as f:
            info = pickle.load(f)
    except FileNotFoundError:
        sys.stderr.write('error: %s does not exist; run the validator for that run first\n' % path)
        raise FigureInputError(2)
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError) as error:
        sys.stderr.write('error: %s cannot be read (%s); re-run its validator\n' % (path, type(error).__name__))
        raise FigureInputError(2)
    if not isinstance(info, dict):
        sys.stderr.write('error: %s is not an info dict\n' % path)
        raise FigureInputError(2)
    return info


def save_figure(fig, out_dir, name, formats=('png', 'pdf')):
    """Write <out_dir>/<name>.png and .pdf (temporary file + rename); returns the paths."""
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
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--out_dir', default=default, help='folder for the PNG and PDF files')
    return parser
