"""Sharded JSONL: strict readers, atomic writers and the per-shard stats file.

Every stage reads and writes ``<stage>/<shard>.jsonl`` with a ``<shard>.stats.json`` beside it.
Readers fail with ``file:line: field`` on a malformed record, because polars and ``json`` alone
name neither the file nor the line, and they check the number of records against the producer's
stats, so a shard that lost records after it was written fails the reader instead of shrinking the
funnel silently. Writers write to a temporary file in the same directory and rename it into place,
so a killed job never leaves a file that looks finished; a job with several outputs stages them all
and renames them together at its end (``publish_together``).
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
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


class CountMismatch(ValueError):
    """A shard holds another number of records than its producer's stats file says it wrote."""

    def __init__(self, path: str | os.PathLike[str], found: int, expected: int, stats: str | os.PathLike[str]):
        self.path, self.found, self.expected, self.stats = str(path), found, expected, str(stats)
        super().__init__(
            f"{path}: {found} records, but its producer's stats {stats} count {expected}: the shard changed "
            "after it was written (truncated, edited or replaced); rerun the job that wrote it"
        )


# Outputs of a job that publishes several together are staged under this prefix beside their final name.
STAGING_PREFIX = ".publishing."


def _shard_base(path: Path) -> str:
    for suffix in (".jsonl.gz", ".jsonl"):
        if path.name.endswith(suffix):
            return path.name[: -len(suffix)]
    return path.name


def producer_count(path: str | os.PathLike[str]) -> tuple[int, Path] | None:
    """How many records the producer of shard ``path`` wrote, and the stats file that says so.

    The producer's stats are ``{shard}.stats.json`` beside the shard (key ``out``), or, for a job that
    writes many shards at once, ``stats.json`` in the shard's directory (key ``shards.{shard}``). A shard
    staged by ``publish_together`` is matched with its staged stats. None where no such stats exist.
    """
    path = Path(path)
    beside = stats_path_for(path)
    if beside.is_file():
        count = read_json(beside).get("out")
        return (count, beside) if isinstance(count, int) else None
    base = _shard_base(path)
    prefix = STAGING_PREFIX if base.startswith(STAGING_PREFIX) else ""
    whole_run = path.with_name(prefix + "stats.json")
    if whole_run.is_file():
        count = (read_json(whole_run).get("shards") or {}).get(base.removeprefix(prefix))
        return (count, whole_run) if isinstance(count, int) else None
    return None


def read_jsonl(
    path: str | os.PathLike[str],
    required: Mapping[str, type | tuple[type, ...]] | None = None,
    check_count: bool = True,
) -> Iterator[Record]:
    """Yield the records of one shard, checking that ``required`` fields exist with their types.

    Blank lines are skipped; anything else that is not a JSON object raises ``RecordError``. Once
    every record is read, their number is checked against the producer's stats (``producer_count``)
    and a difference raises ``CountMismatch``; ``check_count=False`` skips that (a file that is not a
    stage's output).
    """
    path = Path(path)
    producer = producer_count(path) if check_count else None
    count = 0
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
            count += 1
            yield record
    if producer is not None and producer[0] != count:
        raise CountMismatch(path, count, *producer)


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


class Publication:
    """The outputs of one job, written under staging names and made visible together.

    ``path(final)`` gives the name to write ``final`` under: ``.publishing.<name>`` beside it (same
    directory, so the rename is atomic; same suffix, so ``stats_path_for`` and ``producer_count`` pair a
    staged shard with its staged stats, and a later step of the job can read an earlier step's output
    with the usual checks). ``publish()`` renames every staged output onto its final name, back to
    back, after all the work: a job killed before that leaves no final output at all, only staged
    files, which the next attempt of the same job (the only writer of those names) removes. Use it
    through ``publish_together``.
    """

    def __init__(self, finals: Iterable[str | os.PathLike[str]]):
        self.staged: dict[Path, Path] = {}
        for final in finals:
            final = Path(final)
            if final in self.staged:
                raise ValueError(f"{final} is listed twice")
            self.staged[final] = final.with_name(STAGING_PREFIX + final.name)
        for staged in self.staged.values():
            staged.parent.mkdir(parents=True, exist_ok=True)
            _remove(staged)  # left by an earlier attempt that was killed

    def path(self, final: str | os.PathLike[str]) -> Path:
        """The staging name to write ``final`` under."""
        try:
            return self.staged[Path(final)]
        except KeyError:
            raise KeyError(f"{final} is not an output of this publication: {sorted(map(str, self.staged))}") from None

    def publish(self) -> None:
        missing = [str(final) for final, staged in self.staged.items() if not staged.exists()]
        if missing:
            raise FileNotFoundError(f"outputs never written, nothing published: {', '.join(missing)}")
        for final, staged in self.staged.items():
            if final.is_dir() and not final.is_symlink():
                shutil.rmtree(final)  # os.replace cannot replace a non-empty directory
            os.replace(staged, final)

    def discard(self) -> None:
        for staged in self.staged.values():
            _remove(staged)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextlib.contextmanager
def publish_together(*finals: str | os.PathLike[str]) -> Iterator[Publication]:
    """Stage the outputs ``finals`` of a multi-step job; rename them all into place only if the block succeeds.

    ::

        with publish_together(out.shard, out.stats) as pub:
            write_jsonl(pub.path(out.shard), records)
            stats.write(pub.path(out.stats))

    A failure (or a kill) anywhere in the block leaves none of ``finals`` behind from this attempt.
    """
    publication = Publication(finals)
    try:
        yield publication
        publication.publish()
    finally:
        publication.discard()


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
    can be checked by the funnel; ``drop(reason, record=...)`` also keeps the dropped record, with its
    reason, in ``removed`` (a stage's ``removed.jsonl``; not part of the stats file).
    """

    def __init__(self, stage: str, shard: str | int | None = None):
        self.stage = stage
        self.shard = None if shard is None else str(shard)
        self.records_in = 0
        self.records_out = 0
        self.dropped: Counter[str] = Counter()
        self.extra: dict[str, Any] = {}
        self.versions: dict[str, str] = {}
        self.removed: list[Record] = []
        self._start = time.perf_counter()

    def seen(self, count: int = 1) -> None:
        self.records_in += count

    def kept(self, count: int = 1) -> None:
        self.records_out += count

    def drop(self, reason: str, count: int = 1, record: Mapping[str, Any] | None = None) -> None:
        self.dropped[reason] += count
        if record is not None:  # one row per counted drop, as every removed file has
            self.removed.extend({"reason": reason, **record} for _ in range(count))

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


# Same config, same bytes: timings are the only run-to-run differences in the outputs. These keys of JSON
# outputs (stats files and what sums them) are timings; ``RUN_HISTORY_KEYS`` say how a result was reached
# (the SFT resumed from a checkpoint after a kill), not what it is. These files under ``results/`` are
# timings or show them: Snakemake's benchmarks, the logs, the funnel table's seconds column and the SFT
# summary of the report. Everything else is compared byte for byte by tests/workflow/test_reproducible.py.
TIMING_KEYS = frozenset({"seconds", "execution_seconds", "train_seconds"})
# pyright_runs and infra_retries grow on a loaded machine (timed-out batches split, starved samples retried)
RUN_HISTORY_KEYS = frozenset({"resumed_from", "pyright_runs", "infra_retries"})
TIMING_FILES = ("logs/", "benchmarks/", "report/funnel.tsv", "report/loss.html")


def is_timing_file(relative: str) -> bool:
    """Whether ``relative`` (a path under ``results/``, with ``/``) is declared a timing file."""
    return relative.startswith(TIMING_FILES)


def stats_path_for(shard_path: str | os.PathLike[str]) -> Path:
    """``results/x/00.jsonl`` -> ``results/x/00.stats.json``."""
    shard_path = Path(shard_path)
    name = shard_path.name
    for suffix in (".jsonl.gz", ".jsonl"):
        if name.endswith(suffix):
            return shard_path.with_name(name[: -len(suffix)] + ".stats.json")
    return shard_path.with_name(name + ".stats.json")
