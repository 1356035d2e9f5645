"""The unconstrained-feature deep linear model of Dang et al. 2023 (spec D23 §6), optimised
directly: free features H (N x d, one row per sample) and a head of M linear layers,

    f(H, W_1..W_M, b) = ||W_M ... W_1 H^T + b 1^T - Y||_F^2 / (2N)
                        + lambda_W/2 sum_l ||W_l||_F^2 + lambda_H/2 ||H||_F^2,

minimised by full-batch SGD with momentum 0.9 (D23 §6.2). Its global minimisers are known in
closed form (theory.py), which makes this the cleanest check of the whole pipeline.

The head is applied as the product P = W_M ... W_1 accumulated from the classifier side
(K x d at every step), then Z = H P^T: the same function, but O(K d^2) per layer instead of
O(N d^2), which is what makes d = 2048 with M = 6 feasible on a CPU.
"""
import json
import os
import pickle
import time

import numpy as np
import torch
import torch.nn as nn
from tqdm import tqdm

import checkpoints
import nc_metrics
import theory


class DeepLinearUFM(nn.Module):
    def __init__(self, num_samples, dim, num_classes, depth_linear, bias, init_std=0.1):
        super().__init__()
        # RNG order of the original: H, the Linear constructions, their N(0, 0.1^2) re-init
        self.H = nn.Parameter(torch.randn(num_samples, dim) * init_std)         # (N, d)
        layers = [nn.Linear(dim, dim, bias=False) for _ in range(depth_linear - 1)]
        layers.append(nn.Linear(dim, num_classes, bias=bias))
        self.fc = nn.Sequential(*layers)
        for layer in self.fc:
            nn.init.normal_(layer.weight, 0.0, init_std)

    def head_layers(self):
        return list(self.fc)

    def product(self, start=0):
        """P_start = W_M ... W_{start+1} (layers indexed from 0): maps the input of layer
        ``start`` to the bias-free logits."""
        layers = self.head_layers()[start:]
        product = layers[-1].weight                                               # (K, d)
        for layer in reversed(layers[:-1]):
            product = product @ layer.weight
        return product

    def logits(self):
        out = self.H @ self.product().T                                           # (N, K)
        bias = self.fc[-1].bias
        return out if bias is None else out + bias

    def layer_inputs(self):
        """[H, W_1 H, W_2 W_1 H, ...] as (N, d) row matrices: the input of every head layer."""
        inputs = [self.H]
        for layer in self.head_layers()[:-1]:
            inputs.append(inputs[-1] @ layer.weight.T)
        return inputs

    def data_term(self, targets):
        return (self.logits() - targets).pow(2).sum() / (2 * self.H.shape[0])

    def objective(self, targets, lambda_W, lambda_H):
        weights = sum(layer.weight.pow(2).sum() for layer in self.head_layers())
        return self.data_term(targets) + lambda_W / 2 * weights + lambda_H / 2 * self.H.pow(2).sum()

    def optimizer(self, lr, lambda_W, lambda_H):
        """Full-batch SGD, momentum 0.9, on the objective: the penalties' gradients lambda W_l and
        lambda_H H enter as the optimiser's coupled weight decay (the same update as adding
        lambda/2 ||.||^2 to the loss, without two extra passes over every d x d weight); the
        classifier bias is not regularised (D23 §6.2)."""
        groups = [{'params': [self.H], 'weight_decay': lambda_H},
                  {'params': [layer.weight for layer in self.head_layers()], 'weight_decay': lambda_W}]
        if self.fc[-1].bias is not None:
            groups.append({'params': [self.fc[-1].bias], 'weight_decay': 0.0})
        try:    # one fused pass over each weight instead of several (3x faster at d = 2048)
            return torch.optim.SGD(groups, lr=lr, momentum=0.9, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def make_labels(counts):
    """Class k repeated n_k times, then shuffled with torch.randperm (D23 §6.2)."""
    labels = torch.cat([torch.full((n,), k, dtype=torch.long) for k, n in enumerate(counts)])
    return labels[torch.randperm(len(labels))]


# ----------------------------------------------------------------------------------------
# the synthetic experiments of D23 §6: run, measure, save, compare with the closed form

BALANCED_COUNTS = 100
IMBALANCED_COUNTS = (200, 100, 50, 50)


def get_args_parser(balanced):
    """The original scripts' flags (D23 §6.1), --seed as an int, plus logging and output flags."""
    from args import Parser
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
                             'unless that step is unstable; see ufm.initial_std)')
    parser.add_argument('--log_every', type=int, default=100,
                        help='metrics every N iterations (1 = every iteration, as the original)')
    parser.add_argument('--as_coded_nc1', action='store_true',
                        help="also the original's float32 pseudo-inverse NC1 (a d x d eigendecomposition)")
    parser.add_argument('--out_dir', default='synthetic_results', help='parent of the run folder')
    return parser


def parse_args(parser, argv=None):
    args = parser.parse_args(argv)
    for dest in ('num_classes', 'hidden', 'depth_linear', 'num_iteration', 'log_every'):
        if getattr(args, dest) < 1:
            parser.error('--%s must be at least 1 (got %s)' % (dest, getattr(args, dest)))
    if not args.lr > 0:
        parser.error('--lr must be positive (got %s)' % args.lr)
    if not hasattr(args, 'bias'):
        args.bias, args.GOF = False, True
    return args


def initial_std(args, counts, bias):
    """0.1 (the original) unless full-batch SGD at --lr is unstable from that start: the data
    term's curvature in H is ||W_M...W_1||_2^2 / N, and N(0, 0.1^2) d x d layers have spectral
    norm ~0.2 sqrt(d), so for d = 2048 and M >= 2 lr * curvature is in the hundreds and the
    original run diverges within a few dozen steps. Then the layers get the per-layer gain
    they have at d = 64 (std 0.1 sqrt(64/d)); the minimiser is the same. --init_std overrides."""
    if args.init_std is not None:
        return args.init_std
    state = torch.get_rng_state()
    probe = DeepLinearUFM(sum(counts), args.hidden, len(counts), args.depth_linear, bias)
    torch.set_rng_state(state)
    curvature = float(torch.linalg.matrix_norm(probe.product().detach(), 2)) ** 2 / sum(counts)
    if args.lr * curvature < 1:
        return 0.1
    std = 0.1 * (64 / args.hidden) ** 0.5
    print('note: with N(0, 0.1^2) initialisation lr * curvature = %.3g > 1, so the original run '
          'diverges; using std %.4g (the per-layer gain of d = 64). --init_std 0.1 forces the '
          'original.' % (args.lr * curvature, std))
    return std


def run_name(args, balanced):
    """The original's (unused) run-name strings (D23 §6.3)."""
    if balanced:
        return 'balance-MSE-bias_%s-GOF_%s-depth_linear_%s-lr_%s-dim_%s-epochs_%s-seed_%s' % (
            args.bias, args.GOF, args.depth_linear, args.lr, args.hidden, args.num_iteration, args.seed)
    return 'imbalance-MSE-nobias-depth_linear_%s-lr_%s-dim_%s-epochs_%s-seed_%s' % (
        args.depth_linear, args.lr, args.hidden, args.num_iteration, args.seed)


def class_means(features, labels, num_classes):
    """(d, K) uncentred class means and (d, K) centred ones (sample-weighted global mean)."""
    stats = nc_metrics.ClassStatistics.from_features(features, labels, num_classes)
    means = stats.class_means                                                    # (K, d)
    return stats, means.T, (means - stats.global_mean('sample')).T


def measure(model, labels, counts, args, balanced, geometry, as_coded):
    """The metrics the original computes after each step (D23 §6.3), with its variants:
    balanced without --GOF: ETF (bias) or orthogonal-frame (bias-free) targets at every layer;
    balanced --GOF with bias: NC1 only; balanced --GOF --no-bias and imbalanced: GOF targets
    (unnormalised NC2_H and NC3_W_sub_H in the balanced script)."""
    K = len(counts)
    conventions = nc_metrics.CONVENTIONS['dang2023']
    inputs = [x.detach().double() for x in model.layer_inputs()]
    products = [model.product(layer).detach().double() for layer in range(len(inputs))]
    stats, U, C = class_means(inputs[0], labels, K)
    nc1 = nc_metrics.nc1(stats, conventions, as_coded=as_coded)
    metrics = {'NC1': nc1['nc1']}
    if as_coded:
        metrics['NC1_as_coded'] = nc1['nc1_as_coded']
    with torch.no_grad():
        metrics['train_acc'] = 100 * float((model.logits().argmax(1) == labels).double().mean())
    gof = (not balanced) or (args.GOF and not args.bias)
    if balanced and not args.GOF:
        for layer, (features, product) in enumerate(zip(inputs, products)):
            _, U_l, C_l = class_means(features, labels, K)
            if args.bias:
                metrics['NC2_ETF_W_%d' % layer] = nc_metrics.nc2_etf_w(product)
                metrics['NC3_ETF_WH_%d' % layer] = nc_metrics.nc3_etf_wh(product, C_l)
            else:
                metrics['NC2_Identity_W_%d' % layer] = nc_metrics.nc2_identity_w(product)
                metrics['NC3_Identity_WH_%d' % layer] = nc_metrics.nc3_identity_wh(product, U_l)
    if gof:
        t, c = torch.from_numpy(geometry['t']), torch.from_numpy(geometry['c'])
        _, U_last, _ = class_means(inputs[-1], labels, K)
        metrics['NC2_W'] = nc_metrics.nc2_w_gof(products[0], t)
        metrics['NC2_H'] = nc_metrics.nc2_h_gof(U, t, c, normalised=not balanced)
        metrics['NC3_WH'] = nc_metrics.nc3_wh_gof(products[-1], U_last, t, c)
        metrics['NC3_W_sub_H'] = nc_metrics.nc3_w_sub_h_gof(products[0], U, c, normalised=not balanced)
    return metrics


def predicted_matrices(geometry, K, bias):
    """Closed-form W W^T, class-mean Gram and W H (D23 §5.3): diagonal for the bias-free
    problem; with a bias (balanced) the minimiser fits the centred one-hot targets, so each
    matrix is its diagonal value times the centring projector I - 11^T/K."""
    shape = np.eye(K) - np.ones((K, K)) / K if bias else np.eye(K)
    scale = (lambda v: v[:, None] * shape) if not bias else (lambda v: v.mean() * shape)
    return {'WWT': scale(geometry['WWT']), 'HTH': scale(geometry['HTH']), 'WH': scale(geometry['WH'])}


def compare_with_theory(model, labels, counts, geometry, bias):
    """Learned vs predicted per-class geometry of the final iterate."""
    K = len(counts)
    H = model.H.detach().double()
    W = model.product().detach().double()                                        # (K, d)
    _, U, C = class_means(H, labels, K)
    means = C if bias else U                       # centred means when a bias absorbs the mean
    learned = {'WWT': (W @ W.T).numpy(), 'HTH': (means.T @ means).numpy(), 'WH': (W @ means).numpy()}
    predicted = predicted_matrices(geometry, K, bias)
    summary = {'counts': list(counts), 's_predicted': geometry['s'].tolist(),
               's_learned': (np.diag(learned['WWT']) ** (1 / (2 * geometry['depth'])) if not bias
                             else np.diag(learned['WWT'] / (1 - 1 / K)) ** (1 / (2 * geometry['depth']))).tolist()}
    for key in ('WWT', 'HTH', 'WH'):
        diag_learned, diag_predicted = np.diag(learned[key]), np.diag(predicted[key])
        off = learned[key] - predicted[key]
        np.fill_diagonal(off, 0)
        summary[key] = {'learned_diag': diag_learned.tolist(), 'predicted_diag': diag_predicted.tolist(),
                        'max_rel_diag_error': float(np.max(np.abs(diag_learned - diag_predicted)
                                                           / np.maximum(np.abs(diag_predicted), 1e-12))),
                        'max_abs_offdiag_error': float(np.abs(off).max())}
    return summary


def format_summary(summary):
    lines = ['closed form vs learned (class counts %s):' % summary['counts'],
             '  s_k predicted %s' % np.array2string(np.array(summary['s_predicted']), precision=6),
             '  s_k learned   %s' % np.array2string(np.array(summary['s_learned']), precision=6)]
    for key, label in (('WWT', 'diag W W^T'), ('HTH', 'diag H^T H (class means)'), ('WH', 'diag W H')):
        part = summary[key]
        lines.append('  %-26s learned %s predicted %s | max rel diag err %.2e, max off-diag err %.2e' % (
            label, np.array2string(np.array(part['learned_diag']), precision=5),
            np.array2string(np.array(part['predicted_diag']), precision=5),
            part['max_rel_diag_error'], part['max_abs_offdiag_error']))
    return '\n'.join(lines)


def run(args, balanced):
    """Build the problem of D23 §6.2, optimise, log metrics every --log_every iterations,
    save metrics/final state/summary into <out_dir>/<run name>/ and return the folder."""
    counts = [BALANCED_COUNTS] * args.num_classes if balanced else list(IMBALANCED_COUNTS)
    if not balanced and args.num_classes != len(IMBALANCED_COUNTS):
        from args import UsageError
        raise UsageError('--num_classes must be %d for the imbalanced counts %s'
                         % (len(IMBALANCED_COUNTS), IMBALANCED_COUNTS))
    bias = args.bias if balanced else False
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    args.init_std = initial_std(args, counts, bias)
    model = DeepLinearUFM(sum(counts), args.hidden, len(counts), args.depth_linear, bias, args.init_std)
    labels = make_labels(counts)
    targets = torch.nn.functional.one_hot(labels, len(counts)).float()
    geometry = dict(theory.d23_geometry(counts, args.depth_linear, args.weight_decay, args.feature_decay,
                                        clamp=not balanced), depth=args.depth_linear)
    folder = os.path.join(args.out_dir, run_name(args, balanced))
    os.makedirs(folder, exist_ok=True)
    optimizer = model.optimizer(args.lr, args.weight_decay, args.feature_decay)
    history = {'iteration': [], 'loss': []}
    bar = tqdm(range(1, args.num_iteration + 1), desc='Loss is ?', dynamic_ncols=True, mininterval=0.5)
    start = time.time()
    for iteration in bar:
        optimizer.zero_grad(set_to_none=True)
        model.data_term(targets).backward()
        optimizer.step()
        if iteration % args.log_every == 0 or iteration == args.num_iteration:
            with torch.no_grad():
                value = float(model.objective(targets, args.weight_decay, args.feature_decay))
            if not np.isfinite(value):
                from args import RunStopped
                raise RunStopped('loss is %s at iteration %d; lower --lr or --init_std' % (value, iteration))
            with torch.no_grad():
                metrics = measure(model, labels, counts, args, balanced, geometry, args.as_coded_nc1)
            history['iteration'].append(iteration)
            history['loss'].append(value)
            for key, metric in metrics.items():
                history.setdefault(key, []).append(metric)
            bar.set_description('Loss is %.6f' % value)
    seconds = time.time() - start
    summary = compare_with_theory(model, labels, counts, geometry, bias)
    summary.update(seconds=round(seconds, 2), iterations_per_second=round(args.num_iteration / seconds, 1),
                   final_loss=history['loss'][-1], args=vars(args))
    checkpoints.atomic_write(os.path.join(folder, 'metrics.pkl'), lambda f: pickle.dump(history, f))
    checkpoints.atomic_write_text(os.path.join(folder, 'metrics.json'), json.dumps(history) + '\n')
    checkpoints.atomic_write_text(os.path.join(folder, 'summary.json'), json.dumps(summary, indent=1, default=str) + '\n')
    state = {'H': model.H.detach(), 'labels': labels,
             'weights': [layer.weight.detach() for layer in model.head_layers()],
             'bias': None if model.fc[-1].bias is None else model.fc[-1].bias.detach()}
    checkpoints.atomic_write(os.path.join(folder, 'final_state.pt'), lambda f: torch.save(state, f))
    text = format_summary(summary)
    checkpoints.atomic_write_text(os.path.join(folder, 'summary.txt'), text + '\n')
    print(text)
    from plots.plot_synthetic import make_figures
    figures = [p for p in make_figures(folder) if p.endswith('.png')]
    print('%d iterations in %.1f s; results in %s; figures %s' % (
        args.num_iteration, seconds, folder, ', '.join(os.path.basename(p) for p in figures)))
    return folder
