"""Compatibility with the original Dang et al. codes: NC1 as they computed it (float32, SciPy's
pseudo-inverse), the 2024 validator's stale-feature NC1, checkpoints in their key layout, and
their initial weights for a given seed.

ORIGINAL_MODELS (below; tests/data/original_models_init.json or $NC_ORIGINAL_MODELS_JSON) is a
file of the original models' state-dict keys, shapes and initial float64 sums / sums of squares
after torch.manual_seed(1); tests that need it skip without it."""
import json
import os
import pickle

import numpy as np
import pytest
import scipy.linalg
import torch

import args as cli
import models
from nc_repro import checkpoints, nc_measures, nc_statistics, recipes, run_dirs, theory
import validate_NC
from nc_repro import validation
from models.mlp import DeepLinearMLP
from models.resnet import ResNet18
from models.vgg import VGG16

ORIGINAL_MODELS = os.environ.get('NC_ORIGINAL_MODELS_JSON', os.path.join(
    os.path.dirname(os.path.abspath(__file__)), 'data', 'original_models_init.json'))
D23 = recipes.conventions('dang2023')


def original_models():
    if not os.path.exists(ORIGINAL_MODELS):
        pytest.skip('no file of the original models at %s' % ORIGINAL_MODELS)
    with open(ORIGINAL_MODELS) as f:
        return json.load(f)['models']


def listed_names():
    if not os.path.exists(ORIGINAL_MODELS):
        return ['(file missing)']
    with open(ORIGINAL_MODELS) as f:
        return list(json.load(f)['models'])


def literal_nc1(features, labels, K, sigma_w_features=None):
    """NC1 as the originals' validators computed it, literally: float32 class sums divided by
    the counts, a float32 Sigma_W summed one outer product per sample (features of the Sigma_W
    pass may differ: sigma_w_features), Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T with
    the sample mean mu_G, then trace(Sigma_W @ scipy.linalg.pinv(Sigma_B)) / K, all float32."""
    X = np.asarray(features, dtype=np.float32)
    S = X if sigma_w_features is None else np.asarray(sigma_w_features, dtype=np.float32)
    y = np.asarray(labels)
    N, D = X.shape
    mu_G = np.zeros(D, np.float32)
    sums = np.zeros((K, D), np.float32)
    for i in range(N):
        mu_G += X[i]
        sums[y[i]] += X[i]
    mu_G /= np.float32(N)
    means = sums / np.bincount(y, minlength=K).astype(np.float32)[:, None]
    sigma_w = np.zeros((D, D), np.float32)
    for i in range(N):
        z = (S[i] - means[y[i]])[:, None]
        sigma_w += z @ z.T
    sigma_w /= np.float32(N)
    sigma_b = np.zeros((D, D), np.float32)
    for k in range(K):
        z = (means[k] - mu_G)[:, None]
        sigma_b += z @ z.T
    sigma_b /= np.float32(K)
    return float(np.trace(sigma_w @ scipy.linalg.pinv(sigma_b)) / K)


def clustered(K=6, D=24, per_class=(40, 30, 50, 20, 60, 35), spread=0.3, seed=0, collapse=None):
    """Gaussian classes; collapse=eps puts the last class's sample mean at the mean of the
    others' plus eps times noise (a tiny between-class direction, as in minority collapse)."""
    g = torch.Generator().manual_seed(seed)
    centres = 3 * torch.randn(K, D, generator=g, dtype=torch.float64)
    if collapse is not None:
        centres[-1] = centres[:-1].mean(0) + collapse * torch.randn(D, generator=g, dtype=torch.float64)
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(per_class)])
    features = centres[labels] + spread * torch.randn(len(labels), D, generator=g, dtype=torch.float64)
    if collapse is not None:       # the last class's sample mean: the others' sample means' mean + eps
        last = labels == K - 1
        others = torch.stack([features[labels == k].mean(0) for k in range(K - 1)]).mean(0)
        features[last] += others + collapse * torch.randn(D, generator=g, dtype=torch.float64) - features[last].mean(0)
    return features.float(), labels


@pytest.mark.parametrize('collapse', [None, 0.5])
def test_as_coded_nc1_matches_literal_float32_scipy(collapse):
    features, labels = clustered(collapse=collapse)
    stats = nc_statistics.ClassStatistics.from_features(features, labels, 6)
    result = nc_measures.nc1(stats, D23)
    literal = literal_nc1(features, labels, 6)
    assert result['nc1_as_coded'] == pytest.approx(literal, rel=1e-4)
    assert result['nc1'] == pytest.approx(literal, rel=1e-3)       # well separated: all agree


def test_as_coded_nc1_drops_a_tiny_direction_as_the_literal_code():
    """Near a degenerate Sigma_B the float32 pinv drops the tiny direction: the as-coded value
    follows the literal computation and both lie orders of magnitude below the exact NC1."""
    features, labels = clustered(collapse=1e-4, spread=0.3)
    stats = nc_statistics.ClassStatistics.from_features(features, labels, 6)
    result = nc_measures.nc1(stats, D23)
    literal = literal_nc1(features, labels, 6)
    assert result['nc1_as_coded'] == pytest.approx(literal, rel=1e-2)
    assert result['nc1'] > 100 * literal


def tiny_pass(model, n_train=(30, 20, 25, 15, 35, 20, 25, 30, 20, 30), n_test=80, seed=0):
    """FeaturePasses of a model on random inputs, in loader order then grouped by class (as
    validation.feature_pass delivers them)."""
    g = torch.Generator().manual_seed(seed)

    def one(labels):
        x = torch.randn(len(labels), 64, generator=g)
        with torch.no_grad():
            model.eval()
            inputs, h = [], model.features(x)
            for layer in model.head_layers():
                inputs.append(h)
                h = layer(h)
        order = torch.argsort(labels, stable=True)
        return validation.FeaturePass([a[order] for a in inputs], h[order], labels[order], order)

    train_labels = torch.cat([torch.full((n,), k) for k, n in enumerate(n_train)])
    train_labels = train_labels[torch.randperm(len(train_labels), generator=g)]
    test_labels = torch.randint(0, 10, (n_test,), generator=g)
    return one(train_labels), one(test_labels)


def loader_order(fp):
    """(backbone features, labels) back in loader order."""
    inverse = torch.argsort(fp.order)
    return fp.layer_inputs[0][inverse], fp.labels[inverse]


def test_dang2023_info_holds_as_coded_nc1_at_every_head_layer():
    torch.manual_seed(0)
    model = DeepLinearMLP(64, 32, depth_relu=2, depth_linear=3, fc_bias=True)
    train, test = tiny_pass(model)
    metrics = validation.dang_balanced_metrics(model, train, test, 10, D23)
    assert len(metrics['per_layer']['NC1_collapse_metric_as_coded']) == 3
    assert metrics['per_layer']['NC1_collapse_metric_as_coded'][0] == metrics['NC1_collapse_metric_as_coded']
    for layer, features in enumerate(train.layer_inputs):
        literal = literal_nc1(features, train.labels, 10)
        assert metrics['per_layer']['NC1_collapse_metric_as_coded'][layer] == pytest.approx(literal, rel=1e-4)


@pytest.mark.parametrize('stale', [False, True])
def test_dang2024_as_coded_nc1_and_stale_features(stale, tmp_path):
    torch.manual_seed(0)
    model = DeepLinearMLP(64, 32, depth_relu=2, depth_linear=1, fc_bias=False, batchnorm=False,
                          relu_features=True)
    counts = [30, 20, 25, 15, 35, 20, 25, 30, 20, 30]
    train, test = tiny_pass(model, counts, n_test=100)
    targets = theory.d24_targets(counts, 1e-4, 1e-4)
    metrics = validation.dang2024_metrics(model, train, test, 10, recipes.conventions('dang2024'),
                                          targets, counts, str(tmp_path), stale_features=stale)
    h, y = loader_order(train)
    seen = h.clone()
    if stale:   # the Sigma_W pass's first batch of 64 holds the first 64 test features
        seen[:64] = loader_order(test)[0][:64]
    literal = literal_nc1(h, y, 10, sigma_w_features=seen)
    assert metrics['NC1_as_coded'] == pytest.approx(literal, rel=1e-4)
    clean = literal_nc1(h, y, 10)
    assert metrics['NC1'] == pytest.approx(clean, rel=1e-3)
    if stale:
        assert metrics['NC1_as_coded'] != pytest.approx(clean, rel=1e-3)


def test_stale_flag_is_dang2024_only():
    with pytest.raises(SystemExit):
        cli.parse(validate_NC.get_args_parser(), ['--model', 'MLP', '--dataset', 'digits', '--loss', 'MSE',
                                                  '--nc1_stale_features'], evaluation=True,
                  allowed=('zhou2022', 'dang2023'))


# ----------------------------------------------------------------------------------------
# checkpoints in the original layout, initial weights

def dang_model(name):
    """Our model for a listed original model name."""
    if 'MLP' in name:
        balanced = 'balanced' in name and 'imbalanced' not in name
        return DeepLinearMLP(3072, int(name.split('hidden ')[1].split(',')[0]), 6,
                             int(name.split('depth_linear ')[1].split(',')[0].rstrip(')')),
                             fc_bias='no bias' not in name, batchnorm=balanced,
                             relu_features=name.startswith('dang2024'))
    hidden = int(name.split('hidden ')[1].split(',')[0])
    depth = int(name.split('depth_linear ')[1].split(',')[0].rstrip(')'))
    factory = ResNet18 if 'ResNet18' in name else VGG16
    return factory(hidden=hidden, depth_linear=depth, fc_bias='no bias' not in name, num_classes=10,
                   bn_features=not name.startswith('dang2024'))


def zhou_model(name):
    return models.ZHOU_RESNETS['resnet18'](num_classes=10, fc_bias=True, ETF_fc='ETF_fc True' in name,
                                           fixdim=10 if 'fixdim 10' in name else 0, SOTA='SOTA True' in name)


def build(name):
    return zhou_model(name) if name.startswith('zhou2022') else dang_model(name)


@pytest.mark.parametrize('name', [n for n in listed_names() if not n.startswith('zhou')])
def test_key_mapping_against_the_original_layout_both_ways(name):
    listed = original_models()
    assert len([n for n in listed if n.startswith('dang')]) == 8
    for name in [name]:
        model = build(name)
        ours = model.state_dict()
        layout = model.original_layout
        mapped = {checkpoints.original_key(key, layout): tuple(value.shape) for key, value in ours.items()}
        assert len(mapped) == len(ours), name                                   # no collisions
        assert mapped == {key: tuple(v['shape']) for key, v in listed[name].items()}, name
        original_state = {key: torch.zeros(v['shape']) for key, v in listed[name].items()}
        back = checkpoints.to_project_layout(original_state, model, 'x.pth')
        assert list(back) == list(ours), name                                   # original -> ours
        model.load_state_dict(back)
        assert checkpoints.to_project_layout(ours, model, 'x.pth').keys() == ours.keys()


def test_a_key_of_neither_layout_is_named():
    model = ResNet18(hidden=512)
    state = dict(model.state_dict())
    state['stem.weight'] = state.pop('body.conv1.weight')
    with pytest.raises(checkpoints.ForeignKey, match=r"run/epoch_001\.pth .*'stem\.weight'"):
        checkpoints.to_project_layout(state, model, 'run/epoch_001.pth')


def orthogonal_tensor(key, model):
    """Weights that orthogonal_ set (their values come from a QR factorisation)."""
    if not isinstance(model, DeepLinearMLP) or not key.endswith('weight') or key.startswith(('batch_norm', 'intermediate')):
        return False
    if key.startswith('fc.'):
        return True
    index = int(key.split('.')[1])
    return index < 6 and isinstance(model.layers[index], torch.nn.Linear)


@pytest.mark.parametrize('name', listed_names())
def test_initial_weights_equal_the_originals_after_manual_seed_1(name):
    """Every listed model. Tensors drawn directly (uniform, normal, constants) agree to 1e-9
    relative. Orthogonal weights are a QR factorisation of the drawn normal matrix, whose last
    float32 bits depend on the LAPACK build and thread count: their sums agree to 2e-3 absolute
    (a wrong draw order moves a sum by units) and their sums of squares to 1e-6 relative."""
    for name, reference in [(name, original_models()[name])]:
        torch.manual_seed(1)
        model = build(name)
        state = model.state_dict()
        ours = checkpoints.to_project_layout({key: key for key in reference}, model, name)
        assert len(ours) == len(state) == len(reference), name
        for key, original in ours.items():
            expected, value = reference[original], state[key].double()
            total, squares = float(value.sum()), float((value ** 2).sum())
            if orthogonal_tensor(key, model):
                assert abs(total - expected['sum']) < 2e-3, (name, key, total, expected['sum'])
                assert squares == pytest.approx(expected['sumsq'], rel=1e-6), (name, key)
            else:
                scale = max(abs(expected['sum']), expected['sumsq'] ** 0.5)
                assert abs(total - expected['sum']) <= 1e-9 * scale, (name, key, total, expected['sum'])
                assert squares == pytest.approx(expected['sumsq'], rel=1e-9, abs=0), (name, key)


RESNET = ['--model', 'ResNet18', '--dataset', 'digits', '--sample_size', '2', '--depth_linear', '1',
          '--width', '16', '--seed', '1', '--loss', 'MSE', '--lr', '0.001', '--optimizer', 'Adam',
          '--epochs', '1', '--batch_size', '64']


def validate_in(folder, state, monkeypatch):
    """Write ``state`` as epoch 1 of the RESNET run under ``folder`` and validate it there."""
    monkeypatch.chdir(folder)
    args = cli.parse(validate_NC.get_args_parser(), RESNET, evaluation=True, allowed=('zhou2022', 'dang2023'))
    run_dir = run_dirs.run_dir(cli.run_settings(args))
    os.makedirs(run_dir)
    torch.save(state, checkpoints.checkpoint_path(run_dir, 1))
    validate_NC.main(args)
    with open(os.path.join(run_dir, 'info.pkl'), 'rb') as f:
        return pickle.load(f)


@pytest.mark.slow
def test_resnet18_checkpoint_in_the_original_layout_validates_the_same(tmp_path, monkeypatch):
    torch.manual_seed(3)
    model = ResNet18(hidden=16)
    with torch.no_grad():      # BatchNorm statistics away from their defaults
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d) or isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    ours = model.state_dict()
    theirs = {checkpoints.original_key(key, model.original_layout): value for key, value in ours.items()}
    assert 'conv1.weight' in theirs and 'body.conv1.weight' not in theirs
    (tmp_path / 'ours').mkdir()
    (tmp_path / 'theirs').mkdir()
    first = validate_in(tmp_path / 'ours', ours, monkeypatch)
    second = validate_in(tmp_path / 'theirs', theirs, monkeypatch)
    assert first.keys() == second.keys()
    for key in first:
        if isinstance(first[key], dict):
            assert first[key] == second[key], key
        else:
            for a, b in zip(first[key], second[key]):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=key)
    assert 'NC1_collapse_metric_as_coded' in first


@pytest.mark.parametrize('model_flag, listed', [
    ('ResNet18', 'dang2023 ResNet18 (hidden 512, depth_linear 1, bias)'),
    ('VGG16', 'dang2023 VGG16 (hidden 512, depth_linear 1, bias)')])
def test_epoch_checkpoints_are_written_in_the_original_layout(model_flag, listed, tmp_path, monkeypatch):
    """A trained Dang ResNet18 / VGG16 writes epoch_001.pth under the original code's key names
    and shapes (so its validate_NC.py loads it with strict=True; the width does not enter at
    depth_linear 1), resume.pth keeps ours, and our model loads either layout."""
    import train_1st_order
    reference = original_models()[listed]
    monkeypatch.chdir(tmp_path)
    flags = [flag if flag != 'ResNet18' else model_flag for flag in RESNET]
    train_1st_order.main(cli.parse(train_1st_order.get_args_parser(), flags))
    run_dir = run_dirs.run_dir(cli.run_settings(cli.parse(validate_NC.get_args_parser(), flags, evaluation=True,
                                                      allowed=('zhou2022', 'dang2023'))))
    saved = checkpoints.load_state_dict(checkpoints.checkpoint_path(run_dir, 1))
    assert {key: list(value.shape) for key, value in saved.items()} == \
        {key: entry['shape'] for key, entry in reference.items()}
    model = models.build_model(cli.parse(cli.get_train_parser(), flags), 10, (3, 32, 32))
    resume = torch.load(os.path.join(run_dir, 'resume.pth'), weights_only=False)['model']
    assert list(resume) == list(model.state_dict())                  # the project's names
    model.load_state_dict(saved)                                     # the original's names
    for key, value in model.state_dict().items():
        assert torch.equal(value, resume[key]), key
    with pytest.raises(RuntimeError, match='Unexpected key'):
        model.load_state_dict(dict(saved, extra=torch.zeros(1)))     # strict as ever
