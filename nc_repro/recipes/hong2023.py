"""Hong & Ling. "Neural Collapse for Unconstrained Feature Model under Cross-entropy Loss with
Imbalanced Data", arXiv 2309.09725, 2023: recipe ``hong2023``.

Original code: WanliHongC/Neural-Collapse ("Hong", commit 3f9c65b), run by its own scripts
(block_main.py, minority_l_main.py, minority_n_main.py, limit_main.py, opt_main.py) with their
own flags (hong_args.py); the recipe holds what the shared engine needs of it.
"""
from nc_repro.recipes import Conventions, Recipe

RECIPE = Recipe(
    name='hong2023',
    # Hong weighs Sigma_B by the class counts and inverts it in float64 with rcond 1e-10
    conventions=Conventions('sample', 'counts', True, False, 'float64_rcond1e-10'),
    model_names=('ResNet18', 'ResNet18_bf', 'VGG11', 'VGG13', 'MLP'),   # its build_model's, plus MLP
    model_family='hong',
    own_scripts=True,
)
