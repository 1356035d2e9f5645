"""A full disk (ENOSPC) or an exceeded quota (EDQUOT) while writing a checkpoint, resume.pth,
info.pkl, a log or a figure: one line naming the file, the free space and how to continue,
no traceback, no temporary file left, exit code 75 (shown by sweep.py --status), and
--resume continues once there is space again.

The OSError is injected (os.fsync or os.write of the named file fails) by running the script
through a small wrapper, and, as root on Linux, on a real 2 MB tmpfs."""
import errno
import glob
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch

from nc_repro import checkpoints, fileio
from conftest import ROOT, run_script

FLAGS = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '1', '--width', '16', '--seed', '1',
         '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay']
INJECT = textwrap.dedent('''
    """Run a script with writes to files whose name contains $FAIL_ON failing with ENOSPC."""
    import errno, os, runpy, sys
    sys.path.insert(0, %r)
    target, real_fsync = os.environ['FAIL_ON'], os.fsync
    def named(fd):
        try:
            return target in os.path.basename(os.readlink('/proc/self/fd/%%d' %% fd))
        except OSError:
            return False
    def fsync(fd):
        if named(fd):
            raise OSError(errno.ENOSPC, 'No space left on device')
        return real_fsync(fd)
    os.fsync = fsync
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name='__main__')
''' % ROOT)


def injected(tmp_path, fail_on, script, *flags):
    wrapper = tmp_path / 'inject.py'
    wrapper.write_text(INJECT)
    env = dict(os.environ, FAIL_ON=fail_on, PYTHONHASHSEED='0')
    return subprocess.run([sys.executable, str(wrapper), os.path.join(ROOT, script)] + [str(f) for f in flags],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)


def shown_lines(stderr):
    """What a terminal shows of stderr: per line the text after the last carriage return
    (progress bars redraw themselves with \\r), empty ones dropped."""
    return [line.split('\r')[-1].strip() for line in stderr.split('\n') if line.split('\r')[-1].strip()]


def assert_one_line_stop(result, path_part):
    assert result.returncode == fileio.EXIT_DISK_FULL, (result.returncode, result.stderr[-3000:])
    assert 'Traceback' not in result.stderr, result.stderr
    lines = shown_lines(result.stderr)
    stops = [line for line in lines if 'stopped: disk full writing' in line]
    assert len(stops) == 1 and lines[-1] == stops[0], lines
    assert path_part in stops[0] and ' free on its disk' in stops[0], stops[0]
    return stops[0]


def run_folder(cwd):
    return glob.glob(os.path.join(str(cwd), 'model_weights', '*'))[0]


def no_temporary_files(folder):
    return [path for path in glob.glob(os.path.join(str(folder), '**', '.*.tmp'), recursive=True)]


def test_atomic_write_on_a_full_disk_is_one_line_exit_75_and_leaves_no_temporary_file(tmp_path, capsys):
    def write(f):
        f.write(b'x' * 10)
        raise OSError(errno.ENOSPC, 'No space left on device')
    with pytest.raises(SystemExit) as stop:
        fileio.atomic_write(str(tmp_path / 'a.bin'), write)
    assert stop.value.code == 75 and isinstance(stop.value, fileio.DiskFull)
    assert os.listdir(tmp_path) == []
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'disk full writing %s' % (tmp_path / 'a.bin') in err[0], err
    assert 'free space and run the same command again' in err[0]


def test_torch_errors_wrapping_enospc_and_quota_are_recognised():
    try:
        try:
            raise OSError(errno.EDQUOT, 'Disk quota exceeded')
        except OSError as inner:
            raise RuntimeError('unexpected pos') from inner
    except RuntimeError as outer:
        assert fileio.is_disk_full(outer)
    assert not fileio.is_disk_full(OSError(errno.EACCES, 'denied'))


def test_sizes_are_printed_in_units_that_show_them(tmp_path, capsys):
    model = torch.nn.Linear(100, 1000)                        # 0.4 MB per checkpoint
    real = shutil.disk_usage
    try:
        shutil.disk_usage = lambda folder: real(folder)._replace(free=123_000)
        checkpoints.warn_if_disk_too_small(str(tmp_path), model, 20)
    finally:
        shutil.disk_usage = real
    out = capsys.readouterr().out
    assert '20 checkpoints of 0.4 MB need 8.1 MB' in out and 'has 0.1 MB free' in out, out


@pytest.mark.parametrize('fail_on', ['epoch_002.pth', 'resume.pth'])
def test_training_stops_with_one_line_and_resume_finishes_bit_identically(tmp_path, fail_on):
    """A full disk at epoch 2's checkpoint (or at the first resume.pth), then --resume: the
    final weights equal an uninterrupted run's."""
    work, reference = tmp_path / 'work', tmp_path / 'reference'
    work.mkdir(), reference.mkdir()
    run_script('train_1st_order.py', *FLAGS, '--epochs', '3', cwd=reference)
    result = injected(work, fail_on, 'train_1st_order.py', *FLAGS, '--epochs', '3')
    folder = run_folder(work)
    line = assert_one_line_stop(result, os.path.join(folder, fail_on))
    last = os.path.join(folder, 'epoch_001.pth') if fail_on == 'epoch_002.pth' else 'none (no epoch saved yet)'
    assert 'last good checkpoint: %s;' % last in line, line
    assert 'continue with: python %s' % os.path.join(ROOT, 'train_1st_order.py') in line and line.endswith('--resume')
    assert no_temporary_files(work) == []
    run_script('train_1st_order.py', *FLAGS, '--epochs', '3', '--resume', cwd=work)
    ours = checkpoints.load_state_dict(os.path.join(folder, 'epoch_003.pth'))
    theirs = checkpoints.load_state_dict(os.path.join(run_folder(reference), 'epoch_003.pth'))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_validation_stops_with_one_line_when_info_pkl_cannot_be_written(tmp_path):
    run_script('train_1st_order.py', *FLAGS, '--epochs', '2', cwd=tmp_path)
    result = injected(tmp_path, 'info.pkl', 'validate_NC.py', *FLAGS, '--epochs', '2')
    assert_one_line_stop(result, os.path.join(run_folder(tmp_path), 'info.pkl'))
    assert no_temporary_files(tmp_path) == []
    run_script('validate_NC.py', *FLAGS, '--epochs', '2', cwd=tmp_path)       # space again: it works


@pytest.mark.parametrize('fail_on', ['model_epoch=2', 'NC1_plot.png'])
def test_a_hong_script_stops_with_one_line_on_a_checkpoint_or_a_figure(tmp_path, fail_on):
    flags = ['--structure', '2', '--dataset_t', 'digits', '--epoch', '2', '--width', '4']
    result = injected(tmp_path, fail_on, 'block_main.py', *flags)
    assert_one_line_stop(result, fail_on)
    assert no_temporary_files(tmp_path) == []
    again = run_script('block_main.py', *flags, cwd=tmp_path)
    assert list(tmp_path.glob('hong_results/plots/*NC1_plot.png'))


def test_sweep_status_shows_the_disk_full_exit_code(tmp_path):
    from reproduction import grids, job_runs
    import yaml
    grid = {'name': 'tiny', 'train': 'train_1st_order.py', 'validate': 'validate_NC.py',
            'flags': dict(zip(FLAGS[::2], FLAGS[1::2]), sep_decay=True, epochs=2)}
    grid['flags'] = {key.lstrip('-'): value for key, value in grid['flags'].items()}
    path = tmp_path / 'tiny.yaml'
    path.write_text(yaml.safe_dump(grid))
    job = grids.expand(grids.load_grid(str(path)))[0]
    work = tmp_path / 'work'
    job_runs.write_note(str(work), job, status='failed', returncode=75, log=str(work / 'logs' / 'tiny.log'),
                     command=' '.join(job.train))
    status = run_script('sweep.py', path, '--status', '--work_dir', work, cwd=tmp_path).stdout
    assert 'exit 75 (disk full or quota exceeded) in train_1st_order.py; log: %s' % (work / 'logs' / 'tiny.log') in status


def mount_tmpfs(folder, size):
    folder.mkdir(exist_ok=True)
    return subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%s' % size, 'tmpfs', str(folder)],
                          capture_output=True, text=True).returncode == 0


@pytest.mark.skipif(not sys.platform.startswith('linux') or os.geteuid() != 0 or not shutil.which('mount'),
                    reason='a tmpfs needs root on Linux')
def test_training_into_a_real_full_tmpfs_then_resume_after_growing_it(tmp_path):
    full = tmp_path / 'full'
    if not mount_tmpfs(full, '1m'):
        pytest.skip('mount -t tmpfs is not allowed here (a container without CAP_SYS_ADMIN)')
    try:
        flags = ['--model', 'MLP', '--dataset', 'digits', '--depth_relu', '3', '--width', '128', '--seed', '1',
                 '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam', '--sep_decay']   # 0.2 MB a checkpoint
        result = run_script('train_1st_order.py', *flags, '--epochs', '10', '--weights_root', full, cwd=tmp_path,
                            check=False)
        folder = glob.glob(os.path.join(str(full), '*'))[0]
        line = assert_one_line_stop(result, folder)
        assert 'warning: 10 checkpoints of ' in result.stdout and ' MB need ' in result.stdout
        assert no_temporary_files(full) == []
        for path in glob.glob(os.path.join(folder, 'epoch_*.pth')):      # what was written stays readable
            checkpoints.load_state_dict(path)
        subprocess.run(['mount', '-o', 'remount,size=20m', str(full)], check=True)
        run_script('train_1st_order.py', *flags, '--epochs', '10', '--weights_root', full, '--resume', cwd=tmp_path)
        assert os.path.exists(os.path.join(folder, 'epoch_010.pth')), line
    finally:
        subprocess.run(['umount', str(full)])
