"""The measures of nc_measures through NeuralCollapse.compute(): each against a slow, literal
float64 reference written from its paper's definition (hypothesis over K, D, counts, absent
classes, features far from the origin), the closed forms of a simplex ETF and an orthogonal
frame, and the reasons given for undefined values."""
import math

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from nc_repro import frames, nc_measures, recipes
from nc_repro.metrics import NeuralCollapse

RIESZ_S = 1.0


def literal_reference(h, y, W, b, ood, conventions, present):
    """Every measure by its definition, with per-class and per-pair loops in numpy float64."""
    labels = [k for k in range(W.shape[0]) if present[k]]
    K, N, D = len(labels), len(y), h.shape[1]
    means = np.array([h[y == k].mean(0) for k in labels])
    counts = np.array([np.sum(y == k) for k in labels])
    variances = np.array([np.mean(np.sum((h[y == k] - means[i]) ** 2, 1)) for i, k in enumerate(labels)])
    mu_G = h.mean(0) if conventions.global_mean == 'sample' else means.mean(0)
    centred = means - mu_G
    W_seen = W[labels]
    W_rows = W_seen - W_seen.mean(0) if conventions.center_classifier else W_seen
    sigma_w = sum(np.outer(h[i] - means[labels.index(y[i])], h[i] - means[labels.index(y[i])]) for i in range(N)) / N
    weights = counts / N if conventions.between_weights == 'counts' else np.full(K, 1 / K)
    sigma_b = sum(weights[k] * np.outer(centred[k], centred[k]) for k in range(K))
    eigenvalues, vectors = np.linalg.eigh(sigma_b)
    top = np.argsort(eigenvalues)[::-1][:min(K - 1, D)]
    ref = {'NC1_collapse_metric': np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-12)) / K,
           'NC1_svd': sum(vectors[:, i] @ sigma_w @ vectors[:, i] / eigenvalues[i] for i in top) / K,
           'NC1_trace_ratio': np.trace(sigma_w) / np.trace(sigma_b)}
    if D <= K - 1:     # Sigma_B of full rank: the pinv cut-off keeps every direction
        ref['NC1_pinv'] = np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=D * np.finfo(float).eps)) / K
    pairs = [(k, l) for k in range(K) for l in range(K) if k != l]
    ref['CDNV'] = np.mean([(variances[k] + variances[l]) / (2 * np.sum((means[k] - means[l]) ** 2))
                           for k, l in pairs])
    for name, X in (('means', centred), ('W', W_rows)):
        norms = np.linalg.norm(X, axis=1)
        ref['equinorm_' + name] = np.std(norms, ddof=1) / np.mean(norms)
        unit = X / norms[:, None]
        cosines = [unit[k] @ unit[l] for k, l in pairs]
        distances = [np.linalg.norm(unit[k] - unit[l]) for k, l in pairs]
        ref['equiangularity_' + name] = np.std(cosines, ddof=1) if len(pairs) > 1 else float('nan')
        ref['max_angle_' + name] = np.mean([abs(c + 1 / (K - 1)) for c in cosines])
        ref['GNC2_log_' + name] = np.mean([np.log(1 / r) for r in distances])
        ref['GNC2_riesz_' + name] = np.mean([r ** -RIESZ_S for r in distances])
    ref['self_duality'] = np.linalg.norm(W_rows / np.linalg.norm(W_rows) - centred / np.linalg.norm(centred)) ** 2
    duality = np.array([W_rows[k] @ centred[k] / (np.linalg.norm(W_rows[k]) * np.linalg.norm(centred[k]))
                        for k in range(K)])
    ref['UNC3'] = np.std(duality, ddof=1) / np.mean(duality)
    ood_mean = ood.mean(0)
    ref['NC5_ood_orthogonality'] = np.mean([abs(m @ ood_mean) / (np.linalg.norm(m) * np.linalg.norm(ood_mean))
                                            for m in means])
    nearest = np.array([labels[int(np.argmin([np.linalg.norm(x - m) for m in means]))] for x in h])
    decisions = (h @ W.T + conventions.bias_sign * b).argmax(1)
    ref['NC4_ncc_mismatch'] = np.mean(nearest != decisions)
    ref['NCC_accuracy'] = np.mean(nearest == y)
    ref['per_class.nc1_contribution'] = [
        counts[i] / N * np.trace(np.cov((h[y == k] - means[i]).T, bias=True).reshape(D, D)
                                 @ np.linalg.pinv(sigma_b, rcond=1e-12)) / K for i, k in enumerate(labels)]
    ref['per_class.cdnv_row_mean'] = [np.mean([(variances[k] + variances[l]) / (2 * np.sum((means[k] - means[l]) ** 2))
                                               for l in range(K) if l != k]) for k in range(K)]
    ref['per_class.ncc_mismatch'] = [np.mean((nearest != decisions)[y == k]) for k in labels]
    ref['per_class.duality_cosine'] = list(duality)
    return ref


def problem(seed, K_all, D, counts, offset, spread=1.0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts) if n > 0])
    means = torch.randn(K_all, D, generator=generator, dtype=torch.float64) * 3 + offset
    features = means[labels] + spread * torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    W = torch.randn(K_all, D, generator=generator, dtype=torch.float64)
    b = torch.randn(K_all, generator=generator, dtype=torch.float64)
    ood = torch.randn(9, D, generator=generator, dtype=torch.float64) + 1.0
    return features, labels, W, b, ood


def computed(features, labels, W, b, ood, convention, batch=5, tile=3):
    """Streamed in a shuffled order, pairwise tiles of 3 x 3, a second pass for NC4."""
    nc = NeuralCollapse(W.shape[0], keep_features=False)
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(7))
    for chunk in order.split(batch):
        nc.update(features[chunk], labels[chunk])
    nc.update_ood(ood)
    again = [(features[chunk], labels[chunk]) for chunk in order.split(batch)]
    return nc.compute(W, b, convention, per_class=True, nc1_variants=('svd', 'pinv', 'trace'), tile=tile,
                      riesz_s=RIESZ_S, second_pass=again)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10 ** 6), K_all=st.integers(2, 6), D=st.integers(2, 8),
       counts=st.lists(st.integers(0, 9), min_size=6, max_size=6), offset=st.sampled_from([0.0, 50.0, 1e4]),
       convention=st.sampled_from(['zhou2022', 'dang2023', 'hong2023']))
def test_every_measure_agrees_with_its_literal_definition(seed, K_all, D, counts, offset, convention):
    counts = [max(n, 2) if k < 2 else n for k, n in enumerate(counts[:K_all])]    # two classes at least
    features, labels, W, b, ood = problem(seed, K_all, D, counts, offset)
    present = np.array(counts) > 0
    result = computed(features, labels, W, b, ood, convention)
    reference = literal_reference(features.numpy(), labels.numpy(), W.numpy(), b.numpy(), ood.numpy(),
                                  recipes.conventions(convention), present)
    tolerance = 1e-7 if offset > 100 else 1e-9
    for key, expected in reference.items():
        value = result['per_class'][key.split('.')[1]] if key.startswith('per_class.') else result[key]
        if isinstance(expected, list):
            assert value == pytest.approx(expected, rel=tolerance, abs=1e-12, nan_ok=True), key
        elif math.isnan(expected):
            assert math.isnan(value) and key in result['reasons'], key
        else:
            assert value == pytest.approx(expected, rel=tolerance, abs=1e-12), key
    assert sum(result['per_class']['nc1_contribution']) == pytest.approx(result['NC1_collapse_metric'], rel=1e-12)


def test_nc1_pinv_with_more_dimensions_than_classes():
    features, labels, W, b, ood = problem(3, 4, 20, [10, 12, 8, 15], 0.0)
    result = computed(features, labels, W, b, ood, 'dang2023')
    reference = literal_reference(features.numpy(), labels.numpy(), W.numpy(), b.numpy(), ood.numpy(),
                                  recipes.conventions('dang2023'), np.ones(4, bool))
    pinv = np.trace(_sigma_w(features, labels) @ np.linalg.pinv(_sigma_b(features, labels), rcond=20 * np.finfo(float).eps)) / 4
    assert result['NC1_pinv'] == pytest.approx(pinv, rel=1e-9)
    assert result['NC1_pinv'] == pytest.approx(reference['NC1_collapse_metric'], rel=1e-9)


def _sigma_w(features, labels):
    h, y = features.numpy(), labels.numpy()
    return sum(np.cov(h[y == k].T, bias=True) * np.sum(y == k) for k in np.unique(y)) / len(y)


def _sigma_b(features, labels):
    h, y = features.numpy(), labels.numpy()
    means = np.array([h[y == k].mean(0) for k in np.unique(y)])
    centred = means - h.mean(0)
    return centred.T @ centred / len(means)


# ---- closed forms ----------------------------------------------------------------------

def test_a_perfect_simplex_etf_gives_the_closed_forms():
    K, D = 6, 9
    etf = frames.simplex_etf(K, D).double()
    labels = torch.arange(K).repeat(4)
    nc = NeuralCollapse(K)
    nc.update(5.0 * etf[labels], labels)
    result = nc.compute(etf, None, 'zhou2022', per_class=True, nc1_variants=('svd', 'pinv'))
    for key in ('NC1_collapse_metric', 'NC1_svd', 'NC1_pinv', 'NC1_trace_ratio', 'CDNV', 'NC2_ETF_W', 'NC2_ETF_H',
                'equinorm_means', 'equinorm_W', 'equiangularity_means', 'equiangularity_W', 'max_angle_means',
                'max_angle_W', 'NC3_ETF_WH', 'self_duality', 'UNC3', 'NC4_ncc_mismatch'):
        assert result[key] == pytest.approx(0, abs=1e-12), key
    r2 = 2 * K / (K - 1)                                         # squared distance of ETF unit vectors
    for name in ('means', 'W'):
        assert result['GNC2_log_' + name] == pytest.approx(-0.5 * math.log(r2), rel=1e-12)
        assert result['GNC2_riesz_' + name] == pytest.approx(r2 ** -0.5, rel=1e-12)
    assert result['NCC_accuracy'] == 1.0
    assert result['per_class']['duality_cosine'] == pytest.approx([1.0] * K, rel=1e-12)
    assert set(result['reasons']) == {'GNC2_log_means', 'GNC2_log_W'}      # negative by definition, said so


def test_an_orthogonal_frame_gives_zero_frame_measures():
    K = 4
    labels = torch.arange(K).repeat(3)
    nc = NeuralCollapse(K)
    nc.update(2.0 * torch.eye(K, dtype=torch.float64)[labels], labels)
    result = nc.compute(torch.eye(K), None, 'dang2023')
    for key in ('NC1_collapse_metric', 'CDNV', 'NC2_Identity_W', 'NC2_GOF_W', 'NC2_GOF_H', 'NC3_GOF_WH',
                'NC3_Identity_WH', 'equinorm_W', 'NC4_ncc_mismatch'):
        assert result[key] == pytest.approx(0, abs=1e-12), key
    assert result['NC2_Identity_H'] == pytest.approx(0, abs=1e-12)      # equal lengths: identity up to scale
    assert result['NC2_ETF_W'] > 0.1                                     # not an ETF


# ---- undefined values come with a reason ------------------------------------------------

def test_equal_class_means_make_nc1_nan_with_a_reason():
    nc = NeuralCollapse(3)
    nc.update(torch.randn(9, 4), torch.arange(3).repeat(3))
    nc.statistics.shifted_sums.zero_()
    nc.statistics.reference[:] = 1.0                                    # every class mean (1, 1, 1, 1)
    result = nc.compute(torch.randn(3, 4), None, 'dang2023')
    assert math.isnan(result['NC1_collapse_metric']) and 'Sigma_B = 0' in result['reasons']['NC1_collapse_metric']
    assert math.isnan(result['CDNV']) and 'same mean' in result['reasons']['CDNV']


def test_a_zero_classifier_row_and_coincident_means_are_named():
    features, labels, W, b, _ = problem(1, 4, 5, [5, 5, 5, 5], 0.0)
    features[labels == 3] = features[labels == 2]                         # classes 2 and 3 coincide
    W[1] = 0
    nc = NeuralCollapse(4, keep_features=False)
    nc.update(features, labels)
    result = nc.compute(W, b, 'dang2023', per_class=True)
    assert math.isnan(result['CDNV']) and 'class 2' in result['reasons']['CDNV']
    assert math.isnan(result['equiangularity_W']) and 'row 1' in result['reasons']['equiangularity_W']
    assert math.isnan(result['UNC3']) and 'zero' in result['reasons']['UNC3']
    assert math.isnan(result['per_class']['nc1_contribution'][0])
    assert 'second_pass' in result['reasons']['per_class.nc1_contribution']
    assert 'NC4_ncc_mismatch' not in result


def test_nc1_svd_of_a_rank_deficient_sigma_b_is_nan_with_a_reason():
    K, D = 4, 6
    labels = torch.arange(K).repeat(5)
    means = torch.tensor([[0.0] * D, [1.0] + [0.0] * (D - 1), [2.0] + [0.0] * (D - 1), [0, 1.0] + [0.0] * (D - 2)])
    nc = NeuralCollapse(K)
    nc.update(means[labels] + 0.01 * torch.randn(len(labels), D), labels)
    nc.statistics.shifted_sums.zero_()       # exact means: 3 classes on a line, Sigma_B of rank 2 < K-1
    nc.statistics.reference[:] = means.double()
    result = nc.compute(torch.randn(K, D), None, 'dang2023', nc1_variants=('svd',))
    assert math.isnan(result['NC1_svd']) and 'rank below K-1' in result['reasons']['NC1_svd']
    assert math.isfinite(result['NC1_collapse_metric'])


# ---- tiles, dense limit, second pass ----------------------------------------------------

def test_tiles_and_the_cdnv_matrix_give_the_untiled_values():
    features, labels, W, b, _ = problem(2, 7, 5, [4, 6, 3, 8, 5, 9, 2], 20.0)
    nc = NeuralCollapse(7)
    nc.update(features, labels)
    whole = nc.compute(W, b, 'dang2023', tile=4096, cdnv_matrix=True, per_class=True)
    tiled = nc.compute(W, b, 'dang2023', tile=2)
    for key in ('CDNV', 'GNC2_log_means', 'GNC2_riesz_W', 'equiangularity_means', 'max_angle_W'):
        assert tiled[key] == pytest.approx(whole[key], rel=1e-13), key
    matrix = whole['CDNV_matrix']
    assert torch.isnan(matrix.diagonal()).all() and torch.allclose(matrix, matrix.T, equal_nan=True)
    assert float(matrix.nan_to_num().sum()) / (7 * 6) == pytest.approx(whole['CDNV'], rel=1e-13)
    assert whole['per_class']['cdnv_row'][3][:3] == pytest.approx(matrix[3, :3].tolist())


def test_above_the_dense_limit_no_k_by_k_frame_is_formed():
    features, labels, W, b, _ = problem(4, 5, 3, [4] * 5, 0.0)
    nc = NeuralCollapse(5)
    nc.update(features, labels)
    result = nc.compute(W, b, 'dang2023', dense_limit=4)
    assert math.isnan(result['NC2_ETF_W']) and 'dense_limit' in result['reasons']['NC2_ETF_W']
    assert math.isfinite(result['CDNV']) and math.isfinite(result['GNC2_log_means'])


def test_a_second_pass_equals_the_kept_features_and_checks_the_data():
    features, labels, W, b, _ = problem(5, 4, 6, [5, 9, 7, 11], 30.0)
    kept, streamed = NeuralCollapse(4), NeuralCollapse(4, keep_features=False)
    for chunk in torch.arange(len(labels)).split(6):
        kept.update(features[chunk].float(), labels[chunk])
        streamed.update(features[chunk].float(), labels[chunk])
    batches = [(features[c].float(), labels[c]) for c in torch.arange(len(labels)).split(6)]
    a = kept.compute(W, b, 'hong2023', per_class=True)
    c = streamed.compute(W, b, 'hong2023', per_class=True, second_pass=batches)
    assert a['NC4_ncc_mismatch'] == c['NC4_ncc_mismatch'] and a['NCC_accuracy'] == c['NCC_accuracy']
    assert a['per_class']['nc1_contribution'] == pytest.approx(c['per_class']['nc1_contribution'], rel=1e-12)
    with pytest.raises(ValueError, match='second_pass gave 6 samples'):
        streamed.compute(W, b, 'hong2023', second_pass=batches[:1])


def test_the_bias_sign_of_a_convention_changes_the_decisions():
    features, labels, W, _, _ = problem(6, 3, 4, [6, 6, 6], 0.0)
    b = torch.tensor([50.0, 0.0, 0.0], dtype=torch.float64)
    nc = NeuralCollapse(3)
    nc.update(features, labels)
    plus = recipes.conventions('dang2023')
    minus = recipes.Conventions(*[getattr(plus, f) for f in ('global_mean', 'between_weights', 'nc1_divide_by_K',
                                                                'center_classifier', 'pinv')], bias_sign=-1)
    assert nc.compute(W, b, plus)['NC4_ncc_mismatch'] == pytest.approx(2 / 3)     # class 0 always chosen
    assert nc.compute(W, b, minus)['NC4_ncc_mismatch'] != pytest.approx(2 / 3)


def test_papyan_helpers_equal_the_pairwise_pass():
    X = torch.randn(6, 4, dtype=torch.float64)
    cosines = torch.nn.functional.normalize(X, dim=1) @ torch.nn.functional.normalize(X, dim=1).T
    off = cosines[~torch.eye(6, dtype=torch.bool)]
    assert nc_measures.equiangularity(X) == pytest.approx(float(off.std()), rel=1e-12)
    assert nc_measures.max_angle(X) == pytest.approx(float((off + 0.2).abs().mean()), rel=1e-12)


# ---- several layers of any model in one pass --------------------------------------------

def test_multilayer_measures_named_layers_of_any_module_in_one_forward_pass():
    from nc_repro.metrics import MultiLayer, layer_inputs
    torch.manual_seed(0)
    model = torch.nn.Sequential()
    model.add_module('conv', torch.nn.Conv2d(1, 4, 3, padding=1))
    model.add_module('relu', torch.nn.ReLU())
    model.add_module('flat', torch.nn.Flatten())
    model.add_module('fc', torch.nn.Linear(4 * 5 * 5, 3))
    images, labels = torch.randn(30, 1, 5, 5), torch.arange(30) % 3
    batches = list(zip(images.split(7), labels.split(7)))
    calls = []
    model.register_forward_hook(lambda *args: calls.append(1))
    ml = MultiLayer(3, ['relu', 'fc'])
    for features, y, _ in layer_inputs(model, ml.layers, batches, spatial='mean'):
        ml.update(features, y)
    assert len(calls) == len(batches)                                    # one forward per batch
    measured = ml.compute()
    with torch.no_grad():
        conv_maps = model.conv(images)                                   # input of relu: (30, 4, 5, 5)
        single = NeuralCollapse(3)
        single.update(conv_maps.mean((2, 3)), labels)
        expected = single.compute(None, as_coded=False)
        fc_input = torch.relu(conv_maps).flatten(1)
        last = NeuralCollapse(3)
        last.update(fc_input, labels)
        expected_fc = last.compute(model.fc.weight, model.fc.bias)
    for key in ('NC1_collapse_metric', 'CDNV', 'NCC_accuracy'):
        assert measured['relu'][key] == pytest.approx(expected[key], rel=1e-6), key
        assert measured['fc'][key] == pytest.approx(expected_fc[key], rel=1e-6), key
    assert set(measured['fc']) >= {'NC1_collapse_metric', 'NC1_trace_ratio', 'CDNV', 'NCC_accuracy', 'reasons'}
    with pytest.raises(ValueError, match="no layer 'layer9'"):
        list(layer_inputs(model, ['fc', 'layer9'], batches))
