"""What every model of the project exposes, so validation never guesses by module names."""

import torch
import torch.nn as nn
import torch.nn.functional as F

from nc_repro import frames
from nc_repro.checkpoints import original_key, to_project_layout


class NCModel(nn.Module):
    """A feature extractor followed by a linear head.

    features(x)   h, the input of the head's first linear layer (the "last-layer features")
    head_layers() the head's nn.Linear layers in order; the last one is the classifier
    head_products() the products of the head's weights from each layer on (P_0 = W)
    forward(x)    (logits, second) where second is what the paper's code returns beside the
                  logits: F.normalize(h) for Zhou 2022 / Zhu 2021 models, h for Dang's models.
    """
    normalize_returned_features = False
    # Memory format (bench/train_epoch.py measures both on the machine at hand): the layout
    # this architecture trains fastest in, applied by models.build_model / build_hong_model
    # through use_memory_format; ``memory_format`` is the one in use. Checkpoints do not see
    # it: state_dict() returns the usual contiguous tensors (same keys, shapes and strides).
    preferred_memory_format = torch.contiguous_format
    memory_format = torch.contiguous_format
    # The original code's state-dict names: (our prefix, the original's prefix) pairs, the first
    # that fits wins; () where the original's module names are ours (docs/original_code.md).
    original_layout = ()

    def original_state_dict(self):
        """state_dict() under the original code's key names, as the epoch checkpoints are
        written, so the originals' validators load them with strict=True."""
        return type(self.state_dict())((original_key(key, self.original_layout), value)
                                       for key, value in self.state_dict().items())

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """nn.Module.load_state_dict for a state dict in either layout: the original code's
        names (original_layout) are renamed to ours first (checkpoints.to_project_layout); any
        other key reaches torch as is."""
        if self.original_layout:
            state_dict = to_project_layout(state_dict, self)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def use_memory_format(self, memory_format):
        """Convert the parameters and buffers (4-d ones change) and make every input batch
        follow; returns self."""
        if memory_format != torch.contiguous_format and not hasattr(self, '_contiguous_state_hook'):
            self._contiguous_state_hook = self.register_state_dict_post_hook(_contiguous_state)
        self.memory_format = memory_format
        return self.to(memory_format=memory_format)

    def as_input(self, x):
        """x in the model's memory format: one conversion per batch, none when it already is."""
        if self.memory_format != torch.contiguous_format and x.dim() == 4:
            return x.contiguous(memory_format=self.memory_format)
        return x

    def features(self, x):
        raise NotImplementedError

    def head_layers(self):
        raise NotImplementedError

    def classifier_bias(self):
        """b (K,) of the last head layer in float64 on the CPU; zeros for a bias-free head."""
        classifier = self.head_layers()[-1]
        if classifier.bias is None:
            return torch.zeros(classifier.out_features, dtype=torch.float64)
        return classifier.bias.detach().double().cpu()

    def head_products(self):
        """[P_0, ..., P_{M-1}] in float64 on the CPU, P_l = A_{M-1} ... A_l for head weights
        A_0, ..., A_{M-1}: the map from the input of head layer l to the bias-free logits
        (P_0 = W, the full product that D23's metrics use)."""
        products, product = [], None
        for layer in reversed(self.head_layers()):
            weight = layer.weight.detach().double().cpu()
            product = weight if product is None else product @ weight
            products.append(product)
        return products[::-1]

    def head(self, h):
        for layer in self.head_layers():
            h = layer(h)
        return h

    def forward(self, x):
        h = self.features(x)
        logits = self.head(h)
        return logits, (F.normalize(h) if self.normalize_returned_features else h)


def _contiguous_state(module, state_dict, prefix, local_metadata):
    """state_dict post-hook of a model in channels_last: tensors saved in the default layout."""
    for key, value in state_dict.items():
        if key.startswith(prefix) and isinstance(value, torch.Tensor) and value.dim() == 4 and \
                value.stride() != torch.empty(value.shape, device='meta').stride():
            state_dict[key] = value.clone(memory_format=torch.contiguous_format)


def freeze_to_simplex_etf(fc):
    """--ETF_fc (J's models/resnet.py): replace fc's weight by the frozen simplex ETF of its shape; the bias
    stays trainable. Saved in the state dict as fc.weight, as J."""
    etf = frames.simplex_etf(fc.out_features, fc.in_features, dtype=torch.float32)      # (K, D)
    fc.weight = nn.Parameter(etf, requires_grad=False)


def deep_linear_head(in_features, hidden, depth_linear, num_classes, bias):
    """The head of D23's models: (M-1) bias-free Linear layers then the classifier (bias only there); M = 1 is a
    plain linear classifier."""
    layers, width = [], in_features
    for _ in range(depth_linear - 1):
        layers.append(nn.Linear(width, hidden, bias=False))
        width = hidden
    layers.append(nn.Linear(width, num_classes, bias=bias))
    return nn.Sequential(*layers)
