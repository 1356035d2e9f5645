"""Each paper's recipe, in one place: the values that differ between the papers' codes.

A ``Recipe`` is data only: the defaults of the paper's parsers, its model names, the
measurement conventions of its validator, its info.pkl keys, how its run folders are named,
how often its imbalanced trainer saves, and the few choices its code makes differently from
the others (which sep-decay penalty, which augmentation flag, whether the features are ReLU
outputs). Every module that used to ask ``args.paper == ...`` asks the recipe instead:

    from nc_repro import recipes
    recipe = recipes.get(args.paper)
    save_every = args.save_every or recipe.save_every_imbalanced

One module per paper (``zhou2022``, ``dang2023``, ``dang2024``, ``hong2023``) holds that
paper's values; where a difference is behaviour rather than a value (the Zhou validator's
metrics against Dang's), the recipe names the behaviour (``validation_metrics = 'zhou'``) and
the engine module that owns it keys its functions by that name. This package imports the
basics only (docs/recipes.md).
"""
from dataclasses import dataclass, field
from typing import Callable, Optional


@dataclass(frozen=True)
class Conventions:
    """Choices on which the classic codes (T, J, D23, Hong, Papyan 2020's measurement code) disagree."""
    global_mean: str          # 'sample': (1/N) sum_i h_i;  'classes': (1/K) sum_k mu_k
    between_weights: str      # 'uniform': Sigma_B = (1/K) sum_k ...;  'counts': weights n_k/N (Hong)
    nc1_divide_by_K: bool     # NC1 = tr(Sigma_W Sigma_B^+)/K, or without /K (Papyan's Colab code)
    center_classifier: bool   # NC2/NC3 on W - 1 w_bar^T (Zhou 2022) or on the raw W (Zhu 2021, D23)
    pinv: str                 # the original's pseudo-inverse, for the as-coded NC1:
                              # 'scipy_float32' (T, J, D23) or 'float64_rcond1e-10' (Hong)
    bias_sign: int = 1        # logits W h + b (+1, every paper here) or W h - b (-1)


@dataclass(frozen=True)
class Recipe:
    """One paper's recipe (the values its original code uses; docs/recipes.md)."""
    name: str                             # 'zhou2022', ...: --paper and the run records
    conventions: Conventions              # how its validator measures NC (nc_measures)
    model_names: tuple                    # the --model (Hong: --network) names its code builds
    model_family: str                     # whose builders make them: 'zhou', 'dang' or 'hong' (models)
    defaults: dict = field(default_factory=dict)              # its balanced parsers' defaults
    defaults_imbalanced: dict = field(default_factory=dict)   # its imbalanced parsers' defaults
    eval_lr_imbalanced: Optional[float] = None   # --lr default of its imbalanced validator
    only_flags: tuple = ()                # flags only its parser has: seeing one names the recipe
    selected_by_loss: Optional[str] = None  # the --loss that names this recipe among its family's
    own_scripts: bool = False             # runs with its own scripts (*_main.py), not the shared ones
    info_keys: tuple = ()                 # info.pkl keys of its balanced validator, in its order
    info_keys_imbalanced: tuple = ()      # the same of its imbalanced validator
    metric_key_renames: dict = field(default_factory=dict)   # metrics.NeuralCollapse key -> its own name
    validation_metrics: Optional[str] = None     # the balanced validator's measures (validation.BALANCED_METRICS)
    imbalanced_theory: Optional[str] = None      # the closed form its imbalanced validator compares
                                                 # with: 'd23_geometry' or 'd24_targets' (theory)
    run_folder: Optional[str] = None      # 'uid': the user names the folder (--uid/--load_path);
                                          # 'd23' / 'd24': the name D23's / D24's code gives the flags
    save_every_imbalanced: Optional[int] = None   # the imbalanced trainer's checkpoint cadence
    full_batch_imbalanced: bool = False   # its imbalanced trainer overwrites --batch_size with N
    imbalanced_class_counts: Optional[Callable] = None   # dataset -> per-class counts, or None
    sep_decay_penalty: Optional[str] = None      # the --sep_decay penalty (losses.Objective)
    augmentation_flag: Optional[str] = None      # the flag that switches crop/flip on
    mlp_depth_flag: Optional[str] = None         # the flag that sets its MLP's depth
    width_models: Optional[tuple] = None         # models --width sizes (None: every model)
    relu_features: bool = False           # features are ReLU outputs, no BatchNorm1d on them (D24)
    stale_feature_option: bool = False    # --nc1_stale_features reproduces its validator's bug

    @property
    def user_names_run_folder(self):
        """True when the run folder is the one the user names (Zhou: --uid / --load_path)."""
        return self.run_folder == 'uid'


# Conventions of measurement codes this project measures like but runs no recipe of.
OTHER_CONVENTIONS = {
    'zhu2021': Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    'papyan2020': Conventions('classes', 'uniform', False, False, 'scipy_float32'),
}


def _recipes():
    from nc_repro.recipes import dang2023, dang2024, hong2023, zhou2022
    return {module.RECIPE.name: module.RECIPE for module in (zhou2022, dang2023, dang2024, hong2023)}


_BY_NAME = _recipes()
PAPERS = tuple(_BY_NAME)          # ('zhou2022', 'dang2023', 'dang2024', 'hong2023')


def get(name):
    """The recipe of paper ``name`` (one of PAPERS); KeyError naming the papers otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError('no recipe %r; the papers are %s' % (name, ', '.join(PAPERS))) from None


def conventions(name):
    """The measurement conventions of a paper's recipe, or of a code in OTHER_CONVENTIONS."""
    return OTHER_CONVENTIONS[name] if name in OTHER_CONVENTIONS else get(name).conventions


FLAT_INPUT_MODELS = ('MLP',)      # the papers' MLPs read flat images (digits as 8x8 = 64 inputs)


def takes_flat_input(model_name):
    """Whether a network of this name reads flat images: datasets.py builds its data for it and
    models/ builds it, neither asking the other."""
    return model_name in FLAT_INPUT_MODELS
