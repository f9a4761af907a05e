"""Resumable generation: a shard is generated in chunks of rows, each flushed atomically to disk.

A job that is preempted or hits its time limit leaves its finished chunks in ``<output>.chunks/``;
the rerun skips them and generates only the rest. Every row is sampled with its own seed (base seed +
absolute row), so the chunking and the restart do not change any output: the shard assembled at the
end is byte-identical to the one an uninterrupted run writes.

A manifest holds a fingerprint of everything that shapes the output (step, sampling, seed, few-shot
file, model, backend, input shard). If it differs on restart, the old chunks are discarded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections import Counter
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .shards import Record, StageStats, read_json, read_jsonl, write_json, write_jsonl

StepFunction = Callable[[list[Record], StageStats], list[Record]]
log = logging.getLogger(__name__)


def fingerprint(parts: Mapping[str, Any], files: Mapping[str, str | os.PathLike[str]]) -> str:
    """sha256 over JSON ``parts`` and the bytes of ``files`` (e.g. the input shard, the few-shot file)."""
    digest = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode("utf-8"))
    for name in sorted(files):
        digest.update(name.encode("utf-8"))
        with open(files[name], "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def chunk_dir_for(output: str | os.PathLike[str]) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".chunks")


def _merge(into: StageStats, part: Mapping[str, Any]) -> None:
    into.seen(part["in"])
    into.kept(part["out"])
    for reason, count in part["dropped"].items():
        into.drop(reason, count)
    for key, value in part["extra"].items():
        # Per-chunk counters add up; anything else (e.g. the sampling dict) is the same in every chunk.
        if isinstance(value, int | float) and not isinstance(value, bool):
            into.extra[key] = into.extra.get(key, 0) + value
        elif isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
            merged = Counter(into.extra.get(key, {})) + Counter(value)  # e.g. counts per category
            into.extra[key] = dict(sorted(merged.items()))
        else:
            into.extra[key] = value


def run_in_chunks(
    rows: list[Record],
    step: StepFunction,
    output: str | os.PathLike[str],
    chunk_rows: int,
    stats: StageStats,
    fingerprint_: str,
) -> list[Record]:
    """Run ``step`` over ``rows`` in chunks, resuming from the chunks a previous attempt finished.

    Returns every output record in row order. The caller writes them to ``output`` and then calls
    ``discard_chunks(output)``; until the output exists the chunks are the only copy of the work done.
    """
    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be >= 1, got {chunk_rows}")
    directory = chunk_dir_for(output)
    manifest = {"fingerprint": fingerprint_, "chunk_rows": chunk_rows, "rows": len(rows)}
    manifest_path = directory / "manifest.json"
    if directory.exists() and (not manifest_path.exists() or read_json(manifest_path) != manifest):
        log.warning("%s: chunks from a run with other settings or input; starting over", directory)
        shutil.rmtree(directory)
    if not directory.exists():
        directory.mkdir(parents=True)
        write_json(manifest_path, manifest)

    out: list[Record] = []
    starts = range(0, len(rows), chunk_rows)
    for number, start in enumerate(starts):
        records_path = directory / f"{number:06d}.jsonl"
        removed_path = directory / f"{number:06d}.removed.jsonl"  # the chunk's dropped records (stats.removed)
        stats_path = directory / f"{number:06d}.stats.json"  # written last: its presence marks the chunk done
        if stats_path.exists() and removed_path.exists():
            out.extend(read_jsonl(records_path))
            stats.removed.extend(read_jsonl(removed_path))
            _merge(stats, read_json(stats_path))
            log.info("chunk %d/%d: done by an earlier attempt, skipped", number + 1, len(starts))
            continue
        part = StageStats(stats.stage, stats.shard)
        produced = step(rows[start : start + chunk_rows], part)
        write_jsonl(records_path, produced)
        write_jsonl(removed_path, part.removed)
        stats.removed.extend(part.removed)
        counts = {"in": part.records_in, "out": part.records_out, "dropped": dict(part.dropped), "extra": part.extra}
        write_json(stats_path, counts)
        out.extend(produced)
        _merge(stats, counts)
        log.info("chunk %d/%d: %d records flushed", number + 1, len(starts), len(produced))
    return out


def discard_chunks(output: str | os.PathLike[str]) -> None:
    """Remove the chunks once ``output`` holds everything."""
    shutil.rmtree(chunk_dir_for(output), ignore_errors=True)
