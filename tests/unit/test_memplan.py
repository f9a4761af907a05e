"""The SFT memory plan: arithmetic on StarCoder2-15B, the check's verdicts, the CLI, and the estimate of
the model states against what 2 DeepSpeed ranks over gloo really hold (the same code path as train_sft)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from selfalign.launch import free_port, launch_command, launch_env, run_launch
from selfalign.memplan import GIB, ModelShape, Plan, PlanError, check_plan, estimate, plan_from_sft_config, require_fit
from selfalign.shards import write_jsonl
from selfalign.teacher import train_tokenizer

REPO = Path(__file__).resolve().parents[2]
SC2_15B = REPO / "benchmarks" / "model_configs" / "starcoder2-15b.json"
A100 = 80.0


@pytest.fixture(scope="module")
def sc2_15b() -> ModelShape:
    return ModelShape.from_config(SC2_15B)


def test_the_15b_shape_is_read_from_its_config(sc2_15b: ModelShape) -> None:
    assert sc2_15b.params == 15_957_889_024  # StarCoder2-15B's published count (untied output embedding)
    assert (sc2_15b.layers, sc2_15b.hidden, sc2_15b.vocab) == (40, 6144, 49152)
    assert sc2_15b.largest_param == 49152 * 6144


def test_zero2_with_adafactor_does_not_fit_four_a100s_and_the_check_names_what_would(sc2_15b: ModelShape) -> None:
    plan = Plan(gpus=4, gpu_mem_gib=A100, zero_stage=2)
    verdict = check_plan(sc2_15b, plan)
    # 2 bytes of bf16 weights on every rank + (2 + 4 + 4 + 4) / 4 bytes of gradients, master, Adafactor state
    assert verdict.estimate.states == pytest.approx((2 + 14 / 4) * sc2_15b.params, rel=1e-6)
    assert not verdict.fits
    options = [changes for changes in verdict.report().split("options that fit:")[1].splitlines() if changes.strip()]
    assert any("sft.zero_stage: 3" in line for line in options)
    assert any("sft.offload_optimizer: true" in line for line in options)
    with pytest.raises(PlanError, match="DOES NOT FIT"):
        require_fit(sc2_15b, plan)
    # ZeRO-0 is worse: everything on every rank.
    assert estimate(sc2_15b, Plan(gpus=4, gpu_mem_gib=A100, zero_stage=0)).total > verdict.estimate.total


def test_the_presets_plan_fits_with_room(sc2_15b: ModelShape) -> None:
    import yaml

    preset = yaml.safe_load((REPO / "config" / "presets" / "starcoder2-15b.yaml").read_text())
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    sft_defaults = {k: v["default"] for k, v in schema["properties"]["sft"]["properties"].items()}
    plan = plan_from_sft_config({**sft_defaults, **preset["sft"]}, gpus=preset["resources"]["sft_gpus"])
    verdict = require_fit(sc2_15b, plan)
    assert verdict.estimate.total < 0.9 * (A100 * 0.92 - 1.5) * GIB


def test_deepspeeds_zero2_estimator_and_the_byte_counts_agree(sc2_15b: ModelShape) -> None:
    for gpus in (1, 4, 8):
        for offload in (False, True):
            result = estimate(sc2_15b, Plan(gpus=gpus, gpu_mem_gib=A100, zero_stage=2, optimizer="adamw",
                                            offload_optimizer=offload))
            assert result.source.startswith("deepspeed")
            assert abs(result.parts.get("deepspeed_adjustment", 0)) < 2**20


def test_gradient_checkpointing_and_more_gpus_lower_the_estimate(sc2_15b: ModelShape) -> None:
    base = Plan(gpus=4, gpu_mem_gib=A100, zero_stage=3)
    plain = estimate(sc2_15b, base)
    assert estimate(sc2_15b, Plan(**{**base.__dict__, "gradient_checkpointing": True})).parts["activations"] < \
        plain.parts["activations"] / 5
    assert estimate(sc2_15b, Plan(**{**base.__dict__, "gpus": 8})).states < plain.states
    with pytest.raises(PlanError, match="offload_optimizer needs ZeRO"):
        Plan(gpus=1, gpu_mem_gib=A100, zero_stage=0, offload_optimizer=True)


def test_cli_prints_the_arithmetic_and_exits_1_when_it_does_not_fit(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO / "workflow" / "scripts")}
    base = [sys.executable, "-m", "selfalign.memplan", "--model-config", str(SC2_15B), "--gpus", "4",
            "--gpu-mem-gib", "80"]
    refused = subprocess.run([*base, "--zero-stage", "2"], env=env, capture_output=True, text=True)
    assert refused.returncode == 1, refused.stderr
    assert "DOES NOT FIT" in refused.stdout and "sft.zero_stage: 3" in refused.stdout
    verdict_path = tmp_path / "verdict.json"
    accepted = subprocess.run([*base, "--zero-stage", "3", "--gradient-checkpointing", "--json", str(verdict_path)],
                              env=env, capture_output=True, text=True)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "verdict: FITS" in accepted.stdout and "optimizer_state  4 x P / 4" in accepted.stdout
    verdict = json.loads(verdict_path.read_text())
    assert verdict["fits"] and verdict["plan"]["zero_stage"] == 3 and 0 < verdict["per_gpu_gib"] < 72
    broken = subprocess.run([*base[:4], str(tmp_path / "missing"), *base[5:]], env=env, capture_output=True, text=True)
    assert broken.returncode == 2 and "no model config there" in broken.stderr


# The measured check: a Llama of ~4.5 M parameters, so the model states (tens of MB) dwarf everything else.
MEASURED_CONFIG = dict(vocab_size=512, hidden_size=256, intermediate_size=1024, num_hidden_layers=4,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       tie_word_embeddings=False)


@pytest.fixture(scope="module")
def measured_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("measured")
    tokenizer = train_tokenizer([], [f"def f{i}(x):\n    return x * {i}\n" for i in range(200)], vocab_size=400)
    config = LlamaConfig(**MEASURED_CONFIG, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.mark.parametrize("zero_stage", [2, 3])
def test_state_estimate_matches_what_two_gloo_ranks_hold(tmp_path: Path, measured_model: Path, zero_stage: int) -> None:
    data = tmp_path / "sft.jsonl"
    write_jsonl(data, [{"instruction": f"Multiply by {i}.", "response": f"def f(x):\n    return x * {i}\n"}
                       for i in range(8)])
    output = tmp_path / "model"
    sft_args = ["--model", str(measured_model), "--data", str(data), "--output", str(output),
                "--zero-stage", str(zero_stage), "--epochs", "1", "--target-batch", "4", "--max-length", "64",
                "--max-steps", "2"]
    run_launch(launch_command(2, free_port(), sft_args), launch_env(2, {**os.environ, "HF_HUB_OFFLINE": "1"}),
               tmp_path / "sft.log")
    memory = json.loads((output / "train_stats.json").read_text())["memory"]
    shape = ModelShape.from_config(measured_model)
    expected = estimate(shape, Plan(gpus=2, gpu_mem_gib=1, zero_stage=zero_stage, precision="fp32")).states
    assert [entry["rank"] for entry in memory] == [0, 1]
    print(f"ZeRO-{zero_stage}: {shape.params} parameters, estimated states {expected} B, measured",
          [entry["states_bytes"] for entry in memory])
    for entry in memory:
        assert entry["states_bytes"] == pytest.approx(expected, rel=0.25), (entry, expected, shape.params)
