"""Atomic file writes (no torch, so every script can use them): readers see the old file or
the whole new one, never a part, even if the writer is killed.

A full disk or an exceeded quota (ENOSPC, EDQUOT) while writing is a clear stop: one line on
stderr naming the file, the free space and how to continue (``disk_full_hint``), no
traceback, no temporary file left, and exit code EXIT_DISK_FULL (75, EX_TEMPFAIL), which
``sweep.py --status`` shows."""
import contextlib
import json
import math
import errno
import importlib.util
import os
import shutil
import sys
import tempfile

EXIT_DISK_FULL = 75
DISK_FULL_ERRNOS = tuple(code for code in (getattr(errno, 'ENOSPC', None), getattr(errno, 'EDQUOT', None))
                         if code is not None)
_hints = []          # callables -> text telling how to continue; the innermost wins


def human_bytes(count):
    """Sizes in units that show them: 1.2 GB, 0.6 MB, 12 kB, 0 B."""
    count = float(count)
    if count >= 1e9:
        return '%.1f GB' % (count / 1e9)
    if count >= 1e5:
        return '%.1f MB' % (count / 1e6)
    if count >= 1e3:
        return '%.0f kB' % (count / 1e3)
    return '%d B' % count


def free_bytes(path):
    """Free space of the disk holding ``path`` (or its nearest existing parent); None if unknown."""
    folder = os.path.abspath(path)
    while folder and not os.path.exists(folder):
        parent = os.path.dirname(folder)
        if parent == folder:
            break
        folder = parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


class DiskFull(SystemExit):
    """Raised after the one line was printed; a SystemExit, so no ``except Exception`` on the
    way up swallows it, every ``finally`` runs, and Python exits with EXIT_DISK_FULL."""

    def __init__(self, path, message):
        super().__init__(EXIT_DISK_FULL)
        self.path, self.message = path, message

    def __str__(self):
        return self.message


def is_disk_full(error):
    """True for ENOSPC/EDQUOT, also when wrapped (e.g. by torch's serializer)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, DiskFull):
            return True
        if isinstance(error, OSError) and error.errno in DISK_FULL_ERRNOS:
            return True
        error = error.__cause__ or error.__context__
    return False


@contextlib.contextmanager
def disk_full_hint(hint):
    """Within the block a full disk's line ends with ``hint()`` (e.g. the last good
    checkpoint and the --resume command) instead of 'free space and run the same command again'."""
    _hints.append(hint)
    try:
        yield
    finally:
        _hints.remove(hint)


def _clear_progress_bars():
    """Close every live tqdm bar without leaving it (else one is redrawn after the stop's line)."""
    tqdm = sys.modules.get('tqdm')
    bars = getattr(getattr(tqdm, 'tqdm', None), '_instances', None) or ()
    for bar in list(bars):
        try:
            bar.leave = False
            bar.close()
        except Exception:           # noqa: BLE001 - cosmetic only
            pass


def stop_disk_full(path, error=None):
    """Print the one line for a full disk while writing ``path`` and raise DiskFull."""
    free = free_bytes(path)
    try:
        hint = _hints[-1]() if _hints else None
    except Exception:           # noqa: BLE001 - the hint must never hide the real stop
        hint = None
    message = 'disk full writing %s (%s free on its disk%s); %s' % (
        os.path.abspath(path), human_bytes(free) if free is not None else 'unknown',
        '' if error is None or getattr(error, 'errno', None) != getattr(errno, 'EDQUOT', -1) else ', quota exceeded',
        hint or 'free space and run the same command again')
    line = '%s: stopped: %s' % (os.path.basename(sys.argv[0] or 'python'), message)
    try:
        _clear_progress_bars()        # the stop's line is the last thing on the terminal
        sys.stderr.write(line + '\n')
        sys.stderr.flush()
    except OSError:
        pass
    raise DiskFull(path, message) from None


@contextlib.contextmanager
def stop_if_disk_full(path):
    """Turn ENOSPC/EDQUOT inside the block (plain writes: logs, appends) into stop_disk_full."""
    try:
        yield
    except DiskFull:
        raise
    except Exception as error:    # noqa: BLE001 - only disk-full errors are converted
        if is_disk_full(error):
            stop_disk_full(path, error)
        raise


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write, mode='wb'):
    """Write ``path`` through ``write(file)`` into a temporary file in the same folder, then
    rename it over ``path``. The file gets the permissions open() would give it. A full disk
    removes the temporary file and stops with one line (stop_disk_full)."""
    folder = os.path.dirname(os.path.abspath(path))
    temporary = None
    try:
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.',
                                             suffix='.tmp')
        with os.fdopen(handle, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, _default_mode())       # mkstemp creates 0600 files
        os.replace(temporary, path)
    except BaseException as error:
        if temporary is not None and os.path.exists(temporary):
            os.remove(temporary)
        if not isinstance(error, DiskFull) and is_disk_full(error):
            stop_disk_full(path, error)
        raise


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text), mode='w')


# ----------------------------------------------------------------------------------------
# JSON records: valid JSON only (no NaN, no Infinity)

NON_FINITE_KEY = 'non_finite'


def finite_json_values(value, path='', found=None):
    """``value`` with every non-finite float replaced by None; ``found`` collects
    {dotted path: 'nan' | 'inf' | '-inf'} of the replaced ones."""
    found = {} if found is None else found
    if isinstance(value, dict):
        return {k: finite_json_values(v, '%s.%s' % (path, k) if path else str(k), found)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json_values(v, '%s[%d]' % (path, i), found) for i, v in enumerate(value)]
    if isinstance(value, float) and not math.isfinite(value):
        found[path] = str(float(value))
        return None
    return value


def write_json(path, record, indent=1):
    """Write ``record`` as JSON atomically. A non-finite float (which JSON cannot hold: Python
    would write NaN or Infinity) becomes null, is listed under the record's ``non_finite`` key
    ({dotted path: 'inf'}) and is reported in one warning line naming the file. Returns that dict."""
    found = {}
    clean = finite_json_values(record, found=found)
    if found and isinstance(clean, dict):
        clean[NON_FINITE_KEY] = found
    atomic_write_text(path, json.dumps(clean, indent=indent, allow_nan=False) + '\n')
    if found:
        print('warning: %s: %s not finite (%s), written as null and listed under "%s"'
              % (path, ', '.join(list(found)[:4]) + (', ...' if len(found) > 4 else ''),
                 ', '.join(sorted(set(found.values()))), NON_FINITE_KEY))
    return found


def packaged_file(package, *parts):
    """Path of a data file shipped inside an installed package, found without importing the
    package (importing scikit-learn takes 1.8 s, torchvision 2 s); None if the package or the
    file is missing."""
    found = importlib.util.find_spec(package)
    paths = [os.path.join(folder, *parts) for folder in found.submodule_search_locations or []] if found else []
    return next((path for path in paths if os.path.exists(path)), None)
