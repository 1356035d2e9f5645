"""Dang, Tran, Nguyen, Ho. "Neural Collapse for Cross-entropy Class-Imbalanced Learning with
Unconstrained ReLU Features Model", ICML 2024: recipe ``dang2024``.

Original code: Fsoft-AIC/Cross-Entropy-Imbalanced ("D24"), imbalanced scripts only; its parser
(args_unbalance.py) and class counts are D23's, except ten times the step pattern on CIFAR-10.
"""
from nc_repro.recipes import Conventions, Recipe, dang2023


def class_counts(dataset):
    """D23's step pattern (dang2023.step_class_counts), times ten on CIFAR-10."""
    if dataset == 'cifar10':
        return [10 * c for c in dang2023.STEP_COUNTS]
    return dang2023.step_class_counts(dataset)


RECIPE = Recipe(
    name='dang2024',
    conventions=Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    model_names=dang2023.MODEL_NAMES,
    model_family='dang',
    defaults_imbalanced=dict(dang2023.DEFAULTS, weight_decay=1e-5, feature_decay_rate=1e-5, patience=100),
    eval_lr_imbalanced=dang2023.EVAL_LR_IMBALANCED,
    only_flags=dang2023.ONLY_FLAGS,
    selected_by_loss='CrossEntropy',
    info_keys_imbalanced=('NC1', 'NC2_W', 'NC2_WWT', 'NC2_H', 'NC3_WH', 'train_acc1', 'train_acc5',
                          'test_acc1', 'test_acc5'),
    metric_key_renames={'NC1': 'NC1_collapse_metric', 'NC1_as_coded': 'NC1_collapse_metric_as_coded'},
    imbalanced_theory='d24_targets',
    run_folder='d24',                    # model_weights/unbalanced_<the 2024 code's run name>/
    save_every_imbalanced=10,            # epochs 1, 11, 21, ... and the last
    imbalanced_class_counts=class_counts,
    sep_decay_penalty='dang_sep_decay',
    augmentation_flag='data_augmentation',
    mlp_depth_flag='depth_relu',
    relu_features=True,                  # MLP: ReLU outputs; ResNet/VGG: pooled, no BatchNorm1d
    stale_feature_option=True,           # --nc1_stale_features
)
