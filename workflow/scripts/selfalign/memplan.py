"""SFT memory plan: per-GPU memory of a DeepSpeed run, estimated from the model config, and a check.

The model states (weights, gradients, fp32 master weights, optimizer state) are the byte counts below,
checked against DeepSpeed's own estimators where they exist (ZeRO-2 and ZeRO-3,
``estimate_zero{2,3}_model_states_mem_needs``, which assume bf16 weights and Adam; corrected here for
the optimizer and precision actually used): the larger figure is used. On top come the
activations of one micro-batch (sequence length, hidden and MLP width, layers; with or without
gradient checkpointing), the logits and DeepSpeed's communication buckets; the check keeps a margin for
the CUDA context and allocator fragmentation.

Bytes per parameter P on each of N ranks (w = 2 in bf16, 4 in fp32):

- weights: w·P (ZeRO 0-2, every rank holds all of them) or w·P/N (ZeRO-3);
- gradients: w·P (ZeRO 0-1) or w·P/N (ZeRO 2-3) in the weights' dtype, plus an fp32 copy: 4·P/N
  (ZeRO 1-3: DeepSpeed's fp32 gradient partition) or 4·P (ZeRO-0 in bf16: the unfused mixed-precision
  optimizer copies every gradient into its fp32 master);
- fp32 master weights: 4·P/N (ZeRO 1-3; DeepSpeed clones the partition even for an fp32 model) or
  4·P (ZeRO-0 in bf16; none in fp32);
- optimizer state, per partition: AdamW 8 (two moments); Adafactor 4 under ZeRO 1-3, because DeepSpeed
  hands it flat 1-D partitions and it must keep a full second moment; Adafactor factored (rows +
  columns, about 0) only at ZeRO-0, where it sees the real weight shapes;
- with ``offload_optimizer`` the master weights, fp32 gradients and optimizer state live in host memory
  (DeepSpeed's CPU formula), the GPU keeps the low-precision weights.

Run as ``python -m selfalign.memplan --model-config DIR_OR_JSON --gpus 4 --gpu-mem-gib 80 ...``: it
prints the arithmetic and a verdict, and exits 1 when the plan does not fit.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

GIB = 2**30
OPTIMIZERS = ("adafactor", "adamw")
PRECISIONS = ("bf16", "fp32")
CUDA_CONTEXT_GIB = 1.5  # CUDA context, cuBLAS/NCCL workspaces: outside torch's allocator
FRAGMENTATION = 0.08  # share of the GPU the caching allocator loses to fragmentation
# The DeepSpeed configs in workflow/resources/deepspeed/ (HF "auto" sizes buckets from hidden_size).
ALLGATHER_BUCKET = 200_000_000  # ZeRO-1/2 allgather_bucket_size, elements
MAX_GPUS_PER_NODE = 8  # the "more GPUs" suggestion stays on one node (the workflow trains on one)

Precision = Literal["bf16", "fp32"]
Optimizer = Literal["adafactor", "adamw"]


class PlanError(ValueError):
    """A plan that does not fit, or bad input to the estimator; the message says what would fit."""


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs from a model config."""

    name: str
    params: int  # unique parameters (tied embeddings once)
    largest_param: int  # elements of the largest single tensor (ZeRO-3 gathers it whole)
    layers: int
    hidden: int
    intermediate: int
    vocab: int
    gated_mlp: bool  # SwiGLU-style MLP (gate and up projections) keeps more activations

    @classmethod
    def from_config(cls, source: str | Path | Mapping[str, Any]) -> "ModelShape":
        """From a model dir, its ``config.json`` or a config dict; parameters counted on torch's meta device
        (exact for any architecture transformers knows, no memory used)."""
        config = _load_config(source)
        name = str(source) if not isinstance(source, Mapping) else str(config.get("model_type", "model"))
        missing = [key for key in ("model_type", "hidden_size", "num_hidden_layers", "vocab_size") if key not in config]
        if missing:
            raise PlanError(f"{name}: model config lacks {', '.join(missing)}")
        params, largest = _count_params(config)
        hidden = int(config["hidden_size"])
        return cls(
            name=name,
            params=params,
            largest_param=largest,
            layers=int(config["num_hidden_layers"]),
            hidden=hidden,
            intermediate=int(config.get("intermediate_size") or config.get("n_inner") or 4 * hidden),
            vocab=int(config["vocab_size"]),
            gated_mlp=config["model_type"] in GATED_MLP_MODELS,
        )


GATED_MLP_MODELS = frozenset({"llama", "mistral", "mixtral", "qwen2", "qwen3", "gemma", "gemma2", "phi3", "olmo", "olmo2"})


def _load_config(source: str | Path | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(source, Mapping):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        path = path / "config.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: no model config there (model.base must be a local model dir)") from None
    except json.JSONDecodeError as error:
        raise PlanError(f"{path}:{error.lineno}: not valid JSON: {error.msg}") from None


def _count_params(config: Mapping[str, Any]) -> tuple[int, int]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    settings = {key: value for key, value in config.items() if key not in ("architectures", "transformers_version")}
    hf_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(hf_config)
    unique = {id(p): p.numel() for p in model.parameters()}  # parameters() already skips tied duplicates
    return sum(unique.values()), max(unique.values())


@dataclass(frozen=True)
class Plan:
    """One SFT run's layout on one node."""

    gpus: int
    gpu_mem_gib: float
    zero_stage: int = 3
    offload_optimizer: bool = False
    optimizer: Optimizer = "adafactor"
    precision: Precision = "bf16"
    gradient_checkpointing: bool = False
    seq_len: int = 1280
    micro_batch: int = 1

    def __post_init__(self) -> None:
        problems = []
        if self.gpus < 1:
            problems.append(f"gpus must be >= 1, got {self.gpus}")
        if self.zero_stage not in (0, 1, 2, 3):
            problems.append(f"zero_stage must be 0-3, got {self.zero_stage}")
        if self.offload_optimizer and self.zero_stage < 1:
            problems.append("offload_optimizer needs ZeRO stage 1 or higher")
        if self.optimizer not in OPTIMIZERS:
            problems.append(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            problems.append(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.seq_len < 1 or self.micro_batch < 1 or self.gpu_mem_gib <= 0:
            problems.append("seq_len, micro_batch and gpu_mem_gib must be positive")
        if problems:
            raise PlanError("; ".join(problems))

    def describe(self) -> str:
        parts = [f"ZeRO-{self.zero_stage}", f"{self.gpus} GPU(s) x {self.gpu_mem_gib:g} GiB", self.optimizer, self.precision]
        if self.offload_optimizer:
            parts.append("optimizer offload")
        if self.gradient_checkpointing:
            parts.append("gradient checkpointing")
        parts.append(f"seq {self.seq_len} x micro-batch {self.micro_batch}")
        return ", ".join(parts)


@dataclass
class Estimate:
    """Bytes per GPU by part, host bytes per node, and the arithmetic behind them."""

    parts: dict[str, int]
    host_bytes: int
    source: str  # which DeepSpeed estimator the model states came from, or "formula"
    lines: list[str] = field(default_factory=list)

    @property
    def states(self) -> int:
        keys = ("weights", "gradients", "master_weights", "optimizer_state", "zero3_gather", "deepspeed_adjustment")
        return sum(self.parts.get(k, 0) for k in keys)

    @property
    def total(self) -> int:
        return sum(self.parts.values())


def usable_bytes(gpu_mem_gib: float) -> int:
    """What the plan may fill: the GPU less the CUDA context and a fragmentation margin."""
    return int(gpu_mem_gib * GIB * (1 - FRAGMENTATION) - CUDA_CONTEXT_GIB * GIB)


def _state_bytes_per_param(plan: Plan) -> dict[str, tuple[float, float]]:
    """(bytes per parameter held whole, bytes per parameter partitioned over the ranks) for each state."""
    w = 2 if plan.precision == "bf16" else 4
    opt = {"adamw": 8.0, "adafactor": 0.0 if plan.zero_stage == 0 else 4.0}[plan.optimizer]
    stage = plan.zero_stage
    if stage == 0:
        mixed = plan.precision == "bf16"
        return {
            "weights": (w, 0), "gradients": (w + (4 if mixed else 0), 0),
            "master_weights": (4 if mixed else 0, 0), "optimizer_state": (opt, 0),
        }
    weights = (0, w) if stage == 3 else (w, 0)
    grads16 = (0, w) if stage >= 2 else (w, 0)
    if plan.offload_optimizer:  # fp32 gradients, master and optimizer state are in host memory
        return {"weights": weights, "gradients": (grads16[0], 0), "master_weights": (0, 0), "optimizer_state": (0, 0)}
    return {
        "weights": weights, "gradients": (grads16[0], grads16[1] + 4), "master_weights": (0, 4),
        "optimizer_state": (0, opt),
    }


def _deepspeed_states(plan: Plan, params: int, largest: int) -> tuple[int, int, str] | None:
    """DeepSpeed's own model-state estimate (bf16 weights, Adam): (GPU bytes, host bytes, its name) for
    ZeRO-2/3, or None where it has none (ZeRO-0/1, or DeepSpeed not installed where the check runs)."""
    if plan.zero_stage not in (2, 3):
        return None
    try:
        if plan.zero_stage == 2:
            from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

            cpu, gpu = estimate_zero2_model_states_mem_needs(params, plan.gpus, 1, cpu_offload=plan.offload_optimizer)
            return gpu, cpu, "deepspeed estimate_zero2_model_states_mem_needs"
        from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

        cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
            params, largest, plan.gpus, 1, cpu_offload=plan.offload_optimizer, cpu_offload_params=False, zero_init=True
        )
        return gpu, cpu, "deepspeed estimate_zero3_model_states_mem_needs"
    except ImportError:
        return None


def activation_bytes(shape: ModelShape, plan: Plan) -> dict[str, int]:
    """Activations kept for the backward pass of one micro-batch, logits, and communication buckets.

    Per layer and token, in bf16 (2 bytes): about 16·hidden (norm inputs, q/k/v, attention output and
    residual with a fused attention kernel; no dropout masks, dropout is 0) plus 4·intermediate (MLP
    input and activation output; 8 for a gated MLP). Gradient checkpointing keeps each layer's input
    (hidden per token) and recomputes one layer at a time.
    """
    w = 2 if plan.precision == "bf16" else 4
    tokens = plan.seq_len * plan.micro_batch
    per_layer = tokens * (16 * shape.hidden + (8 if shape.gated_mlp else 4) * shape.intermediate) * w // 2
    if plan.gradient_checkpointing:
        activations = shape.layers * tokens * shape.hidden * w + per_layer
    else:
        activations = shape.layers * per_layer
    logits = tokens * shape.vocab * (w + 4 + 4)  # logits, their fp32 upcast for the loss, its gradient
    reduce_bucket = shape.hidden * shape.hidden  # HF "auto" reduce_bucket_size
    if plan.zero_stage == 3:
        buckets = (reduce_bucket + int(0.9 * reduce_bucket)) * w  # reduce + prefetch ("auto" sizes)
    elif plan.zero_stage in (1, 2):
        buckets = 2 * reduce_bucket * w + min(ALLGATHER_BUCKET, shape.params) * w
    else:
        buckets = 0
    return {"activations": activations, "logits": logits, "buckets": buckets}


def estimate(shape: ModelShape, plan: Plan) -> Estimate:
    """Per-GPU bytes of ``plan`` for ``shape``, with the arithmetic as text lines."""
    P, N = shape.params, plan.gpus
    per_param = _state_bytes_per_param(plan)
    parts = {name: int(whole * P + part * P / N) for name, (whole, part) in per_param.items()}
    parts["zero3_gather"] = 4 * shape.largest_param if plan.zero_stage == 3 else 0  # DeepSpeed's largest-layer term
    w = 2 if plan.precision == "bf16" else 4
    opt = 8 if plan.optimizer == "adamw" else 4
    offloaded = 4 + 4 + opt  # fp32 master, fp32 gradients, optimizer state
    # Host memory per node, DeepSpeed's convention (1.5 buffer factor): the offloaded optimizer, or else
    # loading the fp32 model on every rank (ZeRO-3 loads partitioned, one layer at a time).
    if plan.offload_optimizer:
        host = int(offloaded * P * 1.5)
    elif plan.zero_stage == 3:
        host = int(4 * shape.largest_param * N * 1.5)
    else:
        host = int(4 * P * N * 1.5)
    source = "formula"
    lines = [
        f"model: {shape.name}: {P / 1e9:.3f} B parameters, {shape.layers} layers, hidden {shape.hidden}, "
        f"MLP {shape.intermediate}{' (gated)' if shape.gated_mlp else ''}, vocab {shape.vocab}",
        f"plan: {plan.describe()}",
    ]
    deepspeed = _deepspeed_states(plan, P, shape.largest_param)
    if deepspeed is not None:
        ds_gpu, ds_cpu, source = deepspeed
        # DeepSpeed assumes bf16 weights and Adam (8 bytes of state per parameter); correct both.
        correction = (opt - 8) * P / N if not plan.offload_optimizer else 0
        if w == 4:
            correction += (2 * P if plan.zero_stage == 2 else 2 * P / N) + (2 * P / N if not plan.offload_optimizer else 0)
        ours = sum(parts[k] for k in ("weights", "gradients", "master_weights", "optimizer_state", "zero3_gather"))
        lines.append(
            f"DeepSpeed's estimator ({source.split()[-1]}, bf16 + Adam): {ds_gpu / GIB:.2f} GiB per GPU; "
            f"corrected for {plan.optimizer}/{plan.precision}: {(ds_gpu + correction) / GIB:.2f} GiB"
        )
        # The larger of the two counts. They agree for ZeRO-2; for ZeRO-3 DeepSpeed counts 18 bytes per
        # parameter where the byte counts above give 20 with Adam (its bf16 weight partition is missing),
        # and 2 gloo ranks hold what the byte counts say (tests/unit/test_memplan.py).
        parts["deepspeed_adjustment"] = max(0, int(ds_gpu + correction - ours))
        host = int(ds_cpu + (opt - 8) * P * 1.5) if plan.offload_optimizer else int(ds_cpu)
    for name, (whole, part) in per_param.items():
        terms = [f"{whole:g} x P" if whole else "", f"{part:g} x P / {N}" if part else ""]
        formula = " + ".join(t for t in terms if t) or "0"
        lines.append(f"  {name:<16} {formula:<22} = {parts[name] / GIB:7.2f} GiB")
    if plan.zero_stage == 3:
        lines.append(f"  {'zero3_gather':<16} {'4 x largest tensor':<22} = {parts['zero3_gather'] / GIB:7.2f} GiB")
    if parts.get("deepspeed_adjustment"):
        value = parts["deepspeed_adjustment"]
        lines.append(f"  {'deepspeed_adjust':<16} {'DeepSpeed - the above':<22} = {value / GIB:7.2f} GiB")
    for name, value in activation_bytes(shape, plan).items():
        parts[name] = value
        lines.append(f"  {name:<16} {'':<22} = {value / GIB:7.2f} GiB")
    result = Estimate(parts=parts, host_bytes=host, source=source, lines=lines)
    lines.append(f"  {'total per GPU':<39} = {result.total / GIB:7.2f} GiB "
                 f"(model states {result.states / GIB:.2f} GiB)")
    what = "the offloaded optimizer" if plan.offload_optimizer else "loading the model"
    lines.append(f"  host memory per node for {what}: {host / GIB:.1f} GiB")
    usable = usable_bytes(plan.gpu_mem_gib)
    lines.append(
        f"  usable per GPU: {plan.gpu_mem_gib:g} GiB x {1 - FRAGMENTATION:.2f} - {CUDA_CONTEXT_GIB:g} GiB CUDA context "
        f"= {usable / GIB:.2f} GiB"
    )
    return result


@dataclass
class Verdict:
    plan: Plan
    estimate: Estimate
    fits: bool
    alternatives: list[tuple[Plan, Estimate]]  # plans close to this one that fit, fewest changes first

    def report(self) -> str:
        lines = list(self.estimate.lines)
        head = "FITS" if self.fits else "DOES NOT FIT"
        lines.append(f"verdict: {head}: {self.estimate.total / GIB:.2f} GiB of {usable_bytes(self.plan.gpu_mem_gib) / GIB:.2f} GiB usable")
        if not self.fits:
            if self.alternatives:
                lines.append("options that fit:")
                lines += [f"  - {changes(self.plan, p)}: {e.total / GIB:.2f} GiB per GPU" for p, e in self.alternatives]
            else:
                lines.append("no variant of this plan on one node fits (more GPUs than one node has, or a bigger GPU)")
        return "\n".join(lines)


def changes(old: Plan, new: Plan) -> str:
    """What differs between two plans, in config words."""
    said = []
    if new.zero_stage != old.zero_stage:
        said.append(f"sft.zero_stage: {new.zero_stage}")
    if new.offload_optimizer != old.offload_optimizer:
        said.append(f"sft.offload_optimizer: {str(new.offload_optimizer).lower()}")
    if new.gradient_checkpointing != old.gradient_checkpointing:
        said.append(f"sft.gradient_checkpointing: {str(new.gradient_checkpointing).lower()}")
    if new.gpus != old.gpus:
        said.append(f"resources.sft_gpus: {new.gpus}")
    return ", ".join(said)


def _variants(plan: Plan) -> Iterator[Plan]:
    """Plans reachable by the usual remedies, fewest changes first."""
    remedies = []
    if plan.zero_stage < 3:
        remedies.append({"zero_stage": 3})
    if not plan.gradient_checkpointing:
        remedies.append({"gradient_checkpointing": True})
    if not plan.offload_optimizer:
        remedies.append({"offload_optimizer": True, "zero_stage": max(plan.zero_stage, 2)})
    more_gpus = [{"gpus": n} for n in range(plan.gpus + 1, MAX_GPUS_PER_NODE + 1)]
    seen = set()
    for count in (1, 2, 3):
        from itertools import combinations

        for combo in combinations(remedies, count):
            changed: dict[str, Any] = {}
            for remedy in combo:
                changed.update(remedy)
            candidate = replace(plan, **changed)
            if candidate not in seen:
                seen.add(candidate)
                yield candidate
    for extra in more_gpus:
        yield replace(plan, **extra)


def check_plan(shape: ModelShape, plan: Plan, max_alternatives: int = 4) -> Verdict:
    """Estimate ``plan``; when it does not fit, list the nearby plans that do (ZeRO-3, gradient
    checkpointing, optimizer offload, more GPUs on the node), fewest changes first."""
    result = estimate(shape, plan)
    usable = usable_bytes(plan.gpu_mem_gib)
    fits = result.total <= usable
    alternatives: list[tuple[Plan, Estimate]] = []
    if not fits:
        for candidate in _variants(plan):
            candidate_estimate = estimate(shape, candidate)
            if candidate_estimate.total <= usable:
                alternatives.append((candidate, candidate_estimate))
            if len(alternatives) >= max_alternatives:
                break
    return Verdict(plan, result, fits, alternatives)


def require_fit(shape: ModelShape, plan: Plan) -> Verdict:
    """``check_plan``, raising ``PlanError`` with the full report when the plan does not fit."""
    verdict = check_plan(shape, plan)
    if not verdict.fits:
        raise PlanError(verdict.report())
    return verdict


def plan_from_sft_config(sft: Mapping[str, Any], gpus: int, precision: Precision = "bf16") -> Plan:
    """The plan of the workflow's ``sft`` config section on ``gpus`` GPUs (Adafactor, as the reference)."""
    return Plan(
        gpus=gpus,
        gpu_mem_gib=float(sft["gpu_memory_gib"]),
        zero_stage=int(sft["zero_stage"]),
        offload_optimizer=bool(sft["offload_optimizer"]),
        optimizer="adafactor",
        precision=precision,
        gradient_checkpointing=bool(sft["gradient_checkpointing"]),
        seq_len=int(sft["max_length"]),
        micro_batch=int(sft["per_device_batch"]),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m selfalign.memplan", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--model-config", required=True, help="model dir or its config.json")
    parser.add_argument("--gpus", type=int, required=True)
    parser.add_argument("--gpu-mem-gib", type=float, required=True, help="memory of one GPU (A100-80GB: 80)")
    parser.add_argument("--zero-stage", type=int, default=3, choices=(0, 1, 2, 3))
    parser.add_argument("--offload-optimizer", action="store_true")
    parser.add_argument("--optimizer", default="adafactor", choices=OPTIMIZERS)
    parser.add_argument("--precision", default="bf16", choices=PRECISIONS)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--seq-len", type=int, default=1280)
    parser.add_argument("--micro-batch", type=int, default=1)
    parser.add_argument("--json", dest="json_path", help="also write the verdict as JSON here")
    options = parser.parse_args(argv)
    try:
        shape = ModelShape.from_config(options.model_config)
        plan = Plan(
            gpus=options.gpus, gpu_mem_gib=options.gpu_mem_gib, zero_stage=options.zero_stage,
            offload_optimizer=options.offload_optimizer, optimizer=options.optimizer, precision=options.precision,
            gradient_checkpointing=options.gradient_checkpointing, seq_len=options.seq_len,
            micro_batch=options.micro_batch,
        )
    except PlanError as error:
        print(f"memplan: {error}", file=sys.stderr)
        return 2
    verdict = check_plan(shape, plan)
    print(verdict.report())
    if options.json_path:
        from .shards import write_json

        write_json(options.json_path, verdict_json(verdict))
    return 0 if verdict.fits else 1


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "fits": verdict.fits,
        "plan": asdict(verdict.plan),
        "per_gpu_gib": round(verdict.estimate.total / GIB, 3),
        "states_gib": round(verdict.estimate.states / GIB, 3),
        "usable_gib": round(usable_bytes(verdict.plan.gpu_mem_gib) / GIB, 3),
        "host_gib": round(verdict.estimate.host_bytes / GIB, 3),
        "parts_gib": {k: round(v / GIB, 3) for k, v in verdict.estimate.parts.items()},
        "source": verdict.estimate.source,
        "alternatives": [changes(verdict.plan, p) for p, _ in verdict.alternatives],
    }


if __name__ == "__main__":
    raise SystemExit(main())
