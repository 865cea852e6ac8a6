"""The command line: models, train, eval and demo end to end on tiny data; clear errors."""
import csv
import json

import pytest

from resizable.cli import main


def test_models_lists_every_family(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    for name in ("resnet20", "resnet50", "mobilenet_v2", "shufflenet_v2_x1_5"):
        assert name in out
    assert main(["models", "nothing-like-this"]) == 2
    assert "known models" in capsys.readouterr().err


@pytest.mark.slow
def test_train_then_eval(tiny_fmnist, tmp_path, capsys):
    cfg = tmp_path / "opts.yaml"
    cfg.write_text("epochs: 1\nbatch_size: 32\nmax_steps_per_epoch: 3\n")
    args = ["train", "--options-file", str(cfg), "--model", "resnet20", "--model-args", "{widths: [4, 8, 8]}",
            "--data-dir", tiny_fmnist, "--out-dir", str(tmp_path), "--name", "run", "--no-progress",
            "--lr", "0.05", "--eval-configs", "0.45,0.45,0.45;1,1,1"]
    assert main(args) == 0
    resolved = (tmp_path / "run" / "config.yaml").read_text()
    assert "max_steps_per_epoch: 3" in resolved and "lr: 0.05" in resolved  # YAML and flags both applied
    record = json.loads((tmp_path / "run" / "metrics.jsonl").read_text())
    assert set(record["eval"]) == {"0.45,0.45,0.45", "1,1,1"}

    out_csv = tmp_path / "eval.csv"
    assert main(["eval", "--checkpoint", str(tmp_path / "run"), "--all", "--out", str(out_csv)]) == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 64
    assert float(rows[0]["mmacs"]) < float(rows[-1]["mmacs"])
    assert "1,1,1" in capsys.readouterr().out
    # the options file's old flag still reads, and says its new name
    again = [a if a != "--options-file" else "--config" for a in args[:-2]] + ["--name", "old-flag"]
    assert main(again) == 0
    assert "--config YAML is now --options-file YAML" in capsys.readouterr().err
    assert "max_steps_per_epoch: 3" in (tmp_path / "old-flag" / "config.yaml").read_text()


@pytest.mark.parametrize("args,msg", [
    (["train", "--model", "resnet9000"], "known models"),
    (["train", "--dataset", "mnist-ish"], "fashion-mnist"),
    (["eval", "--checkpoint", "/nonexistent/run"], "no checkpoint"),
])
def test_bad_input_gives_one_clear_line(args, msg, tmp_path, capsys, tiny_fmnist):
    if args[0] == "train":
        args = args + ["--out-dir", str(tmp_path), "--data-dir", tiny_fmnist, "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert msg in err and "Traceback" not in err


def test_unknown_yaml_key_is_rejected(tmp_path, capsys):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("epoch: 3\n")
    assert main(["train", "--config", str(cfg)]) == 2
    assert "unknown option(s) ['epoch']" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_writes_table_and_plot(tiny_fmnist, tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--data-dir", tiny_fmnist, "--out-dir", str(tmp_path), "--name", "d",
                 "--model-args", "{widths: [4, 8, 8], stem_stride: 2, stem_pool: true}", "--batch-size", "64",
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "MMACs" in out and "time:" in out
    rows = list(csv.DictReader((tmp_path / "d" / "configs.csv").open()))
    assert len(rows) == 64 and {"config", "mmacs", "top1_pct"} <= set(rows[0])
    summary = json.loads((tmp_path / "d" / "summary.json").read_text())
    assert summary["num_configs"] == 64 and summary["full"]["config"] == "1,1,1"
    # these stages run at 14/7/4 px: at 4 px factors 0.65 and 0.85 both give 3 px, so 16 configurations repeat
    assert summary["distinct_resolutions"] == 48 and "64 configurations, 48 with distinct stage resolutions" in out
    assert summary["gap_points"] == pytest.approx(summary["full"]["top1"] - min(float(r["top1_pct"]) for r in rows), abs=0.01)
    assert 0 < summary["seconds"]["train"] <= summary["seconds"]["total"]
    png = (tmp_path / "d" / "accuracy_vs_macs.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_help_never_prints_a_none_default(capsys):
    from resizable.cli import COMMANDS

    pages = [[name, "--help"] for name in COMMANDS if name != "adapt"]
    pages += [["adapt", step, "--help"] for step in ("label", "train", "eval")]
    for argv in pages:
        with pytest.raises(SystemExit):
            main(argv)
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text, argv
        assert text.count("(default:") <= text.count("--") and "usage:" in text


def test_option_errors_are_one_line_and_negative_values_reach_the_checks(capsys):
    from resizable.cli import _join_negative_values

    assert _join_negative_values(["train", "--factors", "-0.5,1", "--lr", "-1", "--name", "x"]) == \
        ["train", "--factors=-0.5,1", "--lr=-1", "--name", "x"]
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "many"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err == "resizable train: error: argument --epochs: invalid int value: 'many' (see resizable train --help)"


def test_progress_bars_only_on_a_terminal(monkeypatch):
    import io

    from resizable.utils.console import progress_enabled

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr("sys.stderr", io.StringIO())
    assert not progress_enabled(True)
    monkeypatch.setattr("sys.stderr", Terminal())
    assert progress_enabled(True) and not progress_enabled(False)


def test_only_rank_0_prints_the_run_folder(monkeypatch, capsys, tmp_path):
    import resizable.training.trainer

    monkeypatch.setattr(resizable.training.trainer, "train", lambda cfg: tmp_path / "run")
    for rank, printed in (("1", False), ("0", True)):
        monkeypatch.setenv("RANK", rank)
        assert main(["train", "--out-dir", str(tmp_path)]) == 0
        assert ("run folder:" in capsys.readouterr().out) == printed
