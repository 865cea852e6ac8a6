"""Datasets and batch loaders for training and evaluating image classifiers.

Small datasets (Fashion-MNIST, CIFAR-10/100) are held in memory as one uint8
tensor and batched by indexing that tensor directly; their shuffling and
augmentation draw only from generators seeded from ``(seed, epoch)``, so a
given ``(seed, epoch)`` always yields bit-identical batches. ImageNet-style
folders go through ``torchvision.datasets.ImageFolder`` and a torch DataLoader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from .imagefolder import drop_unreadable, folder_stats, load_imagefolder
from .readers import CIFAR_NUM_CLASSES, default_data_root, load_cifar, load_fashion_mnist, read_idx

__all__ = [
    "DATASETS",
    "NO_VAL_SPLIT",
    "SPLITS",
    "DatasetInfo",
    "TensorBatchLoader",
    "TensorImageDataset",
    "dataset_info",
    "default_data_root",
    "load_dataset",
    "make_loader",
    "normalize_uint8",
    "read_idx",
    "resize_uint8",
]

DATASETS: tuple[str, ...] = ("fashion-mnist", "cifar10", "cifar100", "imagefolder")
SPLITS: tuple[str, ...] = ("train", "test", "val")

# Per-channel statistics of the training sets (pixel values scaled to [0, 1]).
_STATS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashion-mnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
                         "Bag", "Ankle boot")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR100_CLASSES = tuple("""
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can castle
caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant flatfish
forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle
mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy porcupine
possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper snail snake spider squirrel streetcar
sunflower sweet_pepper table tank telephone television tiger tractor train trout tulip turtle wardrobe whale
willow_tree wolf woman worm""".split())
_CLASSES = {"fashion-mnist": FASHION_MNIST_CLASSES, "cifar10": CIFAR10_CLASSES, "cifar100": CIFAR100_CLASSES}

# Random-crop padding at the native resolution; scaled if input_size differs.
_CROP_PAD = {"fashion-mnist": 2, "cifar10": 4, "cifar100": 4}

_SEED_MULT = 1_000_003
# Separates the augmentation stream from the permutation stream of the same epoch.
_AUG_SALT = 0x5DEECE66D


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a dataset: classes, channels, native size, normalization."""

    name: str
    num_classes: int
    in_chans: int
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    classes: tuple[str, ...] = ()  # class names, in label order
    note: str = ""  # how the values were found, when they were inferred from the data (one line)


# --------------------------------------------------------------------------- names


def _check_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; accepted values: {', '.join(DATASETS)}")
    return key


NO_VAL_SPLIT = ("split 'val' needs a held-out validation split and this run has none: train with --val-size N "
                "(the last N images of a seeded permutation of the training set are held out), or use --split test")


def _check_split(split: str) -> str:
    key = str(split).strip().lower()
    if key not in SPLITS:
        raise ValueError(
            f"unknown split {split!r}; accepted values: {', '.join(SPLITS)} ('val': the run's held-out images)"
        )
    return key


def dataset_info(name: str, data_dir: str | None = None) -> DatasetInfo:
    """Describe a dataset without loading its images.

    Args:
        name: one of ``DATASETS``.
        data_dir: dataset root; required for ``imagefolder`` (classes are the
            folders under ``data_dir/train``; channels, input size and mean/std
            are inferred from a sample of its images), ignored otherwise.
    """
    key = _check_name(name)
    if key == "fashion-mnist":
        mean, std = _STATS[key]
        return DatasetInfo(key, 10, 1, 28, mean, std, _CLASSES[key])
    if key in ("cifar10", "cifar100"):
        mean, std = _STATS[key]
        return DatasetInfo(key, CIFAR_NUM_CLASSES[key], 3, 32, mean, std, _CLASSES[key])
    if data_dir is None:
        raise ValueError("dataset 'imagefolder' needs data_dir (a folder with train/<class>/ subfolders)")
    from .imagefolder import describe

    stats = folder_stats(str(Path(data_dir).expanduser()))
    return DatasetInfo(key, len(stats.classes), stats.in_chans, stats.input_size, stats.mean, stats.std,
                       stats.classes, describe(stats))


# --------------------------------------------------------------- in-memory dataset


def normalize_uint8(images: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """uint8 (..., C, H, W) -> normalized float32, ``(x / 255 - mean) / std`` with ``mean``, ``std`` float32
    (C, 1, 1); shared by __getitem__, the batch path and ``resizable predict`` (so their inputs are bit-identical)."""
    return images.to(torch.float32).div_(255.0).sub_(mean).div_(std)


def _crop_flip(images: Tensor, pad: int, offsets: Tensor, flips: Tensor) -> Tensor:
    """Per-sample random crop (zero padding) and horizontal flip, vectorised over the batch.

    ``images`` is uint8 (B, C, H, W); ``offsets`` (B, 2) holds the crop's top-left
    corner inside the padded image, in [0, 2 * pad]; ``flips`` (B,) is bool.
    """
    b, c, h, w = images.shape
    padded = F.pad(images, (pad, pad, pad, pad)) if pad > 0 else images
    rows = offsets[:, :1] + torch.arange(h)
    cols = torch.arange(w).expand(b, w)
    cols = torch.where(flips[:, None], w - 1 - cols, cols) + offsets[:, 1:]
    out = padded.gather(2, rows[:, None, :, None].expand(b, c, h, padded.shape[3]))
    return out.gather(3, cols[:, None, None, :].expand(b, c, h, w))


def _draw_augmentation(n: int, pad: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    offsets = torch.randint(0, 2 * pad + 1, (n, 2), generator=generator)
    flips = torch.randint(0, 2, (n,), generator=generator).bool()
    return offsets, flips


class TensorImageDataset(Dataset):
    """Images held as one uint8 (N, C, H, W) tensor with int64 labels, normalized on access."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        mean: Sequence[float],
        std: Sequence[float],
        augment: bool = False,
        pad: int = 0,
    ) -> None:
        """Args:
        images: uint8 tensor (N, C, H, W).
        labels: integer tensor (N,).
        mean, std: per-channel statistics of pixel values scaled to [0, 1].
        augment: apply random crop (with ``pad`` zero pixels each side) and horizontal flip.
        pad: crop padding in pixels.
        """
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"images must be a uint8 tensor (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.dim() != 1 or len(labels) != len(images):
            raise ValueError(f"labels must have shape ({len(images)},), got {tuple(labels.shape)}")
        chans = images.shape[1]
        if len(mean) != chans or len(std) != chans:
            raise ValueError(
                f"mean and std need {chans} values (one per channel), got {len(mean)} and {len(std)}"
            )
        if any(s <= 0 for s in std):
            raise ValueError(f"std values must be positive, got {tuple(std)}")
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.images = images.contiguous()
        self.labels = labels.to(torch.int64)
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.augment = bool(augment)
        self.pad = int(pad)
        self._mean_t = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        self._std_t = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        # This per-sample path (for plain DataLoaders) draws augmentation from the
        # global RNG; make_loader's batch path is the reproducible one.
        image = self.images[index].unsqueeze(0)
        if self.augment:
            offsets = torch.randint(0, 2 * self.pad + 1, (1, 2))
            flips = torch.randint(0, 2, (1,)).bool()
            image = _crop_flip(image, self.pad, offsets, flips)
        return self.normalize(image)[0], self.labels[index]

    def normalize(self, images: Tensor) -> Tensor:
        """Convert uint8 images (..., C, H, W) to normalized float32."""
        return normalize_uint8(images, self._mean_t, self._std_t)


# --------------------------------------------------------------------- loading


def resize_uint8(images: Tensor, size: int | tuple[int, int], chunk: int = 4096) -> Tensor:
    """uint8 (N, C, H, W) images resized to ``size`` (a side, or ``(H, W)``): bilinear with antialiasing,
    rounded back to uint8; how the in-memory datasets reach an input size other than their own."""
    h, w = (size, size) if isinstance(size, int) else size
    out = torch.empty((len(images), images.shape[1], h, w), dtype=torch.uint8)
    # Chunked so the float copy never holds the whole dataset at once.
    for start in range(0, len(images), chunk):
        x = images[start : start + chunk].to(torch.float32)
        x = F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False, antialias=True)
        out[start : start + chunk] = x.round_().clamp_(0, 255).to(torch.uint8)
    return out


def load_dataset(
    name: str,
    split: str,
    *,
    data_dir: str | None = None,
    download: bool = False,
    augment: bool | None = None,
    input_size: int | None = None,
    bad_images: str = "error",
) -> Dataset:
    """Load one split of a dataset.

    Args:
        name: one of ``DATASETS``.
        split: ``"train"`` or ``"test"``; ``"val"`` only for ``imagefolder`` (its ``val/`` folder): the
            held-out split of the in-memory datasets comes from :func:`resizable.data.splits.load_split`.
        data_dir: where to look for the files (required for ``imagefolder``).
            Fashion-MNIST otherwise comes from /usr/share/datasets/fashion-mnist
            or ~/.cache/resizable/data; CIFAR from ~/.cache/resizable/data.
        download: fetch missing files with torchvision (needs internet).
        augment: training augmentation; defaults to ``split == "train"``.
        input_size: image side length; defaults to the dataset's native size
            (for imagefolder: inferred from its images, at most 224). Small
            datasets are resized once at load time.
        bad_images: imagefolder only: ``error`` (an unreadable image stops with
            its path), ``skip`` (left out, with a warning naming it) or ``scan``
            (like ``error``; the trainer reads every image first).

    Fashion-MNIST and CIFAR return a ``TensorImageDataset``; ``imagefolder``
    returns a map-style dataset of normalized tensors (see :mod:`resizable.data.imagefolder`).
    """
    key = _check_name(name)
    split = _check_split(split)
    if augment is None:
        augment = split == "train"
    if input_size is not None and (not isinstance(input_size, int) or input_size < 1):
        raise ValueError(f"input_size must be a positive integer or None, got {input_size!r}")
    if key == "imagefolder":
        if data_dir is None:
            raise ValueError("dataset 'imagefolder' needs data_dir (a folder with train/ and val/ subfolders)")
        return load_imagefolder(str(Path(data_dir).expanduser()), "test" if split == "val" else split,
                                augment=augment, input_size=input_size, bad_images=bad_images)

    if split == "val":
        raise ValueError(NO_VAL_SPLIT)
    if key == "fashion-mnist":
        images, labels = load_fashion_mnist(split, data_dir, download)
    else:
        images, labels = load_cifar(key, split, data_dir, download)
    info = dataset_info(key)
    size = input_size or info.input_size
    if size != info.input_size:
        images = resize_uint8(images, size)
    pad = round(_CROP_PAD[key] * size / info.input_size)
    return TensorImageDataset(images, labels, info.mean, info.std, augment=augment, pad=pad)


# --------------------------------------------------------------------- loaders


def _epoch_seed(seed: int, epoch: int) -> int:
    return (seed * _SEED_MULT + epoch) % 2**63


def _rank_seed(seed: int, epoch: int, rank: int) -> int:
    # Each rank gets its own augmentation stream so ranks do not apply identical crops.
    return ((_epoch_seed(seed, epoch) ^ _AUG_SALT) * _SEED_MULT + rank) % 2**63


def _shard_length(n: int, world_size: int, drop_last: bool) -> int:
    if world_size == 1:
        return n
    return n // world_size if drop_last else math.ceil(n / world_size)


class TensorBatchLoader:
    """Batches a TensorImageDataset by indexing its tensor; fully determined by (seed, epoch, rank)."""

    def __init__(
        self,
        dataset: TensorImageDataset,
        batch_size: int,
        *,
        shuffle: bool,
        seed: int = 0,
        epoch: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = False,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.epoch = epoch
        self.rank = rank
        self.world_size = world_size
        self.drop_last = drop_last
        self.num_samples = _shard_length(len(dataset), world_size, drop_last)

    def __len__(self) -> int:
        if self.drop_last:
            return self.num_samples // self.batch_size
        return math.ceil(self.num_samples / self.batch_size)

    def indices(self) -> Tensor:
        """Dataset indices this rank visits this epoch, in order."""
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(_epoch_seed(self.seed, self.epoch))
            order = torch.randperm(n, generator=generator)
        else:
            order = torch.arange(n)
        if self.world_size == 1:
            return order
        total = self.num_samples * self.world_size
        if total > n and n > 0:
            # Wrap around (like DistributedSampler) so every rank gets the same count.
            order = order.repeat(math.ceil(total / n))
        return order[:total][self.rank :: self.world_size]

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        ds = self.dataset
        order = self.indices()
        if ds.augment:
            # Drawn for the whole epoch up front so a sample's augmentation does
            # not depend on batch boundaries.
            generator = torch.Generator().manual_seed(_rank_seed(self.seed, self.epoch, self.rank))
            offsets, flips = _draw_augmentation(len(order), ds.pad, generator)
        for b in range(len(self)):
            sl = slice(b * self.batch_size, (b + 1) * self.batch_size)
            idx = order[sl]
            images = ds.images.index_select(0, idx)
            if ds.augment:
                images = _crop_flip(images, ds.pad, offsets[sl], flips[sl])
            yield ds.normalize(images), ds.labels.index_select(0, idx)


class _SeededDataLoader:
    """Torch DataLoader whose shuffle order and worker seeds are fixed by (seed, epoch, rank)."""

    def __init__(self, loader: DataLoader, generator: torch.Generator, generator_seed: int) -> None:
        self.loader = loader
        self._generator = generator
        self._generator_seed = generator_seed

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        # Re-seed so every pass over this loader repeats the same epoch.
        self._generator.manual_seed(self._generator_seed)
        return iter(self.loader)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    rank: int = 0,
    world_size: int = 1,
    drop_last: bool = False,
    num_workers: int = 0,
) -> Iterable[tuple[Tensor, Tensor]]:
    """Build an iterable of ``(images, labels)`` batches for one epoch.

    Images are float32 (B, C, H, W), normalized; labels are int64 (B,).
    ``len(loader)`` is the number of batches this rank sees. Iterating the
    same loader twice repeats the same epoch.

    For a ``TensorImageDataset`` batches are gathered straight from the uint8
    tensor (``num_workers`` is ignored) and shuffling and augmentation come only
    from generators seeded from ``(seed, epoch)`` (plus ``rank`` for
    augmentation), so results are bit-reproducible. With ``world_size > 1`` the
    shared permutation is padded by wrapping (or truncated if ``drop_last``)
    and rank ``r`` takes every ``world_size``-th index starting at ``r``.

    Any other dataset (e.g. ``imagefolder``) goes through a torch DataLoader,
    with a ``DistributedSampler`` when ``world_size > 1``. Its order is
    reproducible, but per-sample transforms draw from the global RNG (or
    per-worker RNGs), so augmentation is not guaranteed bit-reproducible.

    Args:
        dataset: dataset from ``load_dataset`` or any map-style dataset.
        batch_size: samples per batch.
        shuffle: visit samples in a (seed, epoch)-dependent random order.
        seed: run seed.
        epoch: epoch number; a new epoch gives a new order and augmentation.
        rank: this process's index in ``[0, world_size)``.
        world_size: number of processes sharing the data.
        drop_last: drop the last incomplete batch (and uneven tail across ranks).
        num_workers: DataLoader worker processes (DataLoader path only).
    """
    checks = (
        ("batch_size", batch_size, 1),
        ("world_size", world_size, 1),
        ("epoch", epoch, 0),
        ("num_workers", num_workers, 0),
    )
    for arg, value, low in checks:
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{arg} must be an integer >= {low}, got {value!r}")
    if not isinstance(rank, int) or not 0 <= rank < world_size:
        raise ValueError(f"rank must be an integer in [0, {world_size}), got {rank!r}")

    if isinstance(dataset, TensorImageDataset):
        return TensorBatchLoader(dataset, batch_size, shuffle=shuffle, seed=seed, epoch=epoch, rank=rank,
                                 world_size=world_size, drop_last=drop_last)

    generator = torch.Generator()
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
        sampler.set_epoch(epoch)
        # The sampler fixes the order; the generator only seeds the workers.
        generator_seed = _rank_seed(seed, epoch, rank)
    else:
        generator_seed = _epoch_seed(seed, epoch)
    # a sampler and shuffle=True exclude each other: with the sampler, it shuffles
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None, sampler=sampler,
                        generator=generator, num_workers=num_workers, drop_last=drop_last,
                        collate_fn=drop_unreadable)
    return _SeededDataLoader(loader, generator, generator_seed)
