"""The recipes (nc_repro/recipes): one per paper, data only, read by args.py and models/."""
import ast
import glob
import os

import pytest

import args as cli
import models
from nc_repro import recipes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_paper_has_a_recipe_module_naming_its_paper_and_repository():
    assert recipes.PAPERS == ('zhou2022', 'dang2023', 'dang2024', 'hong2023')
    for name in recipes.PAPERS:
        recipe = recipes.get(name)
        assert recipe.name == name
        module = __import__('nc_repro.recipes.%s' % name, fromlist=['RECIPE'])
        assert module.RECIPE is recipe and '/' in module.__doc__        # owner/repository named
    with pytest.raises(KeyError, match='zhou2022'):
        recipes.get('zhu2021')


def test_model_names_are_the_builders_names():
    zhou, dang = recipes.get('zhou2022'), recipes.get('dang2023')
    assert set(zhou.model_names) == set(models.ZHOU_RESNETS) | {'MLP', 'ResNet18_adapt'}
    assert set(dang.model_names) == {'MLP'} | set(models.DANG_CONV)
    assert recipes.get('dang2024').model_names == dang.model_names
    assert models.HONG_NAMES == list(recipes.get('hong2023').model_names)


def test_the_shared_scripts_papers():
    assert cli.PAPERS == ('zhou2022', 'dang2023', 'dang2024')
    assert cli.BALANCED_PAPERS == ('zhou2022', 'dang2023')
    assert cli.IMBALANCED_PAPERS == ('dang2023', 'dang2024')


def test_recipes_import_only_the_standard_library_and_themselves():
    for path in glob.glob(os.path.join(ROOT, 'nc_repro', 'recipes', '*.py')):
        for node in ast.walk(ast.parse(open(path).read())):
            if isinstance(node, ast.ImportFrom):
                assert node.module in ('dataclasses', 'typing', 'nc_repro.recipes'), (path, node.module)
            elif isinstance(node, ast.Import):
                assert False, (path, [a.name for a in node.names])


def test_conventions_of_papers_and_of_measurement_codes():
    assert recipes.conventions('hong2023').between_weights == 'counts'
    assert recipes.conventions('zhou2022').center_classifier
    assert recipes.conventions('papyan2020').global_mean == 'classes'
    assert not recipes.conventions('zhu2021').center_classifier
