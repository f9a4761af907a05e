"""Sharded JSONL: strict readers, atomic writers and the per-shard stats file.

Every stage reads and writes ``<stage>/<shard>.jsonl`` with a ``<shard>.stats.json`` beside it.
Readers fail with ``file:line: field`` on a malformed record, because polars and ``json`` alone
name neither the file nor the line. Writers write to a temporary file in the same directory and
rename it into place, so a killed job never leaves a file that looks finished.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, TextIO, cast

Record = dict[str, Any]


class RecordError(ValueError):
    """A malformed record, located by file, line and field."""

    def __init__(self, path: str | os.PathLike[str], line: int, field: str | None, problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = f"{self.path}:{line}"
        super().__init__(f"{where}: field '{field}': {problem}" if field else f"{where}: {problem}")


def _open_text(path: Path, mode: str) -> TextIO:
    """``mode`` is "rt" or "wt"; a ``.gz`` suffix means gzip."""
    if path.suffix == ".gz":
        return cast(TextIO, gzip.open(path, mode, encoding="utf-8"))
    return cast(TextIO, open(path, mode, encoding="utf-8"))


def read_jsonl(
    path: str | os.PathLike[str], required: Mapping[str, type | tuple[type, ...]] | None = None
) -> Iterator[Record]:
    """Yield the records of one shard, checking that ``required`` fields exist with their types.

    Blank lines are skipped; anything else that is not a JSON object raises ``RecordError``.
    """
    path = Path(path)
    with _open_text(path, "rt") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise RecordError(path, line_no, None, f"not valid JSON ({err.msg} at column {err.colno})") from None
            if not isinstance(record, dict):
                raise RecordError(path, line_no, None, f"expected a JSON object, got {type(record).__name__}")
            for field, kind in (required or {}).items():
                if field not in record:
                    raise RecordError(path, line_no, field, "missing")
                if not isinstance(record[field], kind) or (kind is int and isinstance(record[field], bool)):
                    expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
                    raise RecordError(
                        path, line_no, field, f"expected {expected}, got {type(record[field]).__name__}"
                    )
            yield record


def read_shards(
    paths: Iterable[str | os.PathLike[str]], required: Mapping[str, type | tuple[type, ...]] | None = None
) -> Iterator[Record]:
    for path in paths:
        yield from read_jsonl(path, required)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        # mkstemp creates 0600; give the file the permissions an ordinary open() would (shared clusters).
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike[str]) -> Iterator[TextIO]:
    """A text handle whose content appears at ``path`` only when the block completes."""
    path = Path(path)
    with atomic_path(path) as tmp:
        # the temporary name has no .gz suffix: pick the format from the final name
        handle = cast(TextIO, gzip.open(tmp, "wt", encoding="utf-8")) if path.suffix == ".gz" else _open_text(tmp, "wt")
        with handle:
            yield handle


def dumps(record: Mapping[str, Any]) -> str:
    return json.dumps(record, ensure_ascii=False, sort_keys=False)


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Mapping[str, Any]]) -> int:
    """Write records atomically; return how many were written."""
    count = 0
    with atomic_writer(path) as handle:
        for record in records:
            handle.write(dumps(record))
            handle.write("\n")
            count += 1
    return count


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    with atomic_writer(path) as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, sort_keys=False)
        handle.write("\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


class StageStats:
    """Counts for one shard of one stage: records in, out, dropped by reason, seconds, versions.

    Use ``drop(reason)`` for every record that does not go on, so that ``in == out + dropped``
    can be checked by the funnel.
    """

    def __init__(self, stage: str, shard: str | int | None = None):
        self.stage = stage
        self.shard = None if shard is None else str(shard)
        self.records_in = 0
        self.records_out = 0
        self.dropped: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}
        self.versions: dict[str, str] = {}
        self._start = time.perf_counter()

    def seen(self, count: int = 1) -> None:
        self.records_in += count

    def kept(self, count: int = 1) -> None:
        self.records_out += count

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] += count

    def as_dict(self) -> dict[str, Any]:
        return {
            "stage": self.stage,
            "shard": self.shard,
            "in": self.records_in,
            "out": self.records_out,
            "dropped": dict(sorted(self.dropped.items())),
            "seconds": round(time.perf_counter() - self._start, 3),
            "versions": self.versions,
            **self.extra,
        }

    def write(self, path: str | os.PathLike[str]) -> dict[str, Any]:
        stats = self.as_dict()
        write_json(path, stats)
        return stats


def stats_path_for(shard_path: str | os.PathLike[str]) -> Path:
    """``results/x/00.jsonl`` -> ``results/x/00.stats.json``."""
    shard_path = Path(shard_path)
    name = shard_path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return shard_path.with_name(name[: -len(suffix)] + ".stats.json")
    return shard_path.with_name(name + ".stats.json")
