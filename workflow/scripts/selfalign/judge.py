"""The LLM docstring judge: split a seed into code + docstring, build the issue-style prompt, read the verdict.

The base model is asked, in StarCoder's GitHub-issue format, whether the docstring alone is enough to
re-implement the function and matches it. Decoding is greedy for a few tokens; the verdict is read
from the text by counting "yes" and "no", as the reference does (no logits).
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .fewshot import JudgeExample, JudgeFewShot, JudgeTemplates
from .generation import GenerationBackend, GenerationRequest, SamplingSpec
from .shards import Record, StageStats

JUDGE_SHOTS = 7
JUDGE_TEMPERATURE = 0.0  # greedy
JUDGE_MAX_NEW_TOKENS = 5
JUDGE_STOP = ("\n",)
JUDGE_SAMPLING = SamplingSpec(n=1, temperature=JUDGE_TEMPERATURE, max_new_tokens=JUDGE_MAX_NEW_TOKENS, stop=JUDGE_STOP)

_QUOTES = ('"""', "'''")
_STRING_PREFIXES = "rRuU"


def _find_docstring_literal(source: str) -> tuple[int, int, int] | None:
    """(start of the literal, start of its body, end of the literal) for the first triple-quoted string."""
    found = [(source.find(quote), quote) for quote in _QUOTES if quote in source]
    if not found:
        return None
    open_at, quote = min(found)
    close_at = source.find(quote, open_at + 3)
    if close_at < 0:
        return None
    start = open_at
    if start > 0 and source[start - 1] in _STRING_PREFIXES and (start < 2 or not source[start - 2].isalnum()):
        start -= 1  # r"""...""": the prefix belongs to the literal
    return start, open_at + 3, close_at + 3


def split_docstring(function_source: str) -> tuple[str, str] | None:
    """Return (code without the docstring literal, cleaned docstring), or None if there is no docstring.

    As the reference: the docstring is the text between the first triple quote and the next one.
    ``'''`` docstrings are accepted too. A line left blank by the removal is dropped with it.
    """
    located = _find_docstring_literal(function_source)
    if located is None:
        return None
    start, body_start, end = located
    docstring = inspect.cleandoc(function_source[body_start : end - 3]).strip()
    if not docstring:
        return None
    line_start = function_source.rfind("\n", 0, start) + 1
    line_end = function_source.find("\n", end)
    line_end = len(function_source) if line_end < 0 else line_end
    before, after = function_source[line_start:start], function_source[end:line_end]
    if not before.strip() and not after.strip():
        # The literal sat on lines of its own: remove those lines whole, newline included.
        code = function_source[:line_start] + function_source[line_end + 1 :]
    else:
        code = function_source[:start] + function_source[end:]
    return code.rstrip(), docstring


def _question(templates: JudgeTemplates, code: str, docstring: str) -> str:
    return templates.question.format(code=code.rstrip(), docstring=docstring.strip())


def _shot(templates: JudgeTemplates, example: JudgeExample) -> str:
    verdict = templates.verdict.format(answer=example.answer, rationale=example.rationale, upvotes=example.upvotes)
    return _question(templates, example.code, example.docstring) + templates.lead_in + verdict


def judge_prompt(
    judge_fewshot: JudgeFewShot,
    code: str,
    docstring: str,
    seed: int,
    shots: int = JUDGE_SHOTS,
    *,
    exclude: str | None = None,
) -> str:
    """The judge prompt for one function: shuffled shots, then the query ending with ``My answer is:``.

    Shots are drawn (without replacement, so with all of them: reshuffled) by ``random.Random(seed)``
    and concatenated with no separator, as the reference does. ``exclude`` leaves out the example with
    that id (used when the query is itself an example).
    """
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    pool = [example for example in judge_fewshot.examples if example.id != exclude]
    chosen = random.Random(seed).sample(pool, min(shots, len(pool)))
    templates = judge_fewshot.templates
    query = _question(templates, code, docstring) + templates.query_upvotes + templates.lead_in
    return "".join(_shot(templates, example) for example in chosen) + query


def judge_answer_completion(judge_fewshot: JudgeFewShot, example: JudgeExample) -> str:
    """What the model should emit after ``My answer is:`` for ``example``: the verdict up to the stop."""
    verdict = judge_fewshot.templates.verdict.format(
        answer=example.answer, rationale=example.rationale, upvotes=example.upvotes
    )
    return verdict[: verdict.index(JUDGE_STOP[0]) + len(JUDGE_STOP[0])]


def judge_document(judge_fewshot: JudgeFewShot, example_id: str, seed: int, shots: int = JUDGE_SHOTS) -> str:
    """A teacher training document: the judge prompt for one example (not among its own shots) + its answer."""
    by_id = {example.id: example for example in judge_fewshot.examples}
    if example_id not in by_id:
        raise KeyError(f"{judge_fewshot.path}: no judge example with id '{example_id}'")
    example = by_id[example_id]
    prompt = judge_prompt(judge_fewshot, example.code, example.docstring, seed, shots, exclude=example_id)
    return prompt + judge_answer_completion(judge_fewshot, example)


def judge_verdict(text: str) -> bool:
    """Keep the function iff the answer says "yes" more often than "no" (ties and empty text: No)."""
    lowered = text.lower()
    return lowered.count("yes") > lowered.count("no")


@dataclass(frozen=True)
class JudgeSettings:
    """``seeds.judge``, typed once in the rule script."""

    enabled: bool = True
    shots: int = JUDGE_SHOTS
    max_prompt_tokens: int = 4000

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> JudgeSettings:
        return cls(
            enabled=bool(section["enabled"]),
            shots=int(section["shots"]),
            max_prompt_tokens=int(section["max_prompt_tokens"]),
        )


def removed_record(record: Record, reason: str, answer: str | None = None) -> Record:
    """One row of ``judged/{shard}.removed.jsonl``: the seed, why it was dropped, the model's answer."""
    return {"seed_id": record["seed_id"], "source": record["source"], "stage": "judge", "reason": reason,
            "answer": answer, "seed": record["seed"]}  # fmt: skip


def judge_stage(
    records: list[Record],
    fewshot: JudgeFewShot,
    backend: GenerationBackend,
    settings: JudgeSettings,
    stats: StageStats,
    removed: list[Record] | None = None,
) -> list[Record]:
    """The seeds whose docstring the model judges good enough to re-implement the function; every other
    seed is counted by reason (no docstring, prompt too long, judged no) and, with ``removed``, appended
    there (``removed_record``). The answers go to ``stats.extra``."""
    removed = [] if removed is None else removed
    limit = min(settings.max_prompt_tokens, backend.max_context - JUDGE_MAX_NEW_TOKENS)
    candidates, requests = [], []
    for record in records:
        parts = split_docstring(record["seed"])
        if parts is None:
            stats.drop("no_docstring")
            removed.append(removed_record(record, "no_docstring"))
            continue
        code, docstring = parts
        # Shot order is reshuffled per prompt with a seed derived from the seed's content id, so a
        # function gets the same prompt whatever shard or position it lands in.
        prompt = judge_prompt(fewshot, code, docstring, seed=int(record["seed_id"][2:10], 16), shots=settings.shots)
        if backend.count_tokens(prompt) > limit:
            stats.drop("prompt_too_long")
            removed.append(removed_record(record, "prompt_too_long"))
            continue
        candidates.append(record)
        requests.append(GenerationRequest(prompt=prompt, spec=JUDGE_SAMPLING, key=record["seed_id"]))
    completions = backend.generate(requests)
    answers = {"yes": 0, "no": 0}
    kept = []
    for record, (completion,) in zip(candidates, completions, strict=True):
        if judge_verdict(completion.text):
            answers["yes"] += 1
            kept.append(record)
        else:
            answers["no"] += 1
            stats.drop("judged_no")
            removed.append(removed_record(record, "judged_no", completion.text))
    stats.extra["answers"] = answers
    return kept
