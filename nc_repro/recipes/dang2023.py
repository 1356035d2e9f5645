"""Dang, Tran, Osher, Tran-The, Ho, Nguyen. "Neural Collapse in Deep Linear Networks: From
Balanced to Imbalanced Data", ICML 2023: recipe ``dang2023``.

Original code: Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks ("D23"): the balanced
scripts (args.py) and the imbalanced ones (args_unbalance.py, datasets_unbalance.py), whose
per-class counts (the step pattern) the 2024 code reuses.
"""
from nc_repro.recipes import Conventions, Recipe

DEFAULTS = dict(model='resnet18', dataset='mnist', data_dir='~/data', loss='MSE',
                lr=0.001, weight_decay=1e-4, feature_decay_rate=1e-4, patience=50)
# args_unbalance.py of D23 (and of D24, which keeps them)
DEFAULTS_IMBALANCED = dict(DEFAULTS, weight_decay=1e-5, feature_decay_rate=1e-5, patience=100)
# the imbalanced validators of both repositories default --lr to 0.1 (docs/original_code.md, D23-B11)
EVAL_LR_IMBALANCED = 0.1
ONLY_FLAGS = ('depth_relu', 'depth_linear', 'data_augmentation', 'epochs_pretrain',
              'lr_pretrain', 'patience_pretrain', 'gamma_pretrain', 'optimizer_pretrain',
              'pretrained', 'pretrain_lr')
MODEL_NAMES = ('MLP', 'ResNet101', 'ResNet152', 'ResNet18', 'ResNet34', 'ResNet50', 'VGG11', 'VGG13',
               'VGG16', 'VGG19')

# imbalanced class counts (datasets_unbalance.py)
STEP_COUNTS = (100, 100, 200, 200, 300, 300, 400, 400, 500, 500)   # pairs of classes, ratio 5
DIGITS_STEP_COUNTS = tuple(c // 4 for c in STEP_COUNTS)            # 25 ... 125: digits has ~143 per class
MNIST5K_STEP_COUNTS = tuple(9 * c // 10 for c in STEP_COUNTS)      # 90 ... 450: mnist5k has 450 per class


def step_class_counts(dataset):
    """Per-class training counts of the imbalanced scripts, or None for a data set without
    them: the step pattern (100, 100, 200, ..., 500) (D23 wired up CIFAR-10 only; the 2024
    code also MNIST, FashionMNIST and SVHN), 100..500 per block of 20 classes for CIFAR-100.
    digits: the pattern divided by 4; mnist5k (450 training images per class, fewer than the
    pattern's 500): the pattern times 9/10, which keeps the pairs of classes and the ratio 5."""
    if dataset == 'digits':
        return list(DIGITS_STEP_COUNTS)
    if dataset == 'mnist5k':
        return list(MNIST5K_STEP_COUNTS)
    if dataset == 'cifar100':
        return [100 * (1 + k // 20) for k in range(100)]
    if dataset in ('cifar10', 'mnist', 'fashionmnist', 'svhn'):
        return list(STEP_COUNTS)
    return None


RECIPE = Recipe(
    name='dang2023',
    conventions=Conventions('sample', 'uniform', True, False, 'scipy_float32'),
    model_names=MODEL_NAMES,
    model_family='dang',
    defaults=DEFAULTS,
    defaults_imbalanced=DEFAULTS_IMBALANCED,
    eval_lr_imbalanced=EVAL_LR_IMBALANCED,
    only_flags=ONLY_FLAGS,
    info_keys=('NC1_collapse_metric', 'NC2_ETF_W', 'NC2_Identity_W', 'NC2_ETF_H', 'NC3_ETF_WH',
               'NC3_W_sub_H', 'W', 'b', 'H', 'mu_G_train', 'train_acc1', 'train_acc5',
               'test_acc1', 'test_acc5'),
    info_keys_imbalanced=('NC1_collapse_metric', 'NC2_W', 'NC2_H', 'NC3_WH', 'NC3_W_sub_H',
                          'NC3_W_div_H', 'train_acc1', 'train_acc5', 'test_acc1', 'test_acc5'),
    validation_metrics='dang',
    imbalanced_theory='d23_geometry',
    run_folder='d23',                    # model_weights/[unbalanced_]<the 2023 code's run name>/
    save_every_imbalanced=100,           # epochs 1, 101, 201, ... and the last
    full_batch_imbalanced=True,          # its imbalanced scripts overwrite --batch_size with N
    imbalanced_class_counts=step_class_counts,
    sep_decay_penalty='dang_sep_decay',
    augmentation_flag='data_augmentation',
    mlp_depth_flag='depth_relu',
)
