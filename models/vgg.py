"""D23's VGG (spec D23 §3.3): conv(bias)-BN-ReLU stacks, BatchNorm1d(512) features, deep
linear head."""
import torch.nn as nn

from .base import NCModel, deep_linear_head

CONFIGS = {
    'VGG11': [64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG13': [64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M'],
    'VGG16': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M'],
    'VGG19': [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M',
              512, 512, 512, 512, 'M'],
}


class VGG(NCModel):
    def __init__(self, vgg_name, hidden, depth_linear=1, fc_bias=True, num_classes=10,
                 bn_features=True):
        super().__init__()
        layers, channels = [], 3
        for item in CONFIGS[vgg_name]:
            if item == 'M':
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(channels, item, 3, padding=1), nn.BatchNorm2d(item),
                           nn.ReLU(inplace=True)]
                channels = item
        layers.append(nn.AvgPool2d(1, 1))
        self.body = nn.Sequential(*layers)
        self.batch_norm = nn.BatchNorm1d(512)
        self.bn_features = bn_features
        self.fc = deep_linear_head(512, hidden, depth_linear, num_classes, fc_bias)

    def features(self, x):
        h = self.body(x).flatten(1)
        return self.batch_norm(h) if self.bn_features else h

    def head_layers(self):
        return list(self.fc)


def _factory(name):
    def factory(hidden, depth_linear=1, fc_bias=True, num_classes=10, bn_features=True):
        return VGG(name, hidden, depth_linear, fc_bias, num_classes, bn_features)
    return factory


VGG11, VGG13, VGG16, VGG19 = (_factory(name) for name in CONFIGS)
