"""A job given GPUs that sees none fails at once, saying which rule, which devices and which torch build."""

from __future__ import annotations

import pytest
import torch

from selfalign import sft
from selfalign.devices import NoGPUError, require_gpus, torch_build

pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU case; this machine has one")


def test_a_cpu_run_checks_nothing() -> None:
    assert require_gpus("generate_responses", 0) == 0


def test_a_gpu_job_without_gpus_fails_with_the_rule_the_devices_and_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    with pytest.raises(NoGPUError) as raised:
        require_gpus("train_sft", 2)
    message = str(raised.value)
    assert message.startswith("train_sft: the job was given 2 GPU(s) but sees 0")
    assert "CUDA_VISIBLE_DEVICES=2,3" in message and torch_build() in message
    if torch.version.cuda is None:
        assert "CPU-only build" in message and "CONDA_OVERRIDE_CUDA" in message


def test_sft_stops_before_loading_anything(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    with pytest.raises(NoGPUError, match=r"CUDA_VISIBLE_DEVICES=<unset>"):
        sft.main(["--model", str(tmp_path / "none"), "--data", str(tmp_path / "none.jsonl"), "--output",
                  str(tmp_path / "out"), "--zero-stage", "3", "--expect-gpus", "4"])


def test_a_test_cluster_with_fake_gpus_may_run_gpu_jobs_on_cpu(monkeypatch) -> None:
    from selfalign.devices import ALLOW_NO_GPU, require_gpus

    monkeypatch.setenv(ALLOW_NO_GPU, "1")
    assert require_gpus("judge_seeds", 1) == 0  # warned, not refused
