"""Every citation in the repository resolves inside the repository.

Comments, docstrings, tests, grids and docs cite the papers by name and number, the documents
under docs/, the originals' own files and functions, and the originals' bugs by stable ids
(``J-B1``, ``D23-B18``, ``Hong-B6``, ...) defined in docs/original_code.md. These tests read
every text file that git tracks (plus new files not yet added; tests/data/ is skipped) and fail
on a citation of a document a reader of the repository does not have. The forbidden strings are
built from pieces so that this file does not match its own checks. No torch import: fast.
"""
import os
import re
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECTION = '\u00a7'                                   # the section sign
OUTSIDE_FOLDER = '..' + '/' + 'shared'
WORD = 'sp' + 'ec'                                   # the outside fact sheets' name
ORIGINAL_CODE_DOC = os.path.join('docs', 'original_code.md')
SKIPPED_FOLDERS = ('tests/data/',)

STABLE_ID = re.compile(r'\b(?:J|T|D23|D24|Hong)-B\d+\b')
DEFINITION = re.compile(r'^\s*- \*\*((?:J|T|D23|D24|Hong)-B\d+)\*\*', re.MULTILINE)
DOCS_MENTION = re.compile(r'\bdocs/([A-Za-z0-9_./-]+?\.md)\b')
# the fact sheets' short name as a word of its own (an underscore counts as a separator, so
# test names such as test_the_<name>_table match too)
WORD_USE = re.compile(r'(?<![A-Za-z])' + WORD + r'(?![A-Za-z])', re.IGNORECASE)
# ... except where it is a Python name: importlib's find_spec, or a local variable in code
CODE_AFTER = re.compile(r'\s*=(?!=)|\s+is\b|\.[A-Za-z_]|\[')
CODE_BEFORE = re.compile(r'(?:find_|\b(?:for|in)\s+)$')
# a section sign is a citation only after a published work's year ("Higham 2002 x3.1",
# "Wang et al. (2017) x3") or after a docs file ("docs/papers.md, x...")
CITED_SECTION = re.compile(r'(?:(?:19|20)\d\d[a-z]?\)?|\.md),?\s*$')
NUMBERED_REFERENCE = re.compile(r'\breference\s+' + SECTION, re.IGNORECASE)
OLD_BUG_NUMBER = re.compile(r'\bbugs?\s+B?\d+\b|\b(?:J|T|D23|D24|Hong)\s+B\d+\b', re.IGNORECASE)
CODE_BASE_SECTION = re.compile(r'\b(?:J|T|D23|D24|Hong)\s+(?:' + SECTION + r'|App\.|Appendix)')


def repository_files():
    """Paths (relative, '/'-separated) of the tracked files and of new files git does not ignore."""
    try:
        listed = subprocess.run(['git', 'ls-files', '--cached', '--others', '--exclude-standard'],
                                cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):          # not a git checkout: walk the tree
        listed = []
        for folder, subfolders, files in os.walk(ROOT):
            subfolders[:] = [s for s in subfolders if not s.startswith('.') and s not in ('__pycache__',)]
            listed += [os.path.relpath(os.path.join(folder, f), ROOT).replace(os.sep, '/') for f in files]
    return sorted({path for path in listed if not path.startswith(SKIPPED_FOLDERS)
                   and os.path.isfile(os.path.join(ROOT, path))})


def read_text(path):
    """The file's text, or None for a binary file."""
    with open(os.path.join(ROOT, path), 'rb') as f:
        content = f.read()
    if b'\0' in content[:8192]:
        return None
    try:
        return content.decode('utf-8')
    except UnicodeDecodeError:
        return None


@pytest.fixture(scope='module')
def texts():
    found = {}
    for path in repository_files():
        text = read_text(path)
        if text is not None:
            found[path] = text
    assert found, 'no text files found under %s' % ROOT
    return found


def offending_lines(texts, is_offending):
    """['path:line: text'] for every line where is_offending(line) is true."""
    hits = []
    for path, text in texts.items():
        for number, line in enumerate(text.splitlines(), 1):
            if is_offending(line):
                hits.append('%s:%d: %s' % (path, number, line.strip()[:160]))
    return hits


def names_fact_sheet(line):
    for match in WORD_USE.finditer(line):
        before, after = line[:match.start()], line[match.end():]
        if CODE_BEFORE.search(before) or CODE_AFTER.match(after):
            continue
        return True
    return False


def has_uncited_section_sign(line):
    return any(not CITED_SECTION.search(line[:match.start()]) for match in re.finditer(SECTION, line))


def test_no_file_points_into_the_outside_shared_folder(texts):
    assert offending_lines(texts, lambda line: OUTSIDE_FOLDER in line) == []


def test_no_line_cites_the_outside_fact_sheets_by_name(texts):
    hits = offending_lines(texts, names_fact_sheet)
    assert hits == [], ('cite the paper, a docs/ file or the original code instead of the outside '
                        'fact sheets:\n' + '\n'.join(hits))


def test_no_line_cites_a_numbered_reference_section(texts):
    hits = offending_lines(texts, lambda line: bool(NUMBERED_REFERENCE.search(line)))
    assert hits == [], '\n'.join(hits)


def test_every_section_sign_follows_a_cited_work(texts):
    hits = offending_lines(texts, has_uncited_section_sign)
    assert hits == [], ('a section number must follow a published work (author and year) or a docs '
                        'file:\n' + '\n'.join(hits))


def test_no_code_base_is_cited_by_section_or_appendix_number(texts):
    hits = offending_lines(texts, lambda line: bool(CODE_BASE_SECTION.search(line)))
    assert hits == [], ("cite the original's file or function, or docs/original_code.md:\n"
                        + '\n'.join(hits))


def test_bugs_are_cited_by_their_stable_ids(texts):
    hits = offending_lines(texts, lambda line: bool(OLD_BUG_NUMBER.search(line)))
    assert hits == [], ('cite a bug of the original code by its id in docs/original_code.md '
                        '(e.g. D23-B15, Hong-B6):\n' + '\n'.join(hits))


def test_every_docs_file_mentioned_exists(texts):
    missing = sorted({'%s (in %s)' % (name, path) for path, text in texts.items()
                      for name in DOCS_MENTION.findall(text)
                      if not os.path.isfile(os.path.join(ROOT, 'docs', name))})
    assert missing == []


def defined_ids():
    with open(os.path.join(ROOT, ORIGINAL_CODE_DOC), encoding='utf-8') as f:
        return DEFINITION.findall(f.read())


def test_stable_ids_are_defined_once_in_the_original_code_doc():
    ids = defined_ids()
    assert ids, 'docs/original_code.md defines no stable ids'
    assert sorted(i for i in set(ids) if ids.count(i) > 1) == []


def test_every_stable_id_mentioned_is_defined(texts):
    defined = set(defined_ids())
    undefined = sorted({'%s (in %s)' % (stable_id, path) for path, text in texts.items()
                        for stable_id in STABLE_ID.findall(text) if stable_id not in defined})
    assert undefined == [], 'define these in docs/original_code.md:\n' + '\n'.join(undefined)
