"""The data itself, for a person to judge by eye: a seeded sample of SFT pairs with their whole lineage
(seed, concepts, instruction, the chosen response, its tests and verdict, how its sibling samples did),
and a seeded sample of the dropped records per stage and drop reason.

Everything is read by streaming the shards once, so the sample costs memory for the sampled records only.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .shards import Record, read_jsonl
from .stages import Dropped


@dataclass
class Pair:
    """One SFT pair with what its lineage adds: the chosen sample's verdict record and its siblings."""

    record: Record
    verdict: Record | None = None  # the chosen sample's record in the verdict shards
    siblings: Counter[str] = field(default_factory=Counter)  # verdict -> samples of the same instruction


@dataclass
class DroppedSample:
    """Up to k seeded-random records of one stage's drops with one reason, out of ``total``."""

    stage: str
    reason: str
    total: int
    records: list[Record]


def sample_pairs(sft_path: str | Path, k: int, seed: int) -> list[Pair]:
    """k SFT pairs drawn with ``seed`` from ``train.jsonl`` (in file order), reading it twice."""
    count = sum(1 for _ in read_jsonl(sft_path))
    wanted = set(random.Random(seed).sample(range(count), min(k, count)))
    return [Pair(record) for index, record in enumerate(read_jsonl(sft_path)) if index in wanted]


def add_siblings(pairs: Sequence[Pair], verdict_paths: Iterable[str | Path]) -> None:
    """Fill in each pair's verdict record and the verdicts of every sample of its instruction."""
    # a pair without lineage ids (written by hand, not by this workflow) is shown without its siblings
    by_instruction = {pair.record["instruction_id"]: pair for pair in pairs if "instruction_id" in pair.record}
    for path in verdict_paths:
        for record in read_jsonl(path, {"instruction_id": str, "response_id": str, "verdict": str}):
            pair = by_instruction.get(record["instruction_id"])
            if pair is None:
                continue
            pair.siblings[record["verdict"]] += 1
            if record["response_id"] == pair.record.get("response_id"):
                pair.verdict = record


def sample_dropped(stage: str, dropped: Dropped, paths: Iterable[str | Path], k: int, seed: int) -> list[DroppedSample]:
    """Per drop reason, k records drawn uniformly with ``seed`` (reservoir sampling over the files in order)."""
    rng = random.Random(f"{seed}-{stage}")
    reservoirs: dict[str, list[Record]] = {}
    totals: Counter[str] = Counter()
    for path in paths:
        for line, record in enumerate(read_jsonl(path), start=1):
            try:
                reason = dropped.reason_of(record)
            except KeyError as error:
                raise ValueError(f"{path}:{line}: {error.args[0]}") from None
            if reason is None:
                continue
            totals[reason] += 1
            reservoir = reservoirs.setdefault(reason, [])
            if len(reservoir) < k:
                reservoir.append(record)
            else:
                slot = rng.randrange(totals[reason])
                if slot < k:
                    reservoir[slot] = record
    return [
        DroppedSample(stage, reason, totals[reason], reservoirs[reason])
        for reason in sorted(totals, key=lambda r: (-totals[r], r))
    ]


def sample_all_dropped(
    sources: Iterable[tuple[str, Dropped, Sequence[str]]], k: int, seed: int
) -> list[DroppedSample]:
    """``sample_dropped`` for every (stage, source, files) given, in that order; a stage's sources hold
    different drop reasons (a verdict shard's failures, a removed file's format drops)."""
    return [sample for stage, spec, paths in sources for sample in sample_dropped(stage, spec, paths, k, seed)]
