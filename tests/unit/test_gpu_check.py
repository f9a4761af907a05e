"""The GPU check's CPU side: the shell script parses, and its dry run builds the model and prints the plan."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_script_parses() -> None:
    subprocess.run(["bash", "-n", str(REPO / "benchmarks" / "gpu_check.sh")], check=True)


def test_gpu_check_dry_run_prints_the_plan_and_the_commands(tmp_path: Path) -> None:
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--dry-run", "--workdir", str(tmp_path)],
        env={**os.environ, "PYTHON": sys.executable}, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    out = result.stdout
    assert "plan: ZeRO-3, 1 GPU(s)" in out and "gradient checkpointing" in out  # the preset's plan
    assert "vllm part would generate 32 prompts x n=10, 1536 new tokens, temperature 0.7" in out
    assert "-m selfalign.launch --ranks 1" in out and "--max-steps 3" in out and "--expect-gpus 1" in out
    assert (tmp_path / "model-dry" / "config.json").is_file() and (tmp_path / "sft.jsonl").is_file()
