"""Zhou, Li, Ding, You, Qu, Zhu. "On the Optimization Landscape of Neural Collapse under MSE
Loss", ICML 2022: recipe ``zhou2022``.

Original code: jinxinzhou/neural-collapse-MSE ("J"), a grown copy of Zhu et al., NeurIPS 2021
(tding1/Neural-Collapse, "T"); its flags are J's plus the T-only ones its README still prints.
Balanced scripts only (train_1st_order.py, train_2nd_order.py, validate_NC.py).
"""
from nc_repro.recipes import Conventions, Recipe

RECIPE = Recipe(
    name='zhou2022',
    conventions=Conventions('sample', 'uniform', True, True, 'scipy_float32'),   # J centres W
    # J's torchvision-style ResNets (sorted) plus T's MLP and ResNet18_adapt
    model_names=('resnet101', 'resnet152', 'resnet18', 'resnet34', 'resnet50', 'resnext101_32x8d',
                 'resnext50_32x4d', 'wide_resnet', 'wide_resnet101_2', 'wide_resnet50_2', 'MLP',
                 'ResNet18_adapt'),
    model_family='zhou',
    # Zhou's and Zhu's train/eval parsers
    defaults=dict(model='resnet18', dataset='cifar10', data_dir='../data', loss='MSE',
                  lr=0.1, weight_decay=5e-4, feature_decay_rate=1e-4, patience=40),
    only_flags=('uid', 'M', 'k', 'ETF_fc', 'SOTA', 'depth', 'load_path'),
    # J's key order; J's nuclear_metric is never filled (J-B6) and stays []
    info_keys=('collapse_metric', 'ETF_metric', 'WH_relation_metric', 'Wh_b_relation_metric',
               'nuclear_metric', 'avg_cos_margin', 'all_cos_margin', 'W', 'b', 'mu_G_train',
               'mu_G_test', 'train_acc1', 'train_acc5', 'test_acc1', 'test_acc5'),
    metric_key_renames={'collapse_metric': 'NC1_collapse_metric',
                        'collapse_metric_as_coded': 'NC1_collapse_metric_as_coded',
                        'ETF_metric': 'NC2_ETF_W', 'WH_relation_metric': 'NC3_ETF_WH',
                        'NC2_means_ETF': 'NC2_ETF_H'},
    validation_metrics='zhou',
    run_folder='uid',                   # model_weights/<uid>/, or --load_path
    sep_decay_penalty='zhou_sep_decay',
    augmentation_flag='SOTA',
    mlp_depth_flag='depth',
    width_models=('MLP', 'ResNet18_adapt'),
)
