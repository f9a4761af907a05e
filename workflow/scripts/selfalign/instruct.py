"""Self-OSS-Instruct: seed -> concepts -> instruction -> responses with tests, on any generation backend.

Each step renders one few-shot completion prompt per row (shots and sampling seeded by the row's
sampling seed = base seed + absolute row index), generates, drops length-cut completions and
unparsable ones with a counted reason, and appends its fields and provenance to the record.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable
from typing import Any

from . import prompts, records
from .fewshot import InstructFewShot
from .generation import Completion, GenerationBackend, GenerationRequest, StepSettings
from .shards import Record, StageStats


def _provenance(record: Record, step: str, info: prompts.PromptInfo, seed: int, completion: Completion) -> dict:
    provenance = dict(record.get("provenance", {}))
    provenance[step] = {
        "fewshot": list(info.fewshot_ids),
        "prompt_sha1": hashlib.sha1(info.text.encode("utf-8")).hexdigest(),
        "sampling_seed": seed,
        "finish_reason": completion.finish_reason,
    }
    return provenance


def _generate(
    rows: list[Record],
    build: Callable[[Record, int], prompts.PromptInfo],
    backend: GenerationBackend,
    settings: StepSettings,
    base_seed: int,
    stats: StageStats,
) -> list[tuple[Record, prompts.PromptInfo, int, list[Completion]]]:
    """Render, skip over-long prompts (counted per sample slot), generate the rest."""
    pending: list[tuple[Record, prompts.PromptInfo, int]] = []
    for record in rows:
        seed = records.sampling_seed(base_seed, record["row"])
        info = build(record, seed)
        if backend.count_tokens(info.text) + settings.sampling.max_new_tokens > backend.max_context:
            stats.drop("prompt_too_long", settings.sampling.n, record=record)
            continue
        pending.append((record, info, seed))
    requests = [
        GenerationRequest(prompt=info.text, spec=settings.sampling.for_row(tuple(info.stop), seed), key=record["seed_id"])
        for record, info, seed in pending
    ]
    outputs = backend.generate(requests)
    return [(record, info, seed, outs) for (record, info, seed), outs in zip(pending, outputs, strict=True)]


def _first_usable(
    record: Record,
    completions: list[Completion],
    parse: Callable[[str], tuple[Any, str | None]],
    stats: StageStats,
) -> tuple[Any, Completion] | None:
    """The first completion that ended by itself and parses; a row without one is dropped, kept in
    ``stats.removed`` with its last completion."""
    reasons: list[str] = []
    for completion in completions:
        if completion.finish_reason == "length":
            reasons.append("length")
            continue
        value, reason = parse(completion.text)
        if value is None:
            reasons.append(reason or "unparsable")
            continue
        return value, completion
    last = {"completion": completions[-1].text} if completions else {}
    stats.drop(reasons[-1] if reasons else "no_completion", record={**record, **last})
    return None


def _one_output_per_row(
    step: str,
    rows: list[Record],
    build: Callable[[Record, int], prompts.PromptInfo],
    parse: Callable[[str], tuple[Any, str | None]],
    fields: Callable[[Record, prompts.PromptInfo, Any], dict[str, Any]],
    backend: GenerationBackend,
    settings: StepSettings,
    base_seed: int,
    stats: StageStats,
) -> list[Record]:
    """S->C and C->I: each row keeps its first usable completion, extended by ``fields``."""
    stats.seen(len(rows))
    out = []
    for record, info, seed, completions in _generate(rows, build, backend, settings, base_seed, stats):
        usable = _first_usable(record, completions, parse, stats)
        if usable is None:
            continue
        value, completion = usable
        provenance = _provenance(record, step, info, seed, completion)
        out.append({**record, **fields(record, info, value), "provenance": provenance})
    stats.kept(len(out))
    return out


def concepts_step(
    rows: list[Record],
    fewshot: InstructFewShot,
    backend: GenerationBackend,
    settings: StepSettings,
    base_seed: int,
    stats: StageStats,
) -> list[Record]:
    return _one_output_per_row(
        "concepts",
        rows,
        lambda record, seed: prompts.s2c_prompt(fewshot, record["seed"], seed=seed, shots=settings.shots),
        prompts.parse_concepts,
        lambda record, info, concepts: {
            "concepts_id": records.concepts_id(record["seed_id"], concepts),
            "concepts": concepts,
        },
        backend, settings, base_seed, stats,
    )


def instructions_step(
    rows: list[Record],
    fewshot: InstructFewShot,
    backend: GenerationBackend,
    settings: StepSettings,
    base_seed: int,
    stats: StageStats,
) -> list[Record]:
    """Also counts the kept instructions per sampled category and difficulty (``stats.extra``)."""
    out = _one_output_per_row(
        "instruction",
        rows,
        lambda record, seed: prompts.c2i_prompt(fewshot, record["concepts"], seed=seed, shots=settings.shots),
        prompts.parse_instruction,
        lambda record, info, instruction: {
            "instruction_id": records.instruction_id(record["concepts_id"], instruction),
            "instruction": instruction,
            # The reference lost the sampled properties; they are kept here for the report.
            "category": info.category,
            "difficulty": info.difficulty,
        },
        backend, settings, base_seed, stats,
    )
    for field in ("category", "difficulty"):
        stats.extra[f"{field}_counts"] = dict(sorted(Counter(record[field] for record in out).items()))
    return out


def responses_step(
    rows: list[Record],
    fewshot: InstructFewShot,
    backend: GenerationBackend,
    settings: StepSettings,
    base_seed: int,
    stats: StageStats,
) -> list[Record]:
    """One output record per surviving sample; stats count sample slots (rows x n)."""
    stats.seen(len(rows) * settings.sampling.n)
    stats.extra["instructions"] = len(rows)
    out = []
    generated = _generate(
        rows,
        lambda record, seed: prompts.i2r_prompt(fewshot, record["instruction"], seed=seed, shots=settings.shots),
        backend, settings, base_seed, stats,
    )
    for record, info, seed, completions in generated:
        for index, completion in enumerate(completions):
            sample = {**record, "sample_index": index, "completion": completion.text}
            if completion.finish_reason == "length":
                stats.drop("length", record=sample)
                continue
            parsed, reason = prompts.parse_response(completion.text, fewshot.format)
            if parsed is None:
                stats.drop(reason or "unparsable", record=sample)
                continue
            out.append(
                {
                    **record,
                    "response_id": records.response_id(record["instruction_id"], index, parsed.response),
                    "sample_index": index,
                    "response": parsed.response,
                    "tests": parsed.tests,
                    # selection checks and sanitises a response by the layout it was written in
                    "response_format": fewshot.format.name,
                    "provenance": _provenance(record, "response", info, seed, completion),
                }
            )
    stats.kept(len(out))
    return out
