"""sweep.py --executor slurm on a real SLURM cluster (tests/slurm/up.sh: one node, slurmdbd
accounting; no mocks): every job runs, --status and figures.py see them, --max_parallel bounds
the array, a job sent USR2 is requeued and ends with the weights of an uninterrupted run, a
failing job is listed with its exit code and log, --slurm_setup runs inside the job, and
sbatch's refusals are one line naming the flag. Skipped where no SLURM answers, except under
CI=true, where that is a failure (.ci/run brings the cluster up)."""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import torch
import yaml

from nc_repro import checkpoints
from reproduction import grids, job_runs
from conftest import run_script

FLAGS = {'model': 'MLP', 'dataset': 'digits', 'depth_relu': 1, 'seed': 1, 'loss': 'MSE', 'lr': 0.001,
         'optimizer': 'Adam', 'sep_decay': True, 'epochs': 2}
SLURM_FLAGS = ['--executor', 'slurm', '--gpus_per_job', '0', '--cpus_per_job', '1', '--mem_gb', '2',
               '--timeout_min', '10']
VENV = os.path.dirname(os.path.dirname(sys.executable))
DEADLINE = 150                                  # seconds a sweep of this file may take


def slurm_answers():
    """'' when sbatch exists and sinfo shows a usable node, else the reason."""
    if not shutil.which('sbatch') or not shutil.which('sinfo'):
        return 'no SLURM here (sbatch not found; make slurm-up starts a one-node cluster as root)'
    try:
        states = subprocess.run(['sinfo', '-h', '-N', '-o', '%t'], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return 'sinfo does not answer within 20 s (make slurm-up)'
    if states.returncode != 0:
        return 'sinfo fails: %s (make slurm-up)' % (states.stderr.strip().splitlines() or ['?'])[-1]
    if not any(state.rstrip('*') in ('idle', 'mix', 'alloc') for state in states.stdout.split()):
        return 'no SLURM node is up (sinfo: %s)' % ' '.join(states.stdout.split())
    return ''


@pytest.fixture(scope='module')
def cluster():
    reason = slurm_answers()
    if reason:
        if os.environ.get('CI') == 'true':
            pytest.fail('CI=true but %s; .ci/run starts the cluster with tests/slurm/up.sh' % reason)
        pytest.skip(reason)


def write_grid(folder, name, runs, **flags):
    grid = {'name': name, 'train': 'train_1st_order.py', 'validate': 'validate_NC.py',
            'flags': dict(FLAGS, **flags), 'runs': runs,
            'figures': [['plots/plot_nc.py', '{infos}', '--labels', '{labels}', '--name', name]]}
    path = os.path.join(str(folder), name + '.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(grid, f)
    return path


def queued(job_name, state=None, attempts=20):
    """Job ids in squeue for this job name (optionally of one state: R, PD). An squeue that fails
    (slurmctld busy under a loaded machine) is asked again: an empty answer from a failed call
    must not read as "the job has left the queue"."""
    command = ['squeue', '-h', '-n', job_name, '-o', '%i %t']
    for _ in range(attempts):
        answer = subprocess.run(command, capture_output=True, text=True, timeout=20)
        if answer.returncode == 0:
            lines = answer.stdout.split('\n')
            return [line.split()[0] for line in lines if line.strip() and (state is None or line.split()[1] == state)]
        time.sleep(0.5)
    raise AssertionError('squeue failed %d times: %s' % (attempts, answer.stderr.strip()))


def wait_for_queue(job_name, seconds=DEADLINE, while_waiting=None):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if while_waiting:
            while_waiting()
        if not queued(job_name):
            return
        time.sleep(0.25)
    subprocess.run(['scancel', '-n', job_name])
    raise AssertionError('the jobs of %s did not finish within %d s' % (job_name, seconds))


def submit_one_job_until_epoch(tmp_path, name, epoch, **flags):
    """Submit a one-job grid <name> to SLURM and wait until it has saved ``epoch``, the job still
    in the queue. Returns (grid file, work folder, job, run folder, deadline)."""
    grid = write_grid(tmp_path, name, [{'name': 'long'}], **flags)
    work = tmp_path / (name + '_work')
    run_script('sweep.py', grid, *SLURM_FLAGS, '--work_dir', work, cwd=tmp_path)
    job = grids.expand(grids.load_grid(grid))[0]
    folder = os.path.dirname(str(work / job.info_path))
    deadline = time.time() + DEADLINE
    while time.time() < deadline and not os.path.exists(os.path.join(folder, checkpoints.checkpoint_name(epoch))):
        assert queued('nc-%s_work' % name), 'the job ended before epoch %d: %s' % (
            epoch, open(job_runs.log_path(str(work), job)).read()[-2000:])
        time.sleep(0.1)
    return grid, work, job, folder, deadline


def release_requeued(job_id, released):
    """SLURM holds a requeued job for about 2 minutes (EligibleTime = requeue + 121 s, slurmctld's
    own delay); once submitit has requeued it and the node has finished cleaning up the old step
    (srun waits up to 7 s for it; a job started on a node still completing fails at once), let it
    start now, as an admin would. Not within the second of the requeue: slurmd refuses a job
    credential no newer than the old one's revocation, whole seconds compared ("Killing
    non-startable batch JobId=...: Job credential revoked" in slurmctld.log, and the job is gone).
    ``released``: the restarts already released; returns the job's restarts now."""
    shown = subprocess.run(['scontrol', 'show', 'job', job_id], capture_output=True, text=True, timeout=20).stdout
    restarts = int((re.search(r'Restarts=(\d+)', shown) or ['', '0'])[1])
    node_states = subprocess.run(['sinfo', '-h', '-N', '-o', '%t'], capture_output=True, text=True, timeout=20).stdout.split()
    if restarts > released and 'JobState=PENDING' in shown and node_states and all(
            state.rstrip('*') == 'idle' for state in node_states):
        time.sleep(2)
        subprocess.run(['scontrol', 'update', 'JobId=%s' % job_id, 'StartTime=now'], check=True, timeout=20)
        return restarts
    return released


def epochs_lasting(seconds, tmp_path, **flags):
    """Epochs (a multiple of 100) that train_1st_order.py with these flags takes about ``seconds``
    for on this machine now, measured on a 300-epoch run: a fixed count ran 67 s on one machine and
    4 min on another, and a job shorter than 90 s never meets its time limit's USR2."""
    folder = tmp_path / 'calibration'
    folder.mkdir()
    run_script('train_1st_order.py', *grids.to_argv(dict(FLAGS, **dict(flags, epochs=300))), cwd=folder)
    log = glob.glob(str(folder / 'model_weights' / '*' / 'train_log.jsonl'))[0]
    per_epoch = sorted(json.loads(line)['seconds'] for line in open(log))
    return int(seconds / max(per_epoch[len(per_epoch) // 2], 1e-4) / 100 + 1) * 100


def test_a_grid_runs_on_slurm_bounded_by_max_parallel_with_setup_and_a_failing_job(tmp_path, cluster):
    runs = [{'name': 'w16', 'width': 16}, {'name': 'w24', 'width': 24}, {'name': 'w32', 'width': 32},
            {'name': 'bad', 'width': 16, 'optimizer': 'Nope'}]
    grid = write_grid(tmp_path, 'slurmgrid', runs)
    work = tmp_path / 'slurmgrid_work'
    setup = ['source %s/bin/activate' % VENV, 'echo "setup ran: $VIRTUAL_ENV"']
    preview = run_script('sweep.py', grid, *SLURM_FLAGS, '--max_parallel', '2', '--work_dir', work,
                         '--slurm_setup', *setup, '--dry_run', cwd=tmp_path).stdout
    previewed = [line for line in preview.splitlines() if line.startswith('#SBATCH')]
    submitted = run_script('sweep.py', grid, *SLURM_FLAGS, '--max_parallel', '2', '--work_dir', work,
                           '--slurm_setup', *setup, cwd=tmp_path)
    assert 'submitted 4 jobs' in submitted.stdout, submitted.stdout
    most = [0]

    def count_running():
        most[0] = max(most[0], len(queued('nc-slurmgrid_work', 'R')))
    wait_for_queue('nc-slurmgrid_work', while_waiting=count_running)
    assert 1 <= most[0] <= 2, 'squeue showed %d running tasks with --max_parallel 2' % most[0]
    status = run_script('sweep.py', grid, '--status', '--work_dir', work, cwd=tmp_path).stdout
    assert '3 done, 1 failed' in status, status
    bad_line = [line for line in status.splitlines() if line.startswith('bad ')][0]
    assert 'exit 2 in train_1st_order.py; log: %s' % (work / 'logs' / 'bad.log') in bad_line, bad_line
    assert len(glob.glob(str(work / 'model_weights' / '*' / 'info.pkl'))) == 3
    outputs = [open(path).read() for path in glob.glob(str(work / '.submitit' / '*' / '*.out'))]
    assert outputs and all('setup ran: %s' % VENV in text for text in outputs), outputs[:1]
    # the --dry_run preview (taken before the submission) is what submitit handed to sbatch
    submission, = glob.glob(str(work / '.submitit' / '*' / '*_submission.sh'))
    submitted_lines = open(submission).read().splitlines()
    assert previewed and all(line in submitted_lines for line in previewed), (previewed, submitted_lines)
    drawn = run_script('figures.py', grid, '--work_dir', work, cwd=tmp_path)
    assert 'drawn from 3 runs' in drawn.stdout and (work / 'figures' / 'slurmgrid.png').exists(), drawn.stdout


def test_a_job_sent_usr2_is_requeued_and_ends_with_the_weights_of_an_uninterrupted_run(tmp_path, cluster):
    epochs = 150
    flags = dict(width=64, epochs=epochs)
    grid, work, job, folder, deadline = submit_one_job_until_epoch(tmp_path, 'usr2', 5, **flags)
    job_id = queued('nc-usr2_work', 'R')[0]
    subprocess.run(['scancel', '--signal=USR2', job_id], check=True, timeout=20)
    while not release_requeued(job_id, 0):
        assert time.time() < deadline, 'job %s was not requeued after USR2' % job_id
        time.sleep(0.2)
    reference = tmp_path / 'reference'
    reference.mkdir()
    run_script('train_1st_order.py', *grids.to_argv(dict(FLAGS, **flags)), cwd=reference)  # meanwhile
    wait_for_queue('nc-usr2_work', seconds=max(10, deadline - time.time()))
    log = open(job_runs.log_path(str(work), job)).read()
    assert 'resuming %s after epoch' % os.path.relpath(folder, str(work)) in log, log[-3000:]
    assert job_runs.status(str(work), job) == 'done', log[-3000:]
    final = checkpoints.checkpoint_name(epochs)
    ours = checkpoints.load_state_dict(os.path.join(folder, final))
    theirs = checkpoints.load_state_dict(glob.glob(str(reference / 'model_weights' / '*' / final))[0])
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize('flags, flag', [([], '--gpus_per_job'),
                                         (['--gpus_per_job', '0', '--mem_gb', '100000'], '--mem_gb'),
                                         (['--gpus_per_job', '0', '--slurm_partition', 'nope'], '--slurm_partition')])
def test_an_sbatch_refusal_is_one_line_naming_the_flag(tmp_path, cluster, flags, flag):
    grid = write_grid(tmp_path, 'refused', [{'name': 'one', 'width': 16}])
    result = run_script('sweep.py', grid, '--executor', 'slurm', '--cpus_per_job', '1', '--mem_gb', '2',
                        *flags, '--work_dir', tmp_path / 'work', cwd=tmp_path, check=False)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr
    assert 'change %s' % flag in lines[0] and 'sbatch said: "sbatch: error:' in lines[0], lines[0]


@pytest.mark.slow
def test_a_job_reaching_its_time_limit_is_requeued_and_finishes(tmp_path, cluster):
    """--timeout_min 3: SLURM sends USR2 90 s before the limit (submitit's --signal=USR2@90),
    submitit requeues, the trainer resumes; the final weights equal an uninterrupted run's. The
    run is sized to about 3 min of training here, so at least one requeue, maybe more on a loaded
    machine: each is released as soon as the node is free."""
    epochs = epochs_lasting(180, tmp_path, width=64, save_every=100)
    flags = dict(width=64, epochs=epochs, save_every=100)
    grid = write_grid(tmp_path, 'limit', [{'name': 'long'}], **flags)
    work = tmp_path / 'limit_work'
    run_script('sweep.py', grid, *SLURM_FLAGS[:-1], '3', '--work_dir', work, cwd=tmp_path)
    job = grids.expand(grids.load_grid(grid))[0]
    deadline = time.time() + 900
    while time.time() < deadline and not queued('nc-limit_work', 'R'):
        time.sleep(0.2)
    job_id = queued('nc-limit_work')[0]
    reference = tmp_path / 'reference'
    reference.mkdir()
    run_script('train_1st_order.py', *grids.to_argv(dict(FLAGS, **flags)), cwd=reference)
    released = 0
    while queued('nc-limit_work') and time.time() < deadline:
        released = release_requeued(job_id, released)
        time.sleep(0.2)
    wait_for_queue('nc-limit_work', seconds=10)
    log = open(job_runs.log_path(str(work), job)).read()
    assert released >= 1, 'job %s (%d epochs) was never requeued after USR2:\n%s' % (job_id, epochs, log[-2000:])
    assert 'resuming model_weights/' in log and job_runs.status(str(work), job) == 'done', log[-3000:]
    folder = os.path.dirname(str(work / job.info_path))
    final = checkpoints.checkpoint_name(epochs)
    ours = checkpoints.load_state_dict(os.path.join(folder, final))
    theirs = checkpoints.load_state_dict(glob.glob(str(reference / 'model_weights' / '*' / final))[0])
    assert all(torch.equal(ours[k], theirs[k]) for k in ours)


def status_line(work, grid, name, tmp_path, until=None, seconds=90):
    """The job's line of sweep.py --status; with ``until``, asked again (slurmdbd records a job's
    end a little after the queue forgets it) until until(line) holds or ``seconds`` pass."""
    deadline = time.time() + seconds
    while True:
        status = run_script('sweep.py', grid, '--status', '--work_dir', work, cwd=tmp_path).stdout
        line = [line for line in status.splitlines() if line.startswith(name + ' ')][0]
        if until is None or until(line) or time.time() > deadline:
            return line
        time.sleep(2)


def test_a_job_killed_by_slurm_shows_failed_with_the_sacct_state_and_the_log(tmp_path, cluster):
    """scancel --signal=KILL ends the job before it writes its result: --status asks sacct and
    shows it failed (not running forever), with SLURM's state and the logs."""
    grid, work, job, folder, deadline = submit_one_job_until_epoch(tmp_path, 'killed', 2, width=64, epochs=150)
    assert ' running ' in status_line(work, grid, 'long', tmp_path)
    job_id = queued('nc-killed_work', 'R')[0]
    subprocess.run(['scancel', '--signal=KILL', job_id], check=True, timeout=20)
    wait_for_queue('nc-killed_work', seconds=max(10, deadline - time.time()))
    line = status_line(work, grid, 'long', tmp_path, until=lambda line: 'SLURM state' in line)
    assert ' failed ' in line and 'SLURM state CANCELLED' in line and 'job %s' % job_id in line, line
    assert str(work / 'logs' / 'long.log') in line and '.submitit' in line, line


def test_a_job_over_its_memory_limit_shows_failed_with_the_sacct_state(tmp_path, cluster):
    """tests/slurm/up.sh enforces --mem (jobacct_gather/linux, OverMemoryKill): a job whose
    model needs 2.5 GB (two 25000-wide layers) under --mem_gb 2 is killed by SLURM, and --status
    shows it failed with SLURM's state and the logs."""
    grid = write_grid(tmp_path, 'oom', [{'name': 'big'}], width=25000, depth_relu=2)
    work = tmp_path / 'oom_work'
    run_script('sweep.py', grid, *SLURM_FLAGS, '--work_dir', work, cwd=tmp_path)
    wait_for_queue('nc-oom_work')
    line = status_line(work, grid, 'big', tmp_path, until=lambda line: 'SLURM state' in line)
    assert ' failed ' in line and 'SLURM state' in line and str(work / 'logs' / 'big.log') in line, line
    outputs = ''.join(open(path).read() for path in glob.glob(str(work / '.submitit' / '*' / '*.err')))
    assert 'exceeded memory limit' in outputs.lower(), outputs[-2000:]
