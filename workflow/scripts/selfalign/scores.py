"""The EvalPlus score files as rows: one per model and benchmark, with greedy pass@1 on the base tests and
on the plus tests (base and plus both pass), the tuned-minus-base difference, and published reference
numbers to put beside them. Read by the funnel's Markdown and the report's Scores section."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from .shards import read_json

# Score file ``results/scores/<model>/<benchmark>.json``: the fields every row needs.
TESTS = ("base", "plus")


@dataclass(frozen=True)
class ScoreRow:
    benchmark: str
    model: str  # "base", "tuned", "tuned - base", or a reference's name
    dataset: str  # name and version of the problems
    prompt_style: str
    problems: int | None
    pass_at_1: dict[str, float]  # "base" / "plus" -> pass@1 in [0, 1] (a difference may be negative)
    passed: dict[str, int]  # "base" / "plus" -> problems solved (empty for differences and references)
    kind: str = "ours"  # "ours", "difference" or "reference"


def read_score(path: str | Path) -> ScoreRow:
    """One score file as a row; a file without the fields is an error naming it and the field."""
    data = read_json(path)
    try:
        return ScoreRow(
            benchmark=str(data["benchmark"]),
            model=str(data["model"]),
            dataset=f"{data['dataset']['name']} {data['dataset']['version']}",
            prompt_style=str(data["prompt_style"]),
            problems=int(data["problems"]),
            pass_at_1={test: float(data[test]["pass@1"]) for test in TESTS},
            passed={test: int(data[test]["passed"]) for test in TESTS},
        )
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: score file without the field {error}") from None


def read_scores(paths: Iterable[str | Path]) -> list[ScoreRow]:
    """Every score file's row, by benchmark, base model before tuned."""
    rows = [read_score(path) for path in paths]
    return sorted(rows, key=lambda r: (r.benchmark, r.model != "base", r.model))


def differences(rows: Sequence[ScoreRow]) -> list[ScoreRow]:
    """Tuned minus base pass@1 per benchmark where both models were scored."""
    out = []
    for benchmark in sorted({r.benchmark for r in rows}):
        by_model = {r.model: r for r in rows if r.benchmark == benchmark}
        if "base" in by_model and "tuned" in by_model:
            base, tuned = by_model["base"], by_model["tuned"]
            out.append(
                ScoreRow(
                    benchmark, "tuned - base", tuned.dataset, "", tuned.problems,
                    {test: tuned.pass_at_1[test] - base.pass_at_1[test] for test in TESTS}, {}, kind="difference",
                )
            )
    return out


def matching_base_model(reference: Mapping[str, Any] | None, base_model: str | None) -> Mapping[str, Any] | None:
    """The row of ``reference["base_models"]`` for the configured ``model.base``: its last path component
    equals the row's ``base_model`` (case-insensitive); None when no row matches."""
    if not reference or not base_model:
        return None
    name = PurePosixPath(str(base_model).rstrip("/")).name.lower()
    return next((row for row in reference.get("base_models") or [] if str(row["base_model"]).lower() == name), None)


def reference_rows(reference: Mapping[str, Any] | None, benchmarks: Iterable[str], base_model: str | None = None) -> list[ScoreRow]:
    """The published numbers of a reference (config ``report.reference``) for the scored benchmarks: its
    ``scores``, then from its ``base_models`` table the row matching ``base_model``, or every row when none
    matches (each row's base model, then the model tuned from it)."""
    if not reference:
        return []
    style = str(reference.get("prompt_style", ""))
    wanted = sorted(set(benchmarks))
    published = [(str(reference["name"]), reference.get("scores"))]
    match = matching_base_model(reference, base_model)
    for row in [match] if match else reference.get("base_models") or []:
        published += [(f"{row['base_model']} (base)", row.get("base_scores")), (str(row["name"]), row.get("scores"))]
    out = []
    for benchmark in wanted:
        for name, table in published:
            numbers = (table or {}).get(benchmark)
            if numbers:
                out.append(
                    ScoreRow(
                        benchmark, name, str(numbers.get("dataset", "")), style, numbers.get("problems"),
                        {test: float(numbers[test]) for test in TESTS if test in numbers}, {}, kind="reference",
                    )
                )
    return out


def fraction(value: float | None, signed: bool = False) -> str:
    """pass@1 as the score files hold it, a fraction with three decimals (a difference with its sign)."""
    if value is None:
        return ""
    return f"{value:+.3f}" if signed else f"{value:.3f}"
