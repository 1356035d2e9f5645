"""The layers of docs/layers.md hold: import-linter's contracts in pyproject.toml pass on the
checkout and break on a deliberately wrong import; the root modules, which import-linter cannot
see (it reads packages only), are checked here from their source; and the wheel that
``pip install .`` builds imports whole from a folder outside the checkout."""
import ast
import glob
import os
import shutil
import subprocess
import sys
import tomllib

import pytest

from conftest import ROOT

LINT_IMPORTS = os.path.join(os.path.dirname(sys.executable), 'lint-imports')
PACKAGES = ('nc_repro', 'models', 'plots', 'reproduction')
CARD = ('args', 'datasets', 'hong_args')                                # root modules of the card
WING_COMMANDS = ('reproduce', 'sweep', 'figures')                         # the commands of reproduction/


def root_modules():
    return sorted(os.path.basename(path)[:-3] for path in glob.glob(os.path.join(ROOT, '*.py')))


def contracts():
    with open(os.path.join(ROOT, 'pyproject.toml'), 'rb') as f:
        return {contract['id']: contract for contract in tomllib.load(f)['tool']['importlinter']['contracts']}


def lint_imports(folder):
    return subprocess.run([LINT_IMPORTS, '--no-cache'], cwd=folder, capture_output=True, text=True, timeout=300)


def copy_of_the_packages(tmp_path):
    for package in PACKAGES:
        shutil.copytree(os.path.join(ROOT, package), tmp_path / package,
                        ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(ROOT, 'pyproject.toml'), tmp_path)
    return tmp_path


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert '%d kept, 0 broken' % len(contracts()) in result.stdout


@pytest.mark.parametrize('module,wrong_import,broken', [
    ('nc_repro/theory.py', 'import args', 'nc_repro.theory -> args'),                      # engine -> card
    ('nc_repro/fileio.py', 'from nc_repro import training', 'nc_repro.fileio -> nc_repro.training'),  # basics -> engine
    ('models/base.py', 'from plots import plot_utils', 'models.base -> plots.plot_utils'),          # card -> figures
    ('nc_repro/metrics.py', 'from reproduction import claims', 'nc_repro.metrics -> reproduction.claims'),
])
def test_a_wrong_import_breaks_a_contract(tmp_path, module, wrong_import, broken):
    folder = copy_of_the_packages(tmp_path)
    with open(folder / module, 'a') as f:
        f.write('\n%s  # a wrong import\n' % wrong_import)
    result = lint_imports(folder)
    assert result.returncode == 1, result.stdout
    assert broken in result.stdout
    assert '0 broken' not in result.stdout


def test_every_engine_module_has_its_layer():
    """A new module of nc_repro/ must be placed in the contract, or the contract would not see it."""
    layers = contracts()['engine']['layers']
    placed = {name.strip() for layer in layers for name in layer.replace('|', ':').split(':')}
    modules = {os.path.basename(path)[:-3] for path in glob.glob(os.path.join(ROOT, 'nc_repro', '*.py'))}
    modules |= {os.path.basename(os.path.dirname(path)) for path in glob.glob(os.path.join(ROOT, 'nc_repro', '*', '__init__.py'))}
    assert modules - {'__init__'} == placed


def test_the_forbidden_list_names_every_root_module():
    forbidden = set(contracts()['checkout']['forbidden_modules'])
    assert forbidden == set(root_modules())


def imported_top_names(path):
    tree = ast.parse(open(path).read(), path)
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split('.')[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split('.')[0])
    return names


def test_root_modules_import_only_downwards():
    """import-linter reads packages only: the root modules are checked here. The card imports
    the engine and itself, no command, figure or wing; a paper's command (it may reuse another
    command's recipe, as the imbalanced synthetic script does) imports neither the wing nor its
    commands."""
    commands = set(root_modules()) - set(CARD)
    for module in root_modules():
        imported = imported_top_names(os.path.join(ROOT, module + '.py')) - {module}
        if module in CARD:
            above = commands | {'plots', 'reproduction'}
        elif module in WING_COMMANDS:
            above = set()
        else:
            above = {'reproduction'} | set(WING_COMMANDS)
        wrong = imported & above
        assert not wrong, '%s.py imports %s, from a floor above it (docs/layers.md)' % (module, ', '.join(sorted(wrong)))


def test_no_engine_function_takes_the_parsers_namespace():
    """The engine takes named values or settings objects (docs/layers.md), never the parsed flags:
    no function of nc_repro/ has a parameter named ``args`` or reads ``vars()`` of one."""
    found = []
    for path in sorted(glob.glob(os.path.join(ROOT, 'nc_repro', '**', '*.py'), recursive=True)):
        tree = ast.parse(open(path).read(), path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                every = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                found += ['%s:%d' % (os.path.relpath(path, ROOT), node.lineno)
                          for parameter in every if parameter.arg == 'args']
            elif isinstance(node, ast.Call) and getattr(node.func, 'id', None) == 'vars':
                found.append('%s:%d vars()' % (os.path.relpath(path, ROOT), node.lineno))
    assert not found, 'the engine reads the argparse namespace at %s' % ', '.join(found)


def test_the_settings_objects_are_named_after_flags():
    """args.settings fills a field from the flag of the same name and leaves the default when a
    command has no such flag: every field must be a flag of the parser that builds it, or a
    renamed flag would silently leave its default."""
    import dataclasses

    import args as cli
    from nc_repro import losses, run_dirs, synthetic, training
    given = {'flags', 'unbalanced', 'balanced', 'recipe_reason'}      # passed as values, not flags
    parsers = {'train': cli.get_train_parser(), 'eval': cli.get_eval_parser(),
               'synthetic': cli.get_synthetic_parser(balanced=True)}
    built_from = {training.OptimizerSettings: ('train',), training.ScheduleSettings: ('train',),
                  losses.ObjectiveSettings: ('train',), run_dirs.RunSettings: ('train', 'eval'),
                  synthetic.SyntheticSettings: ('synthetic',)}
    for kind, names in built_from.items():
        dests = set.union(*({action.dest for action in parsers[name]._actions} for name in names))
        missing = {field.name for field in dataclasses.fields(kind)} - given - dests
        assert not missing, '%s fields that no flag fills: %s' % (kind.__name__, sorted(missing))


def test_the_wheel_imports_whole_outside_the_checkout(tmp_path):
    """pip install . ships nc_repro only: every module it installs imports from the installed
    folder, with no top-level module of the checkout on the path."""
    source = tmp_path / 'source'
    shutil.copytree(os.path.join(ROOT, 'nc_repro'), source / 'nc_repro', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(os.path.join(ROOT, 'pyproject.toml'), source)
    os.makedirs(source / 'docs')
    shutil.copy(os.path.join(ROOT, 'docs', 'metrics.md'), source / 'docs')
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--quiet', '--no-deps', '--no-build-isolation',
                    '-w', str(tmp_path / 'wheel'), str(source)], check=True, capture_output=True, timeout=300)
    wheel, = glob.glob(str(tmp_path / 'wheel' / '*.whl'))
    site = tmp_path / 'site'
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--target', str(site), wheel],
                   check=True, capture_output=True, timeout=300)
    installed = sorted(os.path.relpath(path, site)[:-3].replace(os.sep, '.').replace('.__init__', '')
                       for path in glob.glob(str(site / 'nc_repro' / '**' / '*.py'), recursive=True))
    assert 'nc_repro.metrics' in installed and 'nc_repro.recipes.zhou2022' in installed
    program = ('import importlib, sys\n'
               'for name in sys.argv[1:]:\n'
               '    module = importlib.import_module(name)\n'
               '    assert module.__file__.startswith(%r), (name, module.__file__)\n'
               'print("imported", len(sys.argv) - 1)\n' % str(site))
    env = dict(os.environ, PYTHONPATH=str(site))
    away = tmp_path / 'elsewhere'
    away.mkdir()
    result = subprocess.run([sys.executable, '-c', program] + installed, cwd=away, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert 'imported %d' % len(installed) in result.stdout
