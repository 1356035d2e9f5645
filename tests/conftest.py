import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Under pytest-xdist every worker already keeps a core busy: one math thread per process
# (and per script it starts) instead of each oversubscribing the machine.
THREADS = {'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'} if os.environ.get('PYTEST_XDIST_WORKER') else {}
os.environ.update(THREADS)


def run_script(script, *flags, cwd, timeout=600, check=True):
    """Run a top-level script of the project as a user would, from ``cwd``."""
    command = [sys.executable, os.path.join(ROOT, script)] + [str(f) for f in flags]
    env = dict(os.environ, PYTHONHASHSEED='0', CUDA_VISIBLE_DEVICES='0')
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError('%s failed (%d):\n%s\n%s' % (' '.join(command), result.returncode,
                                                          result.stdout[-3000:], result.stderr[-3000:]))
    return result


@pytest.fixture
def script_runner():
    return run_script
