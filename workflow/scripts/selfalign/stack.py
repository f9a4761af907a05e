"""The Stack v1 as a seed source, streamed with Hugging Face ``datasets`` into N raw shards.

Two published datasets fit:

- ``bigcode/the-stack-dedup`` (``data_dir: data/python``): whole Python files in ``content``, the
  path in ``max_stars_repo_path``. The reference extracted its seed functions from this one.
- ``bigcode/python-stack-v1-functions-filtered``: single functions in ``content``, already extracted
  (the reference's step 1a output).

Both are gated: accept the terms on the dataset's hub page, then export ``HF_TOKEN`` (a read token) on
the machine that runs the download. The hub client reads the token from the environment; it is never
passed as an argument, written to a config or logged (``redact_secrets`` scrubs it from log records too).

Rows are streamed, so no machine holds the corpus, and are assigned to shards round-robin. Offline,
the same code reads local files laid out as the hub serves them (``*.parquet`` or ``*.jsonl[.gz]``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SECRET_VARIABLES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
_LOCAL_BUILDERS = {".parquet": "parquet", ".jsonl": "json", ".json": "json", ".gz": "json"}


class _RedactSecrets(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self._secrets = secrets

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if any(secret in message for secret in self._secrets):
            for secret in self._secrets:
                message = message.replace(secret, "***")
            record.msg, record.args = message, None
        return True


def redact_secrets(logger: logging.Logger) -> None:
    """Replace the value of ``HF_TOKEN`` (and its old name) with ``***`` in everything ``logger``'s handlers write."""
    secrets = [os.environ[name] for name in SECRET_VARIABLES if len(os.environ.get(name, "")) >= 8]
    if secrets:
        for handler in [*logger.handlers, *logging.getLogger().handlers]:
            handler.addFilter(_RedactSecrets(secrets))


def local_data_files(paths: list[str]) -> tuple[str, list[str]]:
    """The ``datasets`` builder (``parquet`` or ``json``) and the sorted files under ``paths``."""
    files: list[Path] = []
    for entry in map(Path, paths):
        if entry.is_dir():
            files.extend(p for p in entry.rglob("*") if p.is_file() and p.suffix in _LOCAL_BUILDERS)
        elif entry.is_file():
            files.append(entry)
        else:
            raise FileNotFoundError(f"sources.stack.local_files: {entry} does not exist")
    builders = {_LOCAL_BUILDERS.get(p.suffix) for p in files}
    if not files or None in builders:
        raise ValueError(f"sources.stack.local_files: expected *.parquet or *.jsonl[.gz] files, found {sorted(map(str, files))[:5]}")
    if len(builders) != 1:
        raise ValueError("sources.stack.local_files: mixes parquet and JSON files; give one format")
    return builders.pop(), sorted(str(p) for p in files)


def stream_rows(cfg: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Rows of the configured dataset, streamed: the hub dataset, or ``local_files`` when given."""
    import datasets

    if cfg.get("local_files"):
        builder, files = local_data_files(list(cfg["local_files"]))
        rows = datasets.load_dataset(builder, data_files=files, split="train", streaming=True)
    else:
        rows = datasets.load_dataset(
            cfg["dataset"], data_dir=cfg.get("data_dir") or None, split=cfg["split"], streaming=True
        )
    yield from rows


def stack_documents(
    rows: Iterator[dict[str, Any]], text_field: str, path_field: str | None, limit: int = 0
) -> Iterator[dict[str, str]]:
    """``{"path", "content"}`` per row; a row without a string ``text_field`` is an error naming the row."""
    for index, row in enumerate(rows):
        if limit and index >= limit:
            return
        content = row.get(text_field)
        if not isinstance(content, str):
            raise ValueError(f"row {index}: field '{text_field}' missing or not a string (fields: {sorted(row)})")
        path = row.get(path_field) if path_field else None
        yield {"path": f"{path if isinstance(path, str) and path else 'row'}#{index}", "content": content}
