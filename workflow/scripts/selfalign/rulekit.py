"""Small helpers shared by the rule scripts: logging into the rule's log file, progress lines."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable


def start_logging(log_path: str, name: str) -> logging.Logger:
    """Send the script's logging and stderr (tracebacks, library warnings) to the rule's log file."""
    handle = open(log_path, "a", encoding="utf-8", buffering=1)
    sys.stderr = handle
    logging.basicConfig(
        stream=handle, level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", force=True
    )
    return logging.getLogger(name)


def format_eta(seconds: float) -> str:
    """``3725`` -> ``1h02m``; ``75`` -> ``1m15s``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def progress_logger(log: logging.Logger, what: str, every_seconds: float = 10.0) -> Callable[[int, int], None]:
    """A ``progress(done, total)`` callback that logs ``done/total, rate, ETA`` at most every
    ``every_seconds`` (and at the end). Timings go to the log only, never into records."""
    state = {"last": 0.0, "start": time.perf_counter()}

    def report(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - state["last"] >= every_seconds:
            state["last"] = now
            rate = done / max(now - state["start"], 1e-9)
            eta = format_eta((total - done) / rate) if rate > 0 else "?"
            log.info("%s: %d/%d (%.1f/s, ETA %s)", what, done, total, rate, eta)

    return report


def shard_name(path: str) -> str:
    """``results/x/03.jsonl`` -> ``03``."""
    name = path.rsplit("/", 1)[-1]
    return name.split(".", 1)[0]
