"""The stage funnel: records in and out of every stage, summed over shards, with the reasons for drops.

Stages, their order and their labels come from ``selfalign.stages``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import stages
from .scores import ScoreRow, fraction
from .shards import read_json


def aggregate(stats_paths: Iterable[str]) -> list[dict[str, Any]]:
    return _rows(read_json(path) for path in stats_paths)


def _rows(all_stats: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for stats in all_stats:
        row = rows.setdefault(
            stats["stage"], {"stage": stats["stage"], "in": 0, "out": 0, "dropped": Counter(), "seconds": 0.0, "shards": 0}
        )
        row["in"] += stats["in"]
        row["out"] += stats["out"]
        row["dropped"].update(stats["dropped"])
        row["seconds"] += stats.get("seconds", 0.0)
        row["shards"] += 1
    return sorted(rows.values(), key=lambda r: stages.order(r["stage"]))


def totals(stats_paths: Iterable[str]) -> dict[str, Any]:
    """The funnel rows and the tool versions the stages recorded, from every per-shard stats file.

    One file of totals lets the funnel, the dataset card and the report read a handful of numbers instead of
    every shard's stats file each (with 1,000 shards, 11,000 inputs per rule for Snakemake to resolve).
    """
    all_stats = [read_json(path) for path in stats_paths]
    return {
        "rows": [{**row, "dropped": dict(row["dropped"].most_common())} for row in _rows(all_stats)],
        "versions": versions(all_stats),
        "stats_files": len(all_stats),
    }


def versions(sources: Iterable[Mapping[str, Any]]) -> dict[str, str]:
    """Tool versions recorded by the stages (``versions`` of each stats file, the SFT's ``train_stats``)."""
    found: dict[str, set[str]] = {}
    for source in sources:
        for name, version in (source.get("versions") or {}).items():
            found.setdefault(str(name), set()).add(str(version))
    return {name: ", ".join(sorted(values)) for name, values in sorted(found.items())}


def load_rows(totals_or_path: str | Mapping[str, Any]) -> list[dict[str, Any]]:
    """The funnel rows of ``totals`` (the dict, or the file it was written to), with their drop counters."""
    summed = read_json(totals_or_path) if isinstance(totals_or_path, str) else totals_or_path
    return [{**row, "dropped": Counter(row["dropped"])} for row in summed["rows"]]


def reasons(dropped: dict[str, int]) -> str:
    return ", ".join(f"{reason} {count}" for reason, count in Counter(dropped).most_common()) or "-"


def to_tsv(rows: list[dict[str, Any]]) -> str:
    lines = ["stage\tin\tout\tdropped\treasons\tseconds"]
    for row in rows:
        lines.append(
            f"{row['stage']}\t{row['in']}\t{row['out']}\t{sum(row['dropped'].values())}\t{reasons(row['dropped'])}\t{row['seconds']:.1f}"
        )
    return "\n".join(lines) + "\n"


def markdown_table(rows: list[dict[str, Any]]) -> list[str]:
    """The funnel as Markdown table lines."""
    lines = ["| stage | in | out | dropped (by reason) |", "|---|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {stages.label(row)} | {row['in']} | {row['out']} | {reasons(row['dropped'])} |")
    return lines


def to_markdown(rows: list[dict[str, Any]], scores: Sequence[ScoreRow]) -> str:
    """The funnel and the scores (``selfalign.scores.read_scores``) as Markdown, printed at the end of a run."""
    lines = ["# Funnel", "", *markdown_table(rows)]
    lines += [
        "", "# Scores (EvalPlus, greedy pass@1)", "",
        "| benchmark | dataset | model | prompt style | base pass@1 | plus pass@1 | problems |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for score in scores:
        lines.append(
            f"| {score.benchmark} | {score.dataset} | {score.model} | {score.prompt_style} "
            f"| {fraction(score.pass_at_1['base'])} | {fraction(score.pass_at_1['plus'])} | {score.problems} |"
        )
    return "\n".join(lines) + "\n"
