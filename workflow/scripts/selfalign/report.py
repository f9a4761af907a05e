"""The run report's sections as data, tables and plots: the stage funnel, generation statistics,
execution verdicts, the selection funnel, the training loss, the scores, the configuration and versions.

Every function takes what the pipeline already writes (stats files, records, ``train_stats.json``,
score files) and returns plain rows; ``html_table`` and the ``plot_*`` functions turn rows into the
files Snakemake's report embeds. Plots are drawn with matplotlib (Agg backend, SVG output).
"""

from __future__ import annotations

import html
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .funnel import STAGE_LABELS, reasons

Row = dict[str, Any]

# The stages the selection funnel shows: samples out of generation, through execution and checks, to the SFT set.
SELECTION_STAGES = ("responses", "execute", "select_candidates", "select_keep")
GENERATION_STEPS = ("concepts", "instruction", "response")
# The SFT's per-step log lives in the tuned model dir under this name (selfalign.sft.TRAIN_STATS_NAME;
# not imported from there because selfalign.sft needs torch and the report's env has none).
TRAIN_STATS_NAME = "train_stats.json"


# ---- sections as rows -------------------------------------------------------------------------


def funnel_table(rows: Sequence[Row]) -> list[list[Any]]:
    """Funnel rows (``selfalign.funnel.aggregate``) as table rows: stage, in, out, dropped, reasons."""
    return [
        [STAGE_LABELS.get(row["stage"], row["stage"]), row["in"], row["out"], sum(row["dropped"].values()), reasons(row["dropped"])]
        for row in rows
    ]


def selection_rows(rows: Sequence[Row]) -> list[Row]:
    """The part of the funnel from generated samples to the SFT set."""
    return [row for row in rows if row["stage"] in SELECTION_STAGES]


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


def score_rows(paths: Iterable[str | Path], read: Any) -> list[Row]:
    """One row per score file ``results/scores/<model>/<benchmark>.json``: model and benchmark from the
    path, and every numeric metric the file has at top level (pass@1, passed, problems, ...)."""
    out = []
    for path in sorted(map(Path, paths), key=lambda p: (p.stem, p.parent.name)):
        data = read(path)
        metrics = {
            key: value
            for key, value in data.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)
        }
        out.append({"model": path.parent.name, "benchmark": path.stem, "metrics": metrics})
    return out


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
)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    return f'<td class="n">{html.escape(text)}</td>' if numeric else f"<td>{html.escape(text)}</td>"


def table_html(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """One titled table as an HTML fragment (values escaped)."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<h3>{html.escape(title)}</h3><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


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
    import matplotlib.pyplot as plt

    return plt


def _save(figure: Any, path: str | Path) -> None:
    figure.tight_layout()
    figure.savefig(path, format="svg", metadata={"Date": None})
    _pyplot().close(figure)


def plot_funnel(rows: Sequence[Row], path: str | Path, title: str = "Records in and out of every stage") -> None:
    """Horizontal bars, one pair (in, out) per stage, log scale: counts span several orders of magnitude."""
    plt = _pyplot()
    labels = [STAGE_LABELS.get(row["stage"], row["stage"]) for row in rows]
    positions = range(len(rows))
    figure, axes = plt.subplots(figsize=(9, 0.45 * len(rows) + 1.5))
    # the y axis is inverted below (first stage on top), so "in" at -0.2 is drawn above "out"
    axes.barh([p - 0.2 for p in positions], [max(row["in"], 0) for row in rows], height=0.4, label="in", color="#9ecae1")
    axes.barh([p + 0.2 for p in positions], [max(row["out"], 0) for row in rows], height=0.4, label="out", color="#3182bd")
    for position, row in zip(positions, rows, strict=True):
        axes.text(max(row["out"], 1), position + 0.2, f" {row['out']}", va="center", fontsize=8)
    axes.set_yticks(list(positions), labels)
    axes.invert_yaxis()
    if any(row["in"] > 0 for row in rows):
        axes.set_xscale("symlog", linthresh=1)
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
        axes.bar([k for k, _ in items], [v for _, v in items], color="#3182bd")
        axes.set_title(title)
        axes.tick_params(axis="x", labelrotation=30, labelsize=8)
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


def plot_scores(rows: Sequence[Row], path: str | Path, metric: str = "pass@1") -> None:
    """Grouped bars: one group per benchmark, one bar per model."""
    plt = _pyplot()
    benchmarks = sorted({r["benchmark"] for r in rows})
    models = sorted({r["model"] for r in rows})
    figure, axes = plt.subplots(figsize=(max(4, 2.2 * len(benchmarks) + 2), 3.5))
    width = 0.8 / max(len(models), 1)
    for index, model in enumerate(models):
        values = [
            next((r["metrics"].get(metric, 0.0) for r in rows if r["model"] == model and r["benchmark"] == b), 0.0)
            for b in benchmarks
        ]
        axes.bar([i + index * width for i in range(len(benchmarks))], values, width=width, label=model)
    axes.set_xticks([i + width * (len(models) - 1) / 2 for i in range(len(benchmarks))], benchmarks)
    axes.set_ylim(0, 1)
    axes.set_ylabel(metric)
    axes.set_title(f"{metric}: base vs tuned")
    if models:
        axes.legend()
    _save(figure, path)
