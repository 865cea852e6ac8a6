"""benchmarks/overhead.py: its ratio rules and its report, on synthetic timings (the timings themselves
are a benchmark, not a test)."""
from benchmarks import overhead


def test_paired_ratio_is_the_median_of_same_round_ratios():
    # a slow spell that hits both variants in one round does not move the ratio
    t = {"a": {"seconds": [1.0, 10.0, 1.1]}, "b": {"seconds": [1.0, 10.0, 1.0]}}
    assert overhead.paired(t, "a", "b") == 1.0
    t["a"]["seconds"] = [1.2, 12.0, 1.2]
    assert abs(overhead.paired(t, "a", "b") - 1.2) < 1e-9


def test_interleaved_times_every_function_every_round():
    calls = []
    t = overhead.interleaved({"x": lambda: calls.append("x"), "y": lambda: calls.append("y")}, rounds=3,
                             min_seconds=0)
    assert [len(t[k]["seconds"]) for k in "xy"] == [3, 3]
    assert calls.count("x") == calls.count("y") == 2 + 3  # two untimed calls each, then one per round


def test_goals_and_report_lines():
    assert overhead.met("dynamic_vs_static", 1.03) and not overhead.met("dynamic_vs_static", 1.031)
    assert overhead.met("folded_vs_unfolded", 0.9) and not overhead.met("folded_vs_unfolded", 0.96)
    assert overhead.met("train_step_vs_plain", 1.0)
    data = {"other_processes": {"cpu_seconds": 3.0, "of_available": 600.0}}
    assert "3 CPU-seconds of the 600" in overhead.others_line(data) and "(0.5%)" in overhead.others_line(data)
    assert overhead.others_line({}) == ""
    busy, mine = overhead.cpu_seconds()
    assert mine >= 0 and (busy is None or busy >= 0)


def test_copies_are_averaged_per_round():
    t = {"a#0": {"seconds": [1.0, 2.0]}, "a#1": {"seconds": [3.0, 2.0]}, "b#0": {"seconds": [2.0, 2.0]},
         "b#1": {"seconds": [2.0, 2.0]}}
    out = overhead.over_copies(t, ["a", "b"], 2)
    assert out["a"]["seconds"] == [2.0, 2.0] and overhead.paired(out, "a", "b") == 1.0
    assert set(out["a"]["copies"]) == {"0", "1"}
    data = {"inference": [{"copies": 2, "torchvision_copy_spread": 1.012}, {"copies": 2}]}
    assert "2 independent copies" in overhead.copies_line(data) and "worst 1.2%" in overhead.copies_line(data)
