"""The unconstrained-feature deep linear model of Dang et al. 2023 (D23's synthetic_experiment_*.py), optimised
directly: free features H (N x d, one row per sample) and a head of M linear layers,

    f(H, W_1..W_M, b) = ||W_M ... W_1 H^T + b 1^T - Y||_F^2 / (2N)
                        + lambda_W/2 sum_l ||W_l||_F^2 + lambda_H/2 ||H||_F^2,

minimised by full-batch SGD with momentum 0.9, as D23's synthetic scripts. Its global minimisers are known in
closed form (theory.py), which makes this the cleanest check of the whole pipeline.

The head is applied as the product P = W_M ... W_1 accumulated from the classifier side
(K x d at every step), then Z = H P^T: the same function, but O(K d^2) per layer instead of
O(N d^2), which is what makes d = 2048 with M = 6 feasible on a CPU.
"""
import torch
import torch.nn as nn

from nc_repro.errors import UsageError

BALANCED_COUNTS = 100                    # per class, K = --num_classes (D23's synthetic_experiment_balanced.py)
IMBALANCED_COUNTS = (200, 100, 50, 50)


def class_counts(num_classes, balanced):
    """n_k of the balanced script (100 for each of --num_classes) or the imbalanced one."""
    if balanced:
        return [BALANCED_COUNTS] * num_classes
    if num_classes != len(IMBALANCED_COUNTS):
        raise UsageError('--num_classes must be %d for the imbalanced counts %s'
                         % (len(IMBALANCED_COUNTS), IMBALANCED_COUNTS))
    return list(IMBALANCED_COUNTS)


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
        classifier bias is not regularised (as in D23's synthetic scripts)."""
        groups = [{'params': [self.H], 'weight_decay': lambda_H},
                  {'params': [layer.weight for layer in self.head_layers()], 'weight_decay': lambda_W}]
        if self.fc[-1].bias is not None:
            groups.append({'params': [self.fc[-1].bias], 'weight_decay': 0.0})
        try:    # one fused pass over each weight instead of several (3x faster at d = 2048)
            return torch.optim.SGD(groups, lr=lr, momentum=0.9, fused=True)
        except (RuntimeError, ValueError):
            return torch.optim.SGD(groups, lr=lr, momentum=0.9)


def make_labels(counts):
    """Class k repeated n_k times, then shuffled with torch.randperm (as in D23's synthetic scripts)."""
    labels = torch.cat([torch.full((n,), k, dtype=torch.long) for k, n in enumerate(counts)])
    return labels[torch.randperm(len(labels))]


def initial_std(counts, hidden, depth_linear, bias, lr, init_std=None):
    """0.1 (the original) unless full-batch SGD at --lr is unstable from that start: the data
    term's curvature in H is ||W_M...W_1||_2^2 / N, and N(0, 0.1^2) d x d layers have spectral
    norm ~0.2 sqrt(d), so for d = 2048 and M >= 2 lr * curvature is in the hundreds and the
    original run diverges within a few dozen steps. Then the layers get the per-layer gain
    they have at d = 64 (std 0.1 sqrt(64/d)); the minimiser is the same. ``init_std``
    (--init_std) overrides."""
    if init_std is not None:
        return init_std
    state = torch.get_rng_state()
    probe = DeepLinearUFM(sum(counts), hidden, len(counts), depth_linear, bias)
    torch.set_rng_state(state)
    curvature = float(torch.linalg.matrix_norm(probe.product().detach(), 2)) ** 2 / sum(counts)
    if lr * curvature < 1:
        return 0.1
    std = 0.1 * (64 / hidden) ** 0.5
    print('note: with N(0, 0.1^2) initialisation lr * curvature = %.3g > 1, so the original run '
          'diverges; using std %.4g (the per-layer gain of d = 64). --init_std 0.1 forces the '
          'original.' % (lr * curvature, std))
    return std
