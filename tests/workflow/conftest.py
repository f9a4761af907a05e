"""Shared helpers for the workflow tests: run Snakemake from the project's venv."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
# Only a guard against a hung run, never a budget the work must meet: nothing in the pipeline depends on
# how fast the machine is, so an oversubscribed machine makes the tests slower, not different.
GUARD_SECONDS = 4 * 3600


def snakemake(*args: str, cwd: Path = REPO, timeout: float = GUARD_SECONDS) -> subprocess.CompletedProcess:
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


def small_config() -> dict:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["model"]["teacher"]["steps"] = 850
    config["seeds"]["limit"] = 24
    config["evaluation"]["limit"] = 40
    return config


@pytest.fixture(scope="session")
def run(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """The whole pipeline on the small config, once per test session (test_pipeline.py, test_report.py).

    SELFALIGN_TEST_RUN_DIR=<dir> uses a finished run directory as it is (no Snakemake run, empty stdout),
    which saves the pipeline's minutes when working on tests that only read the results."""
    if reuse := os.environ.get("SELFALIGN_TEST_RUN_DIR"):
        return Path(reuse) / "results", subprocess.CompletedProcess(args=[], returncode=0, stdout="", stderr="")
    workdir = tmp_path_factory.mktemp("pipeline")
    write_config(workdir, yaml.safe_dump(small_config()))
    result = snakemake("--cores", "2", "--directory", str(workdir), cwd=workdir)
    if result.returncode != 0:
        logs = "\n".join(
            f"--- {log}\n{log.read_text()[-3000:]}" for log in sorted((workdir / "results/logs").rglob("*.log"))
        ) if (workdir / "results/logs").exists() else ""
        pytest.fail(f"pipeline failed:\n{result.stderr[-5000:]}\n{logs[-20000:]}")
    return workdir / "results", result
