"""ImageNet-style image folders (``root/train/<class>/*.png``, ``root/val/<class>/...``).

What the images are is read from the images themselves, never assumed: a sample of training
images (spread evenly over the classes) gives the channel count (1 when every sampled image is
grayscale, else 3), the input size (the median shorter side, at most 224) and the per-channel
mean/std the images are normalised with. :func:`describe` says all of that in one line.

Images about the input size or smaller (digits, CIFAR-like crops) are resized to the input size
and trained with padded random crops and flips; larger ones (photos) get the ImageNet recipe
(random-resized crops for training; resize to 8/7 of the size and centre-crop for testing).

An image that cannot be read stops the run with its path (``bad_images="error"``), is left out
with a warning naming it (``"skip"``), or every image is checked before training starts and the
unreadable ones are listed (``"scan"``).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, List, Optional, Sequence, Tuple, Union

from torch.utils.data import Dataset

__all__ = ["BAD_IMAGES", "IMAGENET_MEAN", "IMAGENET_STD", "MAX_INPUT_SIZE", "BadImageError", "FolderStats",
           "folder_stats", "describe", "list_classes", "split_dir", "load_imagefolder", "scan_images",
           "drop_unreadable", "read_image", "eval_resize_side", "eval_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_INPUT_SIZE = 224  # inferred input sizes are capped here (the ImageNet recipe)
SAMPLE_IMAGES = 256  # training images read to infer channels, size and statistics
BAD_IMAGES = ("error", "skip", "scan")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}
_STATS_SIDE = 64  # statistics are measured on images shrunk to at most this shorter side (fast, and as exact)


_HINT = "--bad-images skip leaves unreadable images out, --bad-images scan lists them all"


class BadImageError(ValueError):
    """An image file that cannot be read; the message starts with its path."""

    def __init__(self, message: str) -> None:
        # A DataLoader worker re-raises this error with its whole traceback in the message: keep the last line.
        if "Traceback" in message:
            lines = [line for line in message.strip().splitlines() if line.strip()]
            message = lines[-1].split("BadImageError: ", 1)[-1].strip()
        super().__init__(message)


@dataclass(frozen=True)
class FolderStats:
    """What a folder's training images are: classes, channels, size and pixel statistics."""

    root: str
    classes: Tuple[str, ...]
    num_images: int
    sampled: int
    in_chans: int
    native_size: int  # median shorter side of the sampled images, in pixels
    input_size: int  # min(native_size, MAX_INPUT_SIZE)
    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    unreadable: Tuple[str, ...] = ()  # sampled images that could not be read (their error messages)


def list_classes(directory: Path) -> List[str]:
    """Class names: the sub-folders of ``directory``, sorted (torchvision's ImageFolder rule)."""
    return sorted(entry.name for entry in os.scandir(directory) if entry.is_dir())


def split_dir(root: Path, split: str) -> Path:
    """The folder of ``split``: ``train``, or ``val`` / ``test`` for the test split."""
    candidates = [root / "train"] if split == "train" else [root / "val", root / "test"]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"imagefolder: no {split} folder under {root}; looked for {', '.join(str(c) for c in candidates)}"
    )


def _samples(directory: Path, classes: Sequence[str]) -> List[Tuple[str, int]]:
    """``(path, class index)`` of every image, in torchvision's ``make_dataset`` order (class, folder, name).

    Symbolic links are followed, as torchvision does, but a folder reached twice (a link loop, or two
    links to one folder) is read once: a loop would otherwise repeat its images until the path is too long.
    """
    from torchvision.datasets.folder import IMG_EXTENSIONS

    out: List[Tuple[str, int]] = []
    for index, name in enumerate(classes):
        seen, entries = set(), []
        for root, dirs, files in os.walk(directory / name, followlinks=True):
            real = os.path.realpath(root)
            if real in seen:
                dirs[:] = []
                continue
            seen.add(real)
            entries.append((root, files))
        for root, files in sorted(entries):
            out += [(os.path.join(root, f), index) for f in sorted(files) if f.lower().endswith(IMG_EXTENSIONS)]
    return out


def _open(path: str) -> Any:
    from PIL import Image

    try:
        image = Image.open(path)
        image.load()  # decode now, so a damaged file fails here, with its name
        return image
    except Exception as e:  # PIL raises OSError, SyntaxError, ValueError... for damaged files
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BadImageError(f"{path}: cannot read this image ({text})") from None


def read_image(path: str, in_chans: int) -> Any:
    """The image at ``path`` as a PIL image with ``in_chans`` channels (``L`` or ``RGB``)."""
    return _open(path).convert("L" if in_chans == 1 else "RGB")


@lru_cache(maxsize=16)
def folder_stats(root: str) -> FolderStats:
    """Classes, channels, input size and mean/std of the training images under ``root/train``.

    Reads at most :data:`SAMPLE_IMAGES` images, spread evenly over the sorted file list (so every
    class is seen); the result is the same on every call for the same files.
    """
    import numpy as np

    train_dir = Path(root) / "train"
    if not train_dir.is_dir():
        raise FileNotFoundError(f"imagefolder: no train folder at {train_dir} (expected train/<class>/*.png)")
    classes = list_classes(train_dir)
    if not classes:
        raise FileNotFoundError(f"imagefolder: {train_dir} has no class subfolders")
    if len(classes) < 2:
        raise ValueError(f"imagefolder: {train_dir} has one class folder ({classes[0]!r}); a classifier needs "
                         f"at least 2 classes")
    samples = _samples(train_dir, classes)
    empty = sorted(set(classes) - {classes[label] for _, label in samples})
    if empty:
        raise ValueError(f"imagefolder: class folder(s) {empty[:5]} under {train_dir} hold no images")
    n = len(samples)
    picks = range(n) if n <= SAMPLE_IMAGES else sorted({round(i * (n - 1) / (SAMPLE_IMAGES - 1))
                                                        for i in range(SAMPLE_IMAGES)})
    images, unreadable = [], []
    for i in picks:
        try:
            images.append(_open(samples[i][0]))
        except BadImageError as e:
            unreadable.append(str(e))
    if not images:
        raise BadImageError(f"imagefolder: none of the {len(picks)} sampled images under {train_dir} can be read "
                            f"({unreadable[0]})")
    gray = all(im.mode in _GRAY_MODES for im in images)
    in_chans = 1 if gray else 3
    native = int(np.median([min(im.size) for im in images]))
    total = np.zeros(in_chans)
    total_sq = np.zeros(in_chans)
    count = 0
    for im in images:
        im = im.convert("L" if gray else "RGB")
        scale = _STATS_SIDE / min(im.size)
        if scale < 1:
            im = im.resize((max(1, round(im.size[0] * scale)), max(1, round(im.size[1] * scale))))
        x = np.asarray(im, dtype=np.float64).reshape(im.size[1], im.size[0], -1) / 255.0
        total += x.sum(axis=(0, 1))
        total_sq += (x * x).sum(axis=(0, 1))
        count += x.shape[0] * x.shape[1]
    mean = total / count
    # a constant channel would divide by zero; one grey level is the least spread assumed
    std = np.maximum(np.sqrt(np.maximum(total_sq / count - mean * mean, 0.0)), 1 / 255)
    return FolderStats(str(root), tuple(classes), n, len(images), in_chans, max(1, native),
                       max(1, min(native, MAX_INPUT_SIZE)), tuple(round(float(m), 4) for m in mean),
                       tuple(round(float(s), 4) for s in std), tuple(unreadable))


def describe(stats: FolderStats, input_size: Optional[int] = None) -> str:
    """One line saying what was inferred from the images and what is assumed."""
    size = input_size or stats.input_size
    how = ("images no larger than that are resized to it" if stats.native_size <= size * 8 / 7
           else "larger images are random-resized-cropped for training, resized and centre-cropped for testing")
    given = "" if input_size in (None, stats.input_size) else f" (--input-size; the images suggest {stats.input_size})"
    fmt = ", ".join
    return (f"imagefolder {stats.root}: {len(stats.classes)} classes, {stats.num_images} training images; "
            f"{stats.in_chans} channel{'s' if stats.in_chans > 1 else ''} "
            f"({'all sampled images grayscale' if stats.in_chans == 1 else 'color'}), input {size} px{given}, "
            f"median image side {stats.native_size} px ({how}); mean ({fmt(f'{m:.3f}' for m in stats.mean)}) "
            f"std ({fmt(f'{s:.3f}' for s in stats.std)}), all from {stats.sampled} sampled training images"
            + (f" ({len(stats.unreadable)} more sampled ones unreadable)" if stats.unreadable else ""))


class _Folder(Dataset):
    """One split of an image folder; unreadable images raise with their path, or are skipped."""

    def __init__(self, directory: Path, classes: Sequence[str], transform: Any, in_chans: int,
                 bad_images: str) -> None:
        self.root = str(directory)
        self.classes = list(classes)
        self.samples = _samples(directory, classes)
        self.targets = [label for _, label in self.samples]
        self.transform = transform
        self.in_chans = in_chans
        self.bad_images = bad_images

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Any:
        path, label = self.samples[index]
        try:
            image = read_image(path, self.in_chans)
        except BadImageError as e:
            if self.bad_images != "skip":
                raise BadImageError(f"{e}; {_HINT}") from None
            print(f"warning: skipping {e}", file=sys.stderr, flush=True)
            return None
        return self.transform(image), label


def drop_unreadable(batch: List[Any]) -> Any:
    """DataLoader ``collate_fn``: the default collation, without the images a skipping folder left out."""
    from torch.utils.data import default_collate

    kept = [item for item in batch if item is not None]
    if not kept:
        raise BadImageError("every image of a batch was unreadable (see the warnings above)")
    return default_collate(kept)


def scan_images(root: str, splits: Sequence[str] = ("train", "test"), limit: int = 10) -> int:
    """Decode every image of ``splits``; raise :class:`BadImageError` listing the unreadable ones.

    Returns the number of images read.
    """
    stats = folder_stats(root)
    bad: List[str] = []
    seen = 0
    for split in splits:
        for path, _ in _samples(split_dir(Path(root), split), stats.classes):
            seen += 1
            try:
                _open(path)
            except BadImageError as e:
                bad.append(str(e))
    if bad:
        more = f"; and {len(bad) - limit} more" if len(bad) > limit else ""
        raise BadImageError(f"{len(bad)} of {seen} images cannot be read: {'; '.join(bad[:limit])}{more}")
    return seen


def load_imagefolder(root: str, split: str, *, augment: bool, input_size: Optional[int] = None,
                     bad_images: str = "error") -> Dataset:
    """One split (``train`` or ``test``) of the folder at ``root``, normalised with :func:`folder_stats`.

    Args:
        root: the folder holding ``train/`` and ``val/`` (or ``test/``).
        split: ``train`` or ``test``.
        augment: training augmentation (see the module docstring).
        input_size: side of the square inputs (default: inferred from the images).
        bad_images: ``error``, ``skip`` or ``scan`` (``scan`` reads like ``error``; :func:`scan_images`
            is the check itself).
    """
    from torchvision import transforms as T

    if bad_images not in BAD_IMAGES:
        raise ValueError(f"unknown bad_images {bad_images!r}; accepted: {', '.join(BAD_IMAGES)}")
    stats = folder_stats(root)
    if stats.unreadable and bad_images != "skip":
        raise BadImageError(f"{stats.unreadable[0]}; {_HINT}")
    size = input_size or stats.input_size
    directory = split_dir(Path(root), split)
    if split == "test":
        # ImageFolder numbers classes per folder; a mismatch would silently shift labels.
        classes = list_classes(directory)
        if classes != list(stats.classes):
            missing = sorted(set(stats.classes) - set(classes))
            extra = sorted(set(classes) - set(stats.classes))
            raise ValueError(
                f"imagefolder: class folders of {directory} differ from {Path(root) / 'train'} "
                f"(missing: {missing[:5]}, extra: {extra[:5]}); labels would not match"
            )
    small = stats.native_size <= size * 8 / 7
    if not augment:
        transform = eval_transform(size, eval_resize_side(stats.native_size, size), stats.mean, stats.std)
        return _Folder(directory, stats.classes, transform, stats.in_chans, bad_images)
    if small:
        steps = [T.Resize(size), T.CenterCrop(size), T.RandomCrop(size, padding=max(1, round(size / 8))),
                 T.RandomHorizontalFlip()]
    else:
        steps = [T.RandomResizedCrop(size), T.RandomHorizontalFlip()]
    transform = T.Compose(steps + [T.ToTensor(), T.Normalize(stats.mean, stats.std)])
    return _Folder(directory, stats.classes, transform, stats.in_chans, bad_images)


def eval_resize_side(native_size: int, size: Union[int, Tuple[int, int]]) -> int:
    """The shorter side a test image is resized to before its centre crop to ``size``: ``size`` itself for
    images about that size or smaller (``native_size`` at most 8/7 of it), else ``size / 0.875`` (the
    ImageNet recipe). A non-square ``(H, W)`` counts as its larger side."""
    side = size if isinstance(size, int) else max(size)
    return side if native_size <= side * 8 / 7 else int(side / 0.875)


def eval_transform(size: Union[int, Tuple[int, int]], resize_side: int, mean: Sequence[float],
                   std: Sequence[float]) -> Any:
    """How evaluation prepares a folder's (``L`` or ``RGB``) PIL image: shorter side to ``resize_side``,
    centre crop to ``size``, values to [0, 1], ``(x - mean) / std`` per channel."""
    from torchvision import transforms as T

    return T.Compose([T.Resize(resize_side), T.CenterCrop(size), T.ToTensor(), T.Normalize(mean, std)])
