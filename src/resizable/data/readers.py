"""Reading the built-in datasets' files: idx (Fashion-MNIST) and CIFAR's pickled batches.

Nothing here downloads unless asked (``download=True``, through torchvision); offline, a missing
dataset is an error that says where the files were looked for and how to get them.
"""
from __future__ import annotations

import gzip
import math
import os
import pickle
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

__all__ = ["SYSTEM_FASHION_MNIST_DIR", "CIFAR_NUM_CLASSES", "default_data_root", "read_idx", "load_fashion_mnist",
           "load_cifar"]

SYSTEM_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

FASHION_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# (folder name, train files, test files, label key, number of classes)
CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        "labels",
        10,
    ),
    "cifar100": ("cifar-100-python", ("train",), ("test",), "fine_labels", 100),
}

# idx type codes -> numpy dtypes (multi-byte values are big-endian).
IDX_DTYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
CIFAR_NUM_CLASSES = {name: layout[4] for name, layout in CIFAR_LAYOUT.items()}


def default_data_root() -> Path:
    """Directory where datasets are downloaded when no data_dir is given."""
    return Path.home() / ".cache" / "resizable" / "data"




def read_idx(path: str | os.PathLike, expected_ndim: int | None = None) -> np.ndarray:
    """Read an idx file (the MNIST format), gzip-compressed or not.

    Args:
        path: file to read; gzip is detected from its content, not its name.
        expected_ndim: if given, the number of dimensions the header must declare.

    Returns a native-endian numpy array with the shape given by the header.
    Raises ValueError on a bad magic number, bad gzip stream or size mismatch.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt gzip data ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        codes = ", ".join(f"0x{c:02x}" for c in IDX_DTYPES)
        raise ValueError(
            f"{path}: not an idx file (magic bytes {raw[:4].hex() or 'missing'}; expected "
            f"00 00 <type code in {codes}> <ndim>)"
        )
    ndim = raw[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise ValueError(f"{path}: idx header declares {ndim} dimensions, expected {expected_ndim}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated idx header ({len(raw)} bytes, need {header})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = math.prod(dims) * dtype.itemsize
    if len(raw) - header != expected:
        raise ValueError(
            f"{path}: header declares shape {dims} ({expected} data bytes) but the file holds "
            f"{len(raw) - header}; the file is truncated or corrupt"
        )
    data = np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)
    # Copy so torch gets a writable, native-endian array.
    return data.astype(dtype.newbyteorder("="), copy=True)


def _find_file(directory: Path, stem: str) -> Path | None:
    # Uncompressed first: torchvision leaves both forms and the plain one reads faster.
    for name in (stem, stem + ".gz"):
        candidate = directory / name
        if candidate.is_file():
            return candidate
    return None


def _find_fashion_files(dirs: Sequence[Path], split: str) -> tuple[Path, Path] | None:
    image_stem, label_stem = FASHION_FILES[split]
    for directory in dirs:
        images, labels = _find_file(directory, image_stem), _find_file(directory, label_stem)
        if images is not None and labels is not None:
            return images, labels
    return None


def load_fashion_mnist(split: str, data_dir: str | None, download: bool) -> tuple[Tensor, Tensor]:
    if data_dir is not None:
        root = Path(data_dir).expanduser()
        dirs = [root, root / "FashionMNIST" / "raw"]
    else:
        root = default_data_root()
        dirs = [SYSTEM_FASHION_MNIST_DIR, root / "FashionMNIST" / "raw"]
    found = _find_fashion_files(dirs, split)
    image_stem, label_stem = FASHION_FILES[split]
    where = ", ".join(str(d) for d in dirs)
    how = (
        "Install them with `apt-get install dataset-fashion-mnist`, pass --data-dir DIR "
        "(data_dir=DIR) pointing at a folder holding the idx files, or pass --download "
        "(download=True) when online."
    )
    if found is None and download:
        try:
            from torchvision.datasets import FashionMNIST

            FashionMNIST(root=str(root), train=split == "train", download=True)
        except Exception as exc:
            raise RuntimeError(
                f"could not download Fashion-MNIST into {root} ({type(exc).__name__}: {exc}); "
                f"looked for local files in: {where}. {how}"
            ) from exc
        found = _find_fashion_files(dirs, split)
    if found is None:
        message = (
            f"Fashion-MNIST {split} files ({image_stem}[.gz], {label_stem}[.gz]) not found; "
            f"looked in: {where}. {how}"
        )
        if download:
            raise RuntimeError(message)
        raise FileNotFoundError(message)

    image_path, label_path = found
    images = read_idx(image_path, expected_ndim=3)
    labels = read_idx(label_path, expected_ndim=1)
    if images.dtype != np.uint8 or labels.dtype != np.uint8:
        raise ValueError(f"Fashion-MNIST files {image_path}, {label_path} must hold unsigned bytes")
    if images.shape[1:] != (28, 28):
        raise ValueError(f"{image_path}: images are {images.shape[1:]}, expected 28x28")
    if len(images) != len(labels):
        raise ValueError(f"{image_path} has {len(images)} images but {label_path} has {len(labels)} labels")
    if labels.size and labels.max() >= 10:
        raise ValueError(f"{label_path}: label {int(labels.max())} out of range 0..9")
    return torch.from_numpy(images).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


# ----------------------------------------------------------------------------- cifar


def _pickle_field(entry: dict, key: str):
    # torchvision's archives use bytes keys; accept str keys from re-pickled copies too.
    if key.encode() in entry:
        return entry[key.encode()]
    return entry.get(key)


# What a CIFAR batch is made of: dicts, lists, bytes, str and numbers (no global needed), numpy arrays
# and dtypes (numpy 1 and 2 spell the module differently), and the helper Python 3 uses for bytes in
# protocol 2. Every other global a pickle names is refused before it is built.
CIFAR_PICKLE_GLOBALS = frozenset({
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),  # protocol 5
    ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
})


class DataOnlyUnpickler(pickle.Unpickler):
    """Unpickles data only: a global outside :data:`CIFAR_PICKLE_GLOBALS` raises ``ValueError`` naming it."""

    def __init__(self, file, path: Path, **kw) -> None:
        super().__init__(file, **kw)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in CIFAR_PICKLE_GLOBALS:
            raise ValueError(f"{self.path}: refused: the file asks to build {module}.{name}, and a CIFAR batch holds "
                             f"only dicts, lists, bytes, str, numbers and numpy arrays (a crafted or foreign pickle?)")
        return super().find_class(module, name)


def _read_cifar_batch(path: Path, label_key: str, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            entry = DataOnlyUnpickler(f, path, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, TypeError) as exc:
        raise ValueError(f"{path}: not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from exc
    if not isinstance(entry, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(entry).__name__}")
    data, labels = _pickle_field(entry, "data"), _pickle_field(entry, label_key)
    if data is None or labels is None:
        raise ValueError(f"{path}: missing 'data' or {label_key!r} entry")
    data = np.asarray(data)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: 'data' has shape {data.shape}, expected (N, 3072)")
    if labels.shape != (len(data),):
        raise ValueError(f"{path}: {len(data)} images but labels have shape {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"{path}: labels must lie in 0..{num_classes - 1}")
    return data.astype(np.uint8, copy=False), labels


def load_cifar(name: str, split: str, data_dir: str | None, download: bool) -> tuple[Tensor, Tensor]:
    folder, train_files, test_files, label_key, num_classes = CIFAR_LAYOUT[name]
    files = train_files if split == "train" else test_files
    root = Path(data_dir).expanduser() if data_dir is not None else default_data_root()
    # Also accept data_dir pointing straight at the extracted batch folder.
    dirs = [root / folder] + ([root] if data_dir is not None else [])

    def find() -> Path | None:
        for directory in dirs:
            if all((directory / f).is_file() for f in files):
                return directory
        return None

    found = find()
    where = ", ".join(str(d) for d in dirs)
    how = (
        f"Put torchvision's extracted {folder}/ folder under --data-dir DIR (data_dir=DIR), "
        "or pass --download (download=True) when online."
    )
    if found is None and download:
        try:
            from torchvision import datasets

            cls = datasets.CIFAR10 if name == "cifar10" else datasets.CIFAR100
            cls(root=str(root), train=split == "train", download=True)
        except Exception as exc:
            raise RuntimeError(
                f"could not download {name} into {root} ({type(exc).__name__}: {exc}); "
                f"looked for local files in: {where}. {how}"
            ) from exc
        found = find()
    if found is None:
        message = f"{name} {split} files ({', '.join(files)}) not found; looked in: {where}. {how}"
        if download:
            raise RuntimeError(message)
        raise FileNotFoundError(message)

    parts = [_read_cifar_batch(found / f, label_key, num_classes) for f in files]
    data = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)
