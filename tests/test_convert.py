"""``resizable convert``: torchvision weights or a run of this project -> a checkpoint train --init-checkpoint takes."""
import pytest
import torch
import torchvision

from resizable import cli
from resizable.checkpoint import load_checkpoint, load_model
from resizable.layers import ScaleBatchNorm2d
from resizable.training.trainer import TrainOptions, train


def _tiny(data_dir, out_dir, **kw):
    base = dict(model="resnet20", model_args={"widths": [4, 8, 8]}, dataset="fashion-mnist", data_dir=data_dir,
                epochs=1, batch_size=16, lr=0.05, out_dir=str(out_dir), progress=False, max_steps_per_epoch=2,
                eval_calibrate_bn=0, eval_configs="1,1,1", seed=0)
    base.update(kw)
    return TrainOptions(**base)


@pytest.mark.slow
def test_convert_torchvision_resnet18(tiny_fmnist, tmp_path, capsys):
    tv = torchvision.models.resnet18(num_classes=10)
    tv.conv1 = torch.nn.Conv2d(1, 64, 7, 2, 3, bias=False)  # grey images
    for m in tv.modules():  # statistics of their own, so a wrong copy shows
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    weights = tmp_path / "resnet18.pth"
    torch.save(tv.state_dict(), weights)
    out = tmp_path / "rs18.pt"
    assert cli.main(["convert", "--source", "resnet18", "--weights", str(weights), "--out", str(out)]) == 0
    assert "--init-checkpoint" in capsys.readouterr().out
    model, payload = load_model(out)
    assert payload["model_name"] == "resnet18" and payload["converted"]["kind"] == "plain"
    x = torch.randn(2, 1, 64, 64)
    tv.eval()
    with torch.no_grad():
        assert torch.allclose(model(x), tv(x), atol=1e-4)
    run = train(_tiny(tiny_fmnist, tmp_path, name="from-tv", model="resnet18", model_args={}, batch_size=8, eval_configs="max",
                      max_steps_per_epoch=1, init_checkpoint=str(out), sampling="fair"))
    assert load_checkpoint(run)["step"] == 1


def test_convert_bad_inputs(tmp_path, capsys):
    torch.save({"not": "a tensor"}, tmp_path / "w.pth")
    cases = [
        (["convert", "--source", "resnet18", "--out", str(tmp_path / "o.pt")], "needs --weights"),
        (["convert", "--source", "resnet18", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "o.pt")],
         "expected a state_dict"),
        (["convert", "--source", "no_such_net", "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "o.pt")],
         "expected a state_dict"),
        (["convert", "--source", "resnet18"], "--out"),
    ]
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), tmp_path / "r18.pth")
    cases.append((["convert", "--source", "mobilenet_v2", "--weights", str(tmp_path / "r18.pth"), "--out",
                   str(tmp_path / "o.pt")], "do not fit mobilenet_v2"))
    cases.append((["convert", "--source", "nonexistent_model", "--weights", str(tmp_path / "r18.pth"), "--out",
                   str(tmp_path / "o.pt")], "timm"))
    for argv, message in cases:
        assert cli.main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, (argv, err)
    assert not (tmp_path / "o.pt").exists()


def test_convert_a_single_config_run_then_fair(tiny_fmnist, tmp_path):
    twin = train(_tiny(tiny_fmnist, tmp_path, name="twin", sampling="single", single_config=(1.0, 1.0, 1.0),
                       val_size=64))
    out = tmp_path / "twin-rs.pt"
    assert cli.main(["convert", "--source", str(twin), "--out", str(out)]) == 0
    model, payload = load_model(out)
    assert payload["converted"]["bn_branches_from"] == "1,1,1"
    assert payload["val_split"]["size"] == 64  # the held-out images stay held out downstream
    source, _ = load_model(twin)
    banks = [m for m in model.modules() if isinstance(m, ScaleBatchNorm2d)]
    src_banks = [m for m in source.modules() if isinstance(m, ScaleBatchNorm2d)]
    assert banks
    for bank, src in zip(banks, src_banks):
        for bn in bank:  # every branch is the trained all-1.0 branch
            assert torch.equal(bn.running_mean, src[-1].running_mean) and torch.equal(bn.weight, src[-1].weight)
    assert not all(torch.equal(src[0].running_mean, src[-1].running_mean) for src in src_banks)
    run = train(_tiny(tiny_fmnist, tmp_path, name="fair", init_checkpoint=str(out), sampling="fair", val_size=64))
    assert load_checkpoint(run)["step"] == 2
    with pytest.raises(ValueError, match="keeps its own"):
        from resizable.deploy import ConvertOptions, convert_checkpoint

        convert_checkpoint(ConvertOptions(source=str(twin), out=str(tmp_path / "x.pt"), factors=(0.5, 1.0)))
