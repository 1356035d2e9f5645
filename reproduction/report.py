"""The Markdown reports of ``reproduce.py``: docs/reports/<paper>.md (a row per claim, then the
runs' commands) with <paper>.json beside it, and docs/reports/README.md, the summary of
every paper's latest report."""
import glob
import json
import os
from dataclasses import asdict

from reproduction.claims import STATUSES, Row
from nc_repro.fileio import atomic_write_text

MARK = {'reproduced': 'reproduced', 'not reproduced': '**not reproduced**',
        'trapped in a local minimum': '*trapped in a local minimum*',
        'needs full scale': 'needs full scale', 'not run': 'not run'}


def cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def figure_link(row, work_root, report_dir):
    if not row.figure:
        return ''
    found = sorted(glob.glob(os.path.join(work_root, row.figure)))
    if not found:
        return 'not drawn (`%s`)' % row.figure
    return '[figure](%s)' % os.path.relpath(found[0], report_dir)


def paper_report(paper, rows, runs, scale, seconds, work_root, report_dir, seed_folders=()):
    """reports/<paper>.md and .json; returns the .md path. seed_folders: [(label, work root)]
    of the seed replicates after the first, whose runs are the same commands with that seed."""
    counts = {status: sum(row.status == status for row in rows) for status in STATUSES}
    lines = ['# %s: %s' % (paper.TITLE, scale), '',
             '%s. %d claims: %s. Grid runs in `%s/`%s.' % (
                 paper.CITATION, len(rows), ', '.join('%d %s' % (n, s) for s, n in counts.items() if n),
                 os.path.relpath(work_root), '; ran and checked in %.0f s' % seconds if seconds is not None else ''),
             '', '| id | claim | quantity and threshold | measured | result | figure |', '|---|---|---|---|---|---|']
    for row in rows:
        result = MARK[row.status] + (': ' + row.reason if row.reason else '')
        lines.append('| %s | %s | %s | %s | %s | %s |' % tuple(cell(x) for x in (
            row.id, row.statement, row.quantity, row.value, result, figure_link(row, work_root, report_dir))))
    lines += ['', '## Runs', '', 'Each run as `reproduce.py` ran it through `sweep.py` (from the grid\'s work folder):', '']
    for grid_name, commands in runs:
        lines.append('- `%s`' % grid_name)
        for job, train, validate in commands:
            lines.append('  - %s: `%s`%s' % (job, train, ' then `%s`' % validate if validate else ''))
    for label, folder in seed_folders:
        lines.append('- %s: the same commands with `--seed %s` (the convex program has no seed), in `%s/`'
                     % (label, label.split()[-1], os.path.relpath(folder)))
    if paper.NOTES:
        lines += ['', '## Notes', ''] + ['- ' + note for note in paper.NOTES]
    os.makedirs(report_dir, exist_ok=True)
    path = os.path.join(report_dir, paper.NAME + '.md')
    atomic_write_text(path, '\n'.join(lines) + '\n')
    record = dict(paper=paper.NAME, title=paper.TITLE, scale=scale, seconds=seconds,
                  rows=[asdict(row) for row in rows])
    atomic_write_text(os.path.join(report_dir, paper.NAME + '.json'), json.dumps(record, indent=1) + '\n')
    return path


def summary_report(report_dir, paper_names):
    """reports/README.md from every reports/<paper>.json present, in paper order."""
    records = []
    for name in paper_names:
        try:
            with open(os.path.join(report_dir, name + '.json')) as f:
                records.append(json.load(f))
        except (OSError, ValueError):
            continue
    lines = ['# Reproduction summary', '',
             'Written by `reproduce.py`; one line per claim, details in each paper\'s report.', '',
             '| paper | scale | id | claim | measured | result |', '|---|---|---|---|---|---|']
    totals = {status: 0 for status in STATUSES}
    for record in records:
        for data in record['rows']:
            row = Row(**data)
            totals[row.status] += 1
            lines.append('| [%s](%s.md) | %s | %s | %s | %s | %s |' % (
                record['paper'], record['paper'], record['scale'], row.id, cell(row.statement),
                cell(row.value), MARK[row.status]))
    lines += ['', 'Totals: ' + ', '.join('%d %s' % (n, s) for s, n in totals.items() if n)]
    path = os.path.join(report_dir, 'README.md')
    atomic_write_text(path, '\n'.join(lines) + '\n')
    return path, totals
