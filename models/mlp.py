"""Multi-layer perceptrons of Zhu et al. 2021 (used by Zhou 2022's README) and Dang et al."""

import torch.nn as nn
import torch.nn.functional as F

from .base import NCModel, deep_linear_head, freeze_to_simplex_etf


class MLP(NCModel):
    """T's MLP (T's models/mlp.py): [Linear-BN-ReLU] x depth, then fc. forward returns
    (fc(h), normalize(h)).

    Extension for the quick grids on digits (the original MLP took neither): fixdim > 0 makes
    the last hidden layer fixdim wide (the feature dimension d, as J's ResNet --fixdim), and
    ETF_fc freezes the classifier weight to the simplex ETF of J's --ETF_fc (trainable bias)."""
    normalize_returned_features = True

    def __init__(self, in_features, hidden, depth=6, fc_bias=True, num_classes=10, ETF_fc=False, fixdim=0):
        super().__init__()
        layers, width = [], in_features
        for index in range(depth):
            out = fixdim if (fixdim and index == depth - 1) else hidden
            layers += [nn.Linear(width, out), nn.BatchNorm1d(out), nn.ReLU()]
            width = out
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(width, num_classes, bias=fc_bias)
        if ETF_fc:
            freeze_to_simplex_etf(self.fc)

    def features(self, x):
        return self.layers(x.flatten(1))

    def head_layers(self):
        return [self.fc]


class DeepLinearMLP(NCModel):
    """D23's MLP (D23's models/mlp.py) with a deep linear head of depth_linear layers.

    batchnorm=True (balanced): [Linear-ReLU-BN] x depth_relu, then one more BatchNorm1d.
    batchnorm=False (imbalanced): [Linear-ReLU] x depth_relu, then an intermediate Linear with
    bias; relu_features=True applies a ReLU to it (Dang 2024, "unconstrained ReLU features").
    Initialisation as coded (docs/original_code.md, D23-B5, kept for faithfulness): orthogonal_ only on the Linear
    layers among the first depth_relu modules of the backbone, and on every head layer.

    Construction order follows the original, so that one seed gives the original's initial
    tensors: the backbone Sequential is built, its orthogonal_ pass runs, and only then are
    the feature BatchNorm / intermediate Linear and the head built (each draws its default
    initialisation at that point), the head's orthogonal_ pass coming last.
    """

    original_layout = ()      # same module names as the original: its keys are ours

    def __init__(self, in_features, hidden, depth_relu=6, depth_linear=1, fc_bias=True,
                 num_classes=10, batchnorm=True, relu_features=False):
        super().__init__()
        layers, width = [], in_features
        for _ in range(depth_relu):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if batchnorm:
                layers.append(nn.BatchNorm1d(hidden))
            width = hidden
        self.layers = nn.Sequential(*layers)
        for module in list(self.layers)[:depth_relu]:
            if isinstance(module, nn.Linear):
                nn.init.orthogonal_(module.weight)
        self.batchnorm, self.relu_features = batchnorm, relu_features
        if batchnorm:
            self.batch_norm = nn.BatchNorm1d(hidden)
        else:
            self.intermediate_layer = nn.Linear(hidden, hidden, bias=True)
        self.fc = deep_linear_head(hidden, hidden, depth_linear, num_classes, fc_bias)
        for layer in self.fc:
            nn.init.orthogonal_(layer.weight)

    def features(self, x):
        h = self.layers(x.flatten(1))
        if self.batchnorm:
            return self.batch_norm(h)
        h = self.intermediate_layer(h)
        return F.relu(h) if self.relu_features else h

    def head_layers(self):
        return list(self.fc)
