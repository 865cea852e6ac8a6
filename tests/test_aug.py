"""Resizable-Aug: the product of ``--recipe aug`` is an ordinary static network at the target configuration."""
import json
import warnings

import pytest
import torch
from torch import nn

import resizable
from resizable.checkpoint import load_model
from resizable.cli import build_parser, main
from resizable.utils.options import resolve_options
from resizable.data.datasets import load_dataset, make_loader
from resizable.layers import Resize2d, ScaleBatchNorm2d
from resizable.training.trainer import TrainOptions, train

TARGET = (0.65, 1.0, 1.0)


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


def test_aug_options_from_the_command_line():
    args = build_parser().parse_args(["train", "--recipe", "aug", "--target", "0.65,1,1", "--aug-fraction", "0.5"])
    cfg = resolve_options(TrainOptions, args)
    assert (cfg.recipe, cfg.target, cfg.aug_fraction) == ("aug", TARGET, 0.5)
    assert TrainOptions(recipe="aug").aug_fraction == pytest.approx(2 / 3)


def test_aug_with_ensemble_distillation_fine_tunes_its_target_on_the_labels(tiny_fmnist, tmp_path):
    # the fair epochs distil from the step's ensemble; a fine-tune step has one configuration, so nothing to distil
    cfg = TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                       data_dir=tiny_fmnist, epochs=3, batch_size=32, max_steps_per_epoch=2, recipe="aug",
                       distill="ensemble", target=TARGET, eval_configs="0.65,1,1", out_dir=str(tmp_path), name="aug",
                       progress=False, bn_bank=False)
    run = train(cfg)
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["phase"] for r in records] == ["train", "train", "finetune"]
    assert all(torch.isfinite(torch.tensor(r["train_loss"])) for r in records)


def test_aug_run_exports_as_an_ordinary_network(tiny_fmnist, tmp_path):
    cfg = TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist",
                      data_dir=tiny_fmnist, epochs=3, batch_size=32, max_steps_per_epoch=2, recipe="aug",
                      target=TARGET, eval_configs="0.65,1,1", out_dir=str(tmp_path), name="aug", progress=False)
    run = train(cfg)
    phases = [json.loads(line)["phase"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert phases == ["train", "train", "finetune"]

    model, payload = load_model(run)
    target = tuple(payload["train_options"]["target"])
    assert target == TARGET
    x, _ = next(iter(make_loader(load_dataset("fashion-mnist", "test", data_dir=tiny_fmnist), 16, shuffle=False)))
    with torch.no_grad(), model.using(target):
        expected = model(x)

    # the library's export: plain modules only, same outputs
    static = resizable.export(model, target, 28).eval()
    kinds = {type(m) for m in static.modules()}
    assert ScaleBatchNorm2d not in kinds and Resize2d not in kinds
    assert sum(isinstance(m, nn.BatchNorm2d) for m in static.modules()) == sum(
        isinstance(m, (nn.BatchNorm2d, ScaleBatchNorm2d)) for m in model.modules()
        if not any(m in bank for bank in model.modules() if isinstance(bank, ScaleBatchNorm2d)))
    with torch.no_grad():
        torch.testing.assert_close(static(x), expected, rtol=1e-5, atol=1e-5)

    # the command: a TorchScript file that runs without this library
    out = tmp_path / "aug.torchscript.pt"
    assert main(["export", "--checkpoint", str(run), "--config", "0.65,1,1", "--format", "torchscript",
                 "--input-size", "28", "--out", str(out)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch >= 2.10 calls TorchScript deprecated
        scripted = torch.jit.load(str(out))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), expected, rtol=1e-5, atol=1e-5)
    sidecar = json.loads(out.with_name(out.name + ".json").read_text())
    assert sidecar["config"] == list(TARGET) and sidecar["model_name"] == "resnet20"
