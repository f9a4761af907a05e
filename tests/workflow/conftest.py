"""Shared helpers for the workflow tests: run Snakemake from the project's venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def snakemake(*args: str, cwd: Path = REPO, timeout: float = 900) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run(
        [*SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


DEFAULT_CONFIG = REPO / "config" / "config.yaml"


def write_config(workdir: Path, text: str) -> Path:
    """Put a config where the Snakefile's `configfile:` looks for it: config/config.yaml in the workdir."""
    path = workdir / "config" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def repo() -> Path:
    return REPO
