"""The report's sections as rows, tables and plots (selfalign.report)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from selfalign import funnel, report
from selfalign.shards import read_json, write_json


def _stats(tmp_path: Path, name: str, stage: str, n_in: int, n_out: int, dropped: dict, **extra) -> str:
    path = tmp_path / f"{name}.stats.json"
    write_json(path, {"stage": stage, "in": n_in, "out": n_out, "dropped": dropped, "seconds": 1.0, "versions": {"python": "3.11.2"}, **extra})
    return str(path)


def test_funnel_table_sums_shards_and_keeps_pipeline_order(tmp_path):
    paths = [
        _stats(tmp_path, "k0", "select_keep", 5, 2, {"duplicate_instruction": 3}),
        _stats(tmp_path, "e0", "extract", 10, 10, {}),
        _stats(tmp_path, "e1", "extract", 7, 7, {}),
    ]
    rows = report.funnel_table(funnel.aggregate(paths))
    assert rows[0] == ["seeds extracted", 17, 17, 0, "-"]
    assert rows[1][1:] == [5, 2, 3, "duplicate_instruction 3"]


def test_selection_rows_are_the_stages_after_generation(tmp_path):
    stages = ["extract", "responses", "execute", "select_candidates", "select_keep"]
    rows = funnel.aggregate([_stats(tmp_path, s, s, 1, 1, {}) for s in stages])
    assert [r["stage"] for r in report.selection_rows(rows)] == stages[1:]


def test_spread_finish_reasons_and_verdicts():
    records = [
        {"category": "function", "difficulty": "easy", "provenance": {"instruction": {"finish_reason": "stop"}}},
        {"category": "function", "difficulty": "hard", "provenance": {"instruction": {"finish_reason": "eos"}}},
        {"difficulty": "hard", "provenance": {}},
    ]
    assert report.spread(records, "category") == Counter({"function": 2, "unknown": 1})
    assert report.spread(records, "difficulty") == Counter({"hard": 2, "easy": 1})
    assert report.finish_reasons(records, "instruction") == Counter({"stop": 1, "eos": 1})
    assert report.verdict_counts([{"verdicts": {"pass": 3, "fail": 1}}, {"verdicts": {"pass": 2}}, {}]) == Counter({"pass": 5, "fail": 1})


def test_loss_rows_from_train_stats():
    stats = {"log": [{"step": 1, "loss": 2.5, "learning_rate": 0.0}, {"step": 2, "loss": 2.0, "learning_rate": 1e-5}]}
    assert report.loss_rows(stats) == [
        {"step": 1, "loss": 2.5, "learning_rate": 0.0},
        {"step": 2, "loss": 2.0, "learning_rate": 1e-5},
    ]
    assert report.loss_rows({}) == []


def test_score_rows_read_any_benchmark_file(tmp_path):
    for model, bench, value in [("base", "humaneval", 0.1), ("tuned", "humaneval", 0.2), ("tuned", "mbpp_plus", 0.3)]:
        (tmp_path / model).mkdir(exist_ok=True)
        (tmp_path / model / f"{bench}.json").write_text(json.dumps({"model": model, "pass@1": value, "passed": 1, "plus": True, "style": "x"}))
    rows = report.score_rows(sorted(tmp_path.rglob("*.json")), read_json)
    assert [(r["benchmark"], r["model"]) for r in rows] == [("humaneval", "base"), ("humaneval", "tuned"), ("mbpp_plus", "tuned")]
    assert rows[2]["metrics"] == {"pass@1": 0.3, "passed": 1}  # numbers only, no booleans or strings


def test_versions_and_flatten():
    assert funnel.versions([{"versions": {"python": "3.11"}}, {"versions": {"python": "3.12", "torch": "2"}}, {}]) == {
        "python": "3.11, 3.12",
        "torch": "2",
    }
    assert report.flatten({"a": 1, "b": {"c": [1], "d": {"e": None}}, "f": {}}) == [("a", 1), ("b.c", [1]), ("b.d.e", None), ("f", {})]


def test_table_html_escapes_and_aligns_numbers():
    page = report.html_page("T", [report.table_html("x", ["name", "n"], [["<b>", 3]])])
    assert "&lt;b&gt;" in page and '<td class="n">3</td>' in page and page.startswith("<!DOCTYPE html>")


def test_plots_are_svg_files(tmp_path):
    rows = [{"stage": "extract", "in": 100, "out": 90, "dropped": Counter(x=10)}, {"stage": "select_keep", "in": 0, "out": 0, "dropped": Counter()}]
    report.plot_funnel(rows, tmp_path / "f.svg")
    report.plot_counters([("a", Counter(x=2)), ("b", Counter())], tmp_path / "c.svg")
    report.plot_loss([{"step": 1, "loss": 1.0, "learning_rate": 0.1}], tmp_path / "l.svg")
    report.plot_loss([], tmp_path / "l0.svg")
    report.plot_scores([{"model": "base", "benchmark": "humaneval", "metrics": {"pass@1": 0.5}}], tmp_path / "s.svg")
    for name in ("f", "c", "l", "l0", "s"):
        text = (tmp_path / f"{name}.svg").read_text()
        assert text.lstrip().startswith("<?xml") and "<svg" in text
    # same data, same file: no timestamps, fixed element ids
    report.plot_funnel(rows, tmp_path / "f2.svg")
    assert (tmp_path / "f.svg").read_bytes() == (tmp_path / "f2.svg").read_bytes()


def test_train_stats_name_matches_the_sft_and_report_needs_no_torch():
    import subprocess
    import sys

    from selfalign import sft

    assert report.TRAIN_STATS_NAME == sft.TRAIN_STATS_NAME
    # the report's conda env has matplotlib and pyyaml only: the modules its script imports must not need more
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import selfalign.report, selfalign.funnel, selfalign.rulekit, selfalign.shards"
    )
    scripts = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
    result = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
