"""Paper claims checked on finished experiment grids.

A ``Claim`` names a paper's statement (with its figure or theorem), the grid runs it is
measured on and a ``check`` function. A check reads the runs' results through ``Results`` and
returns a ``Measurement``: the measured value as text and whether the claim's threshold holds.
``evaluate`` turns each claim into a report ``Row`` with one of the statuses:

* reproduced / not reproduced: the check ran on finished runs and its threshold held or not;
* needs full scale: the quick (CPU) scale cannot test the claim; the reason is given, and the
  value measured at quick scale is still shown;
* not run: a run the claim needs has not finished (listed), so nothing is claimed either way.

The checks are plain functions of plain numbers (``fold_drop``, ``relative_error`` ...), so
tests can hand them fixtures that satisfy a claim and fixtures that do not.
"""
import json
import math
import os
from dataclasses import dataclass, field

from nc_repro import grids, safe_load

REPRODUCED, NOT_REPRODUCED, NEEDS_FULL_SCALE, NOT_RUN = ('reproduced', 'not reproduced',
                                                         'needs full scale', 'not run')
STATUSES = (REPRODUCED, NOT_REPRODUCED, NEEDS_FULL_SCALE, NOT_RUN)


class MissingResult(Exception):
    """A result a check needs is not there (a run not finished, a file not written)."""


@dataclass
class Measurement:
    value: str                 # what was measured, as the report shows it
    passed: bool
    reason: str = ''           # why it failed (or a note), in one sentence


@dataclass
class Claim:
    id: str
    statement: str             # the claim in one sentence, with the paper's figure/theorem
    quantity: str              # the quantity measured and its threshold
    runs: list                 # [(grid name, [job names] or None for every job)]
    check: object              # function(Results) -> Measurement
    figure: str = ''           # the figure's path relative to the grid work root, may be a glob
                               # pattern; '{q}' stands for '_quick' at quick scale
    full_scale_only: str = ''  # why the quick scale cannot test it ('' = it can)


@dataclass
class Row:
    id: str
    statement: str
    quantity: str
    value: str
    status: str
    reason: str
    figure: str = ''
    missing: list = field(default_factory=list)


# ----------------------------------------------------------------------------------------
# results of finished grids

class GridResults:
    """One grid's jobs (full or quick) in its work folder, and what they wrote."""

    def __init__(self, name, quick, work_root):
        self.grid = grids.load_grid(name)
        self.name = name
        self.quick = quick
        self.jobs = {job.name: job for job in grids.expand(self.grid, quick)}
        self.work_dir = grids.work_folder(self.grid, os.path.join(work_root, name))

    def job(self, name):
        if name not in self.jobs:
            raise KeyError('grid %s has no job %s (jobs: %s)' % (self.name, name, ', '.join(self.jobs)))
        return self.jobs[name]

    def complete(self, name):
        return grids.is_complete(self.work_dir, self.job(name))

    def info(self, name):
        """The job's info.pkl (a dict of per-epoch lists); MissingResult if unfinished."""
        job = self.job(name)
        if not grids.is_complete(self.work_dir, job):
            raise MissingResult('%s/%s has not finished' % (self.name, name))
        return safe_load.load_pickle(os.path.join(self.work_dir, job.info_path))

    def run_dir(self, name):
        return os.path.join(self.work_dir, os.path.dirname(self.job(name).info_path))

    def json(self, relative_path):
        """A JSON file the grid's scripts wrote, relative to the work folder."""
        path = os.path.join(self.work_dir, relative_path)
        try:
            with open(path) as f:
                return json.load(f)
        except FileNotFoundError:
            raise MissingResult('%s is missing' % os.path.relpath(path)) from None
        except ValueError:
            raise MissingResult('%s is not valid JSON (interrupted run?)' % os.path.relpath(path)) from None

    def command_lines(self):
        """[(job name, 'python train... ', 'python validate...' or '')] for the report."""
        return [(job.name, 'python ' + ' '.join(job.train), 'python ' + ' '.join(job.validate) if job.validate else '')
                for job in self.jobs.values()]


class Results:
    """Every grid a paper's claims read, by name (built lazily)."""

    def __init__(self, quick, work_root):
        self.quick = quick
        self.work_root = work_root
        self._grids = {}

    def __getitem__(self, name):
        if name not in self._grids:
            self._grids[name] = GridResults(name, self.quick, self.work_root)
        return self._grids[name]

    def missing_runs(self, claim):
        """'grid/job' of every run the claim needs that has not finished."""
        missing = []
        for grid_name, job_names in claim.runs:
            grid = self[grid_name]
            for name in job_names if job_names is not None else list(grid.jobs):
                if not grid.complete(name):
                    missing.append('%s/%s' % (grid_name, name))
        return missing


def evaluate(claim, results):
    """The report row of one claim on these results."""
    figure = claim.figure.replace('{q}', '_quick' if results.quick else '')
    row = Row(claim.id, claim.statement, claim.quantity, '-', NOT_RUN, '', figure)
    row.missing = results.missing_runs(claim)
    if row.missing:
        row.reason = 'not finished: %s' % ', '.join(row.missing)
        return row
    try:
        measured = claim.check(results)
    except MissingResult as error:
        row.reason = str(error)
        return row
    row.value = measured.value
    if results.quick and claim.full_scale_only:
        row.status, row.reason = NEEDS_FULL_SCALE, claim.full_scale_only
    else:
        row.status = REPRODUCED if measured.passed else NOT_REPRODUCED
        row.reason = '' if measured.passed else measured.reason
    return row


# ----------------------------------------------------------------------------------------
# the checks' arithmetic

def fold_drop(values):
    """first / last of a series (inf when it ends at 0, 0 when it starts at 0)."""
    first, last = float(values[0]), float(values[-1])
    if last <= 0:
        return math.inf if first > 0 else 1.0
    return first / last


def relative_error(measured, predicted):
    """max_k |measured_k - predicted_k| / |predicted_k|."""
    return max(abs(float(m) - float(p)) / abs(float(p)) for m, p in zip(measured, predicted))


def same_order(values, keys):
    """True when values sorted by keys are non-decreasing (ties in keys may go either way)."""
    pairs = sorted(zip(keys, values))
    return all(a[1] <= b[1] + 1e-12 or a[0] == b[0] for a, b in zip(pairs, pairs[1:]))


def fmt(value):
    """A number for the report: 3 significant digits, 'inf' and '0' spelled out."""
    value = float(value)
    if math.isinf(value):
        return 'inf'
    return '0' if value == 0 else '%.3g' % value


def all_pass(parts):
    """Measurement from [(label, value text, passed, reason if failed)]: every part must pass."""
    value = '; '.join('%s %s' % (label, text) for label, text, _, _ in parts)
    failed = [reason or '%s fails' % label for label, _, passed, reason in parts if not passed]
    return Measurement(value, not failed, '; '.join(failed))
