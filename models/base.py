"""What every model of the project exposes, so validation never guesses by module names."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class NCModel(nn.Module):
    """A feature extractor followed by a linear head.

    features(x)   h, the input of the head's first linear layer (the "last-layer features")
    head_layers() the head's nn.Linear layers in order; the last one is the classifier
    forward(x)    (logits, second) where second is what the paper's code returns beside the
                  logits: F.normalize(h) for Zhou 2022 / Zhu 2021 models, h for Dang's models.
    """
    normalize_returned_features = False

    def features(self, x):
        raise NotImplementedError

    def head_layers(self):
        raise NotImplementedError

    def head(self, h):
        for layer in self.head_layers():
            h = layer(h)
        return h

    def forward(self, x):
        h = self.features(x)
        logits = self.head(h)
        return logits, (F.normalize(h) if self.normalize_returned_features else h)


def simplex_etf_weight(num_classes, dim):
    """J §3.3: sqrt(K/(K-1)) (I - 11^T/K) times the rectangular identity eye(K, D), so the
    frozen classifier is the canonical simplex ETF in the first K feature coordinates."""
    K = num_classes
    centred = torch.eye(K) - torch.ones(K, K) / K
    etf = math.sqrt(K / (K - 1)) * centred                           # (K, K), unit-norm rows
    return etf @ torch.eye(K, dim)                                   # (K, D)


def freeze_to_simplex_etf(fc):
    """--ETF_fc (J §3.3): replace fc's weight by the frozen simplex ETF of its shape; the bias
    stays trainable. Saved in the state dict as fc.weight, as J."""
    fc.weight = nn.Parameter(simplex_etf_weight(fc.out_features, fc.in_features), requires_grad=False)


def deep_linear_head(in_features, hidden, depth_linear, num_classes, bias):
    """D23 §3: (M-1) bias-free Linear layers then the classifier (bias only there); M = 1 is a
    plain linear classifier."""
    layers, width = [], in_features
    for _ in range(depth_linear - 1):
        layers.append(nn.Linear(width, hidden, bias=False))
        width = hidden
    layers.append(nn.Linear(width, num_classes, bias=bias))
    return nn.Sequential(*layers)
