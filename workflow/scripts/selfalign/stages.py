"""The pipeline's stages, declared once: the name their stats files record, what the funnel calls them,
where their stats and dropped records are, and one line on how each works.

Read by the rules (``stage_stats()`` in ``workflow/rules/common.smk`` lists every stats file from here),
the stage totals and funnel (``selfalign.stage_funnel``), the dataset card and the report. Standard
library only: the workflow imports this module while it parses.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Dropped:
    """Where a stage's dropped records can be read: JSONL files (``{shard}`` for one per shard), and the
    drop reason of a record as a format string over its fields; ``kept`` is the reason text of records
    the file lists although they went on (a verdict shard holds every sample, passing or not)."""

    pattern: str
    reason: str = "{reason}"
    kept: str | None = None

    def reason_of(self, record: Mapping[str, Any]) -> str | None:
        """The record's drop reason, or None when it was kept; a missing field is a clear error."""
        try:
            reason = self.reason.format_map(record)
        except KeyError as missing:
            raise KeyError(f"dropped record without the field {missing} that {self.reason!r} needs") from None
        return None if reason == self.kept else reason

    def fields(self) -> list[str]:
        return [name for _, name, _, _ in string.Formatter().parse(self.reason) if name]


@dataclass(frozen=True)
class Stage:
    name: str  # the ``stage`` its stats files record
    label: str  # what the funnel, the dataset card and the report call it
    stats: str  # its stats file, or one per shard with ``{shard}``
    sections: tuple[str, ...]  # the report's sections that show it: "seeds", "generation", "selection"
    made: str  # how it works, one sentence (the dataset card's "How it was made")
    dropped: tuple[Dropped, ...] = ()  # where its dropped records are: one source per file pattern

    @property
    def per_shard(self) -> bool:
        return "{shard}" in self.stats


# Pipeline order. A stage that starts keeping its dropped records adds a `dropped=(Dropped(...),)` here
# (and the file to its rule's outputs): the report's data section then shows samples of them.
STAGES: tuple[Stage, ...] = (
    Stage(
        "extract", "seeds extracted", "results/seeds/extracted/stats.json", ("seeds",),
        "Seed extraction: top-level Python functions with a docstring and a `return <expr>`, found with `ast`, "
        "exact duplicates removed.",
    ),
    Stage(
        "heuristics", "heuristic filters", "results/seeds/heuristics/{shard}.stats.json", ("seeds",),
        "Heuristic filters: bad words, banned imports, too many lines, functions without arguments.",
        (Dropped("results/seeds/heuristics/{shard}.removed.jsonl"),),
    ),
    Stage(
        "typecheck", "pyright type check", "results/seeds/typechecked/{shard}.stats.json", ("seeds",),
        "Type check: the pinned pyright release; functions with errors are dropped.",
        (Dropped("results/seeds/typechecked/{shard}.removed.jsonl"),),
    ),
    Stage(
        "decontaminate", "decontamination", "results/seeds/decontaminated/{shard}.stats.json", ("seeds",),
        "Decontamination: seeds containing benchmark docstrings or solutions are dropped (Aho-Corasick).",
        (Dropped("results/seeds/decontaminated/{shard}.removed.jsonl"),),
    ),
    Stage(
        "judge", "docstring judge", "results/seeds/judged/{shard}.stats.json", ("seeds",),
        "Docstring judge: the base model, few-shot and greedy, judges whether the docstring matches the code.",
        (Dropped("results/seeds/judged/{shard}.removed.jsonl"),),
    ),
    Stage(
        "near_dedup", "near-dedup", "results/seeds/near_dedup/clusters.stats.json", ("seeds",),
        "Near-dedup: MinHash-LSH over word 5-grams; one representative per cluster.",
        (Dropped("results/seeds/near_dedup/removed.jsonl"),),
    ),
    Stage(
        "concepts", "seed -> concepts", "results/instruct/concepts/{shard}.stats.json", ("generation",),
        "Seed -> concepts: the base model lists the programming concepts of each seed (few-shot).",
        (Dropped("results/instruct/concepts/{shard}.removed.jsonl"),),
    ),
    Stage(
        "instructions", "concepts -> instruction", "results/instruct/instructions/{shard}.stats.json", ("generation",),
        "Concepts -> instruction: the base model writes a task from the concepts, with a sampled category and difficulty.",
        (Dropped("results/instruct/instructions/{shard}.removed.jsonl"),),
    ),
    Stage(
        "responses", "instruction -> responses (samples)", "results/respond/responses/{shard}.stats.json",
        ("generation", "selection"),  # the selection funnel starts at the generated samples
        "Instruction -> responses: the base model samples n responses, each with its tests.",
        (Dropped("results/respond/responses/{shard}.removed.jsonl"),),
    ),
    Stage(
        "execute", "execution (all samples, verdicts)", "results/execute/verdicts/{shard}.stats.json", ("selection",),
        "Execution: every response runs against its tests in a sandbox without network.",
    ),
    Stage(
        "select_candidates", "passing + format checks", "results/select/candidates/{shard}.stats.json", ("selection",),
        "Format checks: only passing samples with a code block and asserting tests, without unfinished-code markers.",
        (
            # the verdict shard lists every sample; the ones that did not pass are this stage's verdict_* drops
            Dropped("results/execute/verdicts/{shard}.jsonl", reason="verdict_{verdict}", kept="verdict_pass"),
            # passing samples that failed a format check
            Dropped("results/select/candidates/{shard}.removed.jsonl"),
        ),
    ),
    Stage(
        "select_keep", "selection (one per instruction, dedup)", "results/select/keep.stats.json", ("selection",),
        "Selection: seeded shuffle, one passing response per instruction, duplicate instructions, responses and "
        "function names dropped; then, as configured (see the configuration below), benchmark decontamination of "
        "instruction and response and MinHash near-dedup of instructions, responses and code.",
        (Dropped("results/select/removed.jsonl"),),
    ),
    Stage(
        "sft_data", "SFT set", "results/sft/train.stats.json", ("selection",),
        "SFT set: the selected pairs in the selection's order with their lineage; with `selection.sanitize: smart` "
        "(the SC2 flow) a pair whose response keeps an unfinished-code marker is dropped.",
        (Dropped("results/sft/removed.jsonl"),),
    ),
)

BY_NAME: dict[str, Stage] = {stage.name: stage for stage in STAGES}
# the drop reason of a stage that stops early at a configured number of records (seeds.limit)
LIMIT_REASON = "over_limit"


def stats_paths(shards: Sequence[str]) -> list[str]:
    """Every stats file of the run, in pipeline order (rule stage_totals's input)."""
    return _expand([stage.stats for stage in STAGES], shards)


def dropped_paths(shards: Sequence[str]) -> dict[str, list[list[str]]]:
    """Stage name -> the files holding its dropped records, one list per ``Stage.dropped`` source, for the
    stages that keep them."""
    return {stage.name: [_expand([source.pattern], shards) for source in stage.dropped] for stage in STAGES if stage.dropped}


def _expand(patterns: Sequence[str], shards: Sequence[str]) -> list[str]:
    return [pattern.format(shard=shard) for pattern in patterns for shard in (shards if "{shard}" in pattern else [""])]


def order(name: str) -> int:
    """A stage's place in the pipeline; stages the table does not know go last."""
    names = list(BY_NAME)
    return names.index(name) if name in BY_NAME else len(names)


def label(row: Mapping[str, Any]) -> str:
    """What a funnel row shows as its stage: the table's label, saying what ran ("+ limit 40" only when
    a limit cut something; the stage then kept exactly the limit's number of records)."""
    stage = BY_NAME.get(row["stage"])
    text = stage.label if stage else str(row["stage"])
    if row.get("dropped", {}).get(LIMIT_REASON):
        text += f" + limit {row['out']}"
    return text
