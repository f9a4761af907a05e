"""The run report's building blocks: sections as rows, HTML tables and pages, and plots.

Every function takes what the pipeline already writes (stage totals, records, ``train_stats.json``,
score rows) and returns plain rows; ``table_html`` and the ``plot_*`` functions turn rows into the
files Snakemake's report embeds. Plots are drawn with matplotlib (Agg backend, SVG output), every bar
with its value written on it. ``selfalign.report_pages`` puts the sections together.
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import stages
from .scores import TESTS, ScoreRow, fraction
from .stage_funnel import reasons

Row = dict[str, Any]

GENERATION_STEPS = ("concepts", "instruction", "response")
# The SFT's per-step log lives in the tuned model dir under this name (selfalign.sft.TRAIN_STATS_NAME;
# not imported from there because selfalign.sft needs torch and the report's env has none).
TRAIN_STATS_NAME = "train_stats.json"


# ---- sections as rows -------------------------------------------------------------------------


FUNNEL_HEADER = ["stage", "in", "out", "dropped", "reasons for drops"]


def funnel_table(rows: Sequence[Row]) -> list[list[Any]]:
    """Funnel rows (``selfalign.stage_funnel``) as table rows: stage, in, out, dropped, reasons."""
    return [[stages.label(row), row["in"], row["out"], sum(row["dropped"].values()), reasons(row["dropped"])] for row in rows]


def section_rows(rows: Sequence[Row], section: str) -> list[Row]:
    """The funnel rows of the stages one report section shows ("generation", "selection", ...)."""
    return [row for row in rows if row["stage"] in stages.BY_NAME and section in stages.BY_NAME[row["stage"]].sections]


def spread(records: Iterable[Mapping[str, Any]], field: str) -> Counter[str]:
    """How often each value of ``field`` occurs (missing values count as "unknown")."""
    return Counter(str(record.get(field) or "unknown") for record in records)


def finish_reasons(records: Iterable[Mapping[str, Any]], step: str) -> Counter[str]:
    """Finish reasons of one generation step, from the records' provenance."""
    counts: Counter[str] = Counter()
    for record in records:
        entry = record.get("provenance", {}).get(step)
        if entry is not None:
            counts[str(entry.get("finish_reason", "unknown"))] += 1
    return counts


def verdict_counts(stats: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Execution verdicts by kind, summed over the execution stage's shard stats."""
    counts: Counter[str] = Counter()
    for entry in stats:
        counts.update(entry.get("verdicts", {}))
    return counts


def loss_rows(train_stats: Mapping[str, Any]) -> list[Row]:
    """The per-step training log the SFT writes into ``train_stats.json`` (step, loss, learning rate)."""
    return [
        {"step": int(entry["step"]), "loss": float(entry["loss"]), "learning_rate": float(entry["learning_rate"])}
        for entry in train_stats.get("log", [])
    ]


SCORE_HEADER = [
    "benchmark", "model", "dataset", "prompt style", "pass@1 (base tests)", "passed / problems (base)",
    "pass@1 (plus tests)", "passed / problems (plus)",
]


class Number(str):
    """Text that is a number (a formatted pass@1, a signed difference): right-aligned in tables."""


def score_table(rows: Sequence[ScoreRow]) -> list[list[Any]]:
    """Score rows (ours, then differences and references) as table rows; pass@1 as the score files hold it."""
    out = []
    for row in rows:
        cells: list[Any] = [row.benchmark, row.model, row.dataset, row.prompt_style]
        for test in TESTS:
            value = row.pass_at_1.get(test)
            cells.append(Number(fraction(value, signed=row.kind == "difference")) if value is not None else "")
            cells.append(f"{row.passed[test]} / {row.problems}" if test in row.passed else "")
        out.append(cells)
    return out


def display_path(value: str, run_dir: str | Path, shorten: bool = True) -> str:
    """A path as the report shows it: relative to the run directory when inside it; else, with ``shorten``,
    only its last three parts (an interpreter's ``.venv/bin/python``), so that no machine's layout shows."""
    path = Path(value)
    if not path.is_absolute():
        return value
    try:
        return str(path.relative_to(Path(run_dir).resolve()))
    except ValueError:
        return str(Path("…", *path.parts[1:][-3:])) if shorten and len(path.parts) > 4 else value


def versions_table(versions: Mapping[str, str], run_dir: str | Path) -> list[list[str]]:
    """Tool and version rows (several versions comma-separated), paths shown with ``display_path``."""
    return [
        [name, ", ".join(display_path(part, run_dir) for part in str(version).split(", "))]
        for name, version in versions.items()
    ]


def flatten(config: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """A nested config as (dotted key, value) pairs, in the config's order."""
    pairs: list[tuple[str, Any]] = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            pairs += flatten(value, name + ".")
        else:
            pairs.append((name, value))
    return pairs


# ---- HTML tables ------------------------------------------------------------------------------

STYLE = (
    "body{font-family:sans-serif;font-size:14px;margin:1em}"
    "table{border-collapse:collapse;margin-bottom:1.5em}"
    "th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3}"
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f8f8f8;padding:6px;margin:0 0 1em}"
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    numeric = isinstance(value, (int, float, Number)) and not isinstance(value, bool)
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def table_html(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """One titled table as an HTML fragment (values escaped); no header row when ``header`` is empty."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    thead = f"<thead><tr>{head}</tr></thead>" if header else ""
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<h3>{html.escape(title)}</h3><table>{thead}<tbody>{body}</tbody></table>"


def html_page(title: str, fragments: Sequence[str]) -> str:
    """A standalone HTML page (the report shows HTML results in a frame)."""
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{STYLE}</style></head><body><h2>{html.escape(title)}</h2>{''.join(fragments)}</body></html>\n"
    )


# ---- plots ------------------------------------------------------------------------------------


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "selfalign"  # stable element ids: same data, same file
    matplotlib.rcParams["svg.fonttype"] = "none"  # text stays text: selectable, searchable, smaller files
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | Path) -> None:
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    _pyplot().close(figure)


def _label_bars(axes: Any, container: Any, texts: Sequence[str]) -> None:
    """Write each bar's value at its end, zero included (a zero bar has no length to show it otherwise)."""
    axes.bar_label(container, labels=list(texts), padding=2, fontsize=7)


def plot_funnel(rows: Sequence[Row], path: str | Path, title: str = "Records in and out of every stage") -> None:
    """Horizontal bars, one pair (in, out) per stage, log scale: counts span several orders of magnitude."""
    plt = _pyplot()
    labels = [stages.label(row) for row in rows]
    positions = range(len(rows))
    figure, axes = plt.subplots(figsize=(9, 0.5 * len(rows) + 1.5))
    # the y axis is inverted below (first stage on top), so "in" at -0.2 is drawn above "out"
    for offset, key, color in ((-0.2, "in", "#9ecae1"), (0.2, "out", "#3182bd")):
        values = [max(row[key], 0) for row in rows]
        bars = axes.barh([p + offset for p in positions], values, height=0.4, label=key, color=color)
        _label_bars(axes, bars, [str(v) for v in values])
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    if any(row["in"] > 0 for row in rows):
        axes.set_xscale("symlog", linthresh=1)
        axes.set_xlim(0, max(row["in"] for row in rows) * 4)  # room for the labels of the longest bars
    axes.set_xlabel("records")
    axes.set_title(title)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))  # outside: no bar hidden under it
    _save(figure, path)


def plot_counters(panels: Sequence[tuple[str, Mapping[str, int]]], path: str | Path) -> None:
    """One bar chart per (title, counts) panel, side by side."""
    plt = _pyplot()
    figure, axes_list = plt.subplots(1, max(len(panels), 1), figsize=(4 * max(len(panels), 1), 3.5), squeeze=False)
    for axes, (title, counts) in zip(axes_list[0], panels, strict=False):
        items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        bars = axes.bar([k for k, _ in items], [v for _, v in items], color="#3182bd")
        _label_bars(axes, bars, [str(v) for _, v in items])
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=30, labelsize=8)
        axes.margins(y=0.15)  # room for the labels above the tallest bar
        if not items:
            axes.text(0.5, 0.5, "none", ha="center", va="center", transform=axes.transAxes)
    _save(figure, path)


def plot_loss(rows: Sequence[Row], path: str | Path) -> None:
    plt = _pyplot()
    figure, axes = plt.subplots(figsize=(7, 3.5))
    if rows:
        axes.plot([r["step"] for r in rows], [r["loss"] for r in rows], marker="o", markersize=3, label="loss")
        rate = axes.twinx()
        rate.plot([r["step"] for r in rows], [r["learning_rate"] for r in rows], color="#aaaaaa", linestyle="--", label="learning rate")
        rate.set_ylabel("learning rate")
    else:
        axes.text(0.5, 0.5, "no logged steps", ha="center", va="center", transform=axes.transAxes)
    axes.set_xlabel("optimizer step")
    axes.set_ylabel("training loss")
    axes.set_title("SFT training loss")
    _save(figure, path)


def plot_scores(rows: Sequence[ScoreRow], path: str | Path) -> None:
    """Grouped bars of pass@1: one group per benchmark and test set (base tests, plus tests), one bar per
    model and reference, each with its value; differences are in the table, not drawn."""
    plt = _pyplot()
    drawn = [row for row in rows if row.kind != "difference"]
    groups = [(b, t) for b in sorted({r.benchmark for r in drawn}) for t in TESTS]
    series = list(dict.fromkeys(r.model for r in drawn))  # base, tuned, then references, in row order
    figure, axes = plt.subplots(figsize=(max(5, 1.6 * len(groups) + 3), 4))
    width = 0.8 / max(len(series), 1)
    for index, model in enumerate(series):
        by_group = {(r.benchmark, t): r.pass_at_1[t] for r in drawn if r.model == model for t in TESTS if t in r.pass_at_1}
        present = [i for i, group in enumerate(groups) if group in by_group]
        values = [by_group[groups[i]] for i in present]
        reference = any(r.kind == "reference" for r in drawn if r.model == model)
        bars = axes.bar(
            [i + index * width for i in present],
            values,
            width=width,
            label=f"{model} (published)" if reference else f"{model} model",
            hatch="//" if reference else None,
            alpha=0.6 if reference else 1.0,
        )
        _label_bars(axes, bars, [fraction(v) for v in values])
    names = [f"{b}{'+' if t == 'plus' else ''}\n({t} tests)" for b, t in groups]
    axes.set_xticks([i + width * (len(series) - 1) / 2 for i in range(len(groups))], names, fontsize=8)
    axes.set_ylim(0, 1.1)
    axes.set_ylabel("greedy pass@1")
    axes.set_title("EvalPlus pass@1")
    if series:
        axes.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        axes.text(0.5, 0.5, "no score files", ha="center", va="center", transform=axes.transAxes)
    _save(figure, path)
