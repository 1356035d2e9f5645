"""Paper claims checked on finished experiment grids.

A ``Claim`` names a paper's statement (with its figure or theorem), the grid runs it is
measured on and a ``check`` function. A check reads the runs' results through ``Results`` and
returns a ``Measurement``: the measured value as text and whether the claim's threshold holds.
``evaluate`` turns each claim into a report ``Row`` with one of the statuses:

* reproduced / not reproduced: the check ran on finished runs and its threshold held or not;
* trapped in a local minimum: no seed contradicts the claim, but no seed reached the global
  minimiser the claim is about: each sits at another local minimum of a known landscape (the
  check names it and its objective gap);
* needs full scale: the quick (CPU) scale cannot test the claim; the reason is given, and the
  value measured at quick scale is still shown;
* not run: a run the claim needs has not finished (listed), so nothing is claimed either way.

A claim is checked on every seed replicate of its grids (``reproduce.py --seeds``): the row
says how many seeds reproduce it and the spread of the check's key number over the seeds.
It is reproduced when no seed fails and at least one seed reaches the predicted geometry (seeds
trapped in a known local minimum are counted and named), and not reproduced when any seed fails.

The checks are plain functions of plain numbers (``fold_drop``, ``relative_error`` ...), so
tests can hand them fixtures that satisfy a claim and fixtures that do not.
"""
import json
import math
import os
import statistics
from dataclasses import dataclass, field

from nc_repro import safe_load
from reproduction import grids, job_runs

REPRODUCED, NOT_REPRODUCED, TRAPPED, NEEDS_FULL_SCALE, NOT_RUN = (
    'reproduced', 'not reproduced', 'trapped in a local minimum', 'needs full scale', 'not run')
STATUSES = (REPRODUCED, NOT_REPRODUCED, TRAPPED, NEEDS_FULL_SCALE, NOT_RUN)


class MissingResult(Exception):
    """A result a check needs is not there (a run not finished, a file not written)."""


@dataclass
class Measurement:
    value: str                 # what was measured, as the report shows it
    passed: bool
    reason: str = ''           # why it failed (or a note), in one sentence
    number: float = None       # the check's key number, for the spread over seeds
    label: str = ''            # what number is ('worst relative error', ...)
    trapped: str = ''          # not passed because the run sits at a known local minimum other
                               # than the global one: which, and its objective gap


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
    seeds: str = ''            # 'reproduced by r/n seeds[, t trapped]'
    spread: str = ''           # the key number over the seeds: 'label median (min-max)'


# ----------------------------------------------------------------------------------------
# results of finished grids

class GridResults:
    """One grid's jobs (full or quick, with settings over its flags) in its work folder, and
    what they wrote."""

    def __init__(self, name, quick, work_root, settings=None):
        self.grid = grids.load_grid(name)
        self.name = name
        self.quick = quick
        self.jobs = {job.name: job for job in grids.expand(self.grid, quick, settings)}
        self.work_dir = grids.work_folder(self.grid, os.path.join(work_root, name))

    def job(self, name):
        if name not in self.jobs:
            raise KeyError('grid %s has no job %s (jobs: %s)' % (self.name, name, ', '.join(self.jobs)))
        return self.jobs[name]

    def complete(self, name):
        return job_runs.is_complete(self.work_dir, self.job(name))

    def info(self, name):
        """The job's info.pkl (a dict of per-epoch lists); MissingResult if unfinished."""
        job = self.job(name)
        if not job_runs.is_complete(self.work_dir, job):
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
    """Every grid a paper's claims read, by name (built lazily), for one seed replicate and one
    set of settings (flag values over the grids', ``grids.expand``)."""

    def __init__(self, quick, work_root, settings=None, label=''):
        self.quick = quick
        self.work_root = work_root
        self.settings = settings or {}
        self.label = label or 'seed as in the grid'
        self._grids = {}

    def __getitem__(self, name):
        if name not in self._grids:
            self._grids[name] = GridResults(name, self.quick, self.work_root, self.settings)
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


def evaluate(claim, replicates):
    """The report row of one claim over its seed replicates (a Results, or a list of them)."""
    replicates = replicates if isinstance(replicates, (list, tuple)) else [replicates]
    quick = replicates[0].quick
    figure = claim.figure.replace('{q}', '_quick' if quick else '')
    row = Row(claim.id, claim.statement, claim.quantity, '-', NOT_RUN, '', figure)
    row.missing = [name for results in replicates for name in results.missing_runs(claim)]
    if row.missing:
        row.reason = 'not finished: %s' % ', '.join(row.missing)
        return row
    measured = []
    for results in replicates:
        try:
            measured.append((results.label, claim.check(results)))
        except MissingResult as error:
            row.reason = str(error)
            return row
    passed = [m for _, m in measured if m.passed]
    trapped = [(label, m) for label, m in measured if not m.passed and m.trapped]
    failed = [(label, m) for label, m in measured if not m.passed and not m.trapped]
    first = measured[0][1]
    row.value = first.value if len(measured) == 1 else '%s: %s' % (measured[0][0], first.value)
    row.seeds = 'reproduced by %d/%d seeds%s' % (len(passed), len(measured),
                                                 ', %d trapped' % len(trapped) if trapped else '')
    row.spread = spread(measured)
    if quick and claim.full_scale_only:
        row.status, row.reason = NEEDS_FULL_SCALE, claim.full_scale_only
    elif failed:
        row.status = NOT_REPRODUCED
        row.reason = '; '.join(['%s: %s' % (label, m.reason) if len(measured) > 1 else m.reason for label, m in failed]
                               + ['%s trapped: %s' % (label, m.trapped) for label, m in trapped])
    elif passed:
        row.status = REPRODUCED
        row.reason = '; '.join('%s trapped: %s' % (label, m.trapped) for label, m in trapped)
    else:
        row.status = TRAPPED
        row.reason = '; '.join('%s: %s' % (label, m.trapped) if len(measured) > 1 else m.trapped for label, m in trapped)
    if len(measured) > 1 and row.status != NEEDS_FULL_SCALE:
        row.value = '%s; %s' % (row.seeds, row.value) + (' (%s over seeds)' % row.spread if row.spread else '')
    return row


def spread(measured):
    """'label median (min-max)' of the checks' key numbers, '' when a check gives none."""
    numbers = [m.number for _, m in measured if m.number is not None]
    if not numbers or len(numbers) != len(measured):
        return ''
    numbers = sorted(float(n) for n in numbers)
    median = statistics.median(numbers)
    label = measured[0][1].label or 'value'
    if len(numbers) == 1:
        return '%s %s' % (label, fmt(median))
    return '%s median %s (%s to %s)' % (label, fmt(median), fmt(numbers[0]), fmt(numbers[-1]))


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


def all_pass(parts, number=None, label=''):
    """Measurement from [(label, value text, passed, reason if failed)]: every part must pass.
    number/label: the claim's key number over the parts (for the spread over seeds)."""
    value = '; '.join('%s %s' % (part_label, text) for part_label, text, _, _ in parts)
    failed = [reason or '%s fails' % part_label for part_label, _, passed, reason in parts if not passed]
    return Measurement(value, not failed, '; '.join(failed), number, label)
