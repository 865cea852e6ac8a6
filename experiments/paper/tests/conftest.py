"""The suite's tests: its package (``suite``) importable, one thread per process, and a tiny Fashion-MNIST."""
import gzip
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # experiments/paper: the package ``suite``

# Keep the tests' speed predictable on small machines and independent of the caller's settings.
torch.set_num_threads(min(2, os.cpu_count() or 1))


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write a uint8 array as a gzipped idx file (the Fashion-MNIST format)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


@pytest.fixture(scope="session")
def tiny_fmnist(tmp_path_factory) -> str:
    """A small learnable stand-in for Fashion-MNIST (idx files): the class sets which 7x7 block is bright."""
    root = tmp_path_factory.mktemp("fmnist")
    rng = np.random.default_rng(0)

    def make(n):
        labels = rng.integers(0, 10, size=n).astype(np.uint8)
        images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
        for i, c in enumerate(labels):
            r, q = divmod(int(c), 4)
            images[i, 7 * r:7 * r + 7, 7 * q:7 * q + 7] += 150
        return images, labels

    for prefix, n in (("train", 512), ("t10k", 256)):
        images, labels = make(n)
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", images)
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", labels)
    return str(root)
