"""Supervised fine-tuning as the reference trained StarCoder2-Instruct (``star_align/train.py``).

Every rank of a ``deepspeed`` launch (see ``selfalign.launch``) runs ``main``. The recipe:

- prompt = BOS + the SC2 instruct prompt (``format_instruct_prompt(instruction)``, ending in
  ``### Response\\n``); completion = response + EOS; both tokenized with ``add_special_tokens=False``;
  the concatenation is cut to ``max_length`` and kept (counted as ``exceeding_length``);
- loss on the completion only (prompt and padding labels are -100), no packing, right padding;
- HF Trainer + DeepSpeed ZeRO (``workflow/resources/deepspeed/zero{N}.json``), HF Adafactor with
  ``scale_parameter=False, relative_step=False``, lr 1e-5, weight decay 0, linear schedule with 5%
  warmup, 4 epochs, effective batch 64, no gradient clipping, every dropout set to 0, bf16 on GPUs;
- the loss of a batch is the mean over its examples of each example's mean token loss (the reference's
  weighting: per-device batch 1, 64 accumulation steps, each micro-batch's mean divided by 64), or,
  with ``--loss-weighting token``, the mean over all response tokens of the batch (transformers 5's
  default); either way over the whole accumulated batch on every rank.

The finished model dir (weights, tokenizer with the instruct chat template, ``train_stats.json``)
appears by rename, so a killed job never leaves one that looks complete; a rerun resumes from the
last checkpoint in the checkpoint dir.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from selfalign import __version__ as selfalign_version
from selfalign.devices import require_gpus
from selfalign.humaneval import INSTRUCT_SYSTEM, format_instruct_prompt
from selfalign.shards import read_jsonl, write_json

DEEPSPEED_CONFIG_DIR = Path(__file__).resolve().parents[2] / "resources" / "deepspeed"
IGNORE_INDEX = -100  # label value that torch's cross-entropy skips
WARMUP_RATIO = 0.05
NO_CLIPPING = -1.0  # the reference's --max_grad_norm -1; Trainer and DeepSpeed clip only when > 0
TRAIN_STATS_NAME = "train_stats.json"
LOSS_TSV_NAME = "loss.tsv"  # one row per optimizer step: step, epoch, loss, learning_rate
TRAINING_ARGS_NAME = "training_args.bin"  # what Trainer.save_model adds beside the weights
TRAINER_STATE_NAME = "trainer_state.json"  # the Trainer writes it last into a checkpoint

LOSS_WEIGHTINGS = ("example", "token")

logger = logging.getLogger("selfalign.sft")


@dataclass(frozen=True)
class TokenizedExample:
    input_ids: list[int]
    labels: list[int]
    truncated: bool  # the prompt + completion was longer than max_length and was cut

    def as_feature(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels}


def load_sft_rows(path: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The SFT set: one ``{"instruction", "response"}`` object per line (other fields ignored)."""
    required = {"instruction": str, "response": str}
    rows = [{"instruction": r["instruction"], "response": r["response"]} for r in read_jsonl(path, required)]
    if not rows:
        raise ValueError(f"{path}: the SFT set has no records")
    return rows


def tokenize_example(tokenizer: Any, instruction: str, response: str, max_length: int) -> TokenizedExample:
    """Prompt with BOS and completion with EOS, tokenized apart so the prompt boundary is exact."""
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has no eos_token: the completion must end in one")
    prompt = (tokenizer.bos_token or "") + format_instruct_prompt(instruction)
    completion = response + tokenizer.eos_token
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    completion_ids = tokenizer(completion, add_special_tokens=False)["input_ids"]
    input_ids = prompt_ids + completion_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + completion_ids
    return TokenizedExample(input_ids[:max_length], labels[:max_length], len(input_ids) > max_length)


@dataclass(frozen=True)
class SFTCollator:
    """Right-pads a batch; padding gets ``pad_token_id``, label -100 and attention 0."""

    pad_token_id: int

    def __call__(self, features: Sequence[Mapping[str, list[int]]]) -> dict[str, torch.Tensor]:
        width = max(len(feature["input_ids"]) for feature in features)
        input_ids = torch.full((len(features), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), width), dtype=torch.long)
        for row, feature in enumerate(features):
            length = len(feature["input_ids"])
            input_ids[row, :length] = torch.tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :length] = torch.tensor(feature["labels"], dtype=torch.long)
            # Masking by length, not by ``ne(pad)``: pad may equal EOS, which is a real, trained token.
            attention_mask[row, :length] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def gradient_accumulation_steps(target_batch: int, per_device_batch: int, world_size: int) -> int:
    """Accumulation so that per-device batch x accumulation x world size == target batch, exactly."""
    per_step = per_device_batch * world_size
    if target_batch < 1 or per_device_batch < 1 or world_size < 1:
        raise ValueError(
            f"batch sizes and world size must be >= 1, got {target_batch=}, {per_device_batch=}, {world_size=}"
        )
    if target_batch % per_step:
        raise ValueError(
            f"target batch {target_batch} is not a multiple of per-device batch {per_device_batch} x "
            f"{world_size} ranks = {per_step}; choose a per-device batch or rank count that divides it"
        )
    return target_batch // per_step


def shifted_token_losses(logits: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token cross-entropy of a causal LM (token t predicts label t+1), in fp32, and the mask of
    tokens that count (label not -100); both ``(batch, length - 1)``."""
    targets = labels[:, 1:]
    logits = logits[:, :-1, :].float()
    losses = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=IGNORE_INDEX, reduction="none"
    ).view(targets.shape)
    return losses, targets.ne(IGNORE_INDEX)


def examples_with_targets(labels: torch.Tensor) -> int:
    """Examples of a micro-batch with at least one response token after the shift (a prompt cut by
    max_length has none; it adds nothing to the loss and does not count in the mean)."""
    return int(labels[:, 1:].ne(IGNORE_INDEX).any(dim=1).sum())


@dataclass(frozen=True)
class SFTLoss:
    """The Trainer's ``compute_loss_func``: this micro-batch's share of the accumulated batch's loss.

    ``num_items_in_batch`` is what the whole accumulated batch holds over all ranks: response tokens
    (``token``) or examples with a response token (``example``, see ``SFTTrainer.get_batch_samples``).
    The Trainer multiplies the result by the world size and DeepSpeed averages the gradients over the
    ranks, so the sum over micro-batches and ranks is exactly the batch mean.
    """

    weighting: str

    def __call__(self, outputs: Any, labels: torch.Tensor, num_items_in_batch: Any = None) -> torch.Tensor:
        logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
        losses, mask = shifted_token_losses(logits, labels)
        if self.weighting == "token":
            total = (losses * mask).sum()
            count = mask.sum()
        else:
            tokens = mask.sum(dim=1)
            total = ((losses * mask).sum(dim=1) / tokens.clamp(min=1)).sum()
            count = (tokens > 0).sum()
        if num_items_in_batch is None:  # evaluation, or a Trainer that did not count: this micro-batch alone
            num_items_in_batch = count
        return total / torch.as_tensor(num_items_in_batch, device=total.device).clamp(min=1)


def sft_trainer_class() -> type:
    """``Trainer`` that counts examples instead of tokens for the ``example`` loss weighting."""
    from transformers import Trainer

    class SFTTrainer(Trainer):
        def get_batch_samples(self, epoch_iterator: Any, num_batches: int, device: Any) -> tuple[list, Any]:
            batch_samples, num_items = super().get_batch_samples(epoch_iterator, num_batches, device)
            loss = self.compute_loss_func
            if isinstance(loss, SFTLoss) and batch_samples:
                # Counted here for both weightings, on the shifted labels, so SFTLoss and this count agree
                # whatever the Trainer's own counting does.
                if loss.weighting == "example":
                    counted = sum(examples_with_targets(b["labels"]) for b in batch_samples)
                else:
                    counted = sum(int(b["labels"][:, 1:].ne(IGNORE_INDEX).sum()) for b in batch_samples)
                count = torch.tensor(counted, device=device)
                if self.args.world_size > 1:  # the Trainer scales the loss by the world size to match
                    gathered: Any = self.accelerator.gather(count)
                    count = gathered.sum()
                num_items = count
            return batch_samples, num_items

    return SFTTrainer


def step_progress_callback() -> Any:
    """A Trainer callback that logs ``step k/N, epoch, loss, lr, ETA`` per logging step on rank 0, in
    place of the raw dicts transformers prints (the ETA is for the log only; nothing stored depends on it)."""
    import time

    from transformers import TrainerCallback

    from selfalign.rulekit import format_eta

    class StepProgress(TrainerCallback):
        def __init__(self) -> None:
            self.started: tuple[float, int] | None = None

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001 - the Trainer's signature
            self.started = (time.perf_counter(), state.global_step)  # a resumed run starts mid-way

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if not state.is_world_process_zero or not logs or "loss" not in logs or self.started is None:
                return
            began, first = self.started
            done = state.global_step - first
            rate = done / max(time.perf_counter() - began, 1e-9)
            eta = format_eta((state.max_steps - state.global_step) / rate) if rate > 0 else "?"
            logger.info(
                "step %d/%d, epoch %.2f, loss %.4f, lr %.3g, ETA %s",
                state.global_step, state.max_steps, state.epoch or 0.0, logs["loss"],
                logs.get("learning_rate", 0.0), eta,
            )

    return StepProgress()


def build_trainer(
    model: Any, args: Any, examples: Sequence[TokenizedExample], pad_token_id: int, loss_weighting: str
) -> Any:
    """The Trainer of ``train``, also used by the tests (same collator, same loss)."""
    if loss_weighting not in LOSS_WEIGHTINGS:
        raise ValueError(f"loss weighting must be one of {', '.join(LOSS_WEIGHTINGS)}, got {loss_weighting!r}")
    return sft_trainer_class()(
        model=model,
        args=args,
        train_dataset=[example.as_feature() for example in examples],
        data_collator=SFTCollator(pad_token_id),
        compute_loss_func=SFTLoss(loss_weighting),
    )


def live_tensor_bytes() -> int:
    """Bytes of every tensor storage alive in this process (views counted once): on CPU, where torch
    keeps no allocator statistics, what the weights, gradients and optimizer state really take."""
    import gc

    storages: dict[int, int] = {}
    for obj in gc.get_objects():
        if isinstance(obj, torch.Tensor) and obj.device.type == "cpu":
            try:
                storage = obj.untyped_storage()
            except (RuntimeError, NotImplementedError):  # sparse or otherwise storage-less tensors
                continue
            if storage.data_ptr():
                storages[storage.data_ptr()] = max(storages.get(storage.data_ptr(), 0), storage.nbytes())
    return sum(storages.values())


class MemoryProbe:
    """This rank's memory right after each optimizer step (weights, gradients, master weights and
    optimizer state are alive then, activations freed), the largest seen; and, on a GPU, the peak of
    the whole run. Compared with ``selfalign.memplan``'s estimate by the tests and the GPU check."""

    CPU_STEPS = 4  # walking every object costs; the states are all there after the first steps

    def __init__(self, on_gpu: bool):
        from torch.optim.optimizer import register_optimizer_step_post_hook

        self.on_gpu = on_gpu
        self.states_bytes = 0
        self.calls = 0
        self._handle = register_optimizer_step_post_hook(self._after_step)

    def _after_step(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.calls += 1
        now = torch.cuda.memory_allocated() if self.on_gpu else live_tensor_bytes()
        self.states_bytes = max(self.states_bytes, now)
        if not self.on_gpu and self.calls >= self.CPU_STEPS:
            self._handle.remove()

    def result(self) -> dict[str, int | None]:
        self._handle.remove()
        peak = torch.cuda.max_memory_allocated() if self.on_gpu else None
        return {"states_bytes": self.states_bytes, "peak_bytes": peak}


def gather_memory(probe: MemoryProbe) -> list[dict[str, Any]]:
    """Every rank's probe result, in rank order (a collective: every rank calls it)."""
    import torch.distributed as dist

    mine = {"rank": dist.get_rank() if dist.is_initialized() else 0, **probe.result()}
    if not dist.is_initialized():
        return [mine]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return sorted(gathered, key=lambda entry: entry["rank"])


def zero_dropout(config: Any) -> list[str]:
    """Set every dropout probability of a model config to 0 (the reference trains without dropout;
    StarCoder2 defaults to 0.1). Returns the names that were set."""
    names = [
        name
        for name, value in vars(config).items()
        if ("dropout" in name or name.endswith("_pdrop"))
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
    ]
    for name in names:
        setattr(config, name, 0.0)
    return sorted(names)


def instruct_chat_template(system: str = INSTRUCT_SYSTEM) -> str:
    """The Jinja chat template of the tuned model; it renders the training prompt layout.

    A trailing ``### Response\\n`` is always appended (as the reference does), so the rendered text
    is a generation prompt. The system sentence is fixed, so a system turn raises.
    """
    system_literal = json.dumps(system + "\n\n")  # a JSON string is a valid Jinja string literal
    return (
        "{{ bos_token if bos_token else '' }}{{ " + system_literal + " }}"
        "{% for message in messages %}"
        "{% if message['role'] == 'user' %}{{ '### Instruction\\n' + message['content'] + '\\n\\n' }}"
        "{% elif message['role'] == 'assistant' %}"
        "{{ '### Response\\n' + message['content'] + eos_token + '\\n\\n' }}"
        "{% else %}{{ raise_exception('Role ' + message['role'] + ' is not allowed: this template takes"
        " user and assistant turns only (its system sentence is fixed).') }}"
        "{% endif %}{% endfor %}"
        "{{ '### Response\\n' }}"
    )


def deepspeed_config_path(zero_stage: int) -> Path:
    path = DEEPSPEED_CONFIG_DIR / f"zero{zero_stage}.json"
    if not path.is_file():
        raise FileNotFoundError(f"no DeepSpeed config for ZeRO stage {zero_stage}: {path}")
    return path


def deepspeed_config(zero_stage: int, offload_optimizer: bool) -> dict[str, Any]:
    """The stage's config file, with the optimizer state offloaded to host memory when asked.

    DeepSpeed refuses to offload a client optimizer (HF Adafactor) unless ``zero_force_ds_cpu_optimizer``
    is off; Adafactor then steps on the host on the fp32 partitions (slower than DeepSpeed's CPU Adam).
    """
    config = json.loads(deepspeed_config_path(zero_stage).read_text(encoding="utf-8"))
    if offload_optimizer:
        if zero_stage < 1:
            raise ValueError("offload_optimizer needs ZeRO stage 1 or higher (sft.zero_stage)")
        config["zero_optimization"]["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
        config["zero_force_ds_cpu_optimizer"] = False
    return config


def default_checkpoint_dir(output: Path) -> Path:
    """``results/sft/model`` -> ``results/sft/model.checkpoints`` (beside, never inside, the output)."""
    return output.with_name(output.name + ".checkpoints")


def library_versions() -> dict[str, str]:
    import accelerate
    import deepspeed
    import tokenizers
    import transformers

    return {
        "selfalign": selfalign_version,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
        "deepspeed": deepspeed.__version__,
        "tokenizers": tokenizers.__version__,
    }


def step_log(log_history: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per optimizer step: the loss and the learning rate that step used (under DeepSpeed the Trainer
    logs the rate before the scheduler advances, so step 1 of a warmup shows 0)."""
    return [
        {"step": entry["step"], "loss": entry["loss"], "learning_rate": entry["learning_rate"]}
        for entry in log_history
        if "loss" in entry and "learning_rate" in entry
    ]


def loss_tsv(log_history: Sequence[Mapping[str, Any]]) -> str:
    """The training curve as TSV (header ``step epoch loss learning_rate``), for plots and reports."""
    lines = ["step\tepoch\tloss\tlearning_rate"]
    for entry in log_history:
        if "loss" in entry and "learning_rate" in entry:
            lines.append(f"{entry['step']}\t{entry.get('epoch', '')}\t{entry['loss']}\t{entry['learning_rate']}")
    return "\n".join(lines) + "\n"


RUN_KEY_NAME = "run_key.json"  # in the checkpoint dir: what the checkpoints were trained on


def run_key(options: argparse.Namespace) -> dict[str, Any]:
    """What a checkpoint must have been trained on for a rerun to resume from it: the data's bytes, the
    base model, every training setting (a changed SFT set or setting must start over, not resume)."""
    import hashlib

    digest = hashlib.sha256(Path(options.data).read_bytes()).hexdigest()
    settings = {k: v for k, v in sorted(vars(options).items()) if k not in ("data", "output", "checkpoint_dir", "expect_gpus")}
    return {"data_sha256": digest, **{k: str(v) for k, v in settings.items()}}


def clear_stale_checkpoints(checkpoint_dir: Path, key: Mapping[str, Any]) -> bool:
    """Remove the checkpoints of another run (other data, model or settings); record this run's key.
    Returns whether anything was removed."""
    marker = checkpoint_dir / RUN_KEY_NAME
    stale = checkpoint_dir.is_dir() and (not marker.is_file() or json.loads(marker.read_text()) != dict(key))
    if stale:
        logger.warning("%s holds checkpoints of another SFT run (data or settings changed): starting over", checkpoint_dir)
        shutil.rmtree(checkpoint_dir)
    checkpoint_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps(dict(key), sort_keys=True))
    return stale


def last_complete_checkpoint(checkpoint_dir: Path) -> str | None:
    """The newest ``checkpoint-N`` that holds a trainer state; newer, incomplete ones are removed.

    The Trainer does not write checkpoints atomically (its ``get_last_checkpoint`` takes the highest N
    even if half written): a job killed while saving leaves a dir without ``trainer_state.json``, which
    the Trainer writes last, and resuming from it would fail.
    """
    if not checkpoint_dir.is_dir():
        return None
    numbered = sorted(
        (int(path.name.split("-", 1)[1]), path)
        for path in checkpoint_dir.glob("checkpoint-*")
        if path.is_dir() and path.name.split("-", 1)[1].isdigit()
    )
    for _, path in reversed(numbered):
        if (path / TRAINER_STATE_NAME).is_file():
            return str(path)
        logger.warning("removing incomplete checkpoint %s (no %s: killed while saving)", path, TRAINER_STATE_NAME)
        shutil.rmtree(path, ignore_errors=True)
    return None


def optimizer_settings(optimizer: Any) -> dict[str, Any]:
    """Class and defaults of the optimizer that updates the weights (below DeepSpeed's ZeRO wrapper)."""
    inner = optimizer
    while hasattr(inner, "optimizer") and inner.optimizer is not inner:  # accelerate / ZeRO wrappers
        inner = inner.optimizer
    defaults = getattr(inner, "defaults", {})
    keep = ("lr", "scale_parameter", "relative_step", "warmup_init", "weight_decay")
    return {"class": type(inner).__name__, **{key: defaults[key] for key in keep if key in defaults}}


def replace_dir(staging: Path, final: Path) -> None:
    """Move a finished dir into place; an old ``final`` is moved aside first (rename onto a non-empty
    dir fails) and removed only after the new one is there."""
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    staging.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m selfalign.sft", description="Supervised fine-tuning, one rank (start it with selfalign.launch)."
    )
    parser.add_argument("--model", required=True, help="base model dir (HF format)")
    parser.add_argument("--data", required=True, help="SFT set: JSONL with instruction and response")
    parser.add_argument("--output", required=True, help="final model dir; appears atomically")
    parser.add_argument("--zero-stage", type=int, required=True, choices=(0, 1, 2, 3))
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--target-batch", type=int, default=64, help="effective batch over all ranks")
    parser.add_argument("--per-device-batch", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=1280)
    parser.add_argument("--seed", type=int, default=42, help="shuffle and init seed (HF default)")
    parser.add_argument("--save-steps", type=int, default=200, help="checkpoint every N optimizer steps")
    parser.add_argument("--checkpoint-dir", default=None, help="default: OUTPUT.checkpoints beside the output")
    parser.add_argument("--gradient-checkpointing", action="store_true", help="recompute activations in backward")
    parser.add_argument("--offload-optimizer", action="store_true", help="optimizer state in host memory (ZeRO >= 1)")
    parser.add_argument("--loss-weighting", default="example", choices=LOSS_WEIGHTINGS,
                        help="example: mean of per-example means (the reference); token: mean over all tokens")
    parser.add_argument("--expect-gpus", type=int, default=0,
                        help="GPUs the job was given; a rank that sees fewer fails at once")
    parser.add_argument("--max-steps", type=int, default=-1, help="stop after N optimizer steps (checks only)")
    return parser.parse_args(argv)


def train(options: argparse.Namespace) -> None:
    import deepspeed
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, TrainingArguments

    require_gpus("train_sft", options.expect_gpus)
    output = Path(options.output).resolve()
    checkpoint_dir = (
        Path(options.checkpoint_dir).resolve() if options.checkpoint_dir else default_checkpoint_dir(output)
    )
    on_gpu = torch.cuda.is_available()
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # set by the deepspeed/torchrun launchers
    accumulation = gradient_accumulation_steps(options.target_batch, options.per_device_batch, world_size)

    # Built before the model: with ZeRO-3 it registers the DeepSpeed config, so that from_pretrained
    # partitions the weights across ranks instead of loading the full model on each.
    args = TrainingArguments(
        output_dir=str(checkpoint_dir),
        per_device_train_batch_size=options.per_device_batch,
        gradient_accumulation_steps=accumulation,
        num_train_epochs=options.epochs,
        learning_rate=options.lr,
        weight_decay=0.0,
        optim="adafactor",  # HF Adafactor, scale_parameter=False, relative_step=False
        lr_scheduler_type="linear",
        warmup_steps=WARMUP_RATIO,  # transformers 5: a float < 1 is a ratio (warmup_ratio is gone)
        max_grad_norm=NO_CLIPPING,
        bf16=on_gpu,
        use_cpu=not on_gpu,
        deepspeed=deepspeed_config(options.zero_stage, options.offload_optimizer),
        gradient_checkpointing=options.gradient_checkpointing,
        # Non-reentrant checkpointing works with ZeRO-3's partitioned weights and needs no input grads.
        gradient_checkpointing_kwargs={"use_reentrant": False} if options.gradient_checkpointing else None,
        max_steps=options.max_steps,
        average_tokens_across_devices=True,  # SFTLoss divides by the whole batch's count, over all ranks
        logging_steps=1,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=2,  # two, so a kill while writing the newest still leaves a whole one
        seed=options.seed,
        data_seed=options.seed,
        report_to="none",
        disable_tqdm=True,  # one printed dict per step reads better in a log file than progress bars
        remove_unused_columns=False,
    )
    main_process = args.process_index == 0
    if main_process:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")

    tokenizer = AutoTokenizer.from_pretrained(options.model)
    rows = load_sft_rows(options.data)
    random.Random(options.seed).shuffle(rows)  # as the reference's dataset.shuffle(seed=args.seed)
    examples = [tokenize_example(tokenizer, r["instruction"], r["response"], options.max_length) for r in rows]
    exceeding_length = sum(example.truncated for example in examples)
    no_response_tokens = sum(all(label == IGNORE_INDEX for label in example.labels) for example in examples)
    if main_process and len(examples) < options.target_batch:
        logger.warning(
            "the SFT set has %d examples, fewer than the target batch %d: each epoch is a single "
            "optimizer step over all of them", len(examples), options.target_batch,
        )

    # On CPU accelerate starts torch.distributed but not DeepSpeed's comm layer, from which ZeRO-3's
    # zero.Init (inside from_pretrained) takes the world size; on GPUs this call is a no-op.
    deepspeed.init_distributed()
    config = AutoConfig.from_pretrained(options.model)
    # Dropout modules read their rate at construction, so the config is changed before loading.
    dropout_zeroed = zero_dropout(config)
    model = AutoModelForCausalLM.from_pretrained(
        options.model, config=config, dtype=torch.bfloat16 if on_gpu else torch.float32
    )
    pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    if options.gradient_checkpointing:
        model.config.use_cache = False  # the KV cache is useless in training and clashes with recomputation
    trainer = build_trainer(model, args, examples, pad_token_id, options.loss_weighting)
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # its raw dicts: StepProgress logs the same, readably
    trainer.add_callback(step_progress_callback())
    probe = MemoryProbe(on_gpu)
    # Only rank 0 may remove an incomplete or stale checkpoint; the others wait, then all agree on the same one.
    if main_process:
        clear_stale_checkpoints(checkpoint_dir, run_key(options))
        last_complete_checkpoint(checkpoint_dir)
    trainer.accelerator.wait_for_everyone()
    resume_from = last_complete_checkpoint(checkpoint_dir)
    logger.info(
        "SFT: %d examples (%d exceeding %d tokens), %d ranks x per-device %d x accumulation %d = batch %d, "
        "ZeRO %d (optimizer offload %s), gradient checkpointing %s, loss per %s, bf16=%s, dropout zeroed: %s, "
        "resume from: %s",
        len(examples), exceeding_length, options.max_length, world_size, options.per_device_batch,
        accumulation, options.per_device_batch * accumulation * world_size, options.zero_stage,
        options.offload_optimizer, options.gradient_checkpointing, options.loss_weighting, on_gpu,
        dropout_zeroed or "none", resume_from,
    )
    result = trainer.train(resume_from_checkpoint=resume_from)
    memory = gather_memory(probe)

    stats = {
        "model": options.model,
        "data": options.data,
        "examples": len(examples),
        "exceeding_length": exceeding_length,
        "no_response_tokens": no_response_tokens,
        "max_length": options.max_length,
        "epochs": options.epochs,
        "steps": trainer.state.global_step,
        "learning_rate": options.lr,
        "warmup_ratio": WARMUP_RATIO,
        "target_batch": options.target_batch,
        "effective_batch": options.per_device_batch * accumulation * world_size,
        "per_device_batch": options.per_device_batch,
        "gradient_accumulation_steps": accumulation,
        "world_size": world_size,
        "zero_stage": options.zero_stage,
        "offload_optimizer": options.offload_optimizer,
        "gradient_checkpointing": options.gradient_checkpointing,
        "loss_weighting": options.loss_weighting,
        "memory": memory,
        "bf16": on_gpu,
        "seed": options.seed,
        "dropout_zeroed": dropout_zeroed,
        "resumed_from": Path(resume_from).name if resume_from else None,  # no machine path in the model dir
        "optimizer": optimizer_settings(trainer.optimizer),
        "train_seconds": round(result.metrics.get("train_runtime", 0.0), 3),
        "log": step_log(trainer.state.log_history),
        "versions": library_versions(),
    }
    save_final_model(trainer, tokenizer, output, stats)


def save_final_model(trainer: Any, tokenizer: Any, output: Path, stats: Mapping[str, Any]) -> None:
    """Every rank calls this: under ZeRO-3 ``save_model`` gathers the partitioned weights (collective);
    rank 0 writes into a staging dir and renames it onto ``output``."""
    staging = output.with_name(f".{output.name}.partial")
    if trainer.is_world_process_zero():
        shutil.rmtree(staging, ignore_errors=True)  # left by a job killed while saving
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(staging))
    if trainer.is_world_process_zero():
        # The pickled TrainingArguments hold machine paths (work and cache dirs) and no weights: not published.
        (staging / TRAINING_ARGS_NAME).unlink(missing_ok=True)
        tokenizer.chat_template = instruct_chat_template()
        tokenizer.save_pretrained(str(staging))
        write_json(staging / TRAIN_STATS_NAME, dict(stats))
        (staging / LOSS_TSV_NAME).write_text(loss_tsv(trainer.state.log_history), encoding="utf-8")
        replace_dir(staging, output)
        logger.info("saved %s (%d steps)", output, stats["steps"])
    trainer.accelerator.wait_for_everyone()


def main(argv: Sequence[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
