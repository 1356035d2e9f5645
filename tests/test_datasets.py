"""Real torchvision loaders on small files this test writes in the genuine on-disk formats
(MNIST IDX, CIFAR-10 pickled batches); only the download and md5 checks are patched."""
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

import datasets


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
    rng = np.random.RandomState(seed)
    folder = os.path.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    names = ['data_batch_%d' % i for i in range(1, 6)] + ['test_batch']
    content = {}
    for name in names:
        n = n_test if name == 'test_batch' else per_batch
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        labels = list(rng.randint(0, 10, n))
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump({'data': data, 'labels': labels, 'batch_label': name}, f)
        content[name] = (data, labels)
    with open(os.path.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({'label_names': ['class%d' % k for k in range(10)]}, f)
    return content


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
