"""The run report (snakemake --report report.html) of the demo run, read as a person reads it: every
section is there with a caption; the funnel numbers are the stats files' numbers; in a headless Chromium
every plot renders, the Scores section shows the score files' pass@1, and the data section shows the seed
text of an SFT pair; the report rules write nothing outside results/.

Uses the session's pipeline run (the `run` fixture in conftest.py), so no second pipeline run. A PNG
screenshot of every section is kept beside the report (the path is printed; pytest -s shows it).
"""

from __future__ import annotations

import base64
import html.parser
import json
import os
import re
import shutil
from collections import defaultdict
from pathlib import Path

import pytest
import yaml

from browser import Browser, chromium_path
from conftest import snakemake, write_config

SECTIONS = {
    "1. Stage funnel": ("funnel.svg", "funnel.html"),
    "2. Generation": ("generation.svg", "generation.html"),
    "3. Execution verdicts": ("verdicts.svg", "verdicts.html"),
    "4. Selection": ("selection.svg", "selection.html"),
    "5. Training": ("loss.svg", "loss.html"),
    "6. Scores": ("scores.svg", "scores.html"),
    "7. The data": ("data.html",),
    "8. Configuration and versions": ("run.html",),
}
# Stats files of steps that are not funnel stages: inputs and helpers.
NOT_FUNNEL = {"fetch_stack", "benchmark_strings", "extract_stack"}


# Scores planted into the copy of the run (the demo models score 0.0, which would prove nothing) and a
# reference, as the StarCoder2-15B preset sets one.
PLANTED = {("humaneval", "base"): (0.125, 0.1), ("humaneval", "tuned"): (0.46, 0.3)}
REFERENCE = {"name": "Ref-Instruct", "source": "its model card", "scores": {"humaneval": {"base": 0.726, "plus": 0.634}}}


@pytest.fixture(scope="module")
def copied(run, tmp_path_factory) -> tuple[Path, list[str]]:
    """A copy of the run without its report, with planted scores and a reference, in which only the report
    rules run; returns the directory and the files that appeared there."""
    results_dir, _ = run
    workdir = tmp_path_factory.mktemp("report-run")
    config = yaml.safe_load((results_dir.parent / "config/config.yaml").read_text())
    config["report"] = {**config.get("report", {}), "reference": REFERENCE}
    write_config(workdir, yaml.safe_dump(config))
    shutil.copytree(results_dir, workdir / "results", ignore=shutil.ignore_patterns("report", "logs", "benchmarks"))
    for (benchmark, model), (base, plus) in PLANTED.items():
        path = workdir / "results/scores" / model / f"{benchmark}.json"
        score = json.loads(path.read_text())
        for test, value in (("base", base), ("plus", plus)):
            score[test] = {"pass@1": value, "passed": round(value * score["problems"])}
        path.write_text(json.dumps(score))
    before = {p for p in workdir.rglob("*") if p.is_file()}
    result = snakemake(
        "--cores", "1", "--directory", str(workdir), "report",
        "--allowed-rules", "stage_totals", "funnel", "report_sections", "sft_card", "report",
        cwd=workdir,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    appeared = sorted(p.relative_to(workdir).as_posix() for p in workdir.rglob("*") if p.is_file() and p not in before)
    return workdir, appeared


@pytest.fixture(scope="module")
def report(copied) -> Path:
    workdir, _ = copied
    path = workdir / "report.html"
    result = snakemake("--report", str(path), "--directory", str(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-4000:]
    return path


def embedded(report: Path, name: str) -> object:
    """A JSON object the report embeds as ``var <name> = ...;``."""
    text = report.read_text()
    script_id = name.replace("_", "-")
    match = re.search(rf'<script id="{script_id}">\s*var {name} = (.*?);\s*</script>', text, re.S)
    assert match, name
    return json.loads(match.group(1))


def result_key(results: dict, filename: str) -> str:
    return next(path for path in results if path.endswith("/" + filename))


def result_text(results: dict, filename: str) -> str:
    header, data = results[result_key(results, filename)]["data_uri"].split(",", 1)
    assert header.endswith(";base64"), header
    return base64.b64decode(data).decode()


class TableParser(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def test_report_has_every_section_with_its_files_and_caption(report):
    results = embedded(report, "results")
    categories = embedded(report, "categories")
    assert set(SECTIONS) == set(categories), sorted(categories)
    for category, files in SECTIONS.items():
        for filename in files:
            matches = [entry for path, entry in results.items() if path.endswith("/" + filename)]
            assert len(matches) == 1, filename
            entry = matches[0]
            assert entry["caption"].strip(), filename
            expected = "image/svg+xml" if filename.endswith(".svg") else "text/html"
            assert entry["mime_type"] == expected and entry["data_uri"].startswith(f"data:{expected}"), filename
    assert "self-alignment" in embedded(report, "workflow_desc")
    generation = result_text(results, "generation.html")
    assert "Instruction category" in generation and "Instruction difficulty" in generation and "Finish reasons" in generation
    assert "pass" in result_text(results, "verdicts.html")
    assert "Loss per optimizer step" in result_text(results, "loss.html")
    run_table = result_text(results, "run.html")
    assert "snakemake" in run_table and "sft.zero_stage" in run_table and "transformers" in run_table


def test_report_funnel_numbers_equal_the_stats_files(run, report):
    from selfalign.stages import BY_NAME

    results_dir, _ = run
    expected: dict[str, list] = defaultdict(lambda: [0, 0, 0, defaultdict(int)])
    for path in sorted(results_dir.rglob("*stats.json")):  # every stats file the run wrote
        stats = json.loads(path.read_text())
        if not isinstance(stats, dict) or "stage" not in stats or stats["stage"] in NOT_FUNNEL:
            continue
        if "in" not in stats:  # seeds/final/stats.json: the final shards' counts for their readers, not a stage
            continue
        row = expected[stats["stage"]]
        row[0] += stats["in"]
        row[1] += stats["out"]
        row[2] += sum(stats["dropped"].values())
        for reason, count in stats["dropped"].items():
            row[3][reason] += count
    parser = TableParser()
    parser.feed(result_text(embedded(report, "results"), "funnel.html"))
    header, *rows = parser.rows
    assert header[:4] == ["stage", "in", "out", "dropped"]
    shown = {row[0]: [int(x) for x in row[1:4]] for row in rows}
    wanted = {}
    for stage, (n_in, n_out, n_dropped, reasons) in expected.items():
        # the label says what ran: "+ limit N" only where a limit cut something
        label = BY_NAME[stage].label + (f" + limit {n_out}" if reasons.get("over_limit") else "")
        wanted[label] = [n_in, n_out, n_dropped]
    assert shown == wanted
    assert any("pyright_error" in row[4] for row in rows)  # the drop reasons are there too


def test_report_rules_write_nothing_outside_results(copied):
    """The report rules, run in a copy of the run directory without its report, add files under results/ only."""
    workdir, appeared = copied
    outside = [p for p in appeared if not p.startswith(("results/", ".snakemake/"))]
    assert outside == [], outside
    for name in ("funnel.svg", "selection.svg", "scores.svg", "data.html"):
        assert f"results/report/{name}" in appeared and (workdir / "results/report" / name).stat().st_size > 1000, name


# ---- what a person sees in the browser ----------------------------------------------------------


@pytest.fixture(scope="module")
def rendered(report, tmp_path_factory) -> dict:
    """Every section opened as the report's own buttons open them: per file, the image's natural and
    shown size or the HTML page's rendered text, a screenshot per file, and the console errors."""
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: install.sh --test installs it when run as root")
        pytest.skip("chromium is not installed (bash install.sh --test as root installs it)")
    screenshots = report.parent / "report-screenshots"
    shutil.rmtree(screenshots, ignore_errors=True)
    screenshots.mkdir()
    results = embedded(report, "results")
    views: dict = {"images": {}, "texts": {}, "screenshots": []}
    browser = Browser(tmp_path_factory.mktemp("chromium-profile"))
    try:
        browser.open(report.resolve().as_uri())
        browser.wait_until("typeof app !== 'undefined' && typeof results !== 'undefined'")
        for number, (category, files) in enumerate(SECTIONS.items(), start=1):
            for filename in files:
                key = result_key(results, filename)
                kind = "img" if filename.endswith(".svg") else "html"
                browser.evaluate(
                    f"app.setView({{content: {json.dumps(kind)}, contentPath: results[{json.dumps(key)}].data_uri, "
                    f"resultPath: {json.dumps(key)}}})"
                )
                if kind == "img":
                    views["images"][filename] = browser.wait_until(
                        f"(() => {{ const img = [...document.images].find(i => i.src === results[{json.dumps(key)}].data_uri);"
                        " if (!img || !img.complete) return null; const box = img.getBoundingClientRect();"
                        " return [img.naturalWidth, img.naturalHeight, box.width, box.height]; })()"
                    )
                else:
                    uri = results[key]["data_uri"]
                    views["texts"][filename] = browser.poll(lambda uri=uri: browser.frame_text(uri))
                shot = screenshots / f"{number}-{filename.replace('.', '-')}.png"
                browser.screenshot(shot)
                views["screenshots"].append(shot)
        views["errors"] = browser.errors()
    finally:
        browser.close()
    print(f"\nreport screenshots, one per section file: {screenshots}")
    return views


def test_every_plot_renders_with_nonzero_size_and_a_screenshot_per_section(rendered):
    plots = [name for files in SECTIONS.values() for name in files if name.endswith(".svg")]
    assert sorted(rendered["images"]) == sorted(plots)
    for name, (natural_width, natural_height, width, height) in rendered["images"].items():
        assert natural_width > 0 and natural_height > 0 and width > 300 and height > 200, name
    assert len(rendered["screenshots"]) == sum(len(files) for files in SECTIONS.values())
    assert all(shot.stat().st_size > 10_000 for shot in rendered["screenshots"])
    assert rendered["errors"] == []


def test_scores_section_shows_the_score_files_pass_at_1(copied, report, rendered):
    workdir, _ = copied
    text = rendered["texts"]["scores.html"]
    lines = [line.split("\t") for line in text.splitlines()]

    def row(benchmark: str, model: str) -> list[str]:
        return next(cells for cells in lines if cells[:2] == [benchmark, model])

    score_files = sorted((workdir / "results/scores").glob("*/*.json"))
    assert score_files
    for path in score_files:
        score = json.loads(path.read_text())
        cells = row(score["benchmark"], score["model"])
        for test in ("base", "plus"):
            assert f"{score[test]['pass@1']:.3f}" in cells and f"{score[test]['passed']} / {score['problems']}" in cells, cells
    # the planted numbers, their difference, and the reference's published numbers beside them
    assert {"0.460", "0.300"} <= set(row("humaneval", "tuned"))
    assert {"+0.335", "+0.200"} <= set(row("humaneval", "tuned - base"))
    assert {"0.726", "0.634"} <= set(row("humaneval", "Ref-Instruct"))
    assert "Ref-Instruct" in embedded(report, "results")[result_key(embedded(report, "results"), "scores.svg")]["caption"]


def test_data_section_shows_the_seed_text_of_a_known_sft_pair(run, rendered):
    results_dir, _ = run
    text = rendered["texts"]["data.html"]
    pairs = [json.loads(line) for line in (results_dir / "sft/train.jsonl").read_text().splitlines()]
    shown = [pair for pair in pairs if pair["seed_id"] in text and pair["response_id"] in text]
    assert shown, "no SFT pair of train.jsonl is in the data section"
    words = " ".join(shown[0]["seed"][:1500].split())
    assert words in " ".join(text.split()), "the seed text of the pair is not rendered"
    assert "samples of this instruction that passed" in text
    assert "verdict_" in text or "match" in text  # dropped records per reason


def test_data_section_samples_every_drop_reason_the_funnel_counts(run, report):
    """Each (stage, reason) with drops in the stats files has its sample of dropped records in the data
    section: seed filters, judge, near-dedup, verdicts, format checks and the selection alike."""
    results_dir, _ = run
    counted = set()
    for path in sorted(results_dir.rglob("*stats.json")):
        stats = json.loads(path.read_text())
        if isinstance(stats, dict) and stats.get("stage") not in NOT_FUNNEL and "in" in stats:
            counted |= {(stats["stage"], reason) for reason, count in stats["dropped"].items() if count}
    data = result_text(embedded(report, "results"), "data.html")
    shown = set(re.findall(r'data-stage="([^"]+)" data-reason="([^"]+)"', data))
    assert counted == shown
    assert ("select_candidates", "tests_without_code") in shown or not any(s == "select_candidates" for s, _ in counted)
