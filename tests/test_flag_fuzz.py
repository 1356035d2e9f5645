"""A flag-space fuzz of the trainers (issue 34): hypothesis draws flag combinations within the
papers' documented ranges (tiny widths, 1-2 epochs on digits) for each trainer and runs
train -> validate -> plot as a user would, each command as ``python <script>`` but in this
process (runpy; no interpreter start-up per command). It asserts: exit 0, or one line on stderr
with exit 2 (exit 1 only for a stopped run: a diverged loss); never a traceback; no non-finite
metric in info.pkl without its reason (info_files.UNDEFINED_KEY) and a warning; no run folder
written by two sets of training flags. All drawn runs share one --weights_root, so later draws
meet earlier runs' folders (ablations, --resume, --force)."""
import contextlib
import functools
import io
import json
import math
import os
import pickle
import re
import runpy
import sys
import time
import traceback

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from nc_repro import info_files
from plots import plot_utils
from conftest import ROOT

EXAMPLES = int(os.environ.get('NC_REPRO_FUZZ_EXAMPLES', 120))   # fewer for a quick local look
SLOW_COMMAND = 5.0          # seconds; slower commands are printed (pytest -s shows them)
PROGRESS = re.compile(r'^(train|validate)\b.*\|')


def run_command(script, argv):
    """(exit code, stdout, stderr lines) of ``python <script> <argv>`` run in this process;
    an uncaught exception is exit code 'traceback'."""
    out, err = io.StringIO(), io.StringIO()
    saved_argv, code = sys.argv, 0
    sys.argv = [os.path.join(ROOT, script)] + argv
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                runpy.run_path(os.path.join(ROOT, script), run_name='__main__')
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 1)
            except BaseException:
                traceback.print_exc()
                code = 'traceback'
    finally:
        sys.argv = saved_argv
    lines = [line.split('\r')[-1].strip() for line in err.getvalue().split('\n')]
    return code, out.getvalue(), [line for line in lines if line and not PROGRESS.match(line)]


def assert_clean_exit(script, argv, code, stdout, stderr):
    command = 'python %s %s' % (script, ' '.join(argv))
    assert code != 'traceback' and not any('Traceback' in line for line in stderr), (command, stderr[-20:])
    if code == 0:
        return
    assert code in (1, 2), (command, code, stderr)
    assert len(stderr) == 1, (command, stderr)
    assert (' error: ' if code == 2 else ' stopped: ') in stderr[0] or stderr[0].startswith('error:'), (command, stderr)


# ----------------------------------------------------------------------------------------
# the flag space

def pick(draw, values):
    return draw(st.sampled_from(values))


def optional(draw, flag, values):
    """[] or [flag, value] (a store_true flag when values is None)."""
    if not draw(st.booleans()):
        return []
    return [flag] if values is None else [flag, str(pick(draw, values))]


def small_batches_on_few_images(draw, small, large):
    """--batch_size and --sample_size: a small batch only with --sample_size (a few images per
    class), so that no draw takes hundreds of steps per epoch."""
    if draw(st.booleans()):
        return ['--sample_size', str(pick(draw, [2, 5]))] + optional(draw, '--batch_size', small + large)
    return optional(draw, '--batch_size', large)


@st.composite
def dang_balanced(draw):
    model = pick(draw, ['MLP'] * 10 + ['ResNet18', 'VGG11'])
    flags = ['--model', model, '--depth_relu', str(pick(draw, [1, 2, 3])),
             '--depth_linear', str(pick(draw, [1, 2, 3])), '--width', str(pick(draw, [4, 8, 16])),
             '--seed', str(pick(draw, [1, 2])), '--loss', pick(draw, ['MSE', 'CrossEntropy']),
             '--lr', str(pick(draw, [1e-4, 1e-3, 1e-2])), '--optimizer', pick(draw, ['SGD', 'Adam'])]
    flags += optional(draw, '--no-bias', None) + optional(draw, '--sep_decay', None)
    flags += optional(draw, '--weight_decay', [0.0, 1e-5, 1e-4, 5e-4])
    flags += optional(draw, '--feature_decay_rate', [1e-5, 1e-4, 1e-2])
    flags += optional(draw, '--data_augmentation', None) + optional(draw, '--patience', [1, 50])
    if model == 'MLP':
        flags += small_batches_on_few_images(draw, [1, 2, 3], [64, 128, 1437])
    else:                               # the conv nets on 20 images keep a draw under a second or two
        flags += ['--sample_size', '2', '--batch_size', str(pick(draw, [15, 64]))]
    return flags


@st.composite
def zhou_balanced(draw):
    model = pick(draw, ['MLP'] * 4 + ['ResNet18_adapt'])
    flags = ['--uid', pick(draw, ['u1', 'u2', 'u3']), '--model', model, '--width', str(pick(draw, [4, 8, 16])),
             '--depth', str(pick(draw, [1, 2, 3])), '--seed', str(pick(draw, [1, 6])),
             '--loss', pick(draw, ['MSE', 'CrossEntropy', 'RescaledMSE']),
             '--optimizer', pick(draw, ['SGD', 'Adam']), '--lr', str(pick(draw, [1e-3, 1e-2, 0.05]))]
    flags += optional(draw, '--M', [1, 3]) + optional(draw, '--k', [1, 5]) + optional(draw, '--ETF_fc', None)
    flags += optional(draw, '--sep_decay', None) + optional(draw, '--weight_decay', [1e-4, 5e-4])
    flags += optional(draw, '--no-bias', None) + optional(draw, '--decay_type', ['step', 'multistep_1'])
    if model == 'MLP':
        flags += small_batches_on_few_images(draw, [2, 3], [64, 256])
    else:
        flags += ['--sample_size', '2', '--batch_size', '5']
    return flags + optional(draw, '--force', None)


@st.composite
def second_order(draw):
    flags = ['--uid', pick(draw, ['l1', 'l2']), '--model', 'MLP', '--width', str(pick(draw, [4, 8, 16])),
             '--depth', str(pick(draw, [1, 2])), '--optimizer', pick(draw, ['LBFGS', 'SdLBFGS']),
             '--lr', str(pick(draw, [0.01, 0.1])), '--history_size', str(pick(draw, [2, 10])),
             '--batch_size', str(pick(draw, [256, 2048])), '--loss', pick(draw, ['MSE', 'CrossEntropy'])]
    return flags + optional(draw, '--sample_size', [5, 20]) + optional(draw, '--force', None)


@st.composite
def imbalanced(draw):
    loss = pick(draw, ['MSE', 'CrossEntropy'])
    flags = ['--model', 'MLP', '--depth_relu', str(pick(draw, [1, 2])), '--depth_linear', str(pick(draw, [1, 2, 3])),
             '--width', str(pick(draw, [8, 16])), '--seed', '1', '--loss', loss,
             '--lr', str(pick(draw, [1e-4, 1e-3, 1e-2])), '--optimizer', pick(draw, ['SGD', 'Adam'])]
    flags += optional(draw, '--no-bias', None) + optional(draw, '--sep_decay', None)
    flags += optional(draw, '--weight_decay', [1e-5, 1e-4]) + optional(draw, '--feature_decay_rate', [1e-5, 1e-4])
    flags += optional(draw, '--batch_size', [32, 256]) + optional(draw, '--sample_size', [5])
    return flags


TRAINERS = {
    'dang2023': ('train_1st_order.py', 'validate_NC.py', 'plots/plot_nc.py', dang_balanced()),
    'zhou2022': ('train_1st_order.py', 'validate_NC.py', 'plots/plot_nc.py', zhou_balanced()),
    'second_order': ('train_2nd_order.py', 'validate_NC.py', 'plots/plot_nc.py', second_order()),
    'imbalanced': ('train_1st_order_unbalanced.py', 'validate_NC_unbalanced.py', 'plots/plot_imbalanced.py',
                   imbalanced()),
}


@st.composite
def commands(draw):
    name = draw(st.sampled_from(sorted(TRAINERS)))
    trainer, validator, plot, strategy = TRAINERS[name]
    flags = draw(strategy) + ['--dataset', 'digits', '--epochs', str(pick(draw, [1, 2]))]
    run_flags = optional(draw, '--resume', None)
    plot = plot if draw(st.integers(0, 9)) else pick(draw, ['plots/plot_nc.py', 'plots/plot_imbalanced.py'])
    return name, trainer, validator, plot, flags, run_flags


# ----------------------------------------------------------------------------------------
# the invariants of one drawn command

class Fuzz:
    def __init__(self, root):
        self.root, self.writers, self.count = root, {}, 0
        self.seconds = {}               # script -> total seconds, printed at the end
        self.exits = {}                 # (script, exit code) -> count, printed at the end

    def command(self, script, argv):
        start = time.time()
        result = run_command(script, argv)
        seconds = time.time() - start
        self.seconds[script] = self.seconds.get(script, 0.0) + seconds
        if seconds > SLOW_COMMAND:
            print('fuzz: %.1f s: python %s %s' % (seconds, script, ' '.join(argv)))
        assert_clean_exit(script, argv, *result)
        self.exits[script, result[0]] = self.exits.get((script, result[0]), 0) + 1
        return result

    def check_info(self, folder, stdout):
        with open(os.path.join(folder, 'info.pkl'), 'rb') as f:
            info = pickle.load(f)
        reasons = info.get(info_files.UNDEFINED_KEY)
        for key, values in info.items():
            if not isinstance(values, list):
                continue
            for index, value in enumerate(values):
                if isinstance(value, float) and not math.isfinite(value):
                    assert reasons and reasons[index], (folder, key, index)
                    assert 'warning: epoch %d' % info['epoch'][index] in stdout, (folder, key)
        json.loads(open(os.path.join(folder, 'info.json')).read(),
                   parse_constant=lambda name: pytest.fail('%s in %s/info.json' % (name, folder)))

    def check_one_writer(self, folder, flags):
        """The folder's run (run.json) is the run these flags trained, and no other flag set
        wrote into it before (except through --force, which empties it)."""
        with open(os.path.join(folder, 'run.json')) as f:
            stored = json.load(f)['training_flags']
        mine = {k: v for k, v in stored.items() if k != 'epochs'}
        previous = self.writers.get(folder)
        assert previous is None or previous == mine or '--force' in flags, (folder, previous, mine)
        self.writers[folder] = mine

    def run(self, name, trainer, validator, plot, flags, run_flags):
        self.count += 1
        weights_root = ['--weights_root', os.path.join(self.root, 'mw')]
        argv = flags + run_flags + weights_root
        code, stdout, stderr = self.command(trainer, argv)
        if code != 0:
            return
        folder = stdout.split('checkpoints: ')[-1].split('\n')[0].strip()
        self.check_one_writer(folder, flags)
        valid_flags = [f for f in flags if f not in ('--force',)] + weights_root
        if name in ('zhou2022', 'second_order'):
            valid_flags += ['--load_path', folder]
        code, stdout, stderr = self.command(validator, valid_flags)
        if code != 0:
            return
        self.check_info(folder, stdout)
        plot_argv = [folder, '--out_dir', os.path.join(self.root, 'figures')]
        code, stdout, stderr = self.command(plot, plot_argv)
        wrong_kind = (plot == 'plots/plot_nc.py') == (name == 'imbalanced')
        assert (code == 2) == wrong_kind, (plot, folder, stderr)


@pytest.mark.slow
def test_flag_space_fuzz(tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp('fuzz'))
    monkeypatch.delenv('NC_REPRO_MEMORY_FORMAT', raising=False)
    torch.set_num_threads(1)
    # figures as small PNGs only: the same drawing code, a fraction of the rendering time
    monkeypatch.setattr(plot_utils, 'save_figure', functools.partial(plot_utils.save_figure, formats=('png',),
                                                                     dpi=30))
    fuzz = Fuzz(os.getcwd())
    start = time.time()

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(commands())
    def one(command):
        fuzz.run(*command)

    one()
    print('flag fuzz: %d drawn combinations in %.0f s (%s); exits: %s' % (
        fuzz.count, time.time() - start, ', '.join('%s %.0f s' % item for item in sorted(fuzz.seconds.items())),
        ', '.join('%s %s: %d' % (script, code, n) for (script, code), n in sorted(fuzz.exits.items()))))
    assert fuzz.count >= min(EXAMPLES, 100)
