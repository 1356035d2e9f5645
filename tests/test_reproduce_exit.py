"""reproduce.py's exit status, at the process level: 1 when a claim checked at this scale is
not reproduced, 0 when every checked claim is reproduced (claims whose runs are missing are
"not run" and do not fail the command).

The work folder is fabricated: every quick job of Zhou 2022's optimizer grid gets a finished
info.pkl (its last epoch, as sweep.py would leave it) whose NC1, NC2, NC3 series either fall
by the claim's orders of magnitude or, for one optimizer, barely move. reproduce.py then runs
with --no_run, as a user re-checking finished runs would, and its stdout, report and exit
status are read. The jobs and their info.pkl paths come from the grid file through
reproduction.grids, as sweep.py places them."""
import json
import os
import pickle

import numpy as np

from conftest import run_script
from reproduction import grids, job_runs

GRID = 'zhou_optim_mse'


def falling(first, last, epochs):
    return list(np.geomspace(first, last, len(epochs)))


def write_finished_grid(work_root, stalled=None):
    """A finished quick zhou_optim_mse grid under work_root; the job named ``stalled`` ends with
    NC1 only 3x below its start (the claim Z1 needs 100x)."""
    grid = grids.load_grid(GRID)
    work_dir = grids.work_folder(grid, os.path.join(str(work_root), GRID))
    jobs = grids.expand(grid, quick=True)
    for job in jobs:
        epochs = list(range(1, job.last_epoch + 1))
        nc1_last = 0.3 if job.name == stalled else 1e-3
        info = {'epoch': epochs, 'collapse_metric': falling(1.0, nc1_last, epochs),
                'ETF_metric': falling(0.5, 0.05, epochs), 'WH_relation_metric': falling(0.5, 0.05, epochs),
                'test_acc1': [90.0] * len(epochs), 'avg_cos_margin': [0.1] * len(epochs)}
        path = os.path.join(work_dir, job.info_path)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'wb') as f:
            pickle.dump(info, f)
        assert job_runs.is_complete(work_dir, job)
    return [job.name for job in jobs]


def reproduce(tmp_path):
    return run_script('reproduce.py', '--paper', 'zhou2022', '--quick', '--seeds', '1', '--no_run',
                      '--work_root', tmp_path / 'sweeps', '--report_dir', tmp_path / 'reports',
                      cwd=tmp_path, check=False)


def z1_row(tmp_path):
    record = json.loads((tmp_path / 'reports' / 'zhou2022.json').read_text())
    row, = [row for row in record['rows'] if row['id'] == 'Z1']
    return row


def test_a_claim_not_reproduced_exits_1_and_names_it(tmp_path):
    names = write_finished_grid(tmp_path / 'sweeps', stalled='Adam')
    assert 'Adam' in names
    result = reproduce(tmp_path)
    assert result.returncode == 1, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'not reproduced: zhou2022 Z1' in result.stdout
    row = z1_row(tmp_path)
    assert row['status'] == 'not reproduced' and 'Adam' in row['reason'], row
    assert 'zhou2022 Z2' not in result.stdout.split('not reproduced:')[-1]     # the unfinished grids are "not run"


def test_every_checked_claim_reproduced_exits_0(tmp_path):
    write_finished_grid(tmp_path / 'sweeps')
    result = reproduce(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert z1_row(tmp_path)['status'] == 'reproduced'
    assert 'not reproduced:' not in result.stdout


def test_nothing_finished_is_not_a_failure(tmp_path):
    """Claims without their runs are "not run": nothing is claimed either way, exit 0."""
    result = reproduce(tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert z1_row(tmp_path)['status'] == 'not run'
