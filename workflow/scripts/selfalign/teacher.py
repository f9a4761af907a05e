"""A tiny toy "teacher" LM for the offline demo: a byte-level BPE tokenizer and a small Llama, trained
from scratch on CPU in a minute or two.

It is a memorising toy, not a teacher: it learns the demo's few-shot documents (judge, S->C, C->I and
I->R prompts with their completions) by heart and replays them, so the demo exercises the pipeline's
plumbing (rendering, parsing, execution, filtering, dedup, SFT) end to end, while the data it produces
means nothing. Inputs it has not seen get copies of training completions or broken text.

Training is a plain torch loop: every document is one sequence ending in EOS, documents of similar
length share a batch, padding is masked out of the loss, and training runs a fixed number of steps.
Nothing depends on the clock: the learning-rate schedule is a function of the step alone, so the same
seed and thread count give the same weights on an idle or a busy machine. An optional time ceiling
fails the job instead of cutting training short (a shorter run would be a different model).
"""

from __future__ import annotations

import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

ENDOFTEXT = "<|endoftext|>"
PAD = "<|pad|>"
# Marker tokens of the StarCoder2-style instruction format, kept atomic so prompts may use them.
EXTRA_SPECIAL_TOKENS = ["<issue_start>", "<issue_comment>", "<issue_closed>"]
SPECIAL_TOKENS = [ENDOFTEXT, PAD, *EXTRA_SPECIAL_TOKENS]

MODEL_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "num_attention_heads": 2,  # head_dim 64: the smallest head size vLLM's CPU attention kernels take
    "num_key_value_heads": 1,
    "num_hidden_layers": 2,
    "intermediate_size": 256,
    "max_position_embeddings": 4096,  # judge prompts with their few-shot examples are long
    "tie_word_embeddings": True,
}
# Keys of ``model_config`` that steer training rather than the architecture.
TRAINING_DEFAULTS: dict[str, Any] = {
    "vocab_size": 2048,
    "learning_rate": 2e-3,
    "warmup_steps": 30,
    "weight_decay": 0.01,
    "max_grad_norm": 1.0,
    # Padded tokens per batch (a batch holds at least one document). Small batches: on 2 CPU cores
    # 2k-token batches ran ~3x more tokens/s than 8k ones and memorise in fewer epochs.
    "batch_tokens": 2048,
    "log_every": 10,
}


class TeacherTimeout(RuntimeError):
    """Training ran past its wall-clock ceiling; the job fails rather than save a shorter-trained model."""


def train_tokenizer(files: list[Path], extra_texts: list[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``files`` plus ``extra_texts`` (exact decode round trip).

    ``<|endoftext|>`` is BOS and EOS, ``<|pad|>`` pads; the ``<issue_*>`` markers are extra special tokens.
    """
    if not files and not extra_texts:
        raise ValueError("train_tokenizer needs at least one file or text")
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),  # every byte encodable: no unknown tokens
        show_progress=False,
    )

    def texts() -> Iterator[str]:
        for path in files:
            yield Path(path).read_text(encoding="utf-8", errors="replace")
        yield from extra_texts

    tokenizer.train_from_iterator(texts(), trainer=trainer)
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    # transformers 5 silently ignores the old ``additional_special_tokens`` name: use ``extra_special_tokens``.
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        pad_token=PAD,
        extra_special_tokens=EXTRA_SPECIAL_TOKENS,
    )
    for token in SPECIAL_TOKENS:
        if fast.convert_tokens_to_ids(token) != SPECIAL_TOKENS.index(token):
            raise RuntimeError(f"special token {token} got id {fast.convert_tokens_to_ids(token)}")
    return fast


def build_model(tokenizer: PreTrainedTokenizerFast, config: dict[str, Any]) -> LlamaForCausalLM:
    """A randomly initialised small Llama sized for ``tokenizer``; ``config`` overrides ``MODEL_DEFAULTS``.

    Training keys (``TRAINING_DEFAULTS``) in ``config`` are ignored here; unknown keys are an error,
    because ``LlamaConfig`` would otherwise accept a misspelt key and silently keep its default.
    """
    architecture = {k: v for k, v in config.items() if k not in TRAINING_DEFAULTS}
    unknown = sorted(set(architecture) - set(LlamaConfig.__annotations__))
    if unknown:
        raise ValueError(f"unknown model config keys: {', '.join(unknown)}")
    settings = {
        **MODEL_DEFAULTS,
        **architecture,
        "vocab_size": len(tokenizer),
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    model = LlamaForCausalLM(LlamaConfig(**settings))
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def length_batches(lengths: list[int], batch_tokens: int) -> list[list[int]]:
    """Group document indices of similar length so that batch size x longest length <= ``batch_tokens``."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted ascending, so the newest document is the longest of the batch.
        if current and (len(current) + 1) * lengths[index] > batch_tokens:
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _pad_batch(sequences: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(seq) for seq in sequences)
    input_ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention_mask[row, : len(seq)] = 1
    labels = input_ids.masked_fill(attention_mask == 0, -100)  # no loss on padding
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def save_atomically(model: LlamaForCausalLM, tokenizer: PreTrainedTokenizerFast, out_dir: Path) -> None:
    """``save_pretrained`` both into a temp dir beside ``out_dir``, then rename it into place."""
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if out_dir.exists():
            old = tmp.with_suffix(".old")
            os.replace(out_dir, old)
            os.replace(tmp, out_dir)
            shutil.rmtree(old)
        else:
            os.replace(tmp, out_dir)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def train_teacher(
    documents: list[str],
    tokenizer_files: list[Path],
    out_dir: Path,
    steps: int,
    seed: int,
    model_config: dict[str, Any],
    threads: int,
    log: Callable[[str], None],
    max_seconds: float | None = None,
) -> dict[str, Any]:
    """Train the toy teacher for ``steps`` optimiser steps and save model + tokenizer to ``out_dir``; return stats.

    ``model_config`` holds architecture overrides (``MODEL_DEFAULTS``) and training settings
    (``TRAINING_DEFAULTS``). A rerun with the same seed and ``threads`` reproduces the same weights.
    ``max_seconds``, if set, raises ``TeacherTimeout`` when training runs longer, and nothing is saved.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if not documents:
        raise ValueError("train_teacher needs at least one document")
    empty = [i for i, doc in enumerate(documents) if not doc.strip()]
    if empty:
        raise ValueError(f"documents {empty[:10]} are empty")
    training = {**TRAINING_DEFAULTS, **{k: v for k, v in model_config.items() if k in TRAINING_DEFAULTS}}
    started = time.perf_counter()
    random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)

    tokenizer = train_tokenizer(tokenizer_files, documents, training["vocab_size"])
    model = build_model(tokenizer, model_config)
    context = model.config.max_position_embeddings
    tokenizer.model_max_length = context
    sequences = [tokenizer(doc, add_special_tokens=False).input_ids + [tokenizer.eos_token_id] for doc in documents]
    too_long = [(i, len(seq)) for i, seq in enumerate(sequences) if len(seq) > context]
    if too_long:
        raise ValueError(
            f"{len(too_long)} documents exceed max_position_embeddings {context} tokens "
            f"(first: document {too_long[0][0]}, {too_long[0][1]} tokens); raise it or shorten them"
        )
    pad_id = SPECIAL_TOKENS.index(PAD)  # train_tokenizer checked that ids follow SPECIAL_TOKENS
    batches = length_batches([len(seq) for seq in sequences], training["batch_tokens"])
    params = sum(p.numel() for p in model.parameters())
    log(
        f"teacher: {len(documents)} documents, {sum(map(len, sequences))} tokens, {len(batches)} batches, "
        f"vocab {len(tokenizer)}, {params} parameters, tokenizer {time.perf_counter() - started:.1f}s"
    )

    optimizer = torch.optim.AdamW(
        model.parameters(), lr=training["learning_rate"], betas=(0.9, 0.95), weight_decay=training["weight_decay"]
    )
    warmup = max(1, training["warmup_steps"])
    model.train()
    step, tokens, epoch = 0, 0, 0
    losses: list[float] = []
    curve: list[dict[str, float]] = []
    train_start = time.perf_counter()
    order: list[int] = []
    while step < steps:
        elapsed = time.perf_counter() - train_start
        if max_seconds is not None and elapsed > max_seconds:
            raise TeacherTimeout(
                f"teacher: {step} of {steps} steps done after {elapsed:.0f} s, over the {max_seconds:g} s ceiling "
                "(model.teacher.seconds); raise it or lower model.teacher.steps. Training is not cut short, "
                "because a shorter run would be a different model."
            )
        if not order:
            order = list(range(len(batches)))
            random.shuffle(order)
            epoch += 1
        batch = _pad_batch([sequences[i] for i in batches[order.pop()]], pad_id)
        loss = model(**batch).loss
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"teacher loss became {loss.item()} at step {step}; lower learning_rate")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), training["max_grad_norm"])
        # Warmup, then a linear decay to the last step: the last steps settle on the memorised text
        # instead of bouncing around it at full learning rate. The step alone decides (never the clock).
        done = step / steps
        for group in optimizer.param_groups:
            group["lr"] = training["learning_rate"] * min((step + 1) / warmup, max(0.02, 1.0 - done))
        optimizer.step()
        step += 1
        tokens += int(batch["attention_mask"].sum())
        losses.append(loss.item())
        if step % training["log_every"] == 0:
            elapsed = time.perf_counter() - train_start
            curve.append({"step": step, "seconds": round(elapsed, 2), "loss": round(loss.item(), 4)})
            log(f"teacher: step {step} epoch {epoch} loss {loss.item():.4f} {tokens / elapsed:.0f} tok/s {elapsed:.1f}s")

    train_seconds = time.perf_counter() - train_start
    model.eval()
    save_atomically(model, tokenizer, Path(out_dir))
    final_loss = sum(losses[-10:]) / len(losses[-10:]) if losses else float("nan")
    log(f"teacher: done, {step} steps, final loss {final_loss:.4f}, saved to {out_dir}")
    return {
        "steps": step,
        "epochs": epoch,
        "tokens": tokens,
        "final_loss": round(final_loss, 4),
        "train_seconds": round(train_seconds, 2),
        "seconds": round(time.perf_counter() - started, 2),
        "params": params,
        "documents": len(documents),
        "vocab_size": len(tokenizer),
        "model_config": {**MODEL_DEFAULTS, **{k: v for k, v in model_config.items() if k not in TRAINING_DEFAULTS}},
        "training": training,
        "loss_curve": curve,
    }
