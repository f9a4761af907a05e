"""The execution stage: every response's program runs with its tests in the sandbox, one verdict per sample;
then selection's per-shard step: the passing samples with a usable format, with their dedup keys.

Every sample is written with its verdict (pass, fail, timeout, memory, infra-error, or not run because it
has no code or does not compile); the candidates hold the passing ones that pass the format checks, and
their stats count every other sample by reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Iterator

from . import formats, programs, records, selection
from .sandbox import Limits, Sandbox, run_many
from .shards import Record, StageStats

log = logging.getLogger(__name__)


def execute_samples(
    rows: list[Record],
    sandbox: Sandbox,
    limits: Limits,
    workers: int,
    infra_retries: int,
    stats: StageStats,
    progress: Callable[[int, int], None] | None = None,
) -> list[Record]:
    """Each row with its ``verdict_id``, ``verdict``, ``program`` and ``execution`` details; verdict
    counts and limits go to ``stats.extra``."""
    stats.seen(len(rows))
    # each sample's program by its prompt format's rule (SCA: every block; SC2: python blocks that parse)
    built = [
        programs.build_program(row["response"], row["tests"], formats.get_format(row.get("response_format", formats.SCA.name)))
        for row in rows
    ]
    runnable = [i for i, b in enumerate(built) if b.program is not None]
    log.info("%d samples, %d runnable, %d workers, limits %s", len(rows), len(runnable), workers, limits)
    verdicts = run_many(
        sandbox,
        [built[i].program for i in runnable],
        limits,
        workers=workers,
        infra_retries=infra_retries,
        progress=progress,
    )
    by_index = dict(zip(runnable, verdicts, strict=True))

    counts: Counter = Counter()
    execution_seconds = 0.0
    retried = 0
    out = []
    for i, row in enumerate(rows):
        program = built[i].program
        if program is None:
            status = built[i].drop_reason
            detail = {"returncode": None, "stdout_tail": "", "stderr_tail": ""}
        else:
            verdict = by_index[i]
            status = verdict.status
            # No timing in the record (same config, same bytes): run times go to the stats only.
            execution_seconds += verdict.seconds
            # Nor how many attempts it took: a sample starved by load is retried (infra-error), so the
            # count depends on the machine's load; the total goes to the stats as run history.
            retried += verdict.attempts - 1
            detail = {
                "returncode": verdict.returncode,
                "stdout_tail": verdict.stdout_tail,
                "stderr_tail": verdict.stderr_tail,
            }
        counts[status] += 1
        out.append(
            {
                **row,
                "verdict_id": records.verdict_id(row["response_id"], status),
                "verdict": status,
                "program": program,
                "execution": detail,
            }
        )
    stats.kept(len(out))
    stats.extra["verdicts"] = dict(sorted(counts.items()))
    stats.extra["execution_seconds"] = round(execution_seconds, 3)  # timing: sum of the samples' run times
    stats.extra["infra_retries"] = retried  # run history: retries of samples the sandbox could not run
    stats.extra["limits"] = limits.__dict__
    if counts.get("infra-error"):
        log.warning("%d samples could not be run by the sandbox (infra-error); they are kept and reported", counts["infra-error"])
    return out


def select_candidates(
    verdicts: list[Record], max_instruction_words: int, stats: StageStats, removed: list[Record] | None = None
) -> Iterator[Record]:
    """The passing samples that pass selection's format checks, with their dedup keys; the rest counted.

    A passing sample that fails a format check is appended to ``removed`` with its ``reason`` (the others
    are in the verdict shard already, with their verdict)."""
    for record in verdicts:
        stats.seen()
        if record["verdict"] != "pass":
            stats.drop(f"verdict_{record['verdict']}")
            continue
        problem = selection.format_problem(record, max_instruction_words)
        if problem:
            stats.drop(problem)
            if removed is not None:
                removed.append({"reason": problem, **record})
            continue
        stats.kept()
        yield {**record, "selection_keys": selection.candidate_keys(record)}
