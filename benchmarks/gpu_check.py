"""The GPU check: vLLM generation throughput and SFT peak memory against the memory plan, on one GPU.

    bash benchmarks/gpu_check.sh [--model-config benchmarks/model_configs/starcoder2-3b.json] [--dry-run]

Nothing is downloaded: a StarCoder2 of the given config's size is initialised at random (bf16, on the
GPU) with a byte-level BPE tokenizer trained on the spot, and saved under ``--workdir``. Then:

1. ``vllm``: the workflow's own vLLM backend (``selfalign.vllm_backends.VLLMBackend``) generates with
   the preset's I->R sampling (n, temperature, top_p, max new tokens, stop strings, a seed per request)
   for ``--requests`` prompts of about ``--prompt-tokens`` tokens; it prints generated tokens per second.
   A random model rarely writes a stop string, so most samples run to the token budget: an upper bound
   on the tokens per request, a lower bound on the run's speed per token of a shard.
2. ``sft``: ``selfalign.sft`` under the DeepSpeed launcher on one rank with the preset's plan (ZeRO
   stage, gradient checkpointing, offload, micro-batch, sequence length) for ``--sft-steps`` optimizer
   steps on examples longer than the sequence length; it prints the peak memory the rank allocated
   (``torch.cuda.max_memory_allocated``) and the model states after a step, beside ``selfalign.memplan``'s
   estimate for the same plan on one GPU.

``--dry-run`` (CPU, seconds) shrinks the model to 2 small layers, builds and saves it, and prints the plan,
the estimate and what the two parts would run, without running them: the CPU-side check of this script.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
DEFAULT_CONFIG = REPO / "benchmarks" / "model_configs" / "starcoder2-3b.json"
PRESET = REPO / "config" / "presets" / "starcoder2-15b.yaml"
SCHEMA = REPO / "workflow" / "schemas" / "config.schema.yaml"
DRY_RUN_SHAPE = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2, "num_attention_heads": 2,
                 "num_key_value_heads": 1}


def preset_settings(preset: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The preset's I->R sampling and its sft section, with the schema's defaults filled in."""
    import yaml

    config = yaml.safe_load(preset.read_text(encoding="utf-8"))
    schema = yaml.safe_load(SCHEMA.read_text(encoding="utf-8"))
    sft_defaults = {k: v["default"] for k, v in schema["properties"]["sft"]["properties"].items()}
    sampling_defaults = {k: v["default"] for k, v in schema["$defs"]["sampling"]["properties"].items()}
    responses = {**sampling_defaults, **config.get("generation", {}).get("responses", {})}
    return responses, {**sft_defaults, **config.get("sft", {})}


def build_model(config_path: Path, out: Path, dry_run: bool) -> Path:
    """A random StarCoder2 of the config's size and a tokenizer trained on the spot, saved to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from selfalign.teacher import train_tokenizer

    if (out / "config.json").is_file() and (out / "tokenizer.json").is_file():
        return out
    settings = json.loads(config_path.read_text(encoding="utf-8"))
    if dry_run:
        settings.update(DRY_RUN_SHAPE)
    settings.pop("architectures", None)
    texts = [f"def f{i}(x, y):\n    return x * {i} + y  # example {i}\n" for i in range(2000)]
    tokenizer = train_tokenizer([], texts, vocab_size=2048)
    config = AutoConfig.for_model(settings.pop("model_type"), **{**settings, "torch_dtype": "bfloat16"})
    config.bos_token_id = config.eos_token_id = tokenizer.eos_token_id
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def vllm_requests(tokenizer_path: Path, sampling: dict[str, Any], requests: int, prompt_tokens: int) -> list[Any]:
    from transformers import AutoTokenizer

    from selfalign.generation import GenerationRequest, SamplingSpec
    from selfalign.prompts import I2R_STOP

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_path)
    line = "def check(values):\n    return sorted(set(values))\n"
    repeats = max(1, prompt_tokens // max(1, len(tokenizer(line).input_ids)))
    return [
        GenerationRequest(
            f"## Example {k}\n" + line * repeats,
            SamplingSpec(n=sampling["n"], temperature=sampling["temperature"], top_p=sampling["top_p"],
                         max_new_tokens=sampling["max_new_tokens"], stop=I2R_STOP, seed=3407 + k),
        )
        for k in range(requests)
    ]


def run_vllm(model: Path, sampling: dict[str, Any], requests: int, prompt_tokens: int) -> dict[str, Any]:
    from selfalign.backends import make_backend

    batch = vllm_requests(model, sampling, requests, prompt_tokens)
    started = time.perf_counter()
    backend = make_backend("vllm", model_path=str(model), dtype="bfloat16",
                           max_model_len=prompt_tokens + sampling["max_new_tokens"] + 64)
    loaded = time.perf_counter()
    results = backend.generate(batch)
    seconds = time.perf_counter() - loaded
    tokens = sum(c.num_tokens for completions in results for c in completions)
    reasons: dict[str, int] = {}
    for completions in results:
        for completion in completions:
            reasons[completion.finish_reason] = reasons.get(completion.finish_reason, 0) + 1
    return {"requests": requests, "n": sampling["n"], "generated_tokens": tokens, "seconds": round(seconds, 2),
            "tokens_per_second": round(tokens / seconds, 1), "load_seconds": round(loaded - started, 2),
            "finish_reasons": reasons}


def sft_command(model: Path, data: Path, output: Path, sft: dict[str, Any], steps: int, log: Path) -> list[str]:
    from selfalign.launch import sft_arguments

    cfg = {**sft, "target_batch": sft["per_device_batch"] * 2, "save_steps": 10_000, "epochs": 1}
    args = sft_arguments(cfg, str(model), str(data), str(output), gpus=1) + ["--max-steps", str(steps)]
    return [sys.executable, "-m", "selfalign.launch", "--ranks", "1", "--log", str(log), "--", *args]


def sft_data(path: Path, rows: int, max_length: int) -> Path:
    from selfalign.shards import write_jsonl

    long_response = " ".join(f"value_{i}" for i in range(max_length * 2))  # longer than the sequence length
    write_jsonl(path, [{"instruction": f"Write {k} values.", "response": long_response} for k in range(rows)])
    return path


def memory_estimate(model: Path, sft: dict[str, Any], gpu_mem_gib: float) -> tuple[Any, Any]:
    from selfalign.memplan import ModelShape, estimate, plan_from_sft_config

    plan = plan_from_sft_config({**sft, "gpu_memory_gib": gpu_mem_gib}, gpus=1)
    return plan, estimate(ModelShape.from_config(model), plan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--preset", type=Path, default=PRESET)
    parser.add_argument("--workdir", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")) / "selfalign-gpu-check")
    parser.add_argument("--part", choices=("all", "vllm", "sft"), default="all")
    parser.add_argument("--requests", type=int, default=32, help="vLLM prompts (each sampled n times)")
    parser.add_argument("--prompt-tokens", type=int, default=1024)
    parser.add_argument("--sft-steps", type=int, default=3)
    parser.add_argument("--dry-run", action="store_true", help="CPU: build a shrunk model, print the plan, run nothing")
    options = parser.parse_args(argv)

    sampling, sft = preset_settings(options.preset)
    options.workdir.mkdir(parents=True, exist_ok=True)
    model = build_model(options.model_config, options.workdir / ("model-dry" if options.dry_run else "model"),
                        options.dry_run)
    report: dict[str, Any] = {"model_config": str(options.model_config), "sampling": sampling,
                              "sft": {k: sft[k] for k in ("zero_stage", "gradient_checkpointing", "offload_optimizer",
                                                          "per_device_batch", "max_length")}}
    import torch

    gpu_mem_gib = (torch.cuda.get_device_properties(0).total_memory / 2**30) if torch.cuda.is_available() else 80.0
    plan, expected = memory_estimate(model, sft, gpu_mem_gib)
    print("\n".join(expected.lines))
    data = sft_data(options.workdir / "sft.jsonl", rows=8, max_length=sft["max_length"])
    output = options.workdir / "sft-model"
    command = sft_command(model, data, output, sft, options.sft_steps, options.workdir / "sft.log")

    if options.dry_run:
        print(f"dry run: vllm part would generate {options.requests} prompts x n={sampling['n']}, "
              f"{sampling['max_new_tokens']} new tokens, temperature {sampling['temperature']}, top_p {sampling['top_p']}")
        print("dry run: sft part would run: " + " ".join(command))
        return 0
    if options.part in ("all", "vllm"):
        report["vllm"] = run_vllm(model, sampling, options.requests, options.prompt_tokens)
        print(f"vllm: {report['vllm']}")
    if options.part in ("all", "sft"):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "workflow" / "scripts"),
                                                                         os.environ.get("PYTHONPATH")]))}
        subprocess.run(command, env=env, check=True)
        memory = json.loads((output / "train_stats.json").read_text())["memory"][0]
        report["sft_memory"] = {
            "gpu": torch.cuda.get_device_name(0), "plan": plan.describe(),
            "measured_peak_gib": round(memory["peak_bytes"] / 2**30, 2),
            "measured_states_gib": round(memory["states_bytes"] / 2**30, 2),
            "estimated_total_gib": round(expected.total / 2**30, 2),
            "estimated_states_gib": round(expected.states / 2**30, 2),
        }
        print(f"sft memory: {report['sft_memory']}")
    (options.workdir / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
