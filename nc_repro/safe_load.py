"""Reading files that come from outside this process without running code from them.

Run, work and data folders are shared between people (a colleague's sweep, a paper's
supplement), so a file in them is data, never code (docs/trust.md). A plain ``pickle.load``
or ``torch.load(weights_only=False)`` imports and calls whatever the file names; here:

* ``load_pickle``: pickles (info.pkl, metrics.pkl, within_class_vari.pickle, the random-label
  and mini-ImageNet pickles) through an unpickler that builds only plain containers, numbers,
  strings, bytes and numpy arrays, dtypes and scalars (PICKLE_GLOBALS);
* ``load_torch``: torch files (epoch checkpoints, resume.pth, Hong's data cache) with
  ``weights_only=True``, plus the numpy types of the RNG state, allowed by name
  (TORCH_NUMPY_GLOBALS).

A file naming anything else raises UnsafeFile: a UsageError (one line on stderr, exit code 2)
that names the file and what it asked for; nothing from the file was called. A file that is
not a pickle at all, or cut short, raises DamagedFile, which callers that can start over
(a missing result, a damaged resume.pth) catch.
"""
import _compat_pickle
import pickle
import re

import numpy as np

from nc_repro.errors import UsageError

# (module, name) an allowed pickle may import: numpy's array, dtype and scalar builders
# (numpy 2 names and the numpy 1 names of older files), the protocol-2 bytes helper and a few
# plain builtin containers.
PICKLE_GLOBALS = frozenset(
    [(module, name) for module in ('numpy.core.multiarray', 'numpy._core.multiarray')
     for name in ('_reconstruct', 'scalar')]
    + [(module, '_frombuffer') for module in ('numpy.core.numeric', 'numpy._core.numeric')]
    + [('numpy', 'ndarray'), ('numpy', 'dtype'), ('_codecs', 'encode'),
       ('builtins', 'set'), ('builtins', 'frozenset'), ('builtins', 'complex'), ('builtins', 'bytearray'),
       ('collections', 'OrderedDict')])

# numpy's RNG state, np.random.get_state() in resume.pth: an ndarray of uint32
TORCH_NUMPY_GLOBALS = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, np.dtypes.UInt32DType,
                       (np._core.multiarray._reconstruct, 'numpy.core.multiarray._reconstruct')]


class BadFile(UsageError):
    """A file from a run, work or data folder that cannot be used (one line, exit code 2)."""

    def __init__(self, path, message):
        super().__init__(message)
        self.path = path


class UnsafeFile(BadFile):
    """The file asks to import or call something that is not plain data; nothing of it ran."""


class DamagedFile(BadFile):
    """The file is not a readable pickle or torch file (cut short, overwritten, another format)."""


class _Refused(Exception):
    def __init__(self, what):
        super().__init__(what)
        self.what = what


def _python3_name(module, name):
    """(module, name) as Python 3 imports it (protocols 0-2 name ``__builtin__.set``...)."""
    if (module, name) in _compat_pickle.NAME_MAPPING:
        return _compat_pickle.NAME_MAPPING[(module, name)]
    return _compat_pickle.IMPORT_MAPPING.get(module, module), name


class DataUnpickler(pickle.Unpickler):
    """An unpickler that imports only PICKLE_GLOBALS; anything else stops it before the call."""

    def find_class(self, module, name):
        if _python3_name(module, name) in PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise _Refused('%s.%s' % (module, name))

    def persistent_load(self, pid):
        raise _Refused('a persistent id (%s)' % type(pid).__name__)


def refusal(path, what):
    return UnsafeFile(path, '%s holds %s, which is not plain data (refused; nothing from the file ran); '
                            'only containers, numbers, strings and numpy arrays are read from files'
                      % (path, _printable(what)))


def _printable(text):
    """``text`` on one line, at most 120 characters (a hostile name may hold newlines)."""
    text = ''.join(c if c.isprintable() else '\\x%02x' % (ord(c) & 0xff) for c in str(text))
    return text if len(text) <= 120 else text[:117] + '...'


def load_pickle(path):
    """The object pickled in ``path``, built without importing anything but PICKLE_GLOBALS.
    Raises UnsafeFile (refused), DamagedFile (unreadable) or OSError (e.g. missing)."""
    with open(path, 'rb') as f:
        try:
            return DataUnpickler(f).load()
        except _Refused as error:
            raise refusal(path, error.what) from None
        except Exception as error:    # noqa: BLE001 - a damaged file raises many types
            raise DamagedFile(path, '%s cannot be read (%s)' % (path, type(error).__name__)) from None


_UNSUPPORTED_GLOBAL = re.compile(r'Unsupported global: GLOBAL (\S+)')


def load_torch(path, map_location='cpu'):
    """torch.load(path, weights_only=True) with the RNG state's numpy types allowed by name.
    Raises UnsafeFile when the file names another global, DamagedFile when torch cannot read
    it, OSError when it cannot be opened."""
    import torch
    try:
        with torch.serialization.safe_globals(TORCH_NUMPY_GLOBALS):
            return torch.load(path, map_location=map_location, weights_only=True)
    except OSError:
        raise
    except Exception as error:    # noqa: BLE001 - a damaged file raises many types
        found = _UNSUPPORTED_GLOBAL.search(str(error))
        if found:
            raise refusal(path, found.group(1).rstrip('.')) from None
        if 'Weights only load failed' in str(error) and _names_a_global(path):
            raise refusal(path, _names_a_global(path)) from None
        raise DamagedFile(path, '%s cannot be read (%s)' % (path, type(error).__name__)) from None


def _names_a_global(path):
    """The first global outside the allowed ones that a torch file names, or ''."""
    import torch
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:           # noqa: BLE001 - only used to name what was refused
        return ''
    allowed = {'numpy._core.multiarray._reconstruct', 'numpy.core.multiarray._reconstruct', 'numpy.ndarray',
               'numpy.dtype', 'numpy.dtypes.UInt32DType'}
    names = [name for name in names if name not in allowed]
    return names[0] if names else ''
