"""D23's VGG (D23's models/vgg.py): conv(bias)-BN-ReLU stacks, BatchNorm1d(512) features, deep
linear head."""
import torch.nn as nn
import torch.nn.functional as F

from .base import NCModel, deep_linear_head

CONFIGS = {
    'VGG11': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG13': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG16': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
    'VGG19': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
              512, 512, 512, 512, 'M'],
}


def conv_stack(vgg_name, channels=3):
    """conv3x3(bias)-BN-ReLU per number, MaxPool(2, 2) per 'M', then the identity AvgPool."""
    layers = []
    for item in CONFIGS[vgg_name]:
        if item == 'M':
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item),
                       nn.ReLU(inplace=True)]
            channels = item
    layers.append(nn.AvgPool2d(1, 1))
    return nn.Sequential(*layers)


class VGG(NCModel):
    """The original kept the conv stack under ``features`` (``features.0.weight`` for our
    ``body.0.weight``); ``original_layout`` records that renaming for checkpoints."""
    original_layout = (('body.', 'features.'),)

    def __init__(self, vgg_name, hidden, depth_linear=1, fc_bias=True, num_classes=10,
                 bn_features=True):
        super().__init__()
        self.body = conv_stack(vgg_name)
        self.batch_norm = nn.BatchNorm1d(512)
        self.bn_features = bn_features
        self.fc = deep_linear_head(512, hidden, depth_linear, num_classes, fc_bias)

    def features(self, x):
        h = self.body(self.as_input(x)).flatten(1)
        return self.batch_norm(h) if self.bn_features else h

    def head_layers(self):
        return list(self.fc)


def _factory(name):
    def factory(hidden, depth_linear=1, fc_bias=True, num_classes=10, bn_features=True):
        return VGG(name, hidden, depth_linear, fc_bias, num_classes, bn_features)
    return factory


VGG11, VGG13, VGG16, VGG19 = (_factory(name) for name in CONFIGS)


class HongVGG(NCModel):
    """Hong & Ling 2023 (Hong's train_utils.VGG): conv stack, fc1 (512->4096), BatchNorm1d, ReLU, fc2
    (4096->4096), ReLU = the 4096-d feature; ``bn2`` exists (state-dict keys) but is unused."""

    def __init__(self, vgg_name, num_classes=10, in_channels=3, bias=True):
        super().__init__()
        self.body = conv_stack(vgg_name, in_channels)
        self.fc1, self.bn1 = nn.Linear(512, 4096), nn.BatchNorm1d(4096)
        self.fc2, self.bn2 = nn.Linear(4096, 4096), nn.BatchNorm1d(4096)
        self.classifier = nn.Linear(4096, num_classes, bias=bias)

    def features(self, x):
        h = F.relu(self.bn1(self.fc1(self.body(self.as_input(x)).flatten(1))))
        return F.relu(self.fc2(h))

    def head_layers(self):
        return [self.classifier]
