"""The per-shard CPU filters of the seed stage, in the reference's order:

1. heuristics: the reference's cheap pre-filters (bad words, banned imports, length, arity);
2. type check: add missing imports (autoimport, as the reference's --infer-imports), then drop functions
   that pinned pyright reports errors for (basic mode, as the reference), batches in parallel;
3. decontamination: drop seeds containing benchmark text (exact substrings, as the reference, plus optional
   word n-gram overlap), and list every removed seed with the benchmark item it matched.

Each step reads the shard the step before wrote and writes its own shard and stats file, as separate rules
would (rule filter_seeds runs the three in one job: the first and last are too light for a job each).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from . import heuristics as heuristic_rules
from . import typecheck as pyright_check
from .decontamination import Decontaminator, load_strings
from .records import read_stage
from .shards import Record, StageStats, atomic_writer, dumps, write_jsonl
from .typecheck import PyrightTimeout, add_missing_imports, import_environment, typecheck

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HeuristicsSettings:
    mode: str = "fixed"
    max_lines: int = 150

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> HeuristicsSettings:
        return cls(mode=str(section["mode"]), max_lines=int(section["max_lines"]))

    def rejection(self, source: str) -> heuristic_rules.Rejection | None:
        return heuristic_rules.heuristic_rejection(source, mode=self.mode, max_lines=self.max_lines)

    def reject(self, source: str) -> str | None:
        found = self.rejection(source)
        return found.rule if found else None


@dataclass(frozen=True)
class TypecheckSettings:
    autoimport: bool = True
    batch_size: int = 250
    timeout: float = 120

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> TypecheckSettings:
        return cls(autoimport=bool(section["autoimport"]), batch_size=int(section["batch_size"]), timeout=section["timeout"])


@dataclass(frozen=True)
class DecontaminationSettings:
    ngram: int = 0  # word n-gram overlap check; 0: exact substrings only

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> DecontaminationSettings:
        return cls(ngram=int(section["ngram"]))


def filter_heuristics(
    source: str, output: str, removed_output: str, settings: HeuristicsSettings, stats: StageStats
) -> None:
    """Kept seeds to ``output``; every dropped one to ``removed_output`` with its rule, line and message."""
    stats.extra["mode"] = settings.mode
    with atomic_writer(output) as kept, atomic_writer(removed_output) as removed:
        for record in read_stage(source, "seeds"):
            stats.seen()
            rejection = settings.rejection(record["seed"])
            if rejection:
                stats.drop(rejection.rule)
                removed.write(dumps(heuristic_rules.removed_record(record, rejection)) + "\n")
                continue
            stats.kept()
            kept.write(dumps(record) + "\n")


def typecheck_seeds(
    source: str,
    output: str,
    removed_output: str,
    settings: TypecheckSettings,
    heuristics: HeuristicsSettings,
    workers: int,
    stats: StageStats,
) -> None:
    """Kept seeds to ``output``; every dropped one to ``removed_output`` with pyright's diagnostics (rule,
    line, column, message) or the heuristic its added imports broke."""
    records = []
    removed: list[Record] = []
    imports_added = 0
    for record in read_stage(source, "seeds"):
        stats.seen()
        if settings.autoimport:
            fixed = add_missing_imports(record["seed"])
            if fixed != record["seed"]:
                # The reference ran its heuristics after this step: an added `import os` is still a banned import.
                rejection = heuristics.rejection(fixed)
                if rejection is not None:
                    stats.drop(f"autoimport_{rejection.rule}")
                    row = heuristic_rules.removed_record({**record, "seed": fixed}, rejection)
                    removed.append({**row, "stage": "typecheck", "reason": f"autoimport_{rejection.rule}"})
                    continue
                imports_added += 1
                record = {**record, "seed": fixed}  # seed_id stays the extracted function's id (lineage)
        records.append(record)
    log.info(
        "type-checking %d functions (%d with imports added) in batches of %d on %d workers",
        len(records), imports_added, settings.batch_size, workers,
    )
    try:
        result = typecheck(
            [r["seed"] for r in records], batch_size=settings.batch_size, workers=workers, timeout=settings.timeout
        )
    except PyrightTimeout as slow:
        seed = records[slow.index]
        raise RuntimeError(
            f"{source}: seed {seed['seed_id']}: pyright gave no result within {slow.timeout:g} s, twice, for this "
            "function alone; a timeout does not drop a seed (which seeds survive would then depend on the "
            "machine's load): raise seeds.typecheck.timeout in the config and rerun"
        ) from None
    kept = []
    for record, outcome in zip(records, result.checks, strict=True):
        if outcome.ok:
            kept.append(record)
        else:
            stats.drop(outcome.reason or "pyright_error")
            removed.append(pyright_check.removed_record(record, outcome))
    stats.kept(write_jsonl(output, kept))
    write_jsonl(removed_output, removed)
    stats.versions = dict(result.versions)
    stats.extra.update(
        pyright_runs=result.pyright_runs,
        workers=workers,
        imports_added=imports_added,
        import_environment=import_environment(),
    )


def decontaminate_seeds(
    source: str, strings_path: str, output: str, removed_output: str, settings: DecontaminationSettings, stats: StageStats
) -> None:
    strings = load_strings(strings_path)
    decontaminator = Decontaminator(strings, ngram=settings.ngram)
    stats.extra.update(benchmark_strings=len(strings), ngram=settings.ngram, benchmark_ngrams=decontaminator.ngram_count)
    log.info("%d benchmark strings, %d distinct %d-grams", len(strings), decontaminator.ngram_count, settings.ngram)
    with atomic_writer(output) as kept, atomic_writer(removed_output) as removed:
        for record in read_stage(source, "seeds"):
            stats.seen()
            found = decontaminator.find(record["seed"])
            if found is None:
                kept.write(dumps(record) + "\n")
                stats.kept()
                continue
            # "<benchmark>_match" for exact substrings (the reference's reason), "<benchmark>_ngram" for n-grams
            suffix = "match" if found.method == "substring" else "ngram"
            reason = f"{found.string.benchmark}_{suffix}"
            stats.drop(reason)
            removed.write(
                dumps(
                    {
                        "seed_id": record["seed_id"],
                        "source": record["source"],
                        "reason": reason,  # as the stats count it
                        "benchmark": found.string.benchmark,
                        "task_id": found.string.task_id,
                        "method": found.method,
                        "matched": found.evidence,
                    }
                )
                + "\n"
            )
