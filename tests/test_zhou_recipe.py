"""Zhou et al. 2022 recipe (code J, docs/papers.md): rescaled MSE, fixed simplex-ETF
classifier, --fixdim, --SOTA, the mini-ImageNet cache split and T's cifar10_random models.

Every network is built the way train_1st_order.py builds it: its parser, ``cli.parse`` with
the recipe resolution, then ``models.build_model``. Expected values come from J's and T's code and are
computed here by hand or by explicit loops, never by calling the code under test twice.
"""
import copy
import os
import pickle
import shlex

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision

import args as cli
import datasets
import models
from nc_repro import losses
import train_1st_order
from nc_repro import training
from conftest import run_script
from test_datasets import write_cifar10

K = 10
IMAGE = (3, 32, 32)


def parse(command):
    """Flags -> resolved namespace, exactly as train_1st_order.py's __main__ does it."""
    return cli.parse(train_1st_order.get_args_parser(), shlex.split(command),
                     allowed=('zhou2022', 'dang2023'))


def build(command, num_classes=K, input_shape=IMAGE):
    args = parse(command)
    assert args.paper == 'zhou2022'
    return args, models.build_model(args, num_classes, input_shape)


def trainable_parameters(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """ResNet18 steps here are tiny; on two shared cores OpenMP threads only wait on each other."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def fake_cifar10(tmp_path, monkeypatch):
    """Genuine CIFAR-10 python pickles (10 train / 4 test images) under tmp_path; md5 off."""
    monkeypatch.setattr(torchvision.datasets.cifar, 'check_integrity', lambda *a, **k: True)
    write_cifar10(str(tmp_path), per_batch=2, n_test=4)
    return str(tmp_path)


# ----------------------------------------------------------------------------------------
# 1. losses (J's MSE and utils.Rescale_Square_Loss)

LOGITS = [[0.5, -1.0, 2.0, 0.0],
          [1.5, 0.25, -0.5, 3.0],
          [-2.0, 1.0, 0.75, -0.25]]
LABELS = [2, 0, 3]


def rescaled_mse_by_loops(logits, labels, M, k):
    """Rescaled MSE: l_i = (1/K)[k (z_{i,y_i} - M)^2 + sum_{j != y_i} z_{i,j}^2], mean over i."""
    total = 0.0
    for row, y in zip(logits, labels):
        per_sample = 0.0
        for j, z in enumerate(row):
            per_sample += k * (z - M) ** 2 if j == y else z ** 2
        total += per_sample / len(row)
    return total / len(logits)


def test_rescaled_mse_matches_the_paper_formula():
    """Rescaled MSE with M = 3, k = 5 chosen on the command line (--loss RescaledMSE --M 3 --k 5)."""
    args = parse('--loss RescaledMSE --M 3 --k 5')
    assert (args.loss, args.M, args.k) == ('RescaledMSE', 3.0, 5.0)
    criterion = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), 4).criterion
    assert isinstance(criterion, losses.RescaledMSE)
    value = criterion(torch.tensor(LOGITS, dtype=torch.float64), torch.tensor(LABELS))
    expected = rescaled_mse_by_loops(LOGITS, LABELS, M=3, k=5)
    # by hand for sample 0: (1/4)[5 (2 - 3)^2 + 0.25 + 1 + 0] = 1.5625
    assert rescaled_mse_by_loops(LOGITS[:1], LABELS[:1], M=3, k=5) == 1.5625
    assert abs(value.item() - expected) < 1e-6
    # M and k are not interchangeable: swapping them must change the value
    assert abs(rescaled_mse_by_loops(LOGITS, LABELS, M=5, k=3) - expected) > 1e-3


def test_rescaled_mse_with_m_k_one_is_the_plain_mse():
    """M = k = 1 is nn.MSELoss (mean over the B x K entries) against the one-hot."""
    logits, labels = torch.tensor(LOGITS), torch.tensor(LABELS)
    reference = nn.MSELoss()(logits, nn.functional.one_hot(labels, 4).float())
    rescaled = losses.make_criterion('RescaledMSE', 4, k=1, M=1)(logits, labels)
    plain = losses.make_objective(cli.settings(losses.ObjectiveSettings, parse('--loss MSE')), 4).criterion(logits, labels)
    assert abs(rescaled.item() - reference.item()) < 1e-6
    assert abs(plain.item() - reference.item()) < 1e-6
    assert abs(reference.item() - rescaled_mse_by_loops(LOGITS, LABELS, M=1, k=1)) < 1e-6


# ----------------------------------------------------------------------------------------
# 2. fixed simplex-ETF classifier (J's --ETF_fc, models/resnet.py and utils.make_optimizer)

def test_etf_classifier_is_the_canonical_simplex_etf():
    """--ETF_fc: W = [M0 | 0] with M0 M0^T = K/(K-1)(I - 11^T/K): unit diagonal, -1/(K-1) off it."""
    args, model = build('--gpu_id 0 --uid run --dataset cifar10 --optimizer SGD --lr 0.05 --ETF')
    assert args.ETF_fc                              # README's --ETF is a prefix of --ETF_fc
    W = model.fc.weight.detach().double()
    assert W.shape == (K, 512) and not model.fc.weight.requires_grad
    gram = W @ W.T
    for i in range(K):
        for j in range(K):
            expected = K / (K - 1) * ((1.0 if i == j else 0.0) - 1.0 / K)
            assert abs(gram[i, j].item() - expected) < 1e-6
    assert abs(gram[0, 0].item() - 1.0) < 1e-6 and abs(gram[0, 1].item() + 1 / 9) < 1e-6
    assert torch.equal(W[:, K:], torch.zeros(K, 512 - K))       # embedded in the first K coords
    assert 'fc.weight' in model.state_dict()
    assert model.fc.bias is not None and model.fc.bias.requires_grad


@pytest.mark.parametrize('fixdim', [10, 5])
def test_etf_classifier_with_fixdim_is_k_by_fixdim(fixdim):
    """--ETF_fc --fixdim: D = fixdim, so W = M0[:, :fixdim] with M0 = sqrt(K/(K-1))(I - 11^T/K); for
    fixdim = K that is M0 itself, an ETF (rows of unit norm summing to zero)."""
    _, model = build('--ETF_fc --fixdim %d --SOTA' % fixdim)
    W = model.fc.weight.detach().double()
    assert W.shape == (K, fixdim) and not model.fc.weight.requires_grad
    scale = (K / (K - 1)) ** 0.5
    for i in range(K):
        for j in range(fixdim):
            assert abs(W[i, j].item() - scale * ((i == j) - 1 / K)) < 1e-6
    if fixdim == K:
        assert torch.allclose(W.norm(dim=1), torch.ones(K, dtype=torch.float64), atol=1e-6)
        assert torch.allclose(W.sum(0), torch.zeros(K, dtype=torch.float64), atol=1e-6)


def test_sgd_step_leaves_the_etf_weight_untouched_and_decays_the_bias(fake_cifar10):
    """The frozen weight is outside the optimizer (no decay either); the bias
    takes the SGD (momentum 0.9, weight decay 5e-4) first step b - lr (g + wd b)."""
    args = parse('--uid run --dataset cifar10 --optimizer SGD --lr 0.05 --ETF_fc '
                 '--batch_size 10 --data_dir %s' % fake_cifar10)
    assert args.weight_decay == 5e-4
    training.set_seed(args.seed)
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape)
    loader = datasets.make_train_loader(args, data, 'cpu')
    assert len(loader) == 1
    objective = losses.make_objective(cli.settings(losses.ObjectiveSettings, args), data.num_classes)
    optimizer = training.make_optimizer(cli.settings(training.OptimizerSettings, args), model)
    group = optimizer.param_groups[0]
    assert (group['momentum'], group['weight_decay'], group['lr']) == (0.9, 5e-4, 0.05)
    assert not any(p is model.fc.weight for p in group['params'])

    # the gradient the step will use, from an identical copy on the same batch
    images, labels = next(iter(datasets.make_train_loader(args, data, 'cpu')))
    twin = copy.deepcopy(model).train()
    logits, returned = twin(images)
    objective(twin, logits, returned, labels).backward()
    bias_grad = twin.fc.bias.grad.clone()
    assert bias_grad.abs().max() > 0

    weight_before = model.fc.weight.detach().clone()
    bias_before = model.fc.bias.detach().clone()
    training.train_one_epoch(model, loader, objective, optimizer, 1, 1)
    assert torch.equal(model.fc.weight, weight_before)                 # bit-identical
    assert model.fc.weight.grad is None
    assert not torch.equal(model.fc.bias.detach(), bias_before)
    expected_bias = bias_before - 0.05 * (bias_grad + 5e-4 * bias_before)
    assert torch.allclose(model.fc.bias.detach(), expected_bias, atol=1e-6)


# ----------------------------------------------------------------------------------------
# 3. --fixdim (J's models/resnet.py; docs/original_code.md, J-B13)

def test_fixdim_sets_the_feature_dimension_and_adds_a_shortcut():
    """The last block's conv2/bn2 output F channels, its shortcut is a stride-1
    1x1 conv + BN(F), fc is Linear(F, K); J honours F (T would use K)."""
    torch.manual_seed(0)     # an unseeded draw can leave all 5 ReLU features of both images at 0
    _, model = build('--SOTA --fixdim 5')
    last = model.layer4[-1]
    assert (last.conv2.out_channels, last.bn2.num_features) == (5, 5)
    conv, bn = last.downsample
    assert isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride) == (512, 5, (1, 1), (1, 1))
    assert conv.bias is None and bn.num_features == 5
    assert (model.fc.in_features, model.fc.out_features) == (5, K)
    model.eval()
    with torch.no_grad():
        images = torch.randn(2, 3, 8, 8)
        h = model.features(images)
        logits, normalised = model(images)
    assert h.shape == (2, 5) and logits.shape == (2, K) and normalised.shape == (2, 5)
    assert torch.allclose(logits, model.fc(h)) and torch.allclose(normalised.norm(dim=1), torch.ones(2))


def test_fixdim_512_is_not_the_baseline_resnet18():
    """Even --fixdim 512 adds the 512->512 1x1 conv + BN shortcut (263,168 parameters);
    counts by hand: 11,181,642 (default), 11,173,962 (SOTA), ~8.86 M (SOTA + fixdim 10)."""
    _, baseline = build('--model resnet18')
    _, sota = build('--SOTA')
    _, sota_512 = build('--SOTA --fixdim 512')
    _, sota_10 = build('--SOTA --fixdim 10')
    assert baseline.layer4[-1].downsample is None and sota.layer4[-1].downsample is None
    conv, bn = sota_512.layer4[-1].downsample
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (512, 512, (1, 1))
    assert sota_512.fc.in_features == 512
    assert trainable_parameters(baseline) == 11_181_642
    assert trainable_parameters(sota) == 11_173_962
    assert trainable_parameters(sota_512) - trainable_parameters(sota) == 512 * 512 + 2 * 512
    assert abs(trainable_parameters(sota_10) - 8.86e6) < 0.005e6
    assert [len(getattr(sota, 'layer%d' % i)) for i in range(1, 5)] == [2, 2, 2, 2]


# ----------------------------------------------------------------------------------------
# 4. --SOTA (J's datasets.make_dataset and models/resnet.py)

def stem_trace(model):
    """Forward a 32x32 batch; return (max-pool called?, spatial size of layer4's output)."""
    seen = {}

    def record(name):
        def hook(module, inputs, output):
            seen[name] = tuple(output.shape[-2:])          # returns None: output unchanged
        return hook

    handles = [model.maxpool.register_forward_hook(record('maxpool')),
               model.layer4.register_forward_hook(record('layer4'))]
    model.eval()
    with torch.no_grad():
        model(torch.randn(1, *IMAGE))
    for handle in handles:
        handle.remove()
    return 'maxpool' in seen, seen['layer4']


def test_sota_stem_is_3x3_without_max_pool():
    """SOTA conv1 = Conv2d(3, 64, 3, s1, p1, no bias), max-pool kept but skipped
    (32 -> 4x4 at layer4); default stem 7x7/s2/p3 + max-pool (32 -> 1x1)."""
    _, sota = build('--SOTA')
    _, plain = build('--model resnet18')
    conv = sota.conv1
    assert (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding) == \
        (3, 64, (3, 3), (1, 1), (1, 1)) and conv.bias is None
    conv = plain.conv1
    assert (conv.kernel_size, conv.stride, conv.padding) == ((7, 7), (2, 2), (3, 3))
    assert isinstance(sota.maxpool, nn.MaxPool2d)          # the module still exists (state dict)
    assert stem_trace(sota) == (False, (4, 4))
    assert stem_trace(plain) == (True, (1, 1))


@pytest.mark.parametrize('dataset, sota, expected', [
    ('cifar10', True, 'crop_flip'), ('cifar10', False, None),
    ('mini_imagenet', True, 'crop_flip'), ('cifar10_random', True, None)])
def test_sota_chooses_crop_and_flip_where_the_paper_does(dataset, sota, expected):
    """--SOTA adds RandomCrop(padding 4) + flip on cifar10 and mini_imagenet;
    cifar10_random (T) ignores --SOTA."""
    args = parse('--dataset %s%s' % (dataset, ' --SOTA' if sota else ''))
    assert datasets.augmentation(args) == expected


def test_sota_cifar10_loader_crops_and_flips_the_raw_pixels(fake_cifar10):
    """With --SOTA each training batch is a 4-pixel-padded 32x32 crop, maybe flipped, of
    the raw image, then CIFAR-normalised; without --SOTA the images pass unchanged."""
    common = '--dataset cifar10 --batch_size 10 --data_dir %s' % fake_cifar10
    for sota in (True, False):
        args = parse(common + (' --SOTA' if sota else ''))
        data = datasets.training_data(args)
        loader = datasets.make_train_loader(args, data, 'cpu', shuffle=False)
        assert loader.augment == ('crop_flip' if sota else None)
        images, labels = next(iter(loader))
        raw = data.train.images
        assert torch.equal(labels, data.train.labels)
        if not sota:
            assert torch.equal(images, data.train.normalise(raw))
            continue
        padded = torch.nn.functional.pad(raw, (4,) * 4)
        changed = 0
        for b in range(len(raw)):
            windows = [data.train.normalise(padded[b:b + 1, :, y:y + 32, x:x + 32])[0]
                       for y in range(9) for x in range(9)]
            assert any(torch.equal(images[b], w) or torch.equal(images[b], w.flip(-1)) for w in windows)
            changed += not torch.equal(images[b], windows[4 * 9 + 4])
        assert changed > 0                               # not all ten left unshifted and unflipped


# ----------------------------------------------------------------------------------------
# 5. mini-ImageNet cache (J's datasets.MiniImagenet)

CACHE_CLASSES = {'train': 2, 'val': 1, 'test': 1}     # real cache: 64 / 16 / 20
CACHE_MARKERS = {'train': 201, 'val': 202, 'test': 203}
PER_CLASS, TRAIN_PER_CLASS = 600, 500


def write_mini_imagenet_cache(root):
    """Kaggle cache pickles: {'image_data': uint8 (n*600, 84, 84, 3), 'class_dict': ...},
    class-contiguous. Pixel (0, 0) encodes (global class, index // 256, index % 256)."""
    caches, first_class = {}, 0
    for split, n_classes in CACHE_CLASSES.items():
        images = np.zeros((n_classes * PER_CLASS, 84, 84, 3), dtype=np.uint8)
        index = np.arange(len(images))
        images[:, 0, 0, 0] = first_class + index // PER_CLASS
        images[:, 0, 0, 1] = (index % PER_CLASS) // 256
        images[:, 0, 0, 2] = (index % PER_CLASS) % 256
        images[:, 83, 83, :] = CACHE_MARKERS[split]          # bottom-right pixel: the cache
        class_dict = {'n%08d' % (first_class + c): list(range(c * PER_CLASS, (c + 1) * PER_CLASS))
                      for c in range(n_classes)}
        with open(os.path.join(root, 'mini-imagenet-cache-%s.pkl' % split), 'wb') as f:
            pickle.dump({'image_data': images, 'class_dict': class_dict}, f)
        caches[split] = images
        first_class += n_classes
    return np.concatenate([caches[s] for s in CACHE_CLASSES])      # (4 * 600, 84, 84, 3)


def test_mini_imagenet_cache_builds_j_split(tmp_path):
    """First 500 of each class train, last 100 test, class-major; classes numbered over
    the train, val, test caches in that order; processed_{train,test}.pkl in J's keys."""
    raw = write_mini_imagenet_cache(str(tmp_path))
    args = parse('--dataset mini_imagenet --data_dir %s' % tmp_path)
    data = datasets.training_data(args)
    classes = sum(CACHE_CLASSES.values())
    assert data.num_classes == 100 and data.input_shape == (3, 84, 84)
    assert len(data.train) == classes * 500 and len(data.test) == classes * 100
    assert data.train.images.dtype == torch.uint8 and data.train.images.shape == (classes * 500, 3, 84, 84)
    assert data.train.labels.tolist() == [c for c in range(classes) for _ in range(500)]
    assert data.test.labels.tolist() == [c for c in range(classes) for _ in range(100)]

    def decode(images):            # pixel (0, 0) -> (class, index within the class)
        pixel = images[:, :, 0, 0].long()
        return pixel[:, 0], pixel[:, 1] * 256 + pixel[:, 2]

    cls, idx = decode(data.train.images)
    assert torch.equal(cls, data.train.labels)
    assert idx.tolist() == list(range(500)) * classes
    cls, idx = decode(data.test.images)
    assert torch.equal(cls, data.test.labels)
    assert idx.tolist() == list(range(500, 600)) * classes
    # the val class (label 2) and the test-cache class (label 3) keep their cache's marker
    assert data.train.images[2 * 500, :, 83, 83].tolist() == [CACHE_MARKERS['val']] * 3
    assert data.test.images[3 * 100, :, 83, 83].tolist() == [CACHE_MARKERS['test']] * 3
    # one whole image round-trips exactly: test image 37 of class 1 is raw image 1*600 + 537
    assert torch.equal(data.test.images[100 + 37], torch.from_numpy(raw[600 + 537]).permute(2, 0, 1))
    mean = torch.tensor(datasets.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(datasets.IMAGENET_STD).view(1, 3, 1, 1)
    value = data.test.normalise(data.test.images[137:138])[0, :, 83, 83]
    marker = torch.tensor(float(CACHE_MARKERS['train']))
    assert torch.allclose(value, ((marker / 255 - mean) / std).flatten(), atol=1e-6)

    with open(os.path.join(str(tmp_path), 'processed_train.pkl'), 'rb') as f:
        train = pickle.load(f)
    with open(os.path.join(str(tmp_path), 'processed_test.pkl'), 'rb') as f:
        test = pickle.load(f)
    assert set(train) == {'train_data', 'train_label'} and set(test) == {'test_data', 'test_label'}
    assert train['train_data'].dtype == np.uint8 and train['train_data'].shape == (classes * 500, 84, 84, 3)
    assert np.issubdtype(np.asarray(train['train_label']).dtype, np.integer)
    assert np.array_equal(test['test_data'][100 + 37], raw[600 + 537])


def test_mini_imagenet_missing_cache_names_data_dir(tmp_path):
    """Not downloadable; a missing cache is one line naming the file and --data_dir."""
    empty = tmp_path / 'nothing_here'
    empty.mkdir()
    args = parse('--dataset mini_imagenet --data_dir %s' % empty)
    with pytest.raises(datasets.DataUnavailable) as error:
        datasets.training_data(args)
    message = str(error.value)
    assert '\n' not in message
    assert '--data_dir' in message and str(empty) in message
    assert 'mini-imagenet-cache-train.pkl' in message
    assert not os.path.exists(empty / 'processed_train.pkl')
    # the script reports it as one usage line (exit 2) before creating any run folder
    result = run_script('train_1st_order.py', '--dataset', 'mini_imagenet',
                        '--data_dir', 'nothing_here', '--uid', 'run', cwd=tmp_path, timeout=60,
                        check=False)
    assert result.returncode == 2
    expected = 'train_1st_order.py: error: ' + message.replace(str(empty), 'nothing_here')
    assert result.stderr.strip().splitlines() == [expected]
    assert not os.path.exists(tmp_path / 'model_weights')


# ----------------------------------------------------------------------------------------
# 6. cifar10_random with T's models (T's datasets.py and models; J's README commands)

def test_cifar10_random_mlp_builds_and_runs(fake_cifar10):
    """T's MLP = `depth` x [Linear-BN-ReLU] on the 3072 flattened inputs, fc(width -> 10);
    forward returns (logits, normalize(h)); T's cifar10_random: ImageNet statistics, 10 classes."""
    args = parse('--dataset cifar10_random --optimizer SGD --batch_size 64 --lr 0.01 --model MLP '
                 '--width 16 --depth 3 --weight_decay 1e-4 --data_dir %s' % fake_cifar10)
    data = datasets.training_data(args)
    assert data.num_classes == 10 and data.input_shape == IMAGE
    assert data.train.mean == datasets.IMAGENET_MEAN
    model = models.build_model(args, data.num_classes, data.input_shape)
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(3072, 16), (16, 16), (16, 16), (16, 10)]
    assert sum(isinstance(m, nn.BatchNorm1d) for m in model.modules()) == 3
    model.eval()
    images = data.train.normalise(data.train.images[:4])
    with torch.no_grad():
        logits, returned = model(images)
        h = model.features(images)
    assert logits.shape == (4, 10) and returned.shape == (4, 16)
    assert torch.allclose(returned, h / h.norm(dim=1, keepdim=True), atol=1e-6)
    assert torch.allclose(logits, h @ model.fc.weight.T + model.fc.bias, atol=1e-5)


def test_cifar10_random_resnet18_adapt_builds_and_runs(fake_cifar10):
    """T's ResNet18_adapt of base width k: 3x3 stem 3 -> k, stages k..8k, features 8k,
    fc(8k -> 10); --ETF_fc/--fixdim/--SOTA do not apply to it."""
    args = parse('--dataset cifar10_random --model ResNet18_adapt --width 4 --depth 2 '
                 '--data_dir %s' % fake_cifar10)
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape)
    stem = [m for m in model.modules() if isinstance(m, nn.Conv2d)][0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (3, 4, (3, 3), (1, 1))
    assert (model.fc.in_features, model.fc.out_features) == (32, 10)
    model.eval()
    images = data.train.normalise(data.train.images[:3])
    with torch.no_grad():
        logits, returned = model(images)
    assert logits.shape == (3, 10) and returned.shape == (3, 32)
    assert torch.allclose(returned.norm(dim=1), torch.ones(3), atol=1e-5)
