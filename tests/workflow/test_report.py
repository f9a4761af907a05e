"""The run report (snakemake --report report.html) of the demo run: every section is there, the funnel
numbers are the stats files' numbers, and a headless Chromium renders the funnel plot without errors.

Uses the session's pipeline run (the `run` fixture in conftest.py), so no second pipeline run.
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

from browser import Browser, chromium_path
from conftest import snakemake

SECTIONS = {
    "1. Stage funnel": ("funnel.svg", "funnel.html"),
    "2. Generation": ("generation.svg", "generation.html"),
    "3. Execution verdicts": ("verdicts.svg", "verdicts.html"),
    "4. Selection": ("selection.svg", "selection.html"),
    "5. Training": ("loss.svg", "loss.html"),
    "6. Scores": ("scores.svg", "scores.html"),
    "7. Configuration and versions": ("run.html",),
}


@pytest.fixture(scope="module")
def report(run) -> Path:
    results, _ = run
    workdir = results.parent
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


def result_text(results: dict, filename: str) -> str:
    entry = next(entry for path, entry in results.items() if path.endswith("/" + filename))
    header, data = entry["data_uri"].split(",", 1)
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


def test_report_has_every_section_with_plot_table_and_caption(report):
    results = embedded(report, "results")
    categories = embedded(report, "categories")
    assert set(SECTIONS) <= set(categories), sorted(categories)
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
    scores = result_text(results, "scores.html")
    assert "humaneval" in scores and "base" in scores and "tuned" in scores
    run_table = result_text(results, "run.html")
    assert "snakemake" in run_table and "sft.zero_stage" in run_table and "transformers" in run_table


def test_report_funnel_numbers_equal_the_stats_files(run, report):
    results_dir, _ = run
    expected: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_shard = [
        "seeds/heuristics", "seeds/typechecked", "seeds/decontaminated", "seeds/judged", "instruct/concepts",
        "instruct/instructions", "respond/responses", "execute/verdicts", "select/candidates",
    ]
    paths = [p for stage in per_shard for p in sorted((results_dir / stage).glob("[0-9]*.stats.json"))]
    whole_run = ["seeds/extracted/stats.json", "seeds/near_dedup/clusters.stats.json", "select/keep.stats.json"]
    for path in [*paths, *(results_dir / name for name in whole_run)]:
        stats = json.loads(path.read_text())
        row = expected[stats["stage"]]
        row[0] += stats["in"]
        row[1] += stats["out"]
        row[2] += sum(stats["dropped"].values())
    parser = TableParser()
    parser.feed(result_text(embedded(report, "results"), "funnel.html"))
    header, *rows = parser.rows
    assert header[:4] == ["stage", "in", "out", "dropped"]
    from selfalign.funnel import STAGE_LABELS

    shown = {label: [int(x) for x in row[1:4]] for label, row in ((row[0], row) for row in rows)}
    assert shown == {STAGE_LABELS[stage]: counts for stage, counts in expected.items()}
    # the drop reasons are there too
    assert any("pyright_error" in row[4] for row in rows)


def test_report_renders_the_funnel_plot_in_headless_chromium(report, tmp_path):
    if chromium_path() is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: install.sh --test installs it when run as root")
        pytest.skip("chromium is not installed (bash install.sh --test as root installs it)")
    browser = Browser(tmp_path / "profile")
    try:
        browser.open(report.resolve().as_uri())
        browser.wait_until("typeof app !== 'undefined' && typeof results !== 'undefined'")
        # What the report's own result button does: show the funnel plot in the main view.
        shown = browser.evaluate(
            "(() => { const key = Object.keys(results).find(k => k.endsWith('/funnel.svg'));"
            " app.setView({content: 'img', contentPath: results[key].data_uri, resultPath: key}); return key; })()"
        )
        assert shown
        size = browser.wait_until(
            "(() => { const uri = results[Object.keys(results).find(k => k.endsWith('/funnel.svg'))].data_uri;"
            " const img = [...document.images].find(i => i.src === uri);"
            " if (!img || !img.complete || img.naturalWidth === 0) return null;"
            " const box = img.getBoundingClientRect(); return box.width > 300 && box.height > 200 ? [box.width, box.height] : null; })()"
        )
        screenshot = tmp_path / "report.png"
        browser.screenshot(screenshot)
        errors = browser.errors()
    finally:
        browser.close()
    shutil.copy(screenshot, report.with_suffix(".png"))  # beside the report, for a person to look at
    assert screenshot.stat().st_size > 10_000 and size
    assert errors == []
