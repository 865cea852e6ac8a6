"""``resizable finetune``: only the chosen sub-network's BN branches (and the shared weights) change."""
from __future__ import annotations

import json

import pytest
import torch

import resizable
from resizable import cli, export
from resizable.checkpoint import load_model, save_checkpoint
from resizable.data.datasets import TensorImageDataset

KWARGS = dict(factors=(0.45, 0.65, 0.85, 1.0), num_classes=10, in_chans=1, widths=(4, 8, 16))


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


@pytest.fixture
def fake_fashion(monkeypatch):
    """Fashion-MNIST-shaped random data (64 images per split), so the test needs no files."""
    import resizable.data.datasets
    import resizable.training.trainer

    def load(name, split, **kwargs):
        g = torch.Generator().manual_seed(0 if split == "train" else 1)
        images = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (64,), generator=g)
        return TensorImageDataset(images, labels, (0.286,), (0.353,), augment=False)

    monkeypatch.setattr(resizable.training.trainer, "load_dataset", load)
    monkeypatch.setattr(resizable.data.datasets, "load_dataset", load)  # what every split of a TrainedRun reads


def test_finetune_trains_only_the_chosen_configuration(tmp_path, fake_fashion, capsys):
    model = resizable.create_model("resnet20", **KWARGS)
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", KWARGS, input_size=28,
                    train_options={"dataset": "fashion-mnist", "lr": 0.1, "batch_size": 16, "weight_decay": 5e-4})
    assert cli.main(["finetune", "--checkpoint", str(tmp_path / "ckpt.pt"), "--config", "0.45,0.65,1",
                     "--epochs", "1", "--max-steps-per-epoch", "2", "--out-dir", str(tmp_path / "runs"),
                     "--device", "cpu", "--eval-batch-size", "32", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "0.45,0.65,1 after 1 epoch(s)" in out and "test: top-1" in out
    run_dir = tmp_path / "runs" / "ckpt-ft-0.45-0.65-1"
    summary = json.loads((run_dir / "finetune.json").read_text())
    assert summary["config"] == "0.45,0.65,1" and summary["lr"] == pytest.approx(0.01)
    assert summary["splits"] == ["test"]  # the checkpoint holds no images out: test only
    assert set(summary["before"]["test"]) >= {"top1", "top5"} and set(summary["after"]["test"]) >= {"top1", "top5"}
    # the checkpoint had no bank: fine-tuning built one first, and rebuilt it for the tuned weights
    assert summary["bn_statistics"].startswith("statistics bank")
    assert summary["bn_statistics_after"].startswith("statistics bank")

    tuned, payload = load_model(run_dir)
    assert "finetune" not in payload  # the checkpoint is the trainer's, as it wrote it
    assert payload["train_options"]["sampling"] == "single"
    old, new = model.state_dict(), tuned.state_dict()
    # stage 1 runs at 0.45: its branch 0 trained, its other branches untouched
    assert not torch.equal(old["layer1.0.bn1.0.weight"], new["layer1.0.bn1.0.weight"])
    for i in (1, 2, 3):
        assert torch.equal(old[f"layer1.0.bn1.{i}.weight"], new[f"layer1.0.bn1.{i}.weight"])
        assert torch.equal(old[f"layer1.0.bn1.{i}.running_mean"], new[f"layer1.0.bn1.{i}.running_mean"])
    # layer3's strided first block is keyed by stage 2 (0.65 -> branch 1), the rest by stage 3 (1.0 -> branch 3)
    assert not torch.equal(old["layer3.0.bn1.1.weight"], new["layer3.0.bn1.1.weight"])
    assert torch.equal(old["layer3.0.bn1.3.weight"], new["layer3.0.bn1.3.weight"])
    assert not torch.equal(old["layer3.1.bn1.3.weight"], new["layer3.1.bn1.3.weight"])
    assert not torch.equal(old["conv1.weight"], new["conv1.weight"])  # shared weights train

    config = (0.45, 0.65, 1.0)
    static = export(tuned, config, 28).eval()
    x = torch.randn(2, 1, 28, 28)
    with torch.no_grad(), tuned.using(config):
        torch.testing.assert_close(static(x), tuned(x))


def test_finetune_rejects_bad_input(tmp_path):
    model = resizable.create_model("resnet20", **KWARGS)
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", KWARGS, train_options={"dataset": "fashion-mnist"})
    assert cli.main(["finetune", "--checkpoint", str(tmp_path / "ckpt.pt"), "--config", "0.5-1-1"]) == 2
    assert cli.main(["finetune", "--checkpoint", str(tmp_path / "ckpt.pt")]) == 2
    assert cli.main(["finetune", "--checkpoint", str(tmp_path / "nope.pt"), "--config", "1-1-1"]) == 2


def test_finetune_scores_before_and_after_on_the_tables_basis(tmp_path, fake_fashion, capsys):
    model = resizable.create_model("resnet20", **KWARGS)
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", KWARGS, input_size=28,
                    train_options={"dataset": "fashion-mnist", "lr": 0.1, "batch_size": 16, "weight_decay": 5e-4,
                                   "val_size": 16},
                    val_split={"size": 16, "seed": 0, "total": 64, "dataset": "fashion-mnist"})
    args = ["finetune", "--checkpoint", str(tmp_path / "ckpt.pt"), "--config", "0.45,0.65,1", "--epochs", "1",
            "--max-steps-per-epoch", "1", "--out-dir", str(tmp_path / "runs"), "--device", "cpu",
            "--eval-batch-size", "32", "--no-progress", "--calibrate-bn", "2", "--calibrate-batch-size", "16"]
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "recalibrated on 2 batches of 16: train split minus the 16 held-out images" in out
    summary = json.loads((tmp_path / "runs" / "ckpt-ft-0.45-0.65-1" / "finetune.json").read_text())
    # val and test, before and after, on one basis: the calibration rule of every command (val never in it)
    assert summary["splits"] == ["val", "test"] and set(summary["after"]) == {"val", "test"}
    assert summary["bn_statistics"].startswith("recalibrated on 2 batches of 16")


def test_finetune_of_a_warm_started_run_trains_without_its_warm_start(tmp_path, fake_fashion):
    model = resizable.create_model("resnet20", **KWARGS)
    save_checkpoint(tmp_path / "ckpt.pt", model, "resnet20", KWARGS, input_size=28,
                    train_options={"dataset": "fashion-mnist", "lr": 0.1, "batch_size": 16, "sampling": "fair",
                                   "warm_start": "full", "warm_start_share": 0.3})
    assert cli.main(["finetune", "--checkpoint", str(tmp_path / "ckpt.pt"), "--config", "0.45,0.65,1",
                     "--epochs", "1", "--max-steps-per-epoch", "1", "--out-dir", str(tmp_path / "runs"),
                     "--device", "cpu", "--eval-batch-size", "32", "--bn-statistics", "as-trained",
                     "--no-progress"]) == 0
    _, payload = load_model(tmp_path / "runs" / "ckpt-ft-0.45-0.65-1")
    assert payload["train_options"]["warm_start"] == "none" and payload["train_options"]["sampling"] == "single"
