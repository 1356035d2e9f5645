"""A small ReLU MLP for the Hong & Ling 2023 scripts (not in the reference, which trains
ResNet18 / VGG): a cheap backbone for the offline quick runs, whose terminal phase is reached
in seconds on a CPU.

    x -> avg_pool(pool) -> flatten -> [Linear -> ReLU] x depth -> h -> classifier = Linear(width, K, bias)

``pool`` > 1 averages pool x pool pixel squares first: the offline digits are 8x8 images
resized to 32x32, so pool = 4 gives back (about) their native 64 pixels at 1/16 of the cost.

h, the output of the last hidden block, is the penultimate feature, as the pooled output after
the last ReLU of HongResNet18 (so h >= 0 in both); ``classifier`` is the last (only) head layer,
so the analysis finds W and b exactly as for the ResNet. No BatchNorm: train and eval features
are the same function of the input.
"""
import torch.nn as nn
import torch.nn.functional as F

from .base import NCModel


class HongMLP(NCModel):
    def __init__(self, in_channels, image_size=32, num_classes=10, width=128, depth=2, pool=1, bias=True):
        super().__init__()
        if depth < 1 or width < 1 or pool < 1 or image_size % pool:
            raise ValueError('HongMLP needs depth, width >= 1 and a pool dividing the image size '
                             '(got depth %d, width %d, pool %d, image %d)' % (depth, width, pool, image_size))
        self.pool = pool
        layers, size = [], in_channels * (image_size // pool) ** 2
        for _ in range(depth):
            layers += [nn.Linear(size, width), nn.ReLU()]
            size = width
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(width, num_classes, bias=bias)

    def features(self, x):
        if self.pool > 1:
            x = F.avg_pool2d(x, self.pool)
        return self.body(x.flatten(1))

    def head_layers(self):
        return [self.classifier]
