"""Small helpers shared by the rule scripts: logging into the rule's log file, progress lines."""

from __future__ import annotations

import logging
import os
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


def backend_settings(snakemake: Any, kind: str) -> dict[str, Any]:
    """The settings of backend ``kind`` for this rule, from ``generation.<kind>`` in the config.

    vLLM's tensor parallelism is the rule's GPU count. The OpenAI API key is left out: it is read
    by the backend itself (config or environment) so that it never reaches logs, stats or fingerprints.
    """
    if kind == "transformers":
        return {"device": snakemake.params.device, "batch_size": snakemake.params.batch_size}
    options = dict(snakemake.config["generation"].get(kind) or {})
    if kind == "vllm":
        options["tensor_parallel_size"] = max(1, int(getattr(snakemake.resources, "gpu", 0) or 0))
    if kind == "openai":
        options.pop("api_key", None)
        options["base_url"] = options.get("base_url") or os.environ.get("OPENAI_BASE_URL", "")
        options["model"] = options.get("model") or str(snakemake.input.model)  # vLLM's default served name
    return options


def rule_backend(snakemake: Any, log: logging.Logger, what: str, kind: str = "transformers"):
    """The generation backend of a rule: model from ``input.model``, settings from ``backend_settings``,
    the rule's threads, progress lines in the rule's log."""
    from .backends import make_backend

    progress = progress_logger(log, what)
    settings = backend_settings(snakemake, kind)
    if kind == "transformers":
        return make_backend(
            kind, model_path=snakemake.input.model, threads=snakemake.threads, progress=progress, **settings
        )
    if kind == "vllm":
        return make_backend(kind, model_path=str(snakemake.input.model), progress=progress, **settings)
    api_key = (snakemake.config["generation"].get("openai") or {}).get("api_key")
    log.info("openai backend: %s, model %s", settings["base_url"], settings["model"])
    return make_backend(kind, tokenizer_path=str(snakemake.input.model), api_key=api_key, progress=progress, **settings)
