"""J's ``wide_resnet`` (docs/original_code.md, J-B12), repaired: the original cannot be constructed (it rejects
SOTA, divides by an undefined temperature and mismatches shapes with fixdim). This is the
standard WRN-depth-width of Zagoruyko & Komodakis 2016 with J's layout: 3x3 stem to 16
channels, three stages of 16w, 32w, 64w channels (strides 1, 2, 2) with (depth-2)/6
pre-activation blocks each, 8x8 average pool, fc(64w -> K)."""
import torch.nn as nn
import torch.nn.functional as F

from .base import NCModel, freeze_to_simplex_etf


class WideBlock(nn.Module):
    def __init__(self, in_planes, planes, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x):
        out = self.conv1(F.relu(self.bn1(x)))
        out = self.conv2(F.relu(self.bn2(out)))
        return out + self.shortcut(x)


class WideResNet(NCModel):
    normalize_returned_features = True

    def __init__(self, num_classes=10, depth=26, width=10, fc_bias=True, ETF_fc=False):
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError('wide_resnet depth must be 6n+2 (got %d)' % depth)
        blocks = (depth - 2) // 6
        stages, in_planes = [16 * width, 32 * width, 64 * width], 16
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        layers = []
        for planes, stride in zip(stages, (1, 2, 2)):
            for s in [stride] + [1] * (blocks - 1):
                layers.append(WideBlock(in_planes, planes, s))
                in_planes = planes
        self.layers = nn.Sequential(*layers)
        self.bn = nn.BatchNorm2d(in_planes)
        self.fc = nn.Linear(in_planes, num_classes, bias=fc_bias)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
        if ETF_fc:
            freeze_to_simplex_etf(self.fc)

    def features(self, x):
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def head_layers(self):
        return [self.fc]


def wide_resnet(num_classes=10, depth=26, width=10, fc_bias=True, ETF_fc=False, fixdim=0, SOTA=False):
    return WideResNet(num_classes, depth, width, fc_bias, ETF_fc)
