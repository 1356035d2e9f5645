"""Names and paths that come from grid files or naming flags, checked before they reach
``os.path.join`` (docs/trust.md).

A *plain name* (a grid's name, a run's name or uid, ``--uid``, a figure's ``--name``) becomes
one folder or file name: it is non-empty, at most 200 characters, holds no '/' or '\\', no
'..' and no control character (a newline in a name would become a line of the sbatch script).
A *contained path* resolves inside a given folder (or one of the outside roots the user
allowed by name on the command line).
"""
import os

from nc_repro.errors import UsageError

ALLOWED = "letters, digits and . _ - = + (no '/', no '..', no control characters)"
MAX_LENGTH = 200


def name_problem(value):
    """Why ``value`` is not a plain name, or '' when it is one."""
    if not isinstance(value, str):
        return 'is a %s, not a string' % type(value).__name__
    if not value:
        return 'is empty'
    if len(value) > MAX_LENGTH:
        return 'is longer than %d characters' % MAX_LENGTH
    if '/' in value or '\\' in value:
        return "holds a path separator"
    if '..' in value or value == '.':
        return "holds '..'" if '..' in value else "is '.'"
    if any(not character.isprintable() for character in value):
        return 'holds a control character'
    return ''


def check_name(value, what):
    """Raise UsageError naming ``what`` (e.g. '--uid') when ``value`` is not a plain name."""
    problem = name_problem(value)
    if problem:
        raise UsageError('%s %s %s; a name may hold %s' % (what, shown(value), problem, ALLOWED))
    return value


def shown(value, limit=60):
    """``value`` for a one-line message: repr without newlines, shortened."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + '...'


def resolved(path, folder):
    """``path`` as the absolute real path it names from ``folder`` ('~' expanded, symbolic
    links of its existing parts followed)."""
    return os.path.realpath(os.path.join(folder, os.path.expanduser(path)))


def is_inside(path, folder):
    """True when ``path`` (relative ones from ``folder``) lies in ``folder`` or is it."""
    target, folder = resolved(path, folder), os.path.realpath(folder)
    return target == folder or target.startswith(folder.rstrip(os.sep) + os.sep)


def path_problem(value, folder, outside_roots=()):
    """Why ``value`` is not a path inside ``folder`` or one of ``outside_roots`` (relative
    paths are taken from ``folder``), or ''."""
    if not isinstance(value, str):
        return 'is a %s, not a path' % type(value).__name__
    if not value or any(not character.isprintable() for character in value):
        return 'is empty or holds a control character'
    target = resolved(value, folder)
    if any(is_inside(target, root) for root in [folder] + list(outside_roots)):
        return ''
    return 'leaves the work folder %s' % folder
