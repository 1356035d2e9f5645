"""Model registry: ``build_model(args, num_classes, input_shape)`` builds the network a paper's
script builds for the same flags. Which variant a name means follows the recipe: Zhou 2022
names are lower-case torchvision-style (``resnet18``) plus T's ``MLP``/``ResNet18_adapt``;
Dang's are ``MLP``, ``ResNet18..152``, ``VGG11..19`` with a deep linear head."""
import math
import os

import torch

from nc_repro import recipes
from nc_repro.errors import UsageError

from . import resnet, vgg
from .base import NCModel
from .hong_mlp import HongMLP
from .mlp import MLP, DeepLinearMLP
from .wide_resnet import wide_resnet

ZHOU_RESNETS = {name: getattr(resnet, name) for name in (
    'resnet18', 'resnet34', 'resnet50', 'resnet101', 'resnet152', 'resnext50_32x4d',
    'resnext101_32x8d', 'wide_resnet50_2', 'wide_resnet101_2')}
ZHOU_RESNETS['wide_resnet'] = wide_resnet
DANG_CONV = {name: getattr(resnet, name) for name in ('ResNet18', 'ResNet34', 'ResNet50', 'ResNet101', 'ResNet152')}
DANG_CONV.update({name: getattr(vgg, name) for name in ('VGG11', 'VGG13', 'VGG16', 'VGG19')})

# the model names of each recipe (nc_repro/recipes), in its order
HONG_NAMES = list(recipes.get('hong2023').model_names)      # check_hong_network checks --network against it


# NC_REPRO_MEMORY_FORMAT=channels_last | contiguous forces one memory format on every model
# (benchmarks, checks); unset: each architecture's preferred_memory_format.
MEMORY_FORMATS = {'channels_last': torch.channels_last, 'contiguous': torch.contiguous_format}
# channels_last is measured safe only where every convolution has at least this many output
# channels: in this torch build's oneDNN, a Hong ResNet18 of --width 4 or 8 (stride-2 1x1
# shortcut convolutions with 4 or 8 channels) corrupts the heap in the first backward on an odd
# batch (3, 5, 113); widths 16 and 64 ran clean at batches 3, 113 and 128. Narrower models keep
# the default layout (tests/test_memory_format.py).
CHANNELS_LAST_MIN_CHANNELS = 16


def memory_format_for(model):
    forced = os.environ.get('NC_REPRO_MEMORY_FORMAT', '').strip()
    if forced:
        if forced not in MEMORY_FORMATS:
            raise UsageError('NC_REPRO_MEMORY_FORMAT=%s; use one of: %s' % (forced, ', '.join(MEMORY_FORMATS)))
        return MEMORY_FORMATS[forced]
    preferred = getattr(model, 'preferred_memory_format', torch.contiguous_format)
    if preferred == torch.channels_last and is_narrow(model):
        return torch.contiguous_format
    return preferred


def is_narrow(model):
    """True when a convolution has fewer than CHANNELS_LAST_MIN_CHANNELS output channels."""
    return any(isinstance(m, torch.nn.Conv2d) and m.out_channels < CHANNELS_LAST_MIN_CHANNELS
               for m in model.modules())


def in_memory_format(model):
    """The model in the memory format it trains fastest in (see memory_format_for)."""
    memory_format = memory_format_for(model)
    if isinstance(model, NCModel) and memory_format != model.memory_format:
        model.use_memory_format(memory_format)
    return model


def check_hong_network(name):
    """The one check of Hong & Ling's --network: a UsageError unless ``name`` is in HONG_NAMES
    (hong_args.parse calls it before anything is written, build_hong_model for every other caller)."""
    if name not in HONG_NAMES:
        raise UsageError('--network %s is not known; choose one of: %s' % (name, ', '.join(HONG_NAMES)))


def build_hong_model(name, in_channels, num_classes=10, width=64, depth=2, pool=1, image_size=32):
    """Hong & Ling's build_model names (ResNet18_bf = bias-free classifier); ``width`` is the
    ResNet's base width (64 in the paper; VGG ignores it). ``MLP`` (not in the reference) is
    models.hong_mlp.HongMLP on the in_channels x image_size x image_size image, average-pooled
    by ``pool``, with ``depth`` hidden ReLU layers of ``width`` units and a biased linear
    classifier."""
    check_hong_network(name)
    if name == 'MLP':
        return HongMLP(in_channels, image_size, num_classes, width, depth, pool)
    if name.startswith('VGG'):
        return in_memory_format(vgg.HongVGG(name, num_classes, in_channels))
    return in_memory_format(resnet.HongResNet18(num_classes, in_channels, bias=name != 'ResNet18_bf',
                                                width=width))


def build_model(args, num_classes, input_shape, unbalanced=False):
    """Raise UsageError naming --model when the name is not one of the recipe's models."""
    return in_memory_format(_build_model(args, num_classes, input_shape, unbalanced))


def _build_model(args, num_classes, input_shape, unbalanced=False):
    recipe = recipes.get(args.paper)
    names = recipe.model_names
    if args.model not in names:
        raise UsageError('--model %s is not a %s model; choose one of: %s'
                         % (args.model, args.paper, ', '.join(names)))
    in_features = math.prod(input_shape)
    if recipe.model_family == 'zhou':
        if args.model == 'MLP':
            return MLP(in_features, args.width, args.depth, args.bias, num_classes,
                       ETF_fc=args.ETF_fc, fixdim=args.fixdim)
        if args.model == 'ResNet18_adapt':
            return resnet.ResNet18_adapt(args.width, num_classes, args.bias)
        return ZHOU_RESNETS[args.model](num_classes=num_classes, fc_bias=args.bias,
                                        ETF_fc=args.ETF_fc, fixdim=args.fixdim, SOTA=args.SOTA)
    if args.model == 'MLP':
        # imbalanced scripts build the MLP without BatchNorm (D23's train_1st_order_unbalanced.py); 2024: ReLU features
        return DeepLinearMLP(in_features, args.width, args.depth_relu, args.depth_linear,
                             args.bias, num_classes, batchnorm=not unbalanced,
                             relu_features=recipe.relu_features)
    return DANG_CONV[args.model](hidden=args.width, depth_linear=args.depth_linear,
                                 fc_bias=args.bias, num_classes=num_classes,
                                 bn_features=not recipe.relu_features)
