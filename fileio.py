"""Atomic file writes (no torch, so every script can use them): readers see the old file or
the whole new one, never a part, even if the writer is killed."""
import os
import tempfile


def _default_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path, write, mode='wb'):
    """Write ``path`` through ``write(file)`` into a temporary file in the same folder, then
    rename it over ``path``. The file gets the permissions open() would give it."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.',
                                         suffix='.tmp')
    try:
        with os.fdopen(handle, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, _default_mode())       # mkstemp creates 0600 files
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def atomic_write_text(path, text):
    atomic_write(path, lambda f: f.write(text), mode='w')
