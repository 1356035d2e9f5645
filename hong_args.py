"""Hong & Ling 2023's flags (block_main, minority_l_main, minority_n_main, limit_main): the common
parser, the paper's and --quick's values, the checks run before anything is written, and the
sweeps' quick points. How the scripts train, the offline stand-in and why --quick's values are
what they are: docs/hong.md.
"""
import math

import torch

import datasets
import models
from args import Parser, add_nc_curve_flags, add_output_root, output_path
from nc_repro import convex_ufm
from nc_repro.errors import UsageError
from nc_repro.hong_analysis import BATCH_SIZE, NUM_CLASSES

LEARNING_RATE = 0.01          # what build_model gives SGD; the loops' "lr = 0.1" never takes effect
PAPER_WIDTH = 64
SWEEP_SEED = 666
# --quick (not in the reference); an explicitly given flag overrides its entry
QUICK = {'dataset_t': 'digits', 'network': 'MLP', 'width': 128, 'depth': 2, 'pool': 4,
         'epoch': 300, 'lr': 0.05, 'batch_size': BATCH_SIZE, 'threads': 1}
QUICK_EPOCHS, QUICK_MLP_WIDTH = QUICK['epoch'], QUICK['width']
QUICK_WIDTH = 8               # ResNet18 base width with --quick --network ResNet18
MLP_WIDTH, MLP_DEPTH = 128, 2  # --network MLP defaults without --quick
QUICK_HELP = ('offline check that reaches the terminal phase in seconds per model: digits, '
              'MLP (4x4-pooled input, 2 hidden ReLU layers of 128), %%d epochs, SGD lr %g '
              '(milestones as the original), batch %d, 1 thread' % (QUICK['lr'], QUICK['batch_size']))


def get_common_parser(description, paper_epochs, quick_extra='', quick_epochs=QUICK['epoch']):
    parser = Parser(description=description)
    parser.add_argument('--dataset_t', type=str, default=None,
                        help='cifar10 (default) or fashion_mnist (digits: offline)')
    parser.add_argument('--network', type=str, default=None,
                        help='ResNet18 (default), VGG11, VGG13, ResNet18_bf; MLP (not in the reference)')
    parser.add_argument('--reg_b', type=float, default=0.01, help='lambda_b, the ridge on the classifier bias')
    parser.add_argument('--epoch', type=int, default=None,
                        help='epochs per model (default %d; %d with --quick)' % (paper_epochs, quick_epochs))
    parser.set_defaults(paper_epochs=paper_epochs, quick_epochs=quick_epochs)
    extra = parser.add_argument_group('not in the reference')
    add_output_root(extra)
    extra.add_argument('--data_dir', type=str, default=None,
                       help='torchvision root (default <output_root>/data/; the original: data/)')
    extra.add_argument('--device', type=str, default='auto', help='auto (CUDA when present), cpu, cuda:1, ...')
    extra.add_argument('--gpu_id', type=int, default=0)
    extra.add_argument('--width', type=int, default=None,
                       help='ResNet18 base width (default 64 = the paper; %d with --quick) or MLP hidden '
                            'width (default %d)' % (QUICK_WIDTH, MLP_WIDTH))
    extra.add_argument('--depth', type=int, default=None,
                       help='MLP: number of hidden ReLU layers (default %d)' % MLP_DEPTH)
    extra.add_argument('--pool', type=int, default=None,
                       help='MLP: average-pool the image by this factor before flattening (default 1; '
                            '%d with --quick)' % QUICK['pool'])
    extra.add_argument('--lr', type=float, default=None,
                       help='initial SGD learning rate (default %g as the original; %g with --quick)'
                            % (LEARNING_RATE, QUICK['lr']))
    extra.add_argument('--batch_size', type=int, default=None, help='default %d' % BATCH_SIZE)
    extra.add_argument('--threads', type=int, default=None,
                       help="torch threads (default: torch's choice; %d with --quick)" % QUICK['threads'])
    add_nc_curve_flags(extra)
    extra.add_argument('--quick', action='store_true', help=(QUICK_HELP % quick_epochs).replace('%', '%%') + quick_extra)
    return parser


PAPER_DEFAULTS = {'dataset_t': 'cifar10', 'network': 'ResNet18', 'pool': 1, 'lr': LEARNING_RATE,
                  'batch_size': BATCH_SIZE, 'threads': 0}


def parse(parser, argv=None):
    """Flags, with --quick applied, checked up front (one-line errors)."""
    args = parser.parse_args(argv)
    if args.data_dir is None:
        args.data_dir = output_path(args, 'data')
    if args.quick:
        args.dataset_t = 'digits'         # --quick is the offline check, whatever --dataset_t says
    for key, paper in PAPER_DEFAULTS.items():
        if getattr(args, key) is None:
            quick = args.quick and (key != 'pool' or args.network == 'MLP')   # pooling is an MLP option
            setattr(args, key, QUICK[key] if quick else paper)
    if args.width is None:
        if args.network == 'MLP':
            args.width = QUICK['width'] if args.quick else MLP_WIDTH
        else:
            args.width = QUICK_WIDTH if args.quick else PAPER_WIDTH
    if args.depth is None:
        args.depth = QUICK['depth'] if args.quick else MLP_DEPTH
    if args.epoch is None:
        args.epoch = args.quick_epochs if args.quick else args.paper_epochs
    if args.epoch < 1:
        parser.error('--epoch must be at least 1 (got %d)' % args.epoch)
    if args.dataset_t not in datasets.HONG_DATASETS:
        parser.error('--dataset_t %s is not known; choose cifar10, fashion_mnist or digits (offline)' % args.dataset_t)
    try:
        models.check_hong_network(args.network)
    except UsageError as error:
        parser.error(str(error))
    for flag in ('width', 'depth', 'pool', 'batch_size'):
        if getattr(args, flag) < 1:
            parser.error('--%s must be at least 1 (got %d)' % (flag, getattr(args, flag)))
    if args.pool > 1 and args.network != 'MLP':
        parser.error('--pool is an MLP option (got --network %s)' % args.network)
    if 32 % args.pool:
        parser.error('--pool must divide the image size 32 (got %d)' % args.pool)
    if args.threads < 0:
        parser.error('--threads must be zero (torch default) or positive (got %d)' % args.threads)
    if not 0 < args.lr < math.inf:
        parser.error('--lr must be positive (got %s)' % args.lr)
    if not 0 <= args.reg_b < math.inf:
        parser.error('--reg_b must be zero or positive (got %s)' % args.reg_b)
    if args.threads:
        torch.set_num_threads(args.threads)
        from threadpoolctl import threadpool_limits
        threadpool_limits(args.threads)             # numpy / scipy BLAS too (NC1's eigh)
    return args


def describe_settings(args, echo=True):
    """One line with the settings that differ between --quick and the paper, printed first."""
    network = args.network
    if network == 'MLP':
        network += ' (width %d, depth %d, input pooled %dx%d)' % (args.width, args.depth, args.pool, args.pool)
    elif network.startswith('ResNet'):
        network += ' (base width %d)' % args.width
    line = '%s: dataset %s, network %s, %d epochs, SGD lr %g, batch %d, torch threads %s' % (
        'quick' if args.quick else 'settings', args.dataset_t, network, args.epoch, args.lr,
        args.batch_size, args.threads or torch.get_num_threads())
    if echo:
        print(line)
    return line


def check_counts(flag, values, minimum=1):
    for value in values:
        if not minimum <= value < math.inf:
            raise UsageError('%s values must be at least %s (got %s)' % (flag, minimum, value))


def check_two_clusters(ka):
    """Majority classes 0..ka-1 and at least two minority classes (the minority block)."""
    if not 1 <= ka <= NUM_CLASSES - 2:
        raise UsageError('--ka must be between 1 and %d so that at least two minority classes remain '
                         '(got %d)' % (NUM_CLASSES - 2, ka))


def check_levels(flag, values):
    for value in values:
        if not 0 < value < math.inf:
            raise UsageError('%s values must be positive (got %s)' % (flag, value))


def add_sweep_flags(parser):
    extra = parser.add_argument_group('not in the reference (sweeps)')
    extra.add_argument('--seed', type=int, default=SWEEP_SEED, help='set once before the sweep (default 666, as the original)')
    extra.add_argument('--solver', type=str, default=convex_ufm.FAITHFUL_SOLVER,
                       help='cvxpy solver for the convex-program reference values (default SCS)')
    extra.add_argument('--no_convex', action='store_true', help='skip the convex-program reference values')
    return parser


# ----------------------------------------------------------------------------------------
# the quick sweeps' points (not in the reference; docs/hong.md)

QUICK_RATIOS = (0.6, 0.75, 0.9, 1.2, 1.5, 2.0)
QUICK_TOTAL_MARGIN = 0.85


def keep_quick_point(ratio, level, total_level):
    """Quick sweep points sit at level / lambda_MC = ratio, at least 10 % from the threshold;
    above it only while level < 0.85 x the total-collapse level (near Z = 0 every logit is tiny
    and the relative spread says little)."""
    return ratio < 1 or level < QUICK_TOTAL_MARGIN * total_level


def significant(value, digits=3):
    return float('%.*g' % (digits, value))
