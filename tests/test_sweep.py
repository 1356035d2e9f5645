"""sweep.py and figures.py on a two-by-two grid of tiny Dang 2023 MLP runs on digits."""
import glob
import os
import pickle

import pytest
import yaml

from reproduction import grids, job_runs
from conftest import run_script

GRID = {
    'name': 'tiny',
    'train': 'train_1st_order.py',
    'validate': 'validate_NC.py',
    'flags': {'model': 'MLP', 'dataset': 'digits', 'depth_relu': 1, 'seed': 1, 'loss': 'MSE', 'lr': 0.001,
              'optimizer': 'Adam', 'sep_decay': True, 'epochs': 2},
    'sweep': {'depth_linear': [1, 2], 'width': [16, 24]},
    'quick': {'flags': {'epochs': 1}},
    'figures': [['plots/plot_nc.py', '{infos}', '--labels', '{labels}', '--name', 'tiny']],
}
NAMES = ['depth_linear=1-width=16', 'depth_linear=1-width=24', 'depth_linear=2-width=16', 'depth_linear=2-width=24']


def write_grid(folder, grid=GRID):
    path = os.path.join(folder, 'tiny.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(grid, f)
    return path


def commands_run(work_dir):
    """{job: number of train commands in its log}."""
    counts = {}
    for log in glob.glob(os.path.join(work_dir, 'logs', '*.log')):
        with open(log) as f:
            counts[os.path.basename(log)[:-4]] = sum(line.startswith('$ ') and 'train_1st_order' in line for line in f)
    return counts


def info_files(work_dir):
    return sorted(glob.glob(os.path.join(work_dir, 'model_weights', '*', 'info.pkl')))


def test_expand_names_flags_and_info_paths(tmp_path):
    jobs = grids.expand(grids.load_grid(write_grid(tmp_path)))
    assert [job.name for job in jobs] == NAMES
    assert jobs[3].train[-5:] == ['--depth_linear', '2', '--width', '24', '--resume']
    assert jobs[3].validate[0] == 'validate_NC.py' and '--resume' not in jobs[3].validate
    assert jobs[3].info_path == ('model_weights/digits-MLP-MSE-Adam-width_24-depth_relu_1-depth_linear_2-bias_True-'
                                 'lr_0.001-data_augmentation_False-epochs_2-seed_1/info.pkl')
    assert jobs[3].last_epoch == 2
    assert grids.expand(grids.load_grid(write_grid(tmp_path)), quick=True)[0].last_epoch == 1
    assert grids.to_argv({'no-bias': True, 'SOTA': False, 'nalist': [1, 2], 'x': None}) == ['--no-bias', '--nalist', '1', '2']


@pytest.mark.slow
def test_debug_executor_runs_skips_and_reruns_only_a_deleted_run(tmp_path):
    grid = write_grid(tmp_path)
    work = tmp_path / 'work'
    first = run_script('sweep.py', grid, '--executor', 'debug', '--work_dir', work, cwd=tmp_path)
    assert '4 jobs, 0 complete, 4 to run' in first.stdout
    assert len(info_files(work)) == 4 and commands_run(work) == dict.fromkeys(NAMES, 1)
    assert 'figures of grid tiny drawn from 4 runs' in first.stdout      # the sweep draws them itself
    assert (work / 'figures' / 'tiny.png').stat().st_size > 5000 and (work / 'figures' / 'tiny.pdf').exists()
    for path in info_files(work):
        with open(path, 'rb') as f:
            assert pickle.load(f)['epoch'] == [1, 2]
    again = run_script('sweep.py', grid, '--executor', 'debug', '--work_dir', work, cwd=tmp_path)
    assert '4 complete, 0 to run' in again.stdout and commands_run(work) == dict.fromkeys(NAMES, 1)
    assert 'python figures.py' in again.stdout
    deleted = [p for p in info_files(work) if 'depth_linear_2' in p and 'width_16' in p][0]
    os.remove(deleted)
    third = run_script('sweep.py', grid, '--executor', 'debug', '--work_dir', work, cwd=tmp_path)
    assert '3 complete, 1 to run' in third.stdout
    assert commands_run(work) == dict(dict.fromkeys(NAMES, 1), **{'depth_linear=2-width=16': 2})
    assert os.path.exists(deleted)
    status = run_script('sweep.py', grid, '--status', '--work_dir', work, cwd=tmp_path)
    assert status.stdout.strip().splitlines()[-1] == '4 done'


@pytest.mark.slow
def test_local_executor_runs_the_grid_in_parallel_and_figures_name_missing_runs(tmp_path):
    grid = write_grid(tmp_path)
    work = tmp_path / 'work'
    run_script('sweep.py', grid, '--quick', '--executor', 'local', '--max_parallel', '2', '--no_figures',
               '--work_dir', work, cwd=tmp_path)
    assert not (work / 'figures').exists()
    assert len(info_files(work)) == 4 and commands_run(work) == dict.fromkeys(NAMES, 1)
    assert len(glob.glob(str(work / '.submitit' / '*'))) >= 4          # one submitit folder per job
    os.remove(info_files(work)[0])
    drawn = run_script('figures.py', grid, '--quick', '--work_dir', work, cwd=tmp_path)
    assert 'missing run depth_linear=1-width=16' in drawn.stdout and 'drawn from 3 runs' in drawn.stdout
    assert (work / 'figures' / 'tiny.png').exists()


def test_failed_job_is_listed_with_its_log(tmp_path):
    grid = dict(GRID, sweep=None, runs=[{'name': 'good', 'width': 16}, {'name': 'bad', 'width': 16, 'optimizer': 'Nope'}])
    grid.pop('sweep')
    path = write_grid(tmp_path, grid)
    work = tmp_path / 'work'
    result = run_script('sweep.py', path, '--executor', 'debug', '--work_dir', work, cwd=tmp_path, check=False)
    assert result.returncode == 1
    assert 'FAILED bad: exit 2 in train_1st_order.py; log: %s' % (work / 'logs' / 'bad.log') in result.stdout
    status = run_script('sweep.py', path, '--status', '--work_dir', work, cwd=tmp_path).stdout
    assert 'failed' in status and str(work / 'logs' / 'bad.log') in status and '1 done, 1 failed' in status
    assert '--optimizer' in (work / 'logs' / 'bad.log').read_text()


def test_slurm_dry_run_prints_sbatch_parameters_and_commands(tmp_path):
    result = run_script('sweep.py', write_grid(tmp_path), '--executor', 'slurm', '--dry_run', '--slurm_partition', 'gpu',
                        '--gpus_per_job', '2', '--timeout_min', '600', '--max_parallel', '3', '--work_dir',
                        tmp_path / 'work', cwd=tmp_path)
    lines = result.stdout.splitlines()
    assert '#SBATCH --partition=gpu' in lines and '#SBATCH --gpus-per-node=2' in lines
    assert '#SBATCH --time=600' in lines
    assert 'sbatch parameters (one array, 4 tasks, 3 at a time):' in lines
    assert sum(line.startswith('  [') and 'train_1st_order.py' in line for line in lines) == 4
    assert not (tmp_path / 'work').exists()                         # nothing submitted, nothing written


@pytest.mark.parametrize('content,message', [
    (None, 'does not exist'),
    ('name: x\n', 'needs at least the keys name and train'),
    ('name: x\ntrain: a.py\nsweeps: {}\n', "key 'sweeps' is not a grid key"),
    ('name: [x\n', 'not valid YAML'),
    ('name: x\ntrain: a.py\n', "train 'a.py' is not a script of the project"),
])
def test_bad_grid_is_one_line(tmp_path, content, message):
    path = tmp_path / 'g.yaml'
    if content is not None:
        path.write_text(content)
    result = run_script('sweep.py', path, cwd=tmp_path, check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_every_shipped_grid_expands_in_both_modes():
    for path in sorted(glob.glob(os.path.join(grids.ROOT, 'grids', '*.yaml'))):
        grid = grids.load_grid(path)
        for quick in (False, True):
            jobs = grids.expand(grid, quick)
            assert jobs and len({job.name for job in jobs}) == len(jobs), path
            if quick:
                offline = ('--dataset digits', '--dataset mnist5k')        # the bundled datasets
                assert all(any(name in ' '.join(job.train) for name in offline) or '--quick' in job.train
                           or 'synthetic' in job.train[0] or 'opt_main' in job.train[0] for job in jobs), path


def test_a_timed_out_job_is_requeued_with_the_same_call(tmp_path):
    """On a SLURM timeout submitit calls checkpoint() and resubmits what it returns: the same
    job, whose trainer then continues from resume.pth (--resume is in its argv)."""
    import cloudpickle
    job = grids.expand(grids.load_grid(write_grid(tmp_path)))[0]
    requeued = job_runs.GridJob().checkpoint(job, str(tmp_path), 'python')
    function, arguments = cloudpickle.loads(cloudpickle.dumps((requeued.function, requeued.args)))
    assert isinstance(function, job_runs.GridJob) and arguments == (job, str(tmp_path), 'python')
    assert arguments[0].train[-1] == '--resume'
