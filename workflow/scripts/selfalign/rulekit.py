"""Small helpers shared by the rule scripts: logging into the rule's log file, progress lines."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import Any


def start_logging(log_path: str, name: str) -> logging.Logger:
    """Send the script's logging and stderr (tracebacks, library warnings) to the rule's log file."""
    handle = open(log_path, "a", encoding="utf-8", buffering=1)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    return logging.getLogger(name)


def progress_logger(log: logging.Logger, what: str, every_seconds: float = 10.0) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that logs at most every ``every_seconds`` (and at the end)."""
    state = {"last": 0.0, "start": time.perf_counter()}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - state["last"] >= every_seconds:
            state["last"] = now
            rate = done / max(now - state["start"], 1e-9)
            log.info("%s: %d/%d (%.1f/s)", what, done, total, rate)

    return report


def shard_name(path: str) -> str:
    """``results/x/03.jsonl`` -> ``03``."""
    name = path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]


def rule_backend(snakemake: Any, log: logging.Logger, what: str, kind: str = "transformers"):
    """The generation backend of a rule: model from ``input.model``, device and batch size from params,
    the rule's threads, progress lines in the rule's log."""
    from .backends import make_backend

    return make_backend(
        kind,
        model_path=snakemake.input.model,
        device=snakemake.params.device,
        batch_size=snakemake.params.batch_size,
        threads=snakemake.threads,
        progress=progress_logger(log, what),
    )
