"""Tensor datasets kept in memory and the batched loader that feeds the training loop.

An ``ImageSet`` holds a whole split as one compact tensor and normalises per batch on the
training device; ``BatchLoader`` draws mini-batches from it (seeded shuffling, the papers'
crop-and-flip augmentation applied to raw pixels). The engine takes these as arguments and
never needs to know which dataset they came from (``datasets.py`` builds them).
"""
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class ImageSet:
    """Images (N, C, H, W) stored compactly; ``batch(idx)`` returns normalised floats."""
    images: torch.Tensor          # (N, C, H, W) uint8 or float
    labels: torch.Tensor          # (N,) int64
    scale: float                  # images * scale lies in [0, 1] (ToTensor)
    mean: tuple
    std: tuple
    channels: int = None          # expand a single stored channel to this many (Grayscale(3))

    def __len__(self):
        return len(self.labels)

    def to(self, device):
        return ImageSet(self.images.to(device), self.labels.to(device), self.scale, self.mean,
                        self.std, self.channels)

    def subset(self, indices):
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.labels.device)
        return ImageSet(self.images[indices], self.labels[indices], self.scale, self.mean,
                        self.std, self.channels)

    def normalise(self, images):
        images = images.float() * self.scale                               # (B, C, H, W)
        if self.channels and images.shape[1] != self.channels:
            images = images.expand(-1, self.channels, -1, -1)
        mean = torch.tensor(self.mean, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, device=images.device).view(1, -1, 1, 1)
        return (images - mean) / std


@dataclass
class DataBundle:
    name: str
    train: ImageSet
    test: ImageSet
    num_classes: int

    @property
    def input_shape(self):
        shape = tuple(self.train.images.shape[1:])
        if self.train.channels:
            shape = (self.train.channels,) + shape[1:]
        return shape


class BatchLoader:
    """Mini-batches of a preloaded ImageSet on one device.

    shuffle: a new permutation per epoch from ``generator`` (seeded, so runs repeat and its
    state can be saved for resuming); otherwise index order (D23's imbalanced sampler).
    augment: 'crop_flip' = RandomCrop(size, padding=4) + RandomHorizontalFlip(0.5), applied to
    the raw pixels before normalisation, as torchvision does on PIL images (padding is black).
    merge_single: a last batch of one sample joins the batch before it (BatchNorm cannot train
    on one sample; docs/original_code.md, Hong-B13).
    """

    def __init__(self, data, batch_size, shuffle=False, generator=None, augment=None, merge_single=False):
        self.data, self.batch_size, self.shuffle = data, batch_size, shuffle
        self.generator, self.augment, self.merge_single = generator, augment, merge_single

    def batch_starts(self):
        starts = list(range(0, len(self.data), self.batch_size))
        if self.merge_single and len(starts) > 1 and len(self.data) - starts[-1] == 1:
            starts.pop()
        return starts + [len(self.data)]

    def __len__(self):
        return len(self.batch_starts()) - 1

    def __iter__(self):
        n = len(self.data)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.data.labels.device)
        else:
            order = torch.arange(n, device=self.data.labels.device)
        bounds = self.batch_starts()
        for start, stop in zip(bounds[:-1], bounds[1:]):
            idx = order[start:stop]
            images = self.data.images[idx]
            if self.augment == 'crop_flip':
                images = random_crop_flip(images, 4, self.generator)
            yield self.data.normalise(images), self.data.labels[idx]


def random_crop_flip(images, padding, generator):
    """Per-sample random crop of a zero-padded batch and a random horizontal flip (batched)."""
    batch, _, height, width = images.shape
    padded = F.pad(images, (padding,) * 4)                              # (B, C, H+2p, W+2p)
    dy = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(images.device)
    dx = torch.randint(0, 2 * padding + 1, (batch,), generator=generator).to(images.device)
    flip = (torch.rand(batch, generator=generator) < 0.5).to(images.device)
    rows = dy[:, None] + torch.arange(height, device=images.device)     # (B, H)
    cols = dx[:, None] + torch.arange(width, device=images.device)      # (B, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch_index = torch.arange(batch, device=images.device)[:, None, None]
    cropped = padded.permute(0, 2, 3, 1)[batch_index, rows[:, :, None], cols[:, None, :]]
    return cropped.permute(0, 3, 1, 2).contiguous()                     # (B, C, H, W)
