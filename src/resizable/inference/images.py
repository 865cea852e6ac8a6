"""Image files for inference: which files a command line names, and how one becomes a network input.

**Which files.** Each argument is an image file (read whatever its name), a folder (searched
recursively, in sorted order, for the extensions torchvision's ``ImageFolder`` reads, following
links but reading a folder reached twice once), or ``-``: paths read from stdin, one a line, each
expanded the same way. A path that does not exist is reported, not fatal.

**How a file becomes an input** (:class:`Preprocessing`): exactly as evaluation prepares the run's
images, so that a PNG written from a dataset's own pixels gives the tensor evaluation gives.

- ``tensor`` (Fashion-MNIST, CIFAR: datasets held as uint8 tensors): the image is converted to
  ``L`` or ``RGB`` (PIL), centre-cropped to the input's aspect ratio when it differs, resized to
  the input size by the datasets' own uint8 resize (bilinear, antialiased, rounded; only when the
  size differs), then ``(x / 255 - mean) / std`` by the datasets' own function. A 28x28 grey PNG
  of a Fashion-MNIST image therefore gives bit-identical input.
- ``folder`` (image-folder runs): the folder's evaluation transform, shorter side to
  ``resize_side`` then a centre crop to the input size (``L`` or ``RGB`` first). When the run's
  folder is not at hand and the export records no side, each image gets the side the folder rule
  gives an image of its own size (:func:`resizable.data.imagefolder.eval_resize_side`).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, TextIO, Tuple

import torch
from torch import Tensor

__all__ = ["IMAGE_EXTENSIONS", "METHODS", "Preprocessing", "image_paths"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")  # ImageFolder's
METHODS = ("tensor", "folder")
TENSOR_DATASETS = ("fashion-mnist", "cifar10", "cifar100")


def _folder_images(folder: Path) -> Iterator[str]:
    """Image files under ``folder``, sorted per folder, each folder once (a link loop ends)."""
    seen = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        dirs.sort()  # os.walk visits the sub-folders in this list's order
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                yield os.path.join(root, name)


def _expand(arg: str) -> Iterator[Tuple[str, Optional[str]]]:
    path = Path(arg)
    if path.is_dir():
        for found in _folder_images(path):
            yield found, None
    elif path.exists():
        yield arg, None
    else:
        yield arg, f"{arg}: no such file or folder"


def image_paths(args: Sequence[str], stdin: Optional[TextIO] = None) -> Iterator[Tuple[str, Optional[str]]]:
    """``(path, problem)`` for every image the arguments name, in order; ``problem`` is None, or one line
    saying why the path cannot be read (it does not exist).

    Args:
        args: image files, folders, or ``-`` (read paths from ``stdin``, one a line; blank lines skipped).
        stdin: where ``-`` reads (default: ``sys.stdin``), read lazily, line by line.
    """
    import sys

    for arg in args:
        if arg != "-":
            yield from _expand(arg)
            continue
        for line in (stdin if stdin is not None else sys.stdin):
            line = line.rstrip("\r\n")
            if line.strip():
                yield from _expand(line)


@dataclass(frozen=True)
class Preprocessing:
    """How an image file becomes a network input (see the module notes)."""

    in_chans: int                        # 1 (``L``) or 3 (``RGB``)
    size: Tuple[int, int]                # (H, W) of the network's input
    mean: Tuple[float, ...]              # per channel, of values in [0, 1]
    std: Tuple[float, ...]
    method: str                          # one of METHODS
    resize_side: Optional[int] = None    # folder: shorter side before the crop; None: chosen per image
    dataset: Optional[str] = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown preprocessing method {self.method!r}; accepted: {', '.join(METHODS)}")
        if self.in_chans not in (1, 3):
            raise ValueError(f"images are read with 1 (grey) or 3 (RGB) channels, not {self.in_chans}")
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"mean and std need {self.in_chans} value(s) each, got {list(self.mean)} and "
                             f"{list(self.std)}")

    @staticmethod
    def method_for(dataset: Optional[str]) -> str:
        """``tensor`` for the datasets evaluation holds as uint8 tensors, else ``folder``."""
        return "tensor" if dataset in TENSOR_DATASETS else "folder"

    def describe(self) -> str:
        """One line: channels, size, resize and normalisation."""
        h, w = self.size
        mode = "grey" if self.in_chans == 1 else "RGB"
        if self.method == "tensor":
            how = f"resized to {h}x{w} as the {self.dataset or 'in-memory'} dataset is (uint8 bilinear)"
        elif self.resize_side is None:
            how = f"shorter side resized by the image folder's rule per image, centre crop {h}x{w}"
        else:
            how = f"shorter side to {self.resize_side} px, centre crop {h}x{w}"
        stats = ", ".join(f"{m:.4g}/{s:.4g}" for m, s in zip(self.mean, self.std))
        return f"{mode}, {how}, normalised with mean/std {stats}"

    def load(self, path: str) -> Tensor:
        """The network input (C, H, W) float32 of the image at ``path``; an unreadable file raises
        :class:`resizable.data.imagefolder.BadImageError` (a ``ValueError``) naming it."""
        from ..data.imagefolder import read_image

        image = read_image(path, self.in_chans)
        return self._tensor(image) if self.method == "tensor" else self._folder(image)

    def _tensor(self, image) -> Tensor:
        import numpy as np

        from ..data.datasets import normalize_uint8, resize_uint8

        pixels = torch.from_numpy(np.array(image, dtype=np.uint8))  # (H, W) or (H, W, 3)
        x = pixels.reshape(pixels.shape[0], pixels.shape[1], -1).permute(2, 0, 1).unsqueeze(0)  # (1, C, H, W)
        x = _centre_crop_to_aspect(x, self.size)
        if tuple(x.shape[-2:]) != self.size:
            x = resize_uint8(x.contiguous(), self.size)
        mean = torch.tensor(self.mean, dtype=torch.float32).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(-1, 1, 1)
        return normalize_uint8(x.contiguous(), mean, std)[0]

    def _folder(self, image) -> Tensor:
        from ..data.imagefolder import eval_resize_side, eval_transform

        side = self.resize_side if self.resize_side is not None else eval_resize_side(min(image.size), self.size)
        return eval_transform(self.size, side, self.mean, self.std)(image)


def _centre_crop_to_aspect(x: Tensor, size: Tuple[int, int]) -> Tensor:
    """The largest centred crop of ``x`` (..., H, W) with the aspect ratio of ``size`` (no resampling)."""
    h, w = x.shape[-2:]
    th, tw = size
    if h * tw == w * th:
        return x
    if h * tw > w * th:  # too tall
        ch, cw = max(1, round(w * th / tw)), w
    else:
        ch, cw = h, max(1, round(h * tw / th))
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]

