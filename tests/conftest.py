import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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
