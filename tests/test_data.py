"""Tests for resizable.data.datasets: file parsing, dataset loading and deterministic loaders."""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from resizable.data import datasets as data
from resizable.data.datasets import (
    DATASETS,
    DatasetInfo,
    TensorImageDataset,
    dataset_info,
    load_dataset,
    make_loader,
    read_idx,
)

REAL_FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")


# ------------------------------------------------------------------ helpers


def write_idx(path: Path, array: np.ndarray, *, compress: bool = True, magic: bytes | None = None) -> Path:
    """Write a uint8 array as an idx file (gzip-compressed unless told otherwise)."""
    header = magic if magic is not None else bytes([0, 0, 0x08, array.ndim])
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(payload) if compress else payload)
    return path


def write_fake_fashion(directory: Path, n_train: int = 12, n_test: int = 6, compress: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = (np.arange(n) % 10).astype(np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images, compress=compress)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress=compress)


def write_cifar_pickle(path: Path, n: int, label_key: bytes, num_classes: int, offset: int = 0) -> None:
    images = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    # Channel c of sample i is filled with a value that identifies both.
    for i in range(n):
        for c in range(3):
            images[i, c] = ((offset + i) * 3 + c) % 256
    labels = [(offset + i) % num_classes for i in range(n)]
    with open(path, "wb") as f:
        pickle.dump({b"data": images.reshape(n, -1), label_key: labels}, f)


def make_tensor_dataset(n: int = 50, size: int = 8, chans: int = 1, augment: bool = False):
    gen = torch.Generator().manual_seed(123)
    images = torch.randint(0, 256, (n, chans, size, size), generator=gen, dtype=torch.uint8)
    labels = torch.arange(n) % 10
    return TensorImageDataset(images, labels, (0.5,) * chans, (0.25,) * chans, augment=augment, pad=2)


def collect(loader) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(y)
    return xs, ys


# ------------------------------------------------------------------ idx parsing


def test_read_idx_gzip_and_plain(tmp_path: Path) -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    gz = read_idx(write_idx(tmp_path / "a.gz", array))
    plain = read_idx(write_idx(tmp_path / "a", array, compress=False), expected_ndim=3)
    np.testing.assert_array_equal(gz, array)
    np.testing.assert_array_equal(plain, array)
    assert gz.flags.writeable


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "bad.gz", np.zeros((2, 2), np.uint8), magic=b"\x12\x34\x08\x02")
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(path)


def test_read_idx_wrong_ndim_and_truncated(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "labels.gz", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="expected 3"):
        read_idx(path, expected_ndim=3)
    payload = bytes([0, 0, 0x08, 1]) + struct.pack(">I", 10) + bytes(4)
    (tmp_path / "short").write_bytes(payload)
    with pytest.raises(ValueError, match="truncated or corrupt"):
        read_idx(tmp_path / "short")


def test_read_idx_corrupt_gzip(tmp_path: Path) -> None:
    good = gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 3, 1, 2, 3]))
    (tmp_path / "broken.gz").write_bytes(good[:-6])
    with pytest.raises(ValueError, match="corrupt gzip"):
        read_idx(tmp_path / "broken.gz")


# ------------------------------------------------------------------ fashion-mnist


@pytest.mark.parametrize("compress", [True, False])
def test_fashion_mnist_from_data_dir(tmp_path: Path, compress: bool) -> None:
    write_fake_fashion(tmp_path, compress=compress)
    train = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    test = load_dataset("fashion-mnist", "test", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="--val-size"):  # no longer an alias of test
        load_dataset("fashion-mnist", "val", data_dir=str(tmp_path))
    assert isinstance(train, TensorImageDataset)
    assert train.images.shape == (12, 1, 28, 28) and train.images.dtype == torch.uint8
    assert test.images.shape == (6, 1, 28, 28)
    assert train.labels.dtype == torch.int64
    assert train.labels.tolist() == [i % 10 for i in range(12)]
    assert train.augment and not test.augment


def test_fashion_mnist_torchvision_layout(tmp_path: Path) -> None:
    write_fake_fashion(tmp_path / "FashionMNIST" / "raw", n_train=4, n_test=3)
    ds = load_dataset("fashion-mnist", "test", data_dir=str(tmp_path))
    assert len(ds) == 3
    image, label = ds[0]
    assert image.shape == (1, 28, 28) and image.dtype == torch.float32
    assert int(label) == 0


def test_fashion_mnist_missing_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))
    message = str(info.value)
    assert "dataset-fashion-mnist" in message
    assert str(tmp_path) in message and "--download" in message


def test_fashion_mnist_label_count_mismatch(tmp_path: Path) -> None:
    write_fake_fashion(tmp_path)
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(3, np.uint8))
    with pytest.raises(ValueError, match="labels"):
        load_dataset("fashion-mnist", "train", data_dir=str(tmp_path))


def test_real_fashion_mnist() -> None:
    if not REAL_FASHION_DIR.is_dir():
        pytest.skip(f"{REAL_FASHION_DIR} not present (install the dataset-fashion-mnist package)")
    train = load_dataset("fashion-mnist", "train")
    test = load_dataset("fashion-mnist", "test")
    assert train.images.shape == (60000, 1, 28, 28)
    assert test.images.shape == (10000, 1, 28, 28)
    for ds in (train, test):
        assert ds.labels.min() == 0 and ds.labels.max() == 9
        assert torch.bincount(ds.labels).tolist() == [len(ds) // 10] * 10
    # The stored statistics should normalize the training set to ~N(0, 1).
    train.augment = False
    total, total_sq, count = 0.0, 0.0, 0
    for x, _ in make_loader(train, 4096, shuffle=False):
        total += x.double().sum().item()
        total_sq += x.double().pow(2).sum().item()
        count += x.numel()
    mean = total / count
    std = (total_sq / count - mean**2) ** 0.5
    assert abs(mean) < 0.01 and abs(std - 1) < 0.01


# ------------------------------------------------------------------ cifar


def test_cifar10_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        write_cifar_pickle(folder / f"data_batch_{i}", 3, b"labels", 10, offset=(i - 1) * 3)
    write_cifar_pickle(folder / "test_batch", 4, b"labels", 10)
    train = load_dataset("cifar10", "train", data_dir=str(tmp_path))
    test = load_dataset("cifar10", "test", data_dir=str(tmp_path))
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.labels.tolist() == [i % 10 for i in range(15)]
    # Channel-major reshape: sample 7, channel 2 must hold 7 * 3 + 2 everywhere.
    assert torch.all(train.images[7, 2] == 23)
    assert train.pad == 4 and train.mean == dataset_info("cifar10").mean


def test_cifar100_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    write_cifar_pickle(folder / "train", 8, b"fine_labels", 100, offset=95)
    write_cifar_pickle(folder / "test", 2, b"fine_labels", 100)
    train = load_dataset("cifar100", "train", data_dir=str(tmp_path))
    assert train.images.shape == (8, 3, 32, 32)
    assert train.labels.tolist() == [(95 + i) % 100 for i in range(8)]
    assert len(load_dataset("cifar100", "test", data_dir=str(tmp_path))) == 2
    x, y = next(iter(make_loader(train, 8, shuffle=False)))
    assert x.shape == (8, 3, 32, 32) and y.dtype == torch.int64


def test_cifar_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_dataset("cifar10", "test", data_dir=str(tmp_path))
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="CIFAR pickle"):
        load_dataset("cifar100", "test", data_dir=str(tmp_path))


# ------------------------------------------------------------------ imagefolder


def test_imagefolder(tmp_path: Path) -> None:
    from PIL import Image

    classes = ["cat", "dog", "eel"]
    for split, per_class in (("train", 3), ("val", 2)):
        for k, name in enumerate(classes):
            folder = tmp_path / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                color = (80 * k, 10 * i, 200)
                Image.new("RGB", (20 + i, 18), color).save(folder / f"{i}.png")
    info = dataset_info("imagefolder", str(tmp_path))
    # inferred from the images: color, the median shorter side (18 px), classes in folder order
    assert info.num_classes == 3 and info.in_chans == 3 and info.input_size == 18
    assert info.classes == ("cat", "dog", "eel") and "9 training images" in info.note

    train = load_dataset("imagefolder", "train", data_dir=str(tmp_path), input_size=16)
    loader = make_loader(train, 4, shuffle=True, seed=3)
    assert len(loader) == 3
    xs, ys = collect(loader)
    assert all(x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 for x in xs)
    labels = torch.cat(ys)
    assert labels.dtype == torch.int64 and sorted(labels.tolist()) == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert torch.equal(torch.cat(collect(loader)[1]), labels)  # same (seed, epoch) -> same order

    test = load_dataset("imagefolder", "test", data_dir=str(tmp_path), input_size=16)
    x, y = next(iter(make_loader(test, 6, shuffle=False)))
    assert x.shape == (6, 3, 16, 16) and y.tolist() == [0, 0, 1, 1, 2, 2]

    shards = [collect(make_loader(train, 2, shuffle=True, rank=r, world_size=2))[1] for r in range(2)]
    assert sum(len(torch.cat(s)) for s in shards) == 10  # 9 samples padded to 2 x 5


def test_imagefolder_needs_data_dir() -> None:
    with pytest.raises(ValueError, match="data_dir"):
        dataset_info("imagefolder")
    with pytest.raises(ValueError, match="data_dir"):
        load_dataset("imagefolder", "train")


# ------------------------------------------------------------------ validation


def test_unknown_name_and_split() -> None:
    with pytest.raises(ValueError, match="cifar100") as info:
        load_dataset("mnist", "train")
    assert all(name in str(info.value) for name in DATASETS)
    with pytest.raises(ValueError, match="train, test, val"):
        load_dataset("fashion-mnist", "holdout")
    with pytest.raises(ValueError, match="fashion-mnist"):
        dataset_info("imagenet")


def test_dataset_info_values() -> None:
    assert dataset_info("fashion-mnist") == DatasetInfo("fashion-mnist", 10, 1, 28, (0.2860,), (0.3530,),
                                                        data.FASHION_MNIST_CLASSES)
    assert dataset_info("cifar10").classes[:2] == ("airplane", "automobile")
    assert len(set(dataset_info("cifar100").classes)) == 100
    assert dataset_info("cifar10").num_classes == 10 and dataset_info("cifar10").input_size == 32
    assert dataset_info("cifar100").num_classes == 100 and dataset_info("cifar100").in_chans == 3


def test_make_loader_bad_arguments() -> None:
    ds = make_tensor_dataset()
    with pytest.raises(ValueError, match="batch_size"):
        make_loader(ds, 0, shuffle=False)
    with pytest.raises(ValueError, match="rank"):
        make_loader(ds, 4, shuffle=False, rank=2, world_size=2)


# ------------------------------------------------------------------ loader behaviour


def test_normalization_values() -> None:
    images = torch.tensor([0, 51, 255], dtype=torch.uint8).view(3, 1, 1, 1)
    ds = TensorImageDataset(images, torch.zeros(3, dtype=torch.int64), (0.2,), (0.4,))
    x, _ = next(iter(make_loader(ds, 3, shuffle=False)))
    torch.testing.assert_close(x.flatten(), torch.tensor([-0.5, 0.0, 2.0]))
    torch.testing.assert_close(ds[2][0].flatten(), torch.tensor([2.0]))


def test_loader_determinism_with_augmentation() -> None:
    ds = make_tensor_dataset(augment=True)
    torch.manual_seed(0)
    a = collect(make_loader(ds, 16, shuffle=True, seed=7, epoch=2))
    torch.manual_seed(999)  # global RNG must not matter
    loader = make_loader(ds, 16, shuffle=True, seed=7, epoch=2)
    b = collect(loader)
    c = collect(loader)  # re-iterating repeats the epoch
    for first, other in ((a, b), (a, c)):
        assert all(torch.equal(x, y) for x, y in zip(first[0], other[0]))
        assert all(torch.equal(x, y) for x, y in zip(first[1], other[1]))
    assert len(loader) == 4 and [len(y) for y in a[1]] == [16, 16, 16, 2]

    next_epoch = collect(make_loader(ds, 16, shuffle=True, seed=7, epoch=3))
    assert not torch.equal(torch.cat(a[1]), torch.cat(next_epoch[1]))
    other_seed = collect(make_loader(ds, 16, shuffle=True, seed=8, epoch=2))
    assert not torch.equal(torch.cat(a[0]), torch.cat(other_seed[0]))


def test_augmentation_is_crop_and_flip() -> None:
    ds = make_tensor_dataset(n=64, augment=True)
    plain = TensorImageDataset(ds.images, ds.labels, ds.mean, ds.std, augment=False)
    order = make_loader(ds, 64, shuffle=True, seed=1).indices()
    x, y = next(iter(make_loader(ds, 64, shuffle=True, seed=1)))
    assert torch.equal(y, ds.labels[order])
    # Zero padding happens before normalization: a padded pixel reads (0 - 0.5) / 0.25 = -2.
    padded = torch.nn.functional.pad(plain.normalize(ds.images), (2, 2, 2, 2), value=-2.0)
    flipped = 0
    for i, idx in enumerate(order.tolist()):
        windows = padded[idx].unfold(1, 8, 1).unfold(2, 8, 1)  # (C, 5, 5, 8, 8)
        plain_hit = (windows == x[i][:, None, None]).flatten(3).all(-1).all(0).any()
        flip_hit = (windows.flip(-1) == x[i][:, None, None]).flatten(3).all(-1).all(0).any()
        assert plain_hit or flip_hit, f"sample {i} is not a crop of its source image"
        flipped += int(flip_hit and not plain_hit)
    assert 10 < flipped < 54  # about half the samples are flipped


def test_no_shuffle_keeps_order_and_no_augmentation_is_identity() -> None:
    ds = make_tensor_dataset(n=10)
    xs, ys = collect(make_loader(ds, 4, shuffle=False))
    assert torch.equal(torch.cat(ys), ds.labels)
    assert torch.equal(torch.cat(xs), ds.normalize(ds.images))
    assert len(make_loader(ds, 4, shuffle=False, drop_last=True)) == 2


@pytest.mark.parametrize("n, drop_last", [(50, False), (51, False), (51, True)])
def test_sharding(n: int, drop_last: bool) -> None:
    ds = make_tensor_dataset(n=n)
    ds.labels = torch.arange(n)  # labels double as sample ids
    shards = []
    for rank in range(2):
        loader = make_loader(
            ds, 8, shuffle=True, seed=5, epoch=1, rank=rank, world_size=2, drop_last=drop_last
        )
        ids = torch.cat(collect(loader)[1])
        expected = len(ids) // 8 if drop_last else -(-len(ids) // 8)
        assert len(loader) == expected
        shards.append(ids)
    assert len(shards[0]) == len(shards[1])
    union = set(shards[0].tolist()) | set(shards[1].tolist())
    if drop_last:
        assert len(shards[0]) == n // 2 // 8 * 8
        assert not set(shards[0].tolist()) & set(shards[1].tolist())
    elif n % 2 == 0:
        assert union == set(range(n)) and not set(shards[0].tolist()) & set(shards[1].tolist())
    else:
        # One sample is repeated to even out the ranks; everything is still covered.
        assert union == set(range(n)) and len(shards[0]) == (n + 1) // 2


def test_input_size_resizes_small_datasets(tmp_path: Path) -> None:
    write_fake_fashion(tmp_path, n_train=3, n_test=2)
    ds = load_dataset("fashion-mnist", "train", data_dir=str(tmp_path), input_size=56)
    assert ds.images.shape == (3, 1, 56, 56) and ds.pad == 4
    x, _ = next(iter(make_loader(ds, 3, shuffle=True)))
    assert x.shape == (3, 1, 56, 56)


def test_works_with_torch_dataloader() -> None:
    ds = make_tensor_dataset(n=10, augment=True)
    x, y = next(iter(torch.utils.data.DataLoader(ds, batch_size=5)))
    assert x.shape == (5, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_module_constants() -> None:
    assert DATASETS == ("fashion-mnist", "cifar10", "cifar100", "imagefolder")
    assert data.default_data_root().parts[-3:] == (".cache", "resizable", "data")


def test_imagefolder_infers_channels_size_and_statistics(tmp_path: Path) -> None:
    from PIL import Image

    from resizable.data import imagefolder

    rng = np.random.default_rng(1)
    gray = tmp_path / "gray"
    for split in ("train", "val"):
        for c in ("a", "b"):
            (gray / split / c).mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (12, 12)).astype(np.uint8), "L").save(gray / split / c / f"{i}.png")
    info = dataset_info("imagefolder", str(gray))
    assert (info.in_chans, info.input_size, info.classes) == (1, 12, ("a", "b"))
    x, _ = next(iter(make_loader(load_dataset("imagefolder", "train", data_dir=str(gray), augment=False), 6,
                                 shuffle=False)))
    assert x.shape == (6, 1, 12, 12)
    # normalised with the folder's own statistics: the training images come out with mean 0 and std 1
    assert float(x.mean()) == pytest.approx(0.0, abs=1e-3) and float(x.std(unbiased=False)) == pytest.approx(1, abs=1e-3)

    photos = tmp_path / "photos"
    for c in ("a", "b"):
        (photos / "train" / c).mkdir(parents=True)
        Image.new("RGB", (400, 300), (10, 200, 30)).save(photos / "train" / c / "0.jpg")
        Image.new("L", (400, 300), 90).save(photos / "train" / c / "1.jpg")  # one grayscale photo among color
    stats = imagefolder.folder_stats(str(photos))
    assert (stats.in_chans, stats.native_size, stats.input_size) == (3, 300, 224)
    assert "larger images are random-resized-cropped" in imagefolder.describe(stats)
    x, _ = load_dataset("imagefolder", "train", data_dir=str(photos), augment=False)[0]
    assert x.shape == (3, 224, 224)
