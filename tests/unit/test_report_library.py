"""The report's sections as rows, tables and plots (selfalign.report), the score rows (selfalign.scores),
the data samples (selfalign.lineage) and the section files (selfalign.report_pages)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import fields
from pathlib import Path

import pytest

from selfalign import lineage, report, report_pages, scores, stage_funnel, stages
from selfalign.shards import RecordError, write_json, write_jsonl


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
    rows = report.funnel_table(stage_funnel.aggregate(paths))
    assert rows[0] == ["seeds extracted", 17, 17, 0, "-"]
    assert rows[1][1:] == [5, 2, 3, "duplicate_instruction 3"]


def test_section_rows_follow_the_stage_table(tmp_path):
    names = ["extract", "concepts", "responses", "execute", "select_candidates", "select_keep"]
    rows = stage_funnel.aggregate([_stats(tmp_path, s, s, 1, 1, {}) for s in names])
    assert [r["stage"] for r in report.section_rows(rows, "selection")] == names[2:]
    assert [r["stage"] for r in report.section_rows(rows, "generation")] == ["concepts", "responses"]


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


def _score(tmp_path: Path, model: str, benchmark: str, base: float, plus: float, problems: int = 40) -> Path:
    path = tmp_path / model / f"{benchmark}.json"
    path.parent.mkdir(exist_ok=True)
    write_json(path, {
        "model": model, "benchmark": benchmark, "prompt_style": "completion" if model == "base" else "instruct",
        "dataset": {"name": benchmark, "version": "v1"}, "problems": problems,
        "base": {"pass@1": base, "passed": round(base * problems)}, "plus": {"pass@1": plus, "passed": round(plus * problems)},
    })
    return path


def test_score_rows_have_base_and_plus_pass_at_1_differences_and_references(tmp_path):
    paths = [_score(tmp_path, "tuned", "humaneval", 0.5, 0.3), _score(tmp_path, "base", "humaneval", 0.2, 0.1), _score(tmp_path, "tuned", "mbpp", 0.25, 0.0)]
    rows = scores.read_scores(paths)
    assert [(r.benchmark, r.model) for r in rows] == [("humaneval", "base"), ("humaneval", "tuned"), ("mbpp", "tuned")]
    assert rows[1].pass_at_1 == {"base": 0.5, "plus": 0.3} and rows[1].passed == {"base": 20, "plus": 12}
    (difference,) = scores.differences(rows)  # only humaneval has both models
    assert difference.model == "tuned - base" and difference.pass_at_1 == pytest.approx({"base": 0.3, "plus": 0.2})
    reference = {"name": "Ref-15B", "scores": {"humaneval": {"base": 0.726, "plus": 0.634, "dataset": "HumanEval+ v0.1.9"}}}
    (published,) = scores.reference_rows(reference, [r.benchmark for r in rows])
    assert (published.model, published.kind, published.pass_at_1) == ("Ref-15B", "reference", {"base": 0.726, "plus": 0.634})
    assert scores.reference_rows(None, ["humaneval"]) == []
    table = report.score_table([*rows, difference, published])
    assert table[1] == ["humaneval", "tuned", "humaneval v1", "instruct", "0.500", "20 / 40", "0.300", "12 / 40"]
    assert table[3][4:] == ["+0.300", "", "+0.200", ""] and table[4][4] == "0.726"
    page = report.table_html("s", report.SCORE_HEADER, table)
    assert '<td class="n">0.500</td>' in page  # formatted numbers stay right-aligned


def test_a_score_file_without_pass_at_1_names_the_file(tmp_path):
    write_json(tmp_path / "x.json", {"model": "base", "benchmark": "humaneval", "pass@1": 0.5})
    with pytest.raises(ValueError, match=r"x\.json: score file without the field"):
        scores.read_scores([tmp_path / "x.json"])


def test_versions_and_flatten():
    assert stage_funnel.versions([{"versions": {"python": "3.11"}}, {"versions": {"python": "3.12", "torch": "2"}}, {}]) == {
        "python": "3.11, 3.12",
        "torch": "2",
    }
    assert report.flatten({"a": 1, "b": {"c": [1], "d": {"e": None}}, "f": {}}) == [("a", 1), ("b.c", [1]), ("b.d.e", None), ("f", {})]


def test_paths_show_relative_to_the_run_directory(tmp_path):
    run = tmp_path / "run"
    assert report.display_path(str(run / "results/models/tuned"), run) == "results/models/tuned"
    assert report.display_path("/home/someone/project/.venv/bin/python3", run) == "…/.venv/bin/python3"
    assert report.display_path("/models/starcoder2-15b", run) == "/models/starcoder2-15b"  # short: nothing to hide
    assert report.display_path("/data/users/me/trees/src", run, shorten=False) == "/data/users/me/trees/src"
    assert report.display_path("3.11.7", run) == "3.11.7"
    versions = {"interpreter": "/opt/conda/envs/abc123/bin/python, /home/me/x/.venv/bin/python", "pyright": "1.1.414"}
    assert report.versions_table(versions, run) == [
        ["interpreter", "…/abc123/bin/python, …/.venv/bin/python"], ["pyright", "1.1.414"]
    ]


def test_table_html_escapes_and_aligns_numbers():
    page = report.html_page("T", [report.table_html("x", ["name", "n"], [["<b>", 3]])])
    assert "&lt;b&gt;" in page and '<td class="n">3</td>' in page and page.startswith("<!DOCTYPE html>")


def test_plots_are_svg_files_with_every_value_written(tmp_path):
    rows = [{"stage": "extract", "in": 100, "out": 90, "dropped": Counter(x=10)}, {"stage": "select_keep", "in": 7, "out": 0, "dropped": Counter()}]
    report.plot_funnel(rows, tmp_path / "f.svg")
    report.plot_counters([("a", Counter(x=2, y=0)), ("b", Counter())], tmp_path / "c.svg")
    report.plot_loss([{"step": 1, "loss": 1.0, "learning_rate": 0.1}], tmp_path / "l.svg")
    report.plot_loss([], tmp_path / "l0.svg")
    score_rows = scores.read_scores([_score(tmp_path, "base", "humaneval", 0.0, 0.0), _score(tmp_path, "tuned", "humaneval", 0.45, 0.3)])
    reference = scores.reference_rows({"name": "Ref", "scores": {"humaneval": {"base": 0.726, "plus": 0.634}}}, ["humaneval"])
    report.plot_scores([*score_rows, *reference], tmp_path / "s.svg")
    report.plot_scores([], tmp_path / "s0.svg")
    texts = {}
    for name in ("f", "c", "l", "l0", "s", "s0"):
        texts[name] = (tmp_path / f"{name}.svg").read_text()
        assert texts[name].lstrip().startswith("<?xml") and "<svg" in texts[name]
    # value labels on every bar, zeros included (text is kept as SVG text)
    for value in ("100", "90", ">7<", ">0<"):
        assert value in texts["f"], value
    assert ">2<" in texts["c"] and ">0<" in texts["c"]
    for value in ("0.000", "0.450", "0.300", "0.726", "0.634"):
        assert value in texts["s"], value
    assert "Ref (published)" in texts["s"] and "no score files" in texts["s0"]
    # same data, same file: no timestamps, fixed element ids
    report.plot_funnel(rows, tmp_path / "f2.svg")
    assert (tmp_path / "f.svg").read_bytes() == (tmp_path / "f2.svg").read_bytes()


def _sft_pair(i: int) -> dict:
    return {
        "instruction": f"Write f{i}.", "response": f"def f{i}(): return {i}", "tests": f"assert f{i}() == {i}",
        "seed": f"def seed_{i}(x):\n    return x + {i}", "source": f"mod.py:{i}", "concepts": ["loops"],
        "category": "function", "difficulty": "easy", "seed_id": f"s-{i}", "concepts_id": f"c-{i}",
        "instruction_id": f"i-{i}", "response_id": f"r-{i}-0", "verdict_id": f"v-{i}", "sample_index": 0,
    }


def _verdicts(i: int, verdicts: list[str]) -> list[dict]:
    return [
        {**_sft_pair(i), "response_id": f"r-{i}-{n}", "sample_index": n, "verdict": v,
         "execution": {"seconds": 0.25, "stderr_tail": "" if v == "pass" else f"AssertionError {i}-{n}"}, "program": "x"}
        for n, v in enumerate(verdicts)
    ]


def test_lineage_sample_is_seeded_and_counts_the_siblings(tmp_path):
    write_jsonl(tmp_path / "train.jsonl", [_sft_pair(i) for i in range(30)])
    first = lineage.sample_pairs(tmp_path / "train.jsonl", 5, seed=7)
    again = lineage.sample_pairs(tmp_path / "train.jsonl", 5, seed=7)
    other = lineage.sample_pairs(tmp_path / "train.jsonl", 5, seed=8)
    assert [p.record for p in first] == [p.record for p in again] and len(first) == 5
    assert [p.record for p in first] != [p.record for p in other]
    assert len(lineage.sample_pairs(tmp_path / "train.jsonl", 50, seed=7)) == 30  # at most all pairs
    write_jsonl(tmp_path / "v0.jsonl", [r for i in range(30) for r in _verdicts(i, ["pass", "fail", "pass", "timeout"])])
    lineage.add_siblings(first, [tmp_path / "v0.jsonl"])
    assert all(p.siblings == Counter(passed := {"pass": 2, "fail": 1, "timeout": 1}) for p in first), passed
    assert all(p.verdict["response_id"] == p.record["response_id"] and p.verdict["verdict"] == "pass" for p in first)


def test_dropped_samples_per_reason_from_the_stage_table(tmp_path):
    spec = stages.BY_NAME["select_candidates"].dropped[0]
    write_jsonl(tmp_path / "v0.jsonl", [r for i in range(20) for r in _verdicts(i, ["pass", "fail", "fail", "timeout"])])
    samples = lineage.sample_dropped("select_candidates", spec, [tmp_path / "v0.jsonl"], k=3, seed=1)
    assert [(s.reason, s.total, len(s.records)) for s in samples] == [("verdict_fail", 40, 3), ("verdict_timeout", 20, 3)]
    assert samples == lineage.sample_dropped("select_candidates", spec, [tmp_path / "v0.jsonl"], k=3, seed=1)
    (decontam,) = stages.BY_NAME["decontaminate"].dropped
    write_jsonl(tmp_path / "r.jsonl", [{"seed_id": "s-1", "reason": "humaneval_match", "matched": "x"}, {"seed_id": "s-2"}])
    with pytest.raises(ValueError, match=r"r\.jsonl:2: .*'reason'"):
        lineage.sample_dropped("decontaminate", decontam, [tmp_path / "r.jsonl"], k=3, seed=1)


def test_write_sections_writes_every_declared_file_and_nothing_else(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rows = [("extract", 50, 50, {}), ("near_dedup", 50, 20, {"over_limit": 30}), ("responses", 20, 20, {}), ("execute", 20, 20, {}),
            ("select_candidates", 20, 10, {"verdict_fail": 10}), ("select_keep", 10, 3, {"duplicate_instruction": 7})]
    stats = [_stats(tmp_path, f"st{i}", stage, n_in, n_out, dropped) for i, (stage, n_in, n_out, dropped) in enumerate(rows)]
    write_json("results/report/stage_totals.json", stage_funnel.totals(stats))
    instruction = {**_sft_pair(0), "provenance": {"instruction": {"finish_reason": "stop"}}}
    write_jsonl("results/instructions/00.jsonl", [instruction])
    write_jsonl("results/responses/00.jsonl", [{**instruction, "provenance": {"response": {"finish_reason": "stop"}}}])
    write_json("results/verdicts/00.stats.json", {"verdicts": {"pass": 2, "fail": 2}})
    write_jsonl("results/verdicts/00.jsonl", [r for i in range(3) for r in _verdicts(i, ["pass", "fail"])])
    write_json("results/models/tuned/train_stats.json", {"log": [{"step": 1, "loss": 2.0, "learning_rate": 1e-3}], "versions": {"torch": "2"}})
    write_jsonl("results/sft/train.jsonl", [_sft_pair(i) for i in range(3)])
    score_paths = [_score(tmp_path / "results", model, "humaneval", base, plus) for model, base, plus in (("base", 0.1, 0.05), ("tuned", 0.46, 0.3))]
    inputs = report_pages.ReportInputs(
        totals="results/report/stage_totals.json", instructions=["results/instructions/00.jsonl"], responses=["results/responses/00.jsonl"],
        verdict_stats=["results/verdicts/00.stats.json"], train_stats="results/models/tuned/train_stats.json",
        scores=[str(p) for p in score_paths], sft_data="results/sft/train.jsonl", verdicts=["results/verdicts/00.jsonl"],
        dropped={
            "select_candidates": [["results/verdicts/00.jsonl"], ["results/candidates/00.removed.jsonl"]],
            "select_keep": [["results/select/removed.jsonl"]],
        },
    )
    write_jsonl("results/candidates/00.removed.jsonl", [{"reason": "tests_without_assert", **_sft_pair(7)}])
    write_jsonl("results/select/removed.jsonl", [{"reason": "duplicate_instruction", "response_id": "r-9", "duplicate_of": "r-1",
                                                 "instruction": "Write the unique marker task.", "response": "..."}])
    names = [f.name for f in fields(report_pages.ReportOutputs)]
    outputs = report_pages.ReportOutputs(**{n: f"results/report/{n}.{'svg' if n.endswith('_plot') else 'html'}" for n in names})
    before = set(tmp_path.rglob("*"))
    settings = report_pages.ReportSettings(config={"seed": 1, "sources": {"paths": [str(tmp_path / "trees")]}}, run_dir=str(tmp_path), pairs=2, seed=1)
    counts = report_pages.write_sections(inputs, outputs, settings)
    assert counts == {"stages": len(rows), "score_files": 2, "pairs": 2}
    written = set(tmp_path.rglob("*")) - before
    assert {p.relative_to(tmp_path).as_posix() for p in written} == {getattr(outputs, n) for n in names}
    assert all((tmp_path / getattr(outputs, n)).stat().st_size > 500 for n in names)
    assert "near-dedup + limit 20" in Path(outputs.funnel_table).read_text()
    assert "From generated samples to the SFT set" in Path(outputs.selection_plot).read_text()
    scores_page = Path(outputs.scores_table).read_text()
    assert all(value in scores_page for value in ("0.460", "0.300", "+0.360", "+0.250"))
    data = Path(outputs.data_table).read_text()
    assert data.count('class="pair"') == 2 and "1 of 2" in data and "verdict_fail" in data and "AssertionError" in data
    assert "tests_without_assert" in data and "duplicate_instruction" in data and "Write the unique marker task." in data
    run = Path(outputs.run_table).read_text()
    assert "trees" in run and str(tmp_path) not in run  # the configured tree, relative to the run directory


def test_train_stats_name_matches_the_sft_and_report_needs_no_torch():
    import subprocess
    import sys

    from selfalign import sft

    assert report.TRAIN_STATS_NAME == sft.TRAIN_STATS_NAME
    # the report's conda env has matplotlib and pyyaml only: the modules its script imports must not need more
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import selfalign.report_pages, selfalign.rulekit"
    )
    scripts = Path(__file__).resolve().parents[2] / "workflow" / "scripts"
    result = subprocess.run([sys.executable, "-c", code], cwd=scripts, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_pairs_without_lineage_ids_are_shown_without_siblings(tmp_path) -> None:
    """An SFT set edited by hand (no lineage ids) still renders: such pairs just have no siblings."""
    from selfalign import lineage
    from selfalign.shards import write_jsonl

    verdicts = tmp_path / "verdicts.jsonl"
    write_jsonl(verdicts, [{"instruction_id": "i1", "response_id": "r1", "verdict": "pass"}])
    pairs = [lineage.Pair({"instruction": "x", "response": "y"}), lineage.Pair({"instruction_id": "i1", "response_id": "r1"})]
    lineage.add_siblings(pairs, [verdicts])
    assert not pairs[0].siblings and pairs[1].siblings == {"pass": 1}


# A table across base models, as a paper publishes it (made-up numbers, for the selection logic only).
ACROSS_BASE_MODELS = {
    "name": "Paper",
    "source": "a paper's table",
    "scores": {},
    "base_models": [
        {"base_model": "Small-3B", "name": "Tuned-3B", "scores": {"humaneval": {"plus": 0.35}}, "base_scores": {"humaneval": {"plus": 0.27}}},
        {"base_model": "Large-33B", "name": "Tuned-33B", "scores": {"humaneval": {"plus": 0.65}}},
    ],
}


def test_reference_shows_the_row_of_the_configured_base_model_else_the_table():
    matched = scores.reference_rows(ACROSS_BASE_MODELS, ["humaneval", "mbpp"], "/models/small-3b/")
    assert [(r.model, r.pass_at_1) for r in matched] == [("Small-3B (base)", {"plus": 0.27}), ("Tuned-3B", {"plus": 0.35})]
    assert scores.matching_base_model(ACROSS_BASE_MODELS, "models/Large-33B")["name"] == "Tuned-33B"
    for base_model in ("models/Other-7B", None):
        table = scores.reference_rows(ACROSS_BASE_MODELS, ["humaneval"], base_model)
        assert [r.model for r in table] == ["Small-3B (base)", "Tuned-3B", "Tuned-33B"]
    assert scores.reference_rows(ACROSS_BASE_MODELS, ["mbpp"], "models/Small-3B") == []  # no published mbpp


def _scores_page(tmp_path: Path, reference: dict, base_model: str | None) -> str:
    names = [f.name for f in fields(report_pages.ReportOutputs)]
    outputs = report_pages.ReportOutputs(**{n: str(tmp_path / f"{n}.{'svg' if n.endswith('_plot') else 'html'}") for n in names})
    inputs = report_pages.ReportInputs("", [], [], [], "", [_score(tmp_path, "tuned", "humaneval", 0.5, 0.4)], "", [], {})
    settings = report_pages.ReportSettings(config={"model": {"base": base_model}}, run_dir=str(tmp_path), reference=reference)
    report_pages._scores(inputs, settings, outputs)
    return Path(outputs.scores_table).read_text()


def test_the_selfcodealign_preset_shows_its_base_models_row(tmp_path):
    import yaml
    from snakemake.utils import validate

    repo = Path(__file__).resolve().parents[2]
    config = yaml.safe_load((repo / "config" / "presets" / "selfcodealign.yaml").read_text())
    validate(config, str(repo / "workflow" / "schemas" / "config.schema.yaml"))  # fills in the defaults
    reference = config["report"]["reference"]
    base, tuned = scores.reference_rows(reference, ["humaneval"], config["model"]["base"])
    assert (base.model, base.pass_at_1) == ("CodeQwen1.5-7B (base)", {"plus": 0.457})
    assert (tuned.model, tuned.pass_at_1, tuned.kind) == ("SelfCodeAlign-CQ-7B", {"plus": 0.671}, "reference")
    page = _scores_page(tmp_path, reference, config["model"]["base"])
    assert "the row for the base model CodeQwen1.5-7B" in page and "0.671" in page and "StarCoder2-3B" not in page
    # a local copy of another base model of the paper's table, named as on the Hugging Face hub
    (_, small) = scores.reference_rows(reference, ["humaneval"], "models/starcoder2-3b")
    assert small.pass_at_1 == {"plus": 0.354} and small.dataset == "HumanEval+ (Table 8)"
    other = _scores_page(tmp_path, ACROSS_BASE_MODELS, "models/Other-7B")
    assert "no row for model.base models/Other-7B, the whole table" in other and "Tuned-33B" in other
