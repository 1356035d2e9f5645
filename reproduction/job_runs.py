"""A grid job's state on disk and its execution: completion markers and notes in
<work_dir>/.sweep/, the SLURM record of a submitted job and what sacct says of it, and
``run_job`` (train, then validate, as subprocesses from the work folder), which ``GridJob``
wraps for submitit so that a timed-out or preempted SLURM job requeues and resumes, and the
figure commands over the jobs that have finished.
"""
import contextlib
import json
import os
import subprocess
import sys
import time

import submitit.helpers

from nc_repro import safe_load
from nc_repro.fileio import atomic_write
from reproduction.grids import ROOT


# ----------------------------------------------------------------------------------------
# job state: complete info.pkl, or a marker; running/failed notes written by the job itself

def state_dir(work_dir):
    return os.path.join(work_dir, '.sweep')


def log_path(work_dir, job):
    return os.path.join(work_dir, 'logs', job.name + '.log')


def is_complete(work_dir, job):
    """A validated job is complete when its info.pkl holds the last epoch; another job when
    its success marker exists. A missing or damaged info.pkl is not complete; one that asks
    to run code is refused (safe_load.UnsafeFile, one line, exit code 2)."""
    if job.info_path is None:
        return os.path.exists(os.path.join(state_dir(work_dir), job.name + '.done'))
    try:
        info = safe_load.load_pickle(os.path.join(work_dir, job.info_path))
        return bool(info.get('epoch')) and info['epoch'][-1] >= job.last_epoch
    except (OSError, safe_load.DamagedFile, AttributeError, TypeError, KeyError, IndexError):
        return False


def read_note(work_dir, job):
    try:
        with open(os.path.join(state_dir(work_dir), job.name + '.json')) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_note(work_dir, job, **note):
    path = os.path.join(state_dir(work_dir), job.name + '.json')
    atomic_write(path, lambda f: f.write((json.dumps(dict(note, time=time.time(), job=job.name)) + '\n').encode()))


def status(work_dir, job, slurm_states=None):
    """'done', 'running', 'failed', 'stopped' (a running note whose local process is gone) or
    'pending'. With ``slurm_states`` (``sacct_states``), a job submitted to SLURM that SLURM
    ended (killed, out of memory, node failure, cancelled, ...) without it writing its result
    is 'failed' (``slurm_failure`` says how)."""
    if is_complete(work_dir, job):
        return 'done'
    note = read_note(work_dir, job)
    if note.get('status') != 'failed' and slurm_failure(work_dir, job, slurm_states):
        return 'failed'
    if note.get('status') == 'running' and note.get('host') == os.uname().nodename and not _alive(note.get('pid')):
        return 'stopped'
    if note.get('status') in ('running', 'failed'):
        return note['status']
    state = (slurm_states or {}).get(read_slurm_record(work_dir, job).get('slurm_job'))
    return 'running' if state and state[0] == 'RUNNING' else 'pending'


# ----------------------------------------------------------------------------------------
# what SLURM knows: sweep.py --executor slurm records each job's SLURM id; sacct says how it ended

# sacct states of a job that is over (a job still PENDING, RUNNING, REQUEUED, SUSPENDED, ... is not)
SLURM_ENDED = ('BOOT_FAIL', 'CANCELLED', 'COMPLETED', 'DEADLINE', 'FAILED', 'NODE_FAIL', 'OUT_OF_MEMORY',
               'PREEMPTED', 'REVOKED', 'TIMEOUT')


def slurm_record_path(work_dir, job):
    return os.path.join(state_dir(work_dir), job.name + '.slurm.json')


def write_slurm_record(work_dir, job, slurm_job, slurm_log):
    """Remember the SLURM job id that runs ``job`` (and submitit's log of it), for --status."""
    record = dict(slurm_job=str(slurm_job), slurm_log=str(slurm_log), time=time.time())
    atomic_write(slurm_record_path(work_dir, job), lambda f: f.write((json.dumps(record) + '\n').encode()))


def forget_slurm_record(work_dir, job):
    """The job runs elsewhere now (local executor): its old SLURM id no longer tells its state."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(slurm_record_path(work_dir, job))


def read_slurm_record(work_dir, job):
    try:
        with open(slurm_record_path(work_dir, job)) as f:
            record = json.load(f)
        return record if isinstance(record, dict) and isinstance(record.get('slurm_job'), str) else {}
    except (OSError, ValueError):
        return {}


def sacct_states(job_ids, timeout=20):
    """{SLURM job id: (state, exit code)} from sacct for ``job_ids`` ('123' or array tasks
    '123_4'); None when sacct is missing or does not answer (no SLURM, no accounting)."""
    job_ids = sorted({str(job_id) for job_id in job_ids if job_id})
    if not job_ids:
        return {}
    try:
        answer = subprocess.run(['sacct', '-n', '-P', '-X', '-j', ','.join(job_ids), '-o', 'JobID,State,ExitCode'],
                                capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.SubprocessError):
        return None
    if answer.returncode != 0:
        return None
    states = {}
    for line in answer.stdout.splitlines():
        fields = line.split('|')
        if len(fields) >= 3 and fields[1].strip():
            states[fields[0]] = (fields[1].split()[0].rstrip('+'), fields[2])
    return states


def slurm_failure(work_dir, job, slurm_states):
    """'SLURM state OUT_OF_MEMORY (exit 0:125, job 12_3); SLURM log: ...' when SLURM ended the
    job's SLURM job without the job writing its result, else ''."""
    record = read_slurm_record(work_dir, job)
    state = (slurm_states or {}).get(record.get('slurm_job'))
    if not state or state[0] not in SLURM_ENDED:
        return ''
    return 'SLURM state %s (exit %s, job %s); SLURM log: %s' % (state[0], state[1], record['slurm_job'],
                                                                record.get('slurm_log', '?'))


def _alive(pid):
    try:
        os.kill(int(pid), 0)
        return True
    except (OSError, TypeError, ValueError):
        return False


def run_job(job, work_dir, python=None):
    """Train then validate one job from work_dir, output appended to logs/<name>.log. Runs
    inside a submitit job (or in-process with the debug executor). Raises RuntimeError naming
    the log when a command fails."""
    python = python or sys.executable
    log = log_path(work_dir, job)
    os.makedirs(os.path.dirname(log), exist_ok=True)
    write_note(work_dir, job, status='running', pid=os.getpid(), host=os.uname().nodename, log=log)
    for argv in (job.train, job.validate):
        if argv is None:
            continue
        command = [python, os.path.join(ROOT, argv[0])] + argv[1:]
        with open(log, 'a') as f:
            f.write('$ %s\n' % ' '.join(command))
            f.flush()
            code = subprocess.call(command, cwd=work_dir, stdout=f, stderr=subprocess.STDOUT)
        if code != 0:
            write_note(work_dir, job, status='failed', returncode=code, log=log, command=' '.join(argv))
            raise RuntimeError('exit %d in %s; log: %s' % (code, argv[0], log))
    write_note(work_dir, job, status='done', log=log)
    if job.info_path is None:
        atomic_write(os.path.join(state_dir(work_dir), job.name + '.done'), lambda f: f.write(b'done\n'))
    return job.name


class GridJob(submitit.helpers.Checkpointable):
    """What sweep.py submits: ``GridJob()(job, work_dir, python)`` runs ``run_job``. On a SLURM
    timeout or preemption submitit calls ``checkpoint`` and requeues the same call, and the
    trainer's --resume continues from the last resume.pth (MAE's submitit launcher pattern)."""

    def __call__(self, job, work_dir, python=None):
        return run_job(job, work_dir, python)


# ----------------------------------------------------------------------------------------
# figures

def figure_commands(grid, jobs, work_dir, quick=False):
    """([argv], missing job names): the grid's figure commands with {infos}, {runs} and
    {labels} expanded over the complete jobs, in grid order."""
    done = [job for job in jobs if is_complete(work_dir, job)]
    missing = [job.name for job in jobs if job not in done]
    specs = (grid.get('quick_figures') or grid.get('figures')) if quick else grid.get('figures')
    expansions = {'{infos}': [job.info_path for job in done],
                  '{runs}': [os.path.dirname(job.info_path) for job in done if job.info_path],
                  '{labels}': [job.name for job in done]}
    commands = []
    for spec in specs or []:
        argv = []
        for item in spec:
            argv += expansions.get(item, [str(item)])
        commands.append(argv)
    return commands, missing
