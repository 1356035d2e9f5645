"""Files and grids from outside are data (docs/trust.md): hostile pickles, torch files, grid
files and names, opened through the real commands. No payload may run (its marker file never
appears), and each refusal is one line on stderr naming the file, with exit code 2."""
import os
import pickle

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import datasets
from conftest import run_script
from nc_repro import checkpoints, plain_names, safe_load
from plots import plot_utils
from reproduction import grids, job_runs

MLP = ['--dataset', 'digits', '--model', 'MLP', '--width', '16', '--depth', '2', '--epochs', '1']


class Payload:
    """Unpickling this runs ``touch <marker>``: what a hostile info.pkl or resume.pth holds."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, ('touch %s' % self.marker,)


@pytest.fixture
def marker(tmp_path):
    path = tmp_path / 'PAYLOAD_RAN'
    yield path
    assert not path.exists(), 'a payload ran'


def write_pickle(path, marker, **plain):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    with open(path, 'wb') as f:
        pickle.dump(dict(plain, epoch=[1], hidden=Payload(marker)), f)


def write_torch(path, marker):
    os.makedirs(os.path.dirname(str(path)), exist_ok=True)
    torch.save({'epoch': 1, 'model': {'w': torch.zeros(2)}, 'hidden': Payload(marker)}, str(path))


def assert_refused(result, *names):
    """Exit code 2, one line on stderr naming the file, no traceback, nothing trained."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    assert len(lines) == 1 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert all(name in lines[0] for name in names), lines[0]
    return lines[0]


# ----------------------------------------------------------------------------------------
# pickles and torch files, through the commands

def test_plot_nc_refuses_a_hostile_info_pkl(tmp_path, marker):
    write_pickle(tmp_path / 'run' / 'info.pkl', marker)
    result = run_script('plots/plot_nc.py', 'run/info.pkl', cwd=tmp_path, check=False)
    assert 'holds posix.system' in assert_refused(result, 'run/info.pkl')


def write_grid(folder, name='g', file=None, **keys):
    grid = dict({'name': name, 'train': 'train_1st_order.py', 'validate': 'validate_NC.py',
                 'flags': {'dataset': 'digits', 'model': 'MLP', 'width': 16, 'depth': 2, 'epochs': 1},
                 'runs': [{'name': 'a', 'uid': 'a'}],
                 'figures': [['plots/plot_nc.py', '{infos}', '--labels', '{labels}', '--name', name]]}, **keys)
    path = os.path.join(str(folder), (file or name) + '.yaml')
    with open(path, 'w') as f:
        yaml.safe_dump(grid, f)
    return path


def test_sweep_status_and_figures_refuse_a_hostile_info_pkl_in_the_work_folder(tmp_path, marker):
    grid = write_grid(tmp_path)
    job, = grids.expand(grids.load_grid(grid))
    write_pickle(tmp_path / 'work' / job.info_path, marker)
    for script, flags in (('sweep.py', ['--status']), ('figures.py', [])):
        result = run_script(script, grid, '--work_dir', 'work', *flags, cwd=tmp_path, check=False)
        assert_refused(result, job.info_path, 'posix.system')


def test_resume_refuses_a_hostile_resume_pth(tmp_path, marker):
    write_torch(tmp_path / 'model_weights' / 'r' / 'resume.pth', marker)
    result = run_script('train_1st_order.py', '--uid', 'r', *MLP, '--resume', cwd=tmp_path, check=False)
    assert_refused(result, 'resume.pth', 'posix.system')
    assert not (tmp_path / 'model_weights' / 'r' / 'epoch_001.pth').exists()


def test_validator_refuses_a_hostile_checkpoint(tmp_path, marker):
    write_torch(tmp_path / 'model_weights' / 'r' / checkpoints.checkpoint_name(1), marker)
    result = run_script('validate_NC.py', '--uid', 'r', *MLP, cwd=tmp_path, check=False)
    assert_refused(result, 'epoch_001.pth', 'posix.system')


@pytest.mark.slow
def test_hong_script_refuses_a_hostile_data_cache(tmp_path, marker):
    write_torch(tmp_path / 'out' / 'data' / '001_data_1_digits.pt', marker)
    result = run_script('block_main.py', '--quick', '--output_root', 'out', cwd=tmp_path, check=False)
    assert_refused(result, '001_data_1_digits.pt', 'posix.system')


@pytest.mark.slow
def test_synthetic_figures_refuse_a_hostile_metrics_pkl(tmp_path, marker):
    write_pickle(tmp_path / 'run' / 'metrics.pkl', marker)
    result = run_script('plots/plot_synthetic.py', 'run', cwd=tmp_path, check=False)
    assert_refused(result, 'metrics.pkl', 'posix.system')


def test_data_pickles_and_caches_refuse_payloads(tmp_path, marker):
    """The readers the commands call for --dataset cifar10_random and mini_imagenet,
    block_main.py's NC1 cache and Hong's data cache, called directly."""
    write_pickle(tmp_path / 'cifar10_random_label' / 'train_label.pkl', marker, label=[0] * 10)
    write_pickle(tmp_path / 'processed_train.pkl', marker)
    write_pickle(tmp_path / 'processed_test.pkl', marker)
    write_torch(tmp_path / 'cache.pt', marker)
    write_pickle(tmp_path / 'hong' / 'within_class_vari.pickle', marker)
    with pytest.raises(safe_load.UnsafeFile, match='train_label.pkl holds posix.system'):
        datasets.random_labels(str(tmp_path), True, 10)
    with pytest.raises(safe_load.UnsafeFile, match='processed_train.pkl'):
        datasets.load_mini_imagenet(str(tmp_path))
    with pytest.raises(safe_load.UnsafeFile, match='cache.pt'):
        datasets.hong_training_set(datasets.load_digits(True), [5] * 10, str(tmp_path / 'cache.pt'))
    import block_main
    with pytest.raises(safe_load.UnsafeFile, match='within_class_vari.pickle'):
        block_main.nc1_per_checkpoint(None, None, None, str(tmp_path / 'hong'), 'cpu')


def test_every_format_written_by_this_project_and_the_originals_still_loads(tmp_path):
    """info.pkl (lists of floats, numpy scalars and arrays, per-layer dicts), Hong's {epoch: NC1},
    the data pickles (numpy 1 and 2 names, protocols 0-5) and resume.pth with every RNG state."""
    info = {'epoch': [1, 2], 'NC1': [np.float64(0.5), np.float32(0.25)], 'W': [np.ones((2, 3))],
            'per_layer': {'l1': [[0.1, 0.2]]}, 'train_acc1': [50.0, 60.0], 'labels': np.arange(4),
            'count': np.int64(3), 'names': ['a', b'b'], 'pair': (1, None), 'flag': True}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / ('info%d.pkl' % protocol)
        with open(path, 'wb') as f:
            pickle.dump(info, f, protocol=protocol)
        loaded = safe_load.load_pickle(str(path))
        assert loaded['count'] == 3 and np.array_equal(loaded['W'][0], info['W'][0]) and loaded['pair'] == (1, None)
    old_numpy = pickle.dumps(np.arange(3.0), protocol=2).replace(b'numpy._core.multiarray', b'numpy.core.multiarray')
    (tmp_path / 'old.pkl').write_bytes(old_numpy)
    assert np.array_equal(safe_load.load_pickle(str(tmp_path / 'old.pkl')), np.arange(3.0))
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, 2)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    checkpoints.save_resume_state(str(tmp_path), 3, model, optimizer, scheduler, torch.Generator())
    state = checkpoints.load_resume_state(str(tmp_path))
    assert state['epoch'] == 3 and state['numpy_rng'][1].dtype == np.uint32
    checkpoints.restore_rng(state)


# ----------------------------------------------------------------------------------------
# grid files and names

HOSTILE_GRIDS = [
    (dict(name='a\nb'), 'name'),
    (dict(name='../../x'), 'name'),
    (dict(train='../../../tmp/evil.py'), 'train'),
    (dict(train='/tmp/evil.py'), 'train'),
    (dict(validate='tests/conftest.py'), 'validate'),
    (dict(figures=[['/tmp/evil.py']]), 'figures[0][0]'),
    (dict(sweep={'width': 16}, runs=None), 'sweep.width'),
    (dict(flags=[1, 2]), 'flags'),
    (dict(flags={'lr': '--load_path=/etc'}), 'flags.lr'),
    (dict(flags={'lr\n': 1}), 'flags flag'),
    (dict(flags={'weights_root': '/tmp/elsewhere'}), 'flags.weights_root'),
    (dict(flags={'data_dir': '../../data'}), 'flags.data_dir'),
    (dict(runs=[{'uid': '../../x'}]), 'runs[0].uid'),
    (dict(runs=[{'name': 'x\ny'}]), 'runs[0].name'),
    (dict(runs='a'), 'runs'),
    (dict(quick={'flags': {'output_root': '~/x'}}), 'quick.flags.output_root'),
    (dict(figures=[['plots/plot_nc.py', '--out_dir', '/tmp']]), 'figures[0][2]'),
    (dict(figures=[['plots/plot_nc.py', '--name', '../x']]), 'figures[0][2]'),
]


@pytest.mark.parametrize('keys, key', HOSTILE_GRIDS, ids=[key for _, key in HOSTILE_GRIDS])
def test_a_hostile_grid_is_refused_naming_the_file_and_the_key(tmp_path, keys, key):
    grid = write_grid(tmp_path, file='hostile', **keys)
    with pytest.raises(grids.GridError) as refusal:
        loaded = grids.load_grid(grid)
        grids.check_paths(loaded, grids.work_folder(loaded, str(tmp_path / 'work')))
    message = str(refusal.value)
    assert '\n' not in message and message.startswith('grid file %s: %s' % (grid, key)) and 'allowed:' in message


def test_hostile_grids_through_the_commands(tmp_path, marker):
    """The figure script and the trainer would create the marker; the newline name would be a
    line of the sbatch script. Each command refuses before anything runs or is written."""
    evil = tmp_path / 'evil.py'
    evil.write_text('open(%r, "w").close()\n' % str(marker))
    cases = [('sweep.py', write_grid(tmp_path, 'train', train=str(evil)), ['--executor', 'debug']),
             ('figures.py', write_grid(tmp_path, 'figs', figures=[[str(evil)]]), []),
             ('sweep.py', write_grid(tmp_path, 'nl', runs=[{'name': 'a\ntouch %s' % marker}]),
              ['--executor', 'slurm', '--dry_run'])]
    for script, grid, flags in cases:
        result = run_script(script, grid, '--work_dir', 'work', *flags, cwd=tmp_path, check=False)
        assert_refused(result, grid)
    assert not (tmp_path / 'work').exists()


def test_an_outside_root_is_allowed_only_by_name(tmp_path):
    grid = grids.load_grid(write_grid(tmp_path, flags={'dataset': 'digits', 'weights_root': str(tmp_path / 'w')}))
    work = str(tmp_path / 'work')
    with pytest.raises(grids.GridError, match='flags.weights_root'):
        grids.check_paths(grid, work, [str(tmp_path / 'other')])
    grids.check_paths(grid, work, [str(tmp_path / 'w')])


@pytest.mark.parametrize('name', ['../../x'])
def test_naming_flags_on_the_command_line_are_plain_names(tmp_path, name):
    result = run_script('train_1st_order.py', '--uid', name, *MLP, cwd=tmp_path, check=False)
    assert_refused(result, '--uid')
    assert not (tmp_path / 'model_weights').exists() and not (tmp_path.parent / 'x').exists()


def test_plain_names_and_contained_paths():
    for good in ('a', 'cifar10_MSE_SGD_bias_true', 'lr_0.001-seed_1', 'w=16', 'a+b'):
        assert plain_names.name_problem(good) == ''
    for bad in ('', '.', '..', 'a..b', 'a/b', 'a\\b', 'a\nb', 'a\tb', 'x' * 201, 3):
        assert plain_names.name_problem(bad)
    assert plain_names.path_problem('model_weights', '/w') == ''
    assert plain_names.path_problem('../w2', '/w') and plain_names.path_problem('/etc', '/w')
    assert plain_names.path_problem('/data/x', '/w', ['/data']) == ''


def test_a_hostile_figure_name_is_refused(tmp_path, marker):
    """plot_nc.py --name becomes <out_dir>/<name>.png: a path in it is refused before the info is read."""
    write_pickle(tmp_path / 'info.pkl', marker)
    result = run_script('plots/plot_nc.py', 'info.pkl', '--name', '../../x', cwd=tmp_path, check=False)
    assert_refused(result, '--name')
    with pytest.raises(plot_utils.FigureInputError):
        plot_utils.check_name('a\nb')


# ----------------------------------------------------------------------------------------
# random damage: never a traceback, only the one-line errors

@st.composite
def damaged(draw, original):
    """``original`` bytes with random cuts, flipped bytes and inserted bytes."""
    data = bytearray(original)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(['flip', 'insert', 'cut', 'delete']))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == 'flip' and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == 'insert':
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif kind == 'cut':
            del data[at:]
        else:
            del data[at:at + draw(st.integers(1, 16))]
    return bytes(data)


def one_line_error(error):
    """The errors the commands turn into one line (cli.run, plot_utils.load_info)."""
    return isinstance(error, ValueError) and '\n' not in str(error)


INFO = {'epoch': [1, 2], 'NC1_collapse_metric': [np.float64(0.5), 0.25], 'W': [np.ones((2, 2))],
        'per_layer': {'fc': [[0.1, 0.2]]}, 'labels': np.arange(3)}
INFO_BYTES = [pickle.dumps(INFO, protocol=protocol) for protocol in (2, 4, 5)]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.sampled_from(INFO_BYTES).flatmap(damaged))
def test_a_damaged_info_pkl_is_a_one_line_error_or_reads(tmp_path, data):
    path = tmp_path / 'run' / 'info.pkl'
    os.makedirs(path.parent, exist_ok=True)
    path.write_bytes(data)
    try:
        plot_utils.read_info(str(path))
    except Exception as error:          # noqa: BLE001 - the kind of error is what is tested
        assert one_line_error(error), repr(error)
    job = grids.Job('x', ['train_1st_order.py'], info_path='run/info.pkl', last_epoch=2)
    try:
        assert job_runs.is_complete(str(tmp_path), job) in (True, False)
    except Exception as error:          # noqa: BLE001
        assert isinstance(error, safe_load.UnsafeFile) and one_line_error(error), repr(error)


def checkpoint_bytes():
    import io
    buffer = io.BytesIO()
    torch.save(torch.nn.Linear(3, 2).state_dict(), buffer)
    return buffer.getvalue()


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=damaged(checkpoint_bytes()))
def test_a_damaged_checkpoint_or_resume_pth_is_a_one_line_error_or_loads(tmp_path, data):
    path = tmp_path / 'resume.pth'
    path.write_bytes(data)
    for load in (lambda: checkpoints.load_state_dict(str(path)), lambda: checkpoints.load_resume_state(str(tmp_path))):
        try:
            load()
        except Exception as error:      # noqa: BLE001
            assert one_line_error(error), repr(error)


GRID_TEXT = open(os.path.join(grids.ROOT, 'grids', 'd23_mlp_depth.yaml'), 'rb').read()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=damaged(GRID_TEXT))
def test_a_damaged_grid_file_is_a_one_line_error_or_expands(tmp_path, data):
    path = tmp_path / 'grid.yaml'
    path.write_bytes(data)
    try:
        grid = grids.load_grid(str(path))
        grids.check_paths(grid, grids.work_folder(grid, str(tmp_path / 'work')))
        for quick in (False, True):
            if quick and not grid.get('quick'):
                continue
            grids.expand(grid, quick)
    except Exception as error:          # noqa: BLE001
        assert one_line_error(error), repr(error)
