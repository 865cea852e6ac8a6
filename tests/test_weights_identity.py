"""Every file computed from a run's weights records which weights (their SHA-256), and every reader checks:
a statistics bank of other weights is never used, `calibrate` never writes under a training, a file of weights
the run has moved on from says so, and a write killed half-way leaves the previous file. Faults are injected,
never timed."""
import copy
import json
import os
import shutil
import warnings

import pytest
import torch

import resizable
from resizable.checkpoint import (CheckpointError, StaleBankWarning, WeightsMovedOnWarning, load_checkpoint,
                                  load_model, save_checkpoint, write_bank)
from resizable.cli import main
from resizable.evaluation.bank import build_bank
from resizable.fingerprint import state_sha256, weights_sha256

KW = dict(num_classes=10, in_chans=1, widths=[4, 8, 8])
pytestmark = pytest.mark.usefixtures("one_thread")  # tiny models: a second thread only waits


def _loader(n=2, batch=8):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(batch, 1, 28, 28, generator=g), torch.zeros(batch, dtype=torch.long)) for _ in range(n)]


def _model(seed=0):
    torch.manual_seed(seed)
    model = resizable.create_model("resnet20", **KW).train()
    with torch.no_grad():  # running averages of its own, so that they are part of what is hashed
        for c in (model.min_config, model.max_config):
            model.set_config(c)
            model(torch.randn(8, 1, 28, 28))
    return model.eval()


def _moved_on(path):
    """What a training saving its next epoch does to a checkpoint: other weights, the rest (and the bank) kept."""
    payload = load_checkpoint(path)
    name = next(k for k, v in payload["model"].items() if v.is_floating_point() and k.endswith("weight"))
    payload["model"][name] = payload["model"][name] + 0.01
    payload["epoch"] = payload.get("epoch", 0) + 1
    torch.save(payload, path)


def _one_line_error(capsys, code, expected=2):
    err = capsys.readouterr().err
    assert code == expected, err
    errors = [line for line in err.splitlines() if " error: " in line]
    assert "Traceback" not in err and len(errors) == 1, err
    return errors[0]


# ---------------------------------------------------------------------------- the bank and its weights
def test_a_bank_records_its_weights_and_attaches_only_to_them():
    model = _model()
    before = weights_sha256(model)
    bank = build_bank(model, _loader(), 2)
    assert weights_sha256(model) == before == bank.weights_sha256  # measuring leaves the weights as they were
    assert bank.mismatch(before) is None
    copy.deepcopy(model).attach_bank(bank)
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.fc.weight.add_(0.01)
    with pytest.raises(ValueError, match="measured on other weights"):
        other.attach_bank(bank)
    moved = copy.deepcopy(model)
    moved.bn1.running_mean.add_(0.5)  # BN statistics are part of the weights a bank belongs to
    with pytest.raises(ValueError, match="measured on other weights"):
        moved.attach_bank(bank)
    assert "records no weights" in type(bank)(bank.factors, bank.num_stages, bank.tables, {}).mismatch(before)


def test_a_bank_attached_before_the_weights_changed_is_left_out_of_the_checkpoint(tmp_path):
    model = _model()
    model.attach_bank(build_bank(model, _loader(), 2))
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, "resnet20", KW)
    assert "bn_bank" in load_checkpoint(path)
    with torch.no_grad():
        model.fc.bias.add_(1.0)  # trained on after the bank was attached
    with pytest.warns(StaleBankWarning, match="left out of the checkpoint"):
        save_checkpoint(path, model, "resnet20", KW)
    assert "bn_bank" not in load_checkpoint(path)


@pytest.mark.parametrize("kind", ["other weights", "no record"])
def test_a_checkpoint_bank_that_is_not_its_weights_is_not_used_and_said_once(tmp_path, kind):
    from resizable.trained_run import TrainedRun

    model = _model()
    model.attach_bank(build_bank(model, _loader(), 2))
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, "resnet20", KW)
    if kind == "other weights":  # e.g. a bank measured while a training saved its next epoch
        _moved_on(path)
    else:  # a bank written before banks recorded their weights
        payload = load_checkpoint(path)
        del payload["bn_bank"]["meta"]["weights_sha256"]
        torch.save(payload, path)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        loaded, _ = load_model(path)
        run = TrainedRun.open(path, need_data=False)
    said = [str(w.message) for w in seen if issubclass(w.category, StaleBankWarning)]
    assert len(said) == 1 and "is not used" in said[0] and f"resizable calibrate {path}" in said[0], said
    assert ("measured on other weights" if kind == "other weights" else "records no weights") in said[0]
    assert loaded.bank is None and loaded.bn_statistics == "as-trained"
    loaded.set_config(loaded.min_config)  # set_config selects the running averages, as without a bank
    assert all(layer.bank_entry is None for _, layer in resizable.bnbank.scale_batchnorms(loaded))
    assert "belongs to other weights" in run.use_bn_statistics("bank")


def test_write_bank_refuses_a_bank_of_weights_the_checkpoint_no_longer_holds(tmp_path):
    model = _model()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, "resnet20", KW, epoch=0)
    bank = build_bank(model, _loader(), 2)  # measured on epoch 1's weights ...
    _moved_on(path)  # ... while the training saved epoch 2
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="measured on other weights"):
        write_bank(path, bank)
    assert path.read_bytes() == before
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "no statistics bank": the one being built
        fresh = build_bank(load_model(path)[0], _loader(), 2)
    write_bank(path, fresh)
    payload = load_checkpoint(path)
    assert payload["bn_bank"]["meta"]["weights_sha256"] == state_sha256(payload["model"])


@pytest.mark.parametrize("what", ["checkpoint", "bank"])
def test_a_write_killed_in_the_middle_leaves_the_previous_file(tmp_path, monkeypatch, what):
    model = _model()
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, model, "resnet20", KW, epoch=0)
    before = path.read_bytes()
    real_save = torch.save

    def killed_half_way(obj, f, *args, **kwargs):  # half the bytes reach the disk, then the process is stopped
        real_save(obj, f, *args, **kwargs)
        with open(f, "r+b") as handle:
            handle.truncate(os.path.getsize(f) // 2)
        raise KeyboardInterrupt

    bank = build_bank(model, _loader(), 2)
    monkeypatch.setattr(torch, "save", killed_half_way)
    with pytest.raises(KeyboardInterrupt):
        if what == "checkpoint":
            save_checkpoint(path, model, "resnet20", KW, epoch=1)
        else:
            write_bank(path, bank)
    monkeypatch.undo()
    assert path.read_bytes() == before and load_checkpoint(path)["epoch"] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temporary file left


@pytest.mark.parametrize("where, words", [("running_var", "BN statistics"), ("weight", "weights"),
                                          ("momentum", "optimizer state")])
def test_no_checkpoint_is_written_with_non_finite_state(tmp_path, where, words):
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model.train()
    model(torch.randn(4, 1, 28, 28)).sum().backward()
    opt.step()
    with torch.no_grad():
        if where == "running_var":
            model.layer1[0].bn1[0].running_var[0] = float("inf")
        elif where == "weight":
            model.fc.weight[0, 0] = float("nan")
        else:
            next(iter(opt.state.values()))["momentum_buffer"].fill_(float("inf"))
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(CheckpointError, match=f"not written: the {words} hold"):
        save_checkpoint(path, model, "resnet20", KW, optimizer=opt.state_dict())
    assert not path.exists()


# ---------------------------------------------------------------------------- commands on a trained run
@pytest.fixture(scope="module")
def trained(tiny_fmnist, tmp_path_factory):
    from resizable.training.trainer import TrainOptions, train

    out = tmp_path_factory.mktemp("identity")
    run = train(TrainOptions(model="resnet20", model_args={"widths": [4, 8, 8]}, data_dir=tiny_fmnist, epochs=1,
                             batch_size=32, lr=0.05, out_dir=str(out), name="r", progress=False,
                             max_steps_per_epoch=2, eval_calibrate_bn=0, eval_configs="min", channels_last=False))
    return run


@pytest.fixture
def run(trained, tmp_path):
    copy_ = tmp_path / "r"
    shutil.copytree(trained, copy_)
    return copy_


@pytest.mark.slow
def test_calibrate_is_refused_while_the_run_is_held_and_writes_nothing(run, capsys):
    from resizable.training.run_folder import hold_run_folder

    before = (run / "checkpoint.pt").read_bytes()
    holder = hold_run_folder(run)  # this process plays a `train --resume` still running
    try:
        line = _one_line_error(capsys, main(["calibrate", str(run), "--batch-size", "64", "--batches", "1"]))
    finally:
        holder.close()
    assert f"is in use: pid {os.getpid()} on " in line and "(training)" in line, line
    assert (run / "checkpoint.pt").read_bytes() == before
    assert main(["calibrate", str(run), "--batch-size", "64", "--batches", "1"]) == 0  # free again
    payload = load_checkpoint(run)
    assert payload["bn_bank"]["meta"]["weights_sha256"] == state_sha256(payload["model"])
    # and a training started while calibrate holds the folder is refused the same way, naming calibrate
    holder = hold_run_folder(run, "resizable calibrate")
    try:
        line = _one_line_error(capsys, main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]))
    finally:
        holder.close()
    assert "(resizable calibrate)" in line


@pytest.mark.slow
def test_every_reader_ignores_a_bank_of_other_weights(run, tmp_path, capsys):
    _moved_on(run / "checkpoint.pt")  # the bank now belongs to the weights of the epoch before
    capsys.readouterr()
    assert main(["eval", "--checkpoint", str(run), "--configs", "min", "--no-progress"]) == 0
    captured = capsys.readouterr()
    warned = [line for line in captured.err.splitlines() if "warning:" in line]
    assert len(warned) == 1 and "measured on other weights" in warned[0] and "resizable calibrate" in warned[0]
    assert "BN statistics: as trained" in captured.out
    assert main(["export", "--checkpoint", str(run), "--config", "min", "--format", "state_dict", "--out",
                 str(tmp_path / "net.pt")]) == 0
    side = json.loads((tmp_path / "net.pt.json").read_text())
    assert side["bn_statistics"]["source"].startswith("as trained")
    assert main(["table", "--checkpoint", str(run), "--out", str(tmp_path / "t.csv"), "--no-progress"]) == 0
    assert "as trained" in (tmp_path / "t.csv").read_text().split("bn_statistics", 1)[1].splitlines()[0]


@pytest.mark.slow
def test_the_training_builds_its_own_bank_when_the_one_there_is_not_its_own(run, capsys):
    _moved_on(run / "checkpoint.pt")
    capsys.readouterr()
    # the run has finished its epochs: this only ends it, and the end builds the bank of its final weights
    assert main(["train", "--resume", str(run), "--epochs", "2", "--no-progress"]) == 0
    assert "belongs to other weights: measuring the final weights' own" in capsys.readouterr().out
    payload = load_checkpoint(run)
    assert payload["bn_bank"]["meta"]["weights_sha256"] == state_sha256(payload["model"])
    model, _ = load_model(run)
    assert model.bn_statistics == "bank"


@pytest.mark.slow
def test_files_computed_from_a_run_say_when_its_weights_moved_on(run, capsys):
    from resizable.deploy.export import load_static

    assert main(["export", "--checkpoint", str(run), "--config", "min", "--format", "state_dict"]) == 0
    assert main(["table", "--checkpoint", str(run), "--out", str(run / "table.csv"), "--no-progress"]) == 0
    exported = next((run / "export").glob("*.state_dict.pt"))
    side = json.loads(exported.with_name(exported.name + ".json").read_text())
    assert side["source"]["weights_sha256"] == state_sha256(load_checkpoint(run)["model"])
    with warnings.catch_warnings():
        warnings.simplefilter("error", WeightsMovedOnWarning)  # the same weights: nothing to say
        load_static(exported)
    capsys.readouterr()
    assert main(["search", "--table", str(run / "table.csv")]) == 0
    assert "moved on" not in capsys.readouterr().err
    _moved_on(run / "checkpoint.pt")
    with pytest.warns(WeightsMovedOnWarning, match="have moved on since"):
        load_static(exported)
    assert main(["search", "--table", str(run / "table.csv")]) == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "have moved on since (now at epoch 2)" in err, err
    assert main(["pareto", "--table", str(run / "table.csv")]) == 0
    assert "have moved on since" in capsys.readouterr().err
