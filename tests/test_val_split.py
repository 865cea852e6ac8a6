"""The held-out validation split (--val-size): disjoint from training, rebuilt from the checkpoint alone,
used by every command that reads ``val``, and refused where a run has none."""
import json

import pytest
import torch

from resizable import cli
from resizable.checkpoint import load_checkpoint
from resizable.data.datasets import load_dataset
from resizable.data.splits import ValSplit, default_split, load_split, val_split_of
from resizable.training.trainer import TrainOptions, train


def tiny_cfg(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                epochs=1, batch_size=32, lr=0.05, out_dir=str(out_dir), progress=False, eval_batch_size=256,
                max_steps_per_epoch=2, eval_calibrate_bn=1, eval_configs="minmax", seed=1)
    base.update(kw)
    return TrainOptions(**base)


@pytest.fixture(scope="module")
def val_run(tiny_fmnist, tmp_path_factory):
    return train(tiny_cfg(tiny_fmnist, tmp_path_factory.mktemp("runs"), name="v", val_size=100, val_seed=3))


@pytest.fixture(scope="module")
def plain_run(tiny_fmnist, tmp_path_factory):
    return train(tiny_cfg(tiny_fmnist, tmp_path_factory.mktemp("runs"), name="p"))


def _rows(images):
    return {bytes(x.numpy().tobytes()) for x in images}


def test_split_is_disjoint_and_covers(tiny_fmnist):
    full = load_dataset("fashion-mnist", "train", data_dir=tiny_fmnist, augment=False)
    split = ValSplit(100, seed=3)
    train_idx, val_idx = split.indices(len(full))
    assert len(train_idx) == len(full) - 100 and len(val_idx) == 100
    assert not set(train_idx.tolist()) & set(val_idx.tolist())
    assert sorted(train_idx.tolist() + val_idx.tolist()) == list(range(len(full)))
    # the images themselves: no held-out image is among the training images (the stand-in's images are distinct)
    tr = load_split("fashion-mnist", "train", val_split=split, data_dir=tiny_fmnist, augment=False)
    va = load_split("fashion-mnist", "val", val_split=split, data_dir=tiny_fmnist)
    assert len(_rows(full.images)) == len(full)
    assert not _rows(tr.images) & _rows(va.images)
    assert torch.equal(va.images, full.images[val_idx]) and torch.equal(va.labels, full.labels[val_idx])
    assert not va.augment and load_split("fashion-mnist", "train", val_split=split, data_dir=tiny_fmnist).augment
    # another seed holds out other images; the same seed the same ones
    assert not torch.equal(ValSplit(100, seed=4).indices(len(full))[1], val_idx)
    assert torch.equal(ValSplit(100, seed=3).indices(len(full))[1], val_idx)


def test_bad_sizes(tiny_fmnist):
    with pytest.raises(ValueError, match=r"val_size must be in \[0, 512\)"):
        load_split("fashion-mnist", "val", val_split=ValSplit(512), data_dir=tiny_fmnist)
    with pytest.raises(ValueError, match="drawn from 600 training images"):
        load_split("fashion-mnist", "val", val_split=ValSplit(10, 0, 600), data_dir=tiny_fmnist)
    with pytest.raises(ValueError, match="--val-size -1: expected an integer >= 0"):
        TrainOptions(val_size=-1)
    with pytest.raises(ValueError, match="val/ folder"):
        TrainOptions(val_size=10, dataset="imagefolder")


@pytest.mark.slow
def test_run_records_the_split_and_trains_without_it(val_run, tiny_fmnist):
    payload = load_checkpoint(val_run)
    split = val_split_of(payload)
    assert split == ValSplit(100, 3, 512, "fashion-mnist")
    assert default_split(payload) == "val"
    # rebuilt from the checkpoint alone: the same images as drawn directly
    full = load_dataset("fashion-mnist", "train", data_dir=tiny_fmnist, augment=False)
    va = load_split("fashion-mnist", "val", val_split=split, data_dir=tiny_fmnist)
    assert torch.equal(va.source_indices, ValSplit(100, seed=3).indices(len(full))[1])
    # the trainer's training set is the rest, and its per-epoch evaluation ran on val
    from resizable.training.trainer import TrainingRun

    run = TrainingRun(tiny_cfg(tiny_fmnist, val_run.parent, resume=str(val_run), name="v", val_size=100, val_seed=3))
    assert len(run.train_set) == 412 and run.eval_split == "val" and len(run.eval_set) == 100
    assert not set(run.train_set.source_indices.tolist()) & set(va.source_indices.tolist())
    assert not set(run.calib_set.source_indices.tolist()) & set(va.source_indices.tolist())
    record = json.loads((val_run / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["eval_split"] == "val" and 0 <= record["train_top1"] <= 100


def test_val_without_split_is_an_error(plain_run, capsys):
    payload = load_checkpoint(plain_run)
    assert val_split_of(payload) is None and default_split(payload) == "test"
    assert json.loads((plain_run / "metrics.jsonl").read_text().splitlines()[-1])["eval_split"] == "test"
    for argv in (["eval", "--checkpoint", str(plain_run), "--split", "val", "--configs", "1,1,1"],
                 ["table", "--checkpoint", str(plain_run), "--split", "val", "--out", str(plain_run / "t.csv")]):
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "--val-size" in err, err
    assert not (plain_run / "t.csv").exists()


def test_commands_use_and_default_to_val(val_run, tmp_path, capsys):
    from resizable.adapt import LabelOptions, label_checkpoint
    from resizable.nas.table_file import read_table

    assert cli.main(["eval", "--checkpoint", str(val_run), "--split", "val", "--configs", "1,1,1",
                     "--calibrate-bn", "1", "--out", str(tmp_path / "e.csv")]) == 0
    assert "val split" in capsys.readouterr().out
    out = tmp_path / "t.csv"
    assert cli.main(["table", "--checkpoint", str(val_run), "--out", str(out), "--batch-size", "128"]) == 0
    table = read_table(out)
    assert table.meta["split"] == "val" and table.meta["num_samples"] == "100"
    labels, _ = label_checkpoint(LabelOptions(checkpoint=str(val_run), out=str(tmp_path / "labels.pt"), progress=False,
                                              configs="default"))
    assert labels.split == "val:0-0.5" and len(labels.indices) == 50  # the other half chooses knobs and the front
    # search says when a table was built on test
    assert cli.main(["table", "--checkpoint", str(val_run), "--split", "test", "--out", str(tmp_path / "u.csv")]) == 0
    capsys.readouterr()
    assert cli.main(["search", "--table", str(tmp_path / "u.csv")]) == 0
    assert "built on the test split" in capsys.readouterr().err


def test_train_size_takes_a_seeded_subset_of_the_training_images(tiny_fmnist, tmp_path, capsys):
    from resizable.data.splits import training_subset
    from resizable.training.trainer import TrainingRun

    split = ValSplit(100, seed=3)
    tr = load_split("fashion-mnist", "train", val_split=split, data_dir=tiny_fmnist, augment=False)
    va = load_split("fashion-mnist", "val", val_split=split, data_dir=tiny_fmnist)
    sub = training_subset(tr, 64, seed=3)
    assert len(sub) == 64 and set(sub.source_indices.tolist()) <= set(tr.source_indices.tolist())
    assert not set(sub.source_indices.tolist()) & set(va.source_indices.tolist())
    assert torch.equal(sub.images, load_dataset("fashion-mnist", "train", data_dir=tiny_fmnist,
                                                augment=False).images[sub.source_indices])
    assert torch.equal(training_subset(tr, 64, seed=3).source_indices, sub.source_indices)  # rebuilt alike
    assert not torch.equal(training_subset(tr, 64, seed=4).source_indices, sub.source_indices)
    assert training_subset(tr, 0) is tr
    with pytest.raises(ValueError, match=r"train_size must be in \[0, 412\]"):
        training_subset(tr, 413)
    with pytest.raises(ValueError, match="--train-size -1: expected an integer >= 0"):
        TrainOptions(train_size=-1)
    # the trainer trains (and recalibrates BN) on the subset, whatever the training seed
    runs = []
    for seed in (1, 2):
        cfg = tiny_cfg(tiny_fmnist, tmp_path, name=f"t{seed}", val_size=100, val_seed=3, train_size=64, seed=seed,
                       max_steps_per_epoch=None)
        runs.append(TrainingRun(cfg))
        assert torch.equal(runs[-1].train_set.source_indices, sub.source_indices)
        assert torch.equal(runs[-1].calib_set.source_indices, sub.source_indices)
        assert runs[-1].steps_per_epoch == 2  # 64 images, batches of 32
    # too many images asked for: one clear line, exit 2
    assert cli.main(["train", "--data-dir", tiny_fmnist, "--val-size", "100", "--train-size", "1000", "--epochs",
                     "1", "--out-dir", str(tmp_path), "--name", "big", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert "train_size must be in [0, 412]" in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "big").exists()
