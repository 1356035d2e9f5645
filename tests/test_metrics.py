"""nc_repro.metrics: the streaming NC API for any model, installed with pip, against exact cases, a
slow per-class reference, validate_NC.py's info.pkl, two gloo processes, and docs/metrics.md."""
import os
import pickle
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import args as cli
import datasets
import models
from nc_repro import checkpoints, frames, recipes
from nc_repro.metrics import NeuralCollapse, layer_inputs
from conftest import ROOT, run_script

SCALAR_KEYS = ('NC1_collapse_metric', 'NC1_collapse_metric_as_coded', 'NC1_trace_ratio', 'NC2_ETF_W',
               'NC2_Identity_W', 'NC2_GOF_W', 'NC2_ETF_H', 'NC2_Identity_H', 'NC2_GOF_H', 'NC3_ETF_WH',
               'NC3_Identity_WH', 'NC3_GOF_WH', 'NC3_W_sub_H', 'NC3_W_sub_H_centered',
               'Wh_b_relation_metric', 'NC4_ncc_mismatch')
MEASURE_KEYS = ('CDNV', 'equinorm_means', 'equinorm_W', 'equiangularity_means', 'max_angle_W', 'GNC2_log_means',
                'GNC2_riesz_W', 'self_duality', 'UNC3', 'NCC_accuracy')           # tests/test_nc_measures.py


def imbalanced_problem(seed=0, K=4, D=6, counts=(7, 12, 20, 31), offset=50.0):
    """Features near class means far from the origin, a random classifier: nothing collapsed."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.cat([torch.full((n,), k) for k, n in enumerate(counts)])
    means = torch.randn(K, D, generator=generator, dtype=torch.float64) * 2 + offset
    features = means[labels] + torch.randn(len(labels), D, generator=generator, dtype=torch.float64)
    W = torch.randn(K, D, generator=generator, dtype=torch.float64)
    b = torch.randn(K, generator=generator, dtype=torch.float64)
    return features, labels, W, b


def accumulate(features, labels, batch_size, order=None, logits=None):
    nc = NeuralCollapse(int(labels.max()) + 1)
    order = torch.arange(len(labels)) if order is None else order
    for chunk in order.split(batch_size):
        nc.update(features[chunk], labels[chunk], None if logits is None else logits[chunk])
    return nc


# ---- exact cases ------------------------------------------------------------------------

def test_a_perfect_simplex_etf_gives_zero_nc1_nc2_nc3_nc4():
    K, D = 5, 7
    etf = frames.simplex_etf(K, D)                                          # (K, D) unit rows
    labels = torch.arange(K).repeat(6)
    features = 3.0 * etf[labels]                                            # every h_i = its mean
    result = accumulate(features, labels, 7).compute(etf, torch.zeros(K), 'zhou2022')
    for key in ('NC1_collapse_metric', 'NC2_ETF_W', 'NC2_ETF_H', 'NC3_ETF_WH', 'NC4_ncc_mismatch',
                'Wh_b_relation_metric'):
        assert result[key] == pytest.approx(0, abs=1e-12), key
    assert result['collapse_metric'] == result['NC1_collapse_metric']      # J's names beside
    assert result['class_mean_norms'] == pytest.approx([3.0] * K)


def test_an_orthogonal_frame_of_unequal_lengths_is_a_gof_but_not_an_identity_frame():
    K = 4
    lengths = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64)
    labels = torch.arange(K).repeat(3)
    features = torch.diag(lengths)[labels]                                  # h = c_k e_k
    result = accumulate(features, labels, 5).compute(torch.diag(1 / lengths), None, 'dang2023')
    for key in ('NC1_collapse_metric', 'NC2_GOF_W', 'NC2_GOF_H', 'NC3_GOF_WH', 'NC3_Identity_WH'):
        assert result[key] == pytest.approx(0, abs=1e-12), key              # W h_k = e_k
    assert result['NC2_Identity_H'] > 0.3 and result['NC2_Identity_W'] > 0.3


# ---- the slow reference -----------------------------------------------------------------

def slow_reference(features, labels, W, b, name):
    """Per-class float64 loops in numpy: the definitions of docs/metrics.md, written plainly."""
    conventions = recipes.conventions(name)
    h, y, W, b = features.numpy(), labels.numpy(), W.numpy(), b.numpy()
    K, D = W.shape
    N = len(y)
    means = np.array([h[y == k].mean(0) for k in range(K)])
    counts = np.array([np.sum(y == k) for k in range(K)])
    global_mean = h.mean(0)
    sigma_w = np.zeros((D, D))
    for i in range(N):
        d = h[i] - means[y[i]]
        sigma_w += np.outer(d, d) / N
    sigma_b = np.zeros((D, D))
    for k in range(K):
        weight = counts[k] / N if conventions.between_weights == 'counts' else 1 / K
        sigma_b += weight * np.outer(means[k] - global_mean, means[k] - global_mean)
    W_rows = W - W.mean(0) if conventions.center_classifier else W
    centred = means - global_mean
    etf = (np.eye(K) - np.ones((K, K)) / K) / np.sqrt(K - 1)

    def distance(A, T):
        return np.linalg.norm(A / np.linalg.norm(A) - T / np.linalg.norm(T))

    nearest = [np.argmin([np.linalg.norm(h[i] - means[k]) for k in range(K)]) for i in range(N)]
    decisions = (h @ W.T + b).argmax(1)
    return {'NC1_collapse_metric': np.trace(sigma_w @ np.linalg.pinv(sigma_b, rcond=1e-12)) / K,
            'NC1_trace_ratio': np.trace(sigma_w) / np.trace(sigma_b),
            'NC2_ETF_W': distance(W_rows @ W_rows.T, etf), 'NC2_ETF_H': distance(centred @ centred.T, etf),
            'NC2_Identity_W': distance(W @ W.T, np.eye(K)), 'NC2_Identity_H': distance(means @ means.T, np.eye(K)),
            'NC2_GOF_H': distance(means @ means.T, np.diag(np.diag(means @ means.T))),
            'NC3_ETF_WH': distance(W_rows @ centred.T, etf), 'NC3_Identity_WH': distance(W @ means.T, np.eye(K)),
            'NC3_W_sub_H': distance(W, means), 'Wh_b_relation_metric': np.linalg.norm(W @ global_mean + b),
            'NC4_ncc_mismatch': np.mean(np.array(nearest) != decisions)}


@pytest.mark.parametrize('name', recipes.PAPERS)
def test_each_convention_agrees_with_a_slow_per_class_reference(name):
    features, labels, W, b = imbalanced_problem()
    result = accumulate(features, labels, 9, order=torch.randperm(len(labels))).compute(W, b, name)
    for key, expected in slow_reference(features, labels, W, b, name).items():
        assert result[key] == pytest.approx(expected, rel=1e-9, abs=1e-12), key


def test_the_conventions_differ_where_the_papers_do():
    features, labels, W, b = imbalanced_problem()
    nc = accumulate(features, labels, 16)
    zhou, dang, hong = (nc.compute(W, b, name) for name in ('zhou2022', 'dang2023', 'hong2023'))
    assert zhou['NC2_ETF_W'] != pytest.approx(dang['NC2_ETF_W'])            # centred W (J)
    assert hong['NC1_collapse_metric'] != pytest.approx(dang['NC1_collapse_metric'])   # n_k/N weights
    assert zhou['NC1_collapse_metric'] == dang['NC1_collapse_metric']


def test_two_batch_orders_and_batch_sizes_give_the_same_result():
    features, labels, W, b = imbalanced_problem(seed=3)
    logits = (features @ W.T + b).float()
    first = accumulate(features, labels, 5, torch.randperm(len(labels), generator=torch.Generator().manual_seed(1)), logits)
    second = accumulate(features, labels, 23, torch.randperm(len(labels), generator=torch.Generator().manual_seed(2)), logits)
    a, b_ = first.compute(W, b, 'dang2023'), second.compute(W, b, 'dang2023')
    for key in SCALAR_KEYS + MEASURE_KEYS:
        assert a[key] == pytest.approx(b_[key], rel=1e-11, abs=1e-13), key
    first.reset()
    with pytest.raises(ValueError, match='before any update'):
        first.compute(W, b)


# ---- torch.distributed ------------------------------------------------------------------

WORKER = textwrap.dedent('''
    import sys, torch, torch.distributed as dist
    sys.path.insert(0, sys.argv[4])
    from nc_repro.metrics import NeuralCollapse
    rank, world, init = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    dist.init_process_group('gloo', init_method=init, rank=rank, world_size=world)
    features, labels, W, b = torch.load(sys.argv[5])
    nc = NeuralCollapse(4)
    mine = torch.arange(rank, len(labels), world)          # every other sample
    for chunk in mine.split(6):
        nc.update(features[chunk], labels[chunk])
    result = nc.compute(W, b, 'hong2023')
    torch.save(result, sys.argv[6] + '.%d' % rank)
    dist.destroy_process_group()
''')


def test_two_gloo_processes_with_half_the_data_each_equal_one_process_with_all(tmp_path):
    problem = imbalanced_problem(seed=5)
    torch.save(problem, tmp_path / 'problem.pt')
    (tmp_path / 'worker.py').write_text(WORKER)
    init = 'file://%s' % (tmp_path / 'rendezvous')
    workers = [subprocess.Popen([sys.executable, str(tmp_path / 'worker.py'), str(rank), '2', init, ROOT,
                                 str(tmp_path / 'problem.pt'), str(tmp_path / 'result')])
               for rank in range(2)]
    assert [worker.wait(timeout=300) for worker in workers] == [0, 0]
    features, labels, W, b = problem
    single = accumulate(features, labels, 10).compute(W, b, 'hong2023')
    for rank in range(2):
        distributed = torch.load(tmp_path / ('result.%d' % rank))
        assert distributed['num_samples'] == len(labels)
        for key in SCALAR_KEYS + MEASURE_KEYS:
            assert distributed[key] == pytest.approx(single[key], rel=1e-10, abs=1e-12), key


# ---- bad input --------------------------------------------------------------------------

@pytest.mark.parametrize('call, message', [
    (lambda nc: nc.update(torch.zeros(4), torch.zeros(4, dtype=torch.long)), r'shape \(B, D\)'),
    (lambda nc: nc.update(torch.zeros(4, 2), torch.zeros(3, dtype=torch.long)), r'labels must be an integer tensor of shape \(4,\)'),
    (lambda nc: nc.update(torch.zeros(2, 2), torch.tensor([0, 3])), r'labels must lie in 0..2 \(got 0..3\)'),
    (lambda nc: nc.update(torch.tensor([[0.0, float('nan')]]), torch.tensor([1])), 'NaN or infinity'),
    (lambda nc: (nc.update(torch.ones(3, 2), torch.tensor([1, 1, 1])), nc.compute(torch.ones(3, 2))), 'fewer than two classes'),
    (lambda nc: (nc.update(torch.randn(3, 2), torch.tensor([0, 1, 2])), nc.compute(torch.ones(2, 2))), r'weight must have shape \(num_classes, D\) = \(3, 2\)'),
    (lambda nc: (nc.update(torch.randn(3, 2), torch.tensor([0, 1, 2])), nc.compute(torch.ones(3, 2), convention='papyan')), 'convention must be one of'),
    (lambda nc: (nc.update(torch.randn(3, 2), torch.tensor([0, 1, 2])), nc.update(torch.randn(3, 5), torch.tensor([0, 1, 2]))), 'earlier batches had 2'),
])
def test_bad_input_is_one_clear_error(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call(NeuralCollapse(3))
    assert '\n' not in str(error.value)


# ---- any nn.Module ----------------------------------------------------------------------

def test_layer_inputs_reads_a_torchvision_resnet18_unchanged():
    torchvision = pytest.importorskip('torchvision')
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=10)
    images, labels = torch.randn(6, 3, 16, 16), torch.arange(6) % 3
    (features, seen_labels, logits), = list(layer_inputs(model, 'fc', [(images, labels)]))
    assert model.training                                                 # mode restored
    model.eval()
    with torch.no_grad():
        trunk = torch.nn.Sequential(*list(model.children())[:-1])
        expected = trunk(images).flatten(1)
        assert torch.equal(features, expected) and torch.equal(logits, model(images))
    assert torch.equal(seen_labels, labels)
    with pytest.raises(ValueError, match="no layer 'head'; its Linear layers: fc"):
        list(layer_inputs(model, 'head', []))


# ---- the same numbers as validate_NC.py -------------------------------------------------

ZHOU = '--gpu_id 0 --uid z --dataset digits --optimizer SGD --batch_size 64 --lr 0.05 --model MLP --width 64 --depth 2 --epochs 2'
DANG = ('--model MLP --dataset digits --depth_relu 2 --depth_linear 2 --width 64 --seed 1 --loss MSE --lr 0.001 '
        '--optimizer Adam --sep_decay --epochs 2')
SAME_AS_INFO = {'zhou2022': ('collapse_metric', 'collapse_metric_as_coded', 'ETF_metric', 'WH_relation_metric',
                             'Wh_b_relation_metric', 'NC2_means_ETF', 'NC4_ncc_mismatch'),
                'dang2023': ('NC1_collapse_metric', 'NC1_collapse_metric_as_coded', 'NC2_ETF_W', 'NC2_Identity_W',
                             'NC2_ETF_H', 'NC3_ETF_WH', 'NC3_W_sub_H', 'NC4_ncc_mismatch')}


@pytest.mark.parametrize('paper, flags, extra', [('zhou2022', ZHOU, ' --load_path model_weights/z/'),
                                                 ('dang2023', DANG, '')])
def test_the_api_on_a_checkpoint_gives_validate_nc_info_pkl(tmp_path, paper, flags, extra):
    run_script('train_1st_order.py', *flags.split(), cwd=tmp_path)
    result = run_script('validate_NC.py', *(flags + extra).split(), cwd=tmp_path)
    info_path = result.stdout.strip().splitlines()[-1].split('info: ')[1]
    info = pickle.load(open(os.path.join(tmp_path, info_path), 'rb'))
    args = cli.parse(cli.get_eval_parser(), (flags + extra).split())
    data = datasets.training_data(args)
    model = models.build_model(args, data.num_classes, data.input_shape)
    model.load_state_dict(torch.load(checkpoints.checkpoint_path(os.path.dirname(os.path.join(tmp_path, info_path)), 2),
                                     weights_only=True))
    nc = NeuralCollapse(data.num_classes)
    for features, labels, logits in layer_inputs(model, model.head_layers()[0], datasets.BatchLoader(data.train, 100)):
        nc.update(features, labels, logits)
    measured = nc.compute(model.head_products()[0], model.classifier_bias(), paper)
    for key in SAME_AS_INFO[paper]:
        assert measured[key] == pytest.approx(info[key][-1], rel=0, abs=1e-12), key


# ---- installed with pip, and the example of docs/metrics.md --------------------------------

BLOCK_ALL_BUT_NUMPY_AND_TORCH = textwrap.dedent('''
    import importlib.abc, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in ('scipy', 'sklearn', 'matplotlib', 'tqdm', 'cvxpy', 'submitit',
                                      'torchvision', 'yaml', 'datasets', 'models', 'args'):
                raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, Block())
''')


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    """`pip install` of the checkout into a folder of its own (no dependencies: they are this venv's)."""
    target = tmp_path_factory.mktemp('site')
    subprocess.run([sys.executable, '-m', 'pip', 'install', '--quiet', '--no-deps', '--no-build-isolation',
                    '--target', str(target), ROOT], check=True, capture_output=True, timeout=300)
    return target


def run_outside_the_checkout(code, installed, folder):
    env = dict(os.environ, PYTHONPATH=str(installed))
    return subprocess.run([sys.executable, '-c', code], cwd=folder, env=env, capture_output=True, text=True,
                          timeout=600)


def test_installed_metrics_import_from_any_folder_with_numpy_and_torch_only(installed, tmp_path):
    code = BLOCK_ALL_BUT_NUMPY_AND_TORCH + textwrap.dedent('''
        import torch, nc_repro.metrics as m
        assert m.__file__.startswith(%r), m.__file__
        nc = m.NeuralCollapse(3)
        nc.update(torch.eye(3).repeat(4, 1) * 2, torch.arange(3).repeat(4))
        r = nc.compute(torch.eye(3), torch.zeros(3), 'hong2023')
        print('NC1 %%.3g NC4 %%.3g' %% (r['NC1_collapse_metric'], r['NC4_ncc_mismatch']))
    ''' % str(installed))
    result = run_outside_the_checkout(code, installed, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == 'NC1 0 NC4 0'


def docs_example():
    text = open(os.path.join(ROOT, 'docs', 'metrics.md')).read()
    return re.search(r'```python\n(.*?)```', text, re.S).group(1)


def run_example(code, installed, folder):
    result = run_outside_the_checkout(code, installed, folder)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ['NC1_collapse_metric', 'NC2_ETF_W', 'NC3_ETF_WH', 'NC4_ncc_mismatch']
    assert os.listdir(folder) == []                                           # it writes nothing
    return {line.split()[0]: (float(line.split()[2]), float(line.split()[4])) for line in lines}


@pytest.mark.slow
def test_the_example_of_docs_metrics_md_runs_from_an_empty_folder(installed, tmp_path):
    """Verbatim, as docs/metrics.md prints it (one to two minutes: ten epochs of a resnet18)."""
    example = docs_example()
    assert len(example.strip().splitlines()) <= 25
    values = run_example(example, installed, tmp_path)
    assert values['NC1_collapse_metric'][1] < values['NC1_collapse_metric'][0] / 5   # training collapses
    assert values['NC4_ncc_mismatch'][1] < values['NC4_ncc_mismatch'][0] / 5


def test_the_example_of_docs_metrics_md_with_one_epoch_runs_from_an_empty_folder(installed, tmp_path):
    """The fast suite's run of the same block, trained for one epoch instead of ten."""
    example = docs_example()
    assert example.count('range(10)') == 1
    run_example(example.replace('range(10)', 'range(1)'), installed, tmp_path)


@pytest.mark.slow
def test_pip_install_of_the_checkout_in_a_fresh_venv_runs_the_example(tmp_path):
    """The issue's acceptance as a user does it: a new virtual environment, `pip install <checkout>`
    (numpy and torch come as its dependencies), torchvision and scikit-learn for the example's
    model and data, then the example, trained for one epoch, from an empty folder (several minutes,
    most of them pip's, 6 GB of disk)."""
    venv = tmp_path / 'venv'
    subprocess.run([sys.executable, '-m', 'venv', str(venv)], check=True, timeout=300)
    pip = [str(venv / 'bin' / 'python'), '-m', 'pip', 'install', '--quiet']
    subprocess.run(pip + [ROOT], check=True, timeout=1800)
    subprocess.run(pip + ['torchvision==0.29.1', 'scikit-learn'], check=True, timeout=1800)
    folder = tmp_path / 'empty'
    folder.mkdir()
    # one epoch instead of ten: the ten-epoch collapse is test_the_example_of_docs_metrics_md_runs_from_an_empty_folder's
    example = docs_example()
    assert example.count('range(10)') == 1
    result = subprocess.run([str(venv / 'bin' / 'python'), '-c', example.replace('range(10)', 'range(1)')], cwd=folder,
                            capture_output=True, text=True, timeout=900, env={'PATH': os.environ['PATH']})
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.strip().splitlines()] == [
        'NC1_collapse_metric', 'NC2_ETF_W', 'NC3_ETF_WH', 'NC4_ncc_mismatch']
