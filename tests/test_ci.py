"""What .ci/run runs, read from .ci/run and the Makefile: the README's quick command `make test`
and the slow tests too, so that every landing runs the trained-network checks and each printed
paper command (tests/test_readme_commands.py marks the ones that take minutes slow)."""
import os
import re
import shlex

from conftest import ROOT


def make_targets():
    """{target: (prerequisites, recipe lines)} of the Makefile's explicit rules."""
    targets, current = {}, None
    with open(os.path.join(ROOT, 'Makefile')) as f:
        for line in f:
            rule = re.match(r'^([\w.-]+):(?!=)(.*)$', line)
            if rule:
                current = rule.group(1)
                targets[current] = (rule.group(2).split(), [])
            elif line.startswith('\t') and current:
                targets[current][1].append(line.strip())
            else:
                current = None
    return targets


def expanded(target, targets):
    """The targets make runs for ``target`` (itself and its prerequisites, depth first)."""
    prerequisites, _ = targets.get(target, ([], []))
    found = [target]
    for name in prerequisites:
        if name in targets:
            found += [t for t in expanded(name, targets) if t not in found]
    return found


def pytest_selections(target, targets):
    """The -m expression (None when there is none) of every pytest command the target runs."""
    selections = []
    for name in expanded(target, targets):
        for line in targets[name][1]:
            if ' pytest ' in line:
                argv = shlex.split(line)
                argv = argv[argv.index('pytest') + 1:]                       # after python -m pytest
                selections.append(argv[argv.index('-m') + 1] if '-m' in argv else None)
    return selections


def test_ci_runs_the_readme_command_and_the_slow_tests():
    with open(os.path.join(ROOT, '.ci', 'run')) as f:
        called = re.findall(r'^make ([\w-]+)\s*$', f.read(), flags=re.M)
    with open(os.path.join(ROOT, 'README.md')) as f:
        assert re.search(r'^make test\s', f.read(), flags=re.M)            # the README's quick command
    targets = make_targets()
    assert called, '.ci/run calls no make target'
    runs = [name for target in called for name in expanded(target, targets)]
    assert 'test' in runs
    selections = [s for target in called for s in pytest_selections(target, targets)]
    assert 'not slow' in selections                                         # make test itself
    assert 'slow' in selections or None in selections, selections          # and the slow tests


def test_make_test_stays_quick():
    assert pytest_selections('test', make_targets()) == ['not slow']
