"""Hong & Ling 2023 scripts: schedule, class patterns, the analysis formulas of Hong's ana_utils.py and main scripts against
slow references, and each script end to end on digits (tiny width, two epochs)."""
import glob
import json
import os
import pickle
import shutil

import numpy as np
import pytest
import torch

import block_main
import limit_main
import minority_l_main
import minority_n_main
import models
from conftest import ROOT, run_script
import hong_args
import hong_runs
from nc_repro import hong_analysis, nc_statistics, theory, training


# ---------------------------------------------------------------------------------------
# schedule and class patterns (Hong's scripts and train_utils.py loops)

@pytest.mark.parametrize('loop, epochs, switch', [('batch', 1000, 333), ('batch_2', 2000, 666),
                                                  ('warm', 2000, 1333), ('batch', 40, 13), ('warm', 40, 26)])
def test_effective_lr_drops_to_a_tenth_at_the_second_milestone(loop, epochs, switch):
    factor = hong_analysis.effective_lr_factor(loop, epochs)
    assert factor(0) == factor(switch - 1) == 1.0
    assert factor(switch) == factor(epochs - 1) == 0.1


def test_coinciding_milestones_never_switch_as_the_elif_does():
    factor = hong_analysis.effective_lr_factor('batch', 2)        # int(2/6) == int(2/3) == 0
    assert factor(0) == factor(1) == 1.0


def test_class_patterns():
    assert block_main.structure_counts(1) == [5000] * 4 + [4000] * 3 + [3000] * 3
    assert block_main.structure_counts(7) == [5000] * 4 + [3000] * 2 + [1000] * 4
    assert hong_analysis.two_cluster_counts(3, 500, 100) == [500] * 3 + [100] * 7
    assert hong_analysis.scaled_counts([5000, 1000, 7], 0.02) == [100, 20, 2]
    assert hong_analysis.lambdas_for_level(0.004, 0.01) == (0.0002, 0.02, 0.01)
    l_H, l_W, _ = hong_analysis.lambdas_for_level(0.0037, 0.01)
    assert 2 * np.sqrt(l_H * l_W) == pytest.approx(0.0037, rel=1e-12)


def test_limit_ratio_is_an_int_when_omitted_and_a_float_when_given():
    omitted = hong_args.parse(limit_main.get_args_parser(), [])
    given = hong_args.parse(limit_main.get_args_parser(), ['--ratio', '2'])
    assert 500 // omitted.ratio == 250 and isinstance(500 // omitted.ratio, int)
    assert str(500 // given.ratio) == '250.0' and str(given.ratio) == '2.0'


def test_quick_mode_and_bad_flags(tmp_path):
    args = hong_args.parse(block_main.get_args_parser(), ['--quick'])
    assert (args.dataset_t, args.network, args.width, args.depth, args.pool, args.epoch, args.lr, args.batch_size) == (
        'digits', 'MLP', hong_args.QUICK_MLP_WIDTH, 2, 4, block_main.QUICK_EPOCHS, 0.05, 128)
    assert hong_args.parse(limit_main.get_args_parser(), ['--quick']).epoch == hong_args.QUICK_EPOCHS == 300
    resnet = hong_args.parse(block_main.get_args_parser(), ['--quick', '--network', 'ResNet18', '--dataset_t', 'cifar10'])
    assert (resnet.dataset_t, resnet.width, resnet.pool) == ('digits', hong_args.QUICK_WIDTH, 1)
    paper = hong_args.parse(block_main.get_args_parser(), [])
    assert (paper.dataset_t, paper.network, paper.width, paper.epoch, paper.lr, paper.batch_size, paper.pool) == (
        'cifar10', 'ResNet18', 64, 1000, 0.01, 128, 1)
    assert hong_runs.network_suffix(paper) == '' and hong_runs.network_suffix(args) == '_width=128_depth=2_pool=4'
    assert block_main.save_dir_name(paper) == os.path.join('hong_results', 'models', '001_ResNet18_train_01')
    for script, flags, needle in [('block_main.py', ['--network', 'VGG19'], '--network VGG19'),
                                  ('minority_l_main.py', ['--ka', '9'], '--ka'),
                                  ('minority_n_main.py', ['--epoch', '0'], '--epoch'),
                                  ('limit_main.py', ['--dataset_t', 'mnist'], '--dataset_t mnist')]:
        result = run_script(script, *flags, cwd=tmp_path, check=False)
        assert result.returncode == 2 and needle in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and 'Traceback' not in result.stderr
    assert not os.path.exists(tmp_path / 'hong_results' / 'models')


# ---------------------------------------------------------------------------------------
# analysis (Hong's ana_utils.py and main scripts) against slow references

def test_nc1_agrees_with_the_pinv_formula():
    generator = torch.Generator().manual_seed(0)
    counts = [30, 30, 20, 20, 20, 10, 10, 10, 10, 10]
    labels = torch.repeat_interleave(torch.arange(10), torch.tensor(counts))
    features = torch.randn(len(labels), 24, generator=generator, dtype=torch.float64) + 3 * torch.randn(
        10, 24, generator=generator, dtype=torch.float64)[labels]
    H, y = features.numpy(), labels.numpy()
    N = len(y)
    global_mean = H.mean(0)
    means = np.stack([H[y == k].mean(0) for k in range(10)])
    within = sum((H[y == k] - means[k]).T @ (H[y == k] - means[k]) for k in range(10)) / N
    between = sum(counts[k] / N * np.outer(means[k] - global_mean, means[k] - global_mean) for k in range(10))
    reference = np.trace(within @ np.linalg.pinv(between, rcond=1e-10)) / 10
    stats = nc_statistics.ClassStatistics.from_features(features.float(), labels, 10)
    assert hong_analysis.hong_nc1(stats) == pytest.approx(reference, rel=1e-5)


def test_cosines_of_a_simplex_etf_are_minus_one_ninth():
    pre = 3.0 * (np.eye(10) - np.ones((10, 10)) / 10)
    assert hong_analysis.cosine_statistics(pre, 5) == pytest.approx((-1 / 9,) * 3, abs=1e-12)
    assert hong_analysis.cosine_statistics(pre, 3, faithful_b=False) == pytest.approx((-1 / 9,) * 3, abs=1e-12)


def test_cosine_statistics_use_rows_of_pre_transposed_and_the_faithful_b_indices():
    rng = np.random.default_rng(1)
    pre = rng.normal(size=(10, 10))
    C = np.array([[a @ b / np.linalg.norm(a) / np.linalg.norm(b) for b in pre.T] for a in pre.T])
    ka = 3
    A = np.mean([C[i, j] for i in range(ka) for j in range(i + 1, ka)])
    B_block = np.mean([C[i, j] for i in range(ka, 10) for j in range(i + 1, 10)])
    B_faithful = np.mean([C[ka + i, ka + j] for i in range(ka) for j in range(i + 1, ka)])
    AB = C[:ka, ka:].mean()
    assert hong_analysis.cosine_statistics(pre, ka) == pytest.approx((A, B_faithful, AB), rel=1e-12)
    assert hong_analysis.cosine_statistics(pre, ka, faithful_b=False) == pytest.approx((A, B_block, AB), rel=1e-12)


def test_minority_collapse_score():
    pre = np.diag(np.arange(1.0, 11.0))
    assert hong_analysis.minority_collapse_score(pre, 5) > 0.5
    pre[5:] = pre[5:].mean(0)                     # minority logit vectors identical
    assert hong_analysis.minority_collapse_score(pre, 5) == 0.0
    assert hong_analysis.minority_collapse_score(np.full((10, 10), 1e-7), 5) == 0.0      # Z = 0


def test_collapse_prediction_follows_the_thresholds():
    counts = hong_analysis.two_cluster_counts(5, 500, 100)
    below, between, above = 0.003, 0.004, 0.008       # lambda_MC = 0.00333, total = 0.00745
    assert 'no cluster collapses' in hong_analysis.collapse_prediction(counts, below)
    assert 'size [100] collapse' in hong_analysis.collapse_prediction(counts, between)
    assert 'total collapse (Z = 0)' in hong_analysis.collapse_prediction(counts, above)
    assert theory.hong_total_collapse_threshold(counts) == pytest.approx(np.sqrt(500) / 3000)


# ---------------------------------------------------------------------------------------
# the scripts end to end on digits (width 4, 2 epochs)

TINY = ['--dataset_t', 'digits', '--epoch', '2', '--width', '4']


def test_block_main_writes_checkpoints_nc1_and_figures_and_reruns(tmp_path):
    run_script('block_main.py', '--structure', '2', *TINY, cwd=tmp_path)
    save_dir = tmp_path / 'hong_results' / 'models' / '001_ResNet18_digits_train_02_width=4'
    assert sorted(p.name for p in save_dir.glob('model_epoch=*')) == ['model_epoch=1', 'model_epoch=2']
    with open(save_dir / 'within_class_vari.pickle', 'rb') as f:
        nc1 = pickle.load(f)
    assert sorted(nc1) == [1, 2] and all(np.isfinite(v) and v > 0 for v in nc1.values())
    for kind in ('NC1', 'Z'):
        for ext in ('png', 'pdf'):
            assert (tmp_path / 'hong_results' / 'plots' / ('001_ResNet18_digits_2_%s_plot.%s' % (kind, ext))).stat().st_size > 1000
    assert (tmp_path / 'hong_results' / 'data' / '001_data_2_digits.pt').exists()   # the dataset is in the cache name
    assert sorted(os.listdir(tmp_path)) == ['hong_results']                  # nothing outside the output root
    again = run_script('block_main.py', '--structure', '2', *TINY, cwd=tmp_path)
    assert 'trained model found' in again.stdout
    changed = run_script('block_main.py', '--structure', '2', *TINY[:-3], '3', '--width', '4', cwd=tmp_path, check=False)
    assert changed.returncode == 2 and 'other settings (epoch differ)' in changed.stderr


@pytest.mark.parametrize('script, flags, folders, figure', [
    ('minority_l_main.py', ['--ka', '5', '--reg_z_l', '0.0045', '0.0027'],
     ['003_ResNet18_ka=5_na=500_nb=100_l=0.0027_digits_width=4', '003_ResNet18_ka=5_na=500_nb=100_l=0.0045_digits_width=4'],
     '003_ResNet18_ka=5_nb=100_na=500_digits_width=4'),
    ('minority_n_main.py', ['--ka', '3', '--nalist', '100', '500'],
     ['002_ResNet18_ka=3_na=100_nb=100_l=0.005_digits_width=4', '002_ResNet18_ka=3_na=500_nb=100_l=0.005_digits_width=4'],
     '002_ResNet18_ka=3_nb=100_l=0.005_digits_width=4'),
])
def test_minority_scripts_write_logits_and_both_figures(tmp_path, script, flags, folders, figure):
    result = run_script(script, *flags, *TINY, cwd=tmp_path)
    for folder in folders:
        assert (tmp_path / 'hong_results' / 'models' / folder / 'network_weight').exists()
        assert np.load(tmp_path / 'hong_results' / 'models' / folder / 'z_data.npy').shape == (10, 10)
        assert np.load(tmp_path / 'hong_results' / 'models' / folder / 'b_data.npy').shape == (10,)
    for suffix in ('_z_comparison_plot', '_collapse_score'):
        assert (tmp_path / 'hong_results' / 'plots' / (figure + suffix + '.png')).stat().st_size > 1000
    assert 'convex program' in result.stdout and 'collapse' in result.stdout


def test_limit_main_writes_cosines_and_the_figure(tmp_path):
    run_script('limit_main.py', '--nalist', '500', '1000', *TINY, cwd=tmp_path)
    assert (tmp_path / 'hong_results' / 'models' / '004_ResNet18_ka=5_na=1000_r=2_digits_width=4' / 'z_data.npy').exists()
    with open(tmp_path / 'hong_results' / 'plots' / 'limit_digits_width=4.json') as f:
        record = json.load(f)
    assert record['nalist'] == [500, 1000] and len(record['A_B_AB']) == 2
    assert record['etf_cosine'] == pytest.approx(-1 / 9)
    for A, B, AB in record['convex_A_B_AB']:       # l N fixed at 0.1: the convex optimum is near the ETF
        assert abs(A + 1 / 9) < 0.05 and abs(B + 1 / 9) < 0.05 and abs(AB + 1 / 9) < 0.05
    z = np.load(tmp_path / 'hong_results' / 'models' / '004_ResNet18_ka=5_na=500_r=2_digits_width=4' / 'z_data.npy')
    expected = hong_analysis.cosine_statistics(z, 5)
    assert record['A_B_AB'][0] == pytest.approx(list(expected), rel=1e-9)
    assert (tmp_path / 'hong_results' / 'plots' / 'limit_digits_width=4.png').stat().st_size > 1000


# ---------------------------------------------------------------------------------------
# the quick MLP, the quick sweeps and the JSON records (not in the reference)

def test_mlp_trains_and_the_analysis_finds_its_head(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = hong_args.parse(minority_l_main.get_args_parser(), ['--quick', '--epoch', '40'])
    device = torch.device('cpu')
    training.set_seed(0)
    data = hong_runs.rendered_data(args, [20] * 10, 'mlp_test', device)
    model = hong_runs.train_model(args, data, hong_analysis.lambdas_for_level(0.001, 0.01), 0.0, 'warm', str(tmp_path / 'run'),
                                  hong_analysis.only_final, hong_analysis.final_weights_file, device)
    assert isinstance(model, models.HongMLP) and model.head_layers() == [model.classifier]
    assert model.classifier.bias is not None and model.classifier.in_features == hong_args.QUICK_MLP_WIDTH
    stats, accuracy = hong_analysis.class_statistics(model, data, device, with_accuracy=True)
    assert accuracy > 90
    pre = hong_analysis.logit_matrix(model, stats)
    with torch.no_grad():
        h = model.features(data.normalise(data.images)).double()
    means = torch.stack([h[data.labels == k].mean(0) for k in range(10)])
    assert np.allclose(pre, (means @ model.classifier.weight.detach().double().T).numpy(), atol=1e-4)
    assert np.allclose(model.classifier_bias().numpy(), model.classifier.bias.detach().numpy())
    assert torch.all(h >= 0)                        # features after the last ReLU, as the ResNet18's
    with torch.no_grad():
        logits, returned = model(data.normalise(data.images[:5]))
    assert logits.shape == (5, 10) and torch.equal(returned, model.features(data.normalise(data.images[:5])))


def test_build_hong_mlp_shapes():
    model = models.build_hong_model('MLP', 3, 10, width=16, depth=3, pool=2)
    assert [m.in_features for m in model.body if isinstance(m, torch.nn.Linear)] == [3 * 16 * 16, 16, 16]
    assert model(torch.zeros(2, 3, 32, 32))[0].shape == (2, 10)


def test_block_structure_measure():
    counts = [100] * 4 + [80] * 3 + [60] * 3
    assert hong_analysis.count_clusters(counts) == [0] * 4 + [1] * 3 + [2] * 3
    values = np.array([[-0.8, -0.6, -0.4], [-0.7, -0.5, -0.3], [-0.6, -0.4, -0.2]])
    cluster = hong_analysis.count_clusters(counts)
    pre = np.array([[values[cluster[k], cluster[j]] for j in range(10)] for k in range(10)])
    np.fill_diagonal(pre, 5.0)
    exact = hong_analysis.block_structure(pre, counts)
    assert exact['block_contrast'] == pytest.approx(0, abs=1e-12) and exact['between_rms'] > 0.1
    assert [c['count'] for c in exact['per_cluster']] == [100, 80, 60]
    noisy = hong_analysis.block_structure(pre + np.random.default_rng(0).normal(0, 1, (10, 10)), counts)
    assert noisy['block_contrast'] > 1


def test_quick_sweep_values_lie_on_both_sides_of_the_threshold():
    for ka in (5, 3):
        counts = hong_analysis.two_cluster_counts(ka, 500, 100)
        threshold = hong_analysis.minority_collapse_threshold(counts, ka)
        levels = minority_l_main.quick_levels(ka, 500, 100)
        ratios = [level / threshold for level in levels]
        assert sum(r < 0.95 for r in ratios) == 3 and sum(r > 1.1 for r in ratios) == 2 and len(ratios) == 5
        assert max(levels) < 0.85 * theory.hong_total_collapse_threshold(counts)
        nalist = minority_n_main.quick_nalist(ka, 100, 0.005)
        n_star = theory.hong_minority_n_star(ka, 10 - ka, 100, 0.005)
        assert sum(na < 0.95 * n_star for na in nalist) == 3 and sum(na > 1.1 * n_star for na in nalist) == 3
    assert minority_l_main.quick_levels(5, 500, 100)[0] == 0.002
    assert minority_n_main.quick_nalist(5, 100, 0.005) == [140, 200, 260, 380, 500, 700]


QUICK_TINY = ['--quick', '--epoch', '2']
SUFFIX = '_digits_width=128_depth=2_pool=4'
POINT_KEYS = {'value', 'class_counts', 'N', 'level', 'minority_threshold', 'level_over_threshold',
              'predicts_minority_collapse', 'total_collapse_level', 'predicts_total_collapse', 'network_score',
              'network_small', 'convex_score', 'convex_small', 'train_accuracy', 'network_logits_pre',
              'convex_logits_pre'}
SWEEP_KEYS = {'settings', 'quick', 'ka', 'values', 'small_cutoff', 'score_definition', 'points', 'swept',
              'network_matches_theory', 'convex_matches_theory', 'network_min_score_not_collapsed',
              'network_max_score_collapsed', 'convex_min_score_not_collapsed', 'convex_max_score_collapsed',
              'thresholds_in_swept_units', 'script'}


def test_block_main_quick_record(tmp_path):
    result = run_script('block_main.py', *QUICK_TINY, cwd=tmp_path)
    assert 'quick: dataset digits, network MLP' in result.stdout and 'lambda_H 2e-05, lambda_W 0.002' in result.stdout
    with open(tmp_path / 'hong_results' / 'plots' / '001_MLP_digits_1.json') as f:
        record = json.load(f)
    for key in ('nc1_epochs', 'nc1_values', 'nc1_first', 'nc1_last', 'nc1_drop', 'logits_pre', 'bias', 'class_counts',
                'clusters', 'block', 'convex_block', 'convex_logits_pre', 'level_l', 'train_accuracy', 'settings'):
        assert key in record, key
    assert record['nc1_epochs'] == [1, 2] and record['nc1_first'] == record['nc1_values'][0]
    assert np.array(record['logits_pre']).shape == (10, 10) and record['clusters'] == [0] * 4 + [1] * 3 + [2] * 3
    assert {'block_contrast', 'within_rms', 'between_rms', 'within_over_gap', 'per_cluster'} <= set(record['block'])
    assert record['convex_block']['block_contrast'] < 1e-3          # the optimum is exactly blocked
    assert (tmp_path / 'hong_results' / 'models' / ('001_MLP_digits_train_01_width=128_depth=2_pool=4') / 'model_epoch=2').exists()


@pytest.mark.parametrize('script, flags, stem', [
    ('minority_l_main.py', ['--ka', '5', '--reg_z_l', '0.002', '0.004'], '003_MLP_ka=5_nb=100_na=500'),
    ('minority_n_main.py', ['--ka', '3', '--nalist', '167', '767'], '002_MLP_ka=3_nb=100_l=0.005'),
])
def test_minority_quick_records(tmp_path, script, flags, stem):
    run_script(script, *QUICK_TINY, *flags, cwd=tmp_path)
    with open(tmp_path / 'hong_results' / 'plots' / (stem + SUFFIX + '.json')) as f:
        record = json.load(f)
    assert SWEEP_KEYS <= set(record) and record['quick'] and record['small_cutoff'] == hong_analysis.SMALL_SCORE
    assert [set(point) for point in record['points']] == [POINT_KEYS] * 2
    assert [p['predicts_minority_collapse'] for p in record['points']] == [False, True]
    assert record['convex_matches_theory'] is True
    for point in record['points']:
        assert point['minority_threshold'] == pytest.approx(
            hong_analysis.minority_collapse_threshold(point['class_counts'], record['ka']))


def test_limit_quick_record(tmp_path):
    result = run_script('limit_main.py', *QUICK_TINY, '--nalist', '500', '1000', cwd=tmp_path)
    assert 'l N held at 8 (quick)' in result.stdout
    with open(tmp_path / 'hong_results' / 'plots' / ('limit' + SUFFIX + '.json')) as f:
        record = json.load(f)
    assert record['nalist'] == [500, 1000] and record['ln_pro'] == 8 and record['etf_cosine'] == pytest.approx(-1 / 9)
    assert len(record['points']) == 2 and len(record['distance_first']) == 3 and len(record['distance_decreases']) == 3
    assert {'na', 'class_counts', 'N', 'level', 'A', 'B', 'AB', 'distance_to_etf', 'convex_A_B_AB',
            'convex_distance_to_etf', 'level_over_minority_threshold'} <= set(record['points'][0])


@pytest.mark.slow
def test_quick_minority_sweep_separates_collapse(tmp_path):
    run_script('minority_l_main.py', '--quick', '--ka', '5', cwd=tmp_path)
    with open(tmp_path / 'hong_results' / 'plots' / ('003_MLP_ka=5_nb=100_na=500' + SUFFIX + '.json')) as f:
        record = json.load(f)
    assert record['network_matches_theory'] and record['convex_matches_theory']


def test_limit_effective_level_counts_the_weight_decay_on_W():
    """With l N = 0.1 the README sweep (N = 7.5 n_A, n_A = 500 ... 5500) trains at 1.7 to 4.7
    times l (4.65 at the largest n_A) once SGD's weight decay 5e-4 on W is added to lambda_W = 5 l."""
    import limit_main
    ratios = [limit_main.effective_level(0.1 / (7.5 * na)) / (0.1 / (7.5 * na)) for na in (500, 5500)]
    assert ratios[0] == pytest.approx(1.70, abs=0.01) and ratios[1] == pytest.approx(4.65, abs=0.01)
    assert limit_main.effective_level(0.01, weight_decay=0.0) == pytest.approx(0.01)


def test_a_hong_script_run_from_the_repository_root_writes_only_below_its_output_root():
    def listing(folder):
        return sorted(os.path.relpath(os.path.join(path, name), ROOT)
                      for path, dirs, files in os.walk(os.path.join(ROOT, folder)) for name in dirs + files
                      if '__pycache__' not in path and name != '__pycache__')
    output_root = os.path.join(ROOT, 'hong_results')
    existed = os.path.exists(output_root)
    before = {folder: listing(folder) for folder in ('models', 'plots')}
    top_before = set(os.listdir(ROOT))
    try:
        run_script('block_main.py', '--dataset_t', 'digits', '--epoch', '1', '--width', '4', '--seed', '1', cwd=ROOT)
        assert {folder: listing(folder) for folder in ('models', 'plots')} == before
        assert set(os.listdir(ROOT)) - top_before <= {'hong_results'}
        assert glob.glob(os.path.join(output_root, 'plots', '001_ResNet18_digits_1_NC1_plot.png'))
    finally:
        if not existed:
            shutil.rmtree(output_root, ignore_errors=True)
