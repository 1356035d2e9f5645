"""Residual networks of the papers.

* ``ResNet`` (J's models/resnet.py): torchvision v1.5 layout and module names, so state dicts load both
  ways, with J's options: fc_bias, SOTA (3x3 stem, no max-pool), fixdim (the last block
  outputs fixdim channels and gets a 1x1-conv shortcut, even when fixdim = 512), ETF_fc.
* ``CifarResNet`` (D23's models/resnet.py): the CIFAR "kuangliu" layout with BatchNorm1d features and a
  deep linear head; bn_features=False is the 2024 code's variant (features before the BN).
* ``ResNet18_adapt`` (T's models/res_adapt.py): CIFAR ResNet18 of base width k.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import NCModel, deep_linear_head, freeze_to_simplex_etf


def conv3x3(in_planes, out_planes, stride=1, groups=1):
    return nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_planes, out_planes, stride=1):
    return nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False)


# ----------------------------------------------------------------------------------------
# J: torchvision-style ResNet

class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 outdim=None):
        super().__init__()
        out = outdim or planes
        self.conv1, self.bn1 = conv3x3(inplanes, planes, stride), nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = conv3x3(planes, out), nn.BatchNorm2d(out)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, groups=1, base_width=64,
                 outdim=None):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        out = outdim or planes * self.expansion
        self.conv1, self.bn1 = conv1x1(inplanes, width), nn.BatchNorm2d(width)
        self.conv2, self.bn2 = conv3x3(width, width, stride, groups), nn.BatchNorm2d(width)
        self.conv3, self.bn3 = conv1x1(width, out), nn.BatchNorm2d(out)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.relu(self.bn3(self.conv3(out)) + identity)


class ResNet(NCModel):
    normalize_returned_features = True

    def __init__(self, block, layers, num_classes=1000, fc_bias=True, ETF_fc=False, fixdim=0,
                 SOTA=False, groups=1, width_per_group=64):
        super().__init__()
        self.inplanes, self.groups, self.base_width, self.SOTA = 64, groups, width_per_group, SOTA
        if SOTA:     # full 32x32 resolution: channels_last measured faster (bench/train_epoch.py);
            self.preferred_memory_format = torch.channels_last   # the 7x7/max-pool stem: no gain
        if SOTA:
            self.conv1 = nn.Conv2d(3, 64, 3, stride=1, padding=1, bias=False)
        else:
            self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1, self.relu = nn.BatchNorm2d(64), nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)     # kept as a module under SOTA, skipped in forward
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2, outdim=fixdim or None)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        dim = fixdim if fixdim > 0 else 512 * block.expansion
        self.fc = nn.Linear(dim, num_classes, bias=fc_bias)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        if ETF_fc:
            freeze_to_simplex_etf(self.fc)

    def _make_layer(self, block, planes, blocks, stride=1, outdim=None):
        """J's construction: first block, blocks-2 plain blocks, then a final block built
        apart (so blocks=1 gives two blocks); the final block may output ``outdim`` channels
        and then gets a 1x1-conv shortcut (fixdim quirk, docs/original_code.md, J-B13)."""
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(conv1x1(self.inplanes, planes * block.expansion, stride),
                                       nn.BatchNorm2d(planes * block.expansion))
        kwargs = dict(groups=self.groups, base_width=self.base_width)
        layers = [block(self.inplanes, planes, stride, downsample, **kwargs)]
        self.inplanes = planes * block.expansion
        for _ in range(1, blocks - 1):
            layers.append(block(self.inplanes, planes, **kwargs))
        final_shortcut = None
        if outdim:
            final_shortcut = nn.Sequential(conv1x1(self.inplanes, outdim), nn.BatchNorm2d(outdim))
        layers.append(block(self.inplanes, planes, downsample=final_shortcut, outdim=outdim, **kwargs))
        return nn.Sequential(*layers)

    def features(self, x):
        x = self.relu(self.bn1(self.conv1(self.as_input(x))))
        if not self.SOTA:
            x = self.maxpool(x)
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def head_layers(self):
        return [self.fc]


def _torchvision_style(block, layers, **fixed):
    def factory(num_classes=10, fc_bias=True, ETF_fc=False, fixdim=0, SOTA=False):
        return ResNet(block, layers, num_classes, fc_bias, ETF_fc, fixdim, SOTA, **fixed)
    return factory


resnet18 = _torchvision_style(BasicBlock, [2, 2, 2, 2])
resnet34 = _torchvision_style(BasicBlock, [3, 4, 6, 3])
resnet50 = _torchvision_style(Bottleneck, [3, 4, 6, 3])
resnet101 = _torchvision_style(Bottleneck, [3, 4, 23, 3])
resnet152 = _torchvision_style(Bottleneck, [3, 8, 36, 3])
resnext50_32x4d = _torchvision_style(Bottleneck, [3, 4, 6, 3], groups=32, width_per_group=4)
resnext101_32x8d = _torchvision_style(Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=8)
wide_resnet50_2 = _torchvision_style(Bottleneck, [3, 4, 6, 3], width_per_group=128)
wide_resnet101_2 = _torchvision_style(Bottleneck, [3, 4, 23, 3], width_per_group=128)


# ----------------------------------------------------------------------------------------
# D23 / T: CIFAR-style ResNet

class CifarBasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1, self.bn1 = conv3x3(in_planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(conv1x1(in_planes, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        # in place where autograd allows it (BatchNorm's backward does not read its output):
        # the same arithmetic as out-of-place, and 5 to 7 % faster per CPU step of Dang's
        # ResNet18 at batch 128 (1.44 -> 1.33 s, the two timed in alternation on 2 December 2026)
        out = self.bn1(self.conv1(x)).relu_()
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return out.relu_()


class CifarBottleneck(nn.Module):
    expansion = 4

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        out = planes * self.expansion
        self.conv1, self.bn1 = conv1x1(in_planes, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = conv1x1(planes, out), nn.BatchNorm2d(out)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != out:
            self.shortcut = nn.Sequential(conv1x1(in_planes, out, stride), nn.BatchNorm2d(out))

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu_()
        out = self.bn2(self.conv2(out)).relu_()
        out = self.bn3(self.conv3(out))
        out += self.shortcut(x)
        return out.relu_()


class CifarResNetBody(nn.Module):
    """conv3x3 stem, four stages of base width k, 4x4 average pool, flatten."""

    def __init__(self, block, num_blocks, width=64, in_channels=3):
        super().__init__()
        self.in_planes = width
        self.conv1, self.bn1 = conv3x3(in_channels, width), nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], 1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], 2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], 2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], 2)
        self.out_features = 8 * width * block.expansion

    def _make_layer(self, block, planes, blocks, stride):
        layers = []
        for s in [stride] + [1] * (blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = self.bn1(self.conv1(x)).relu_()
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.avg_pool2d(out, 4).flatten(1)


class CifarResNet(NCModel):
    """D23: h = BatchNorm1d(pooled features) (bn_features=True) or the pooled features
    themselves (2024 code); head = deep linear head of depth_linear layers.

    The original module had no ``body``: its stem and stages sat at the top level, so its
    state-dict keys are ours without the ``body.`` prefix (``conv1.weight`` for
    ``body.conv1.weight``); ``original_layout`` records that renaming for checkpoints."""
    original_layout = (('body.', ''),)

    def __init__(self, block, num_blocks, hidden, depth_linear=1, fc_bias=True, num_classes=10,
                 bn_features=True):
        super().__init__()
        if block is CifarBasicBlock:     # ResNet18/34: channels_last measured faster (bench/
            self.preferred_memory_format = torch.channels_last   # train_epoch.py); the
            # bottleneck ResNet50+ was not (noisy, at best equal): default kept
        self.body = CifarResNetBody(block, num_blocks)
        self.batch_norm = nn.BatchNorm1d(self.body.out_features)
        self.bn_features = bn_features
        self.fc = deep_linear_head(self.body.out_features, hidden, depth_linear, num_classes, fc_bias)

    def features(self, x):
        h = self.body(self.as_input(x))
        return self.batch_norm(h) if self.bn_features else h

    def head_layers(self):
        return list(self.fc)


def _cifar_style(block, num_blocks):
    def factory(hidden, depth_linear=1, fc_bias=True, num_classes=10, bn_features=True):
        return CifarResNet(block, num_blocks, hidden, depth_linear, fc_bias, num_classes, bn_features)
    return factory


ResNet18 = _cifar_style(CifarBasicBlock, [2, 2, 2, 2])
ResNet34 = _cifar_style(CifarBasicBlock, [3, 4, 6, 3])
ResNet50 = _cifar_style(CifarBottleneck, [3, 4, 6, 3])
ResNet101 = _cifar_style(CifarBottleneck, [3, 4, 23, 3])
ResNet152 = _cifar_style(CifarBottleneck, [3, 8, 36, 3])


class ResNet18_adapt(NCModel):
    """T's models/res_adapt.py: CIFAR ResNet18 with base width k (features 8k); returns normalize(h)."""
    normalize_returned_features = True
    preferred_memory_format = torch.channels_last    # the same body as D23's ResNet18

    def __init__(self, width, num_classes=10, fc_bias=True):
        super().__init__()
        self.body = CifarResNetBody(CifarBasicBlock, [2, 2, 2, 2], width)
        self.fc = nn.Linear(self.body.out_features, num_classes, bias=fc_bias)

    def features(self, x):
        return self.body(self.as_input(x))

    def head_layers(self):
        return [self.fc]


class HongResNet18(NCModel):
    """Hong & Ling 2023 (Hong's train_utils.ResNet18): CIFAR ResNet18 whose feature is the 512-d pooled output
    after the last ReLU (non-negative), classifier ``classifier`` = Linear(512, 10). ``width``
    (not in the reference) is the base width k, features 8k; the paper's network is k = 64."""
    preferred_memory_format = torch.channels_last    # measured: bench/train_epoch.py

    def __init__(self, num_classes=10, in_channels=3, bias=True, width=64):
        super().__init__()
        self.body = CifarResNetBody(CifarBasicBlock, [2, 2, 2, 2], width, in_channels)
        self.classifier = nn.Linear(self.body.out_features, num_classes, bias=bias)

    def features(self, x):
        return self.body(self.as_input(x))

    def head_layers(self):
        return [self.classifier]
