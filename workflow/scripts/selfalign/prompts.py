"""Completion-mode few-shot prompts for S->C, C->I and I->R, their parsers, and the teacher corpus.

Assembly follows the reference exactly (no chat template)::

    "{system}\\n\\n" + "\\n\\n".join("## Example {k}\\n" + prefix_k + suffix_k)
    + "\\n\\n## Example {K+1}\\n" + query_prefix

then the whole prompt is ``rstrip``ped, so a completion starts with the newline that was removed.
Shots are drawn with ``random.Random(seed).sample`` where ``seed`` is the row's sampling seed, so a
row's prompt depends only on its absolute index. Query templates, the answer layout, stop strings, the
C->I category draw and the response parser come from the few-shot file's format (``formats.py``).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .fewshot import InstructExample, InstructFewShot, JudgeFewShot
from .formats import SCA, PromptFormat, parse_answer
from .judge import JUDGE_SHOTS, judge_document

S2C_STOP = SCA.stops["s2c"]
C2I_STOP = SCA.stops["c2i"]
I2R_STOP = SCA.stops["i2r"]
# function implementation twice: 50/25/25, as the reference's C->I property draw.
CATEGORY_CHOICES = SCA.category_draw
DIFFICULTY_CHOICES = SCA.difficulties
LANGUAGE = "Python"
DEFAULT_SHOTS: dict[str, int] = {"s2c": 8, "c2i": 8, "i2r": 1, "judge": JUDGE_SHOTS}
TEACHER_TASKS = ("s2c", "c2i", "i2r", "judge")

MAX_CONCEPTS = 16  # more than this is a run-on completion, not a concept list
MAX_CONCEPT_CHARS = 100


@dataclass(frozen=True)
class PromptInfo:
    text: str
    fewshot_ids: tuple[str, ...]
    stop: tuple[str, ...]
    category: str | None = None  # C->I only: the sampled property, stored on the record
    difficulty: str | None = None


@dataclass(frozen=True)
class ParsedResponse:
    response: str  # the text inside <response>: prose + code
    tests: str  # the text inside <tests>


# --- per-task prefixes (the query's part) and suffixes (the example's answer), from the format ---------


def _s2c_prefix(fmt: PromptFormat, snippet: str) -> str:
    return fmt.s2c_query.format(snippet=snippet)


def _s2c_suffix(example: InstructExample) -> str:
    return ", ".join(example.concepts)


def property_block(
    category: str, language: str, difficulty: str, concepts: Sequence[str], fmt: PromptFormat = SCA
) -> str:
    return fmt.property_block(
        {"category": category, "language": language, "difficulty": difficulty, "concepts": ", ".join(concepts)}
    )


def _c2i_prefix(fmt: PromptFormat, category: str, language: str, difficulty: str, concepts: Sequence[str]) -> str:
    return fmt.c2i_query.format(property=property_block(category, language, difficulty, concepts, fmt))


def _c2i_example_prefix(fmt: PromptFormat, example: InstructExample) -> str:
    return _c2i_prefix(fmt, example.category, example.language, example.difficulty, example.concepts)


def _c2i_suffix(example: InstructExample) -> str:
    return example.instruction


def _i2r_prefix(fmt: PromptFormat, instruction: str) -> str:
    return fmt.i2r_query.format(instruction=instruction)


def _i2r_suffix(fmt: PromptFormat, example: InstructExample) -> str:
    return fmt.i2r_answer.format(response=example.response, tests=example.tests)


# --- assembly ----------------------------------------------------------------------------------------


def _sample_shots(
    rng: random.Random, examples: Sequence[InstructExample], shots: int, exclude: str | None
) -> list[InstructExample]:
    if shots < 0:
        raise ValueError(f"shots must be >= 0, got {shots}")
    pool = [example for example in examples if example.id != exclude]
    return rng.sample(pool, min(shots, len(pool)))


def _assemble(system: str, shots: Sequence[str], query_prefix: str) -> str:
    examples = "\n\n".join(f"## Example {k}\n{shot}" for k, shot in enumerate(shots, start=1))
    return f"{system}\n\n{examples}\n\n## Example {len(shots) + 1}\n{query_prefix}".rstrip()


def _require_text(name: str, value: str) -> None:
    if not value.strip():
        raise ValueError(f"{name} is empty")


def s2c_prompt(
    fewshot: InstructFewShot, snippet: str, seed: int, shots: int = 8, *, exclude: str | None = None
) -> PromptInfo:
    """Seed snippet -> concepts prompt. ``exclude`` leaves the example with that id out of the shots."""
    _require_text("snippet", snippet)
    fmt = fewshot.format
    chosen = _sample_shots(random.Random(seed), fewshot.examples, shots, exclude)
    rendered = [_s2c_prefix(fmt, example.snippet) + _s2c_suffix(example) for example in chosen]
    text = _assemble(fewshot.system.s2c, rendered, _s2c_prefix(fmt, snippet.rstrip()))
    return PromptInfo(text=text, fewshot_ids=tuple(e.id for e in chosen), stop=fmt.stops["s2c"])


def c2i_prompt(
    fewshot: InstructFewShot,
    concepts: Sequence[str],
    seed: int,
    shots: int = 8,
    *,
    category: str | None = None,
    difficulty: str | None = None,
    exclude: str | None = None,
) -> PromptInfo:
    """Concepts -> instruction prompt with a category and difficulty drawn from the row's rng.

    The draws happen first (as the reference's property draw precedes the shot sample) and always,
    so passing ``category``/``difficulty`` to override them leaves the shot choice unchanged.
    """
    if not concepts or not all(concept.strip() for concept in concepts):
        raise ValueError(f"concepts must be a non-empty list of non-empty strings, got {list(concepts)!r}")
    fmt = fewshot.format
    rng = random.Random(seed)
    drawn_category, drawn_difficulty = rng.choice(fmt.category_draw), rng.choice(fmt.difficulties)
    category, difficulty = category or drawn_category, difficulty or drawn_difficulty
    chosen = _sample_shots(rng, fewshot.examples, shots, exclude)
    rendered = [_c2i_example_prefix(fmt, example) + _c2i_suffix(example) for example in chosen]
    query = _c2i_prefix(fmt, category, LANGUAGE, difficulty, concepts)
    return PromptInfo(
        text=_assemble(fewshot.system.c2i, rendered, query),
        fewshot_ids=tuple(e.id for e in chosen),
        stop=fmt.stops["c2i"],
        category=category,
        difficulty=difficulty,
    )


def i2r_prompt(
    fewshot: InstructFewShot, instruction: str, seed: int, shots: int = 1, *, exclude: str | None = None
) -> PromptInfo:
    """Instruction -> response + tests prompt; shots come from the examples eligible for I->R."""
    _require_text("instruction", instruction)
    fmt = fewshot.format
    chosen = _sample_shots(random.Random(seed), fewshot.i2r_examples, shots, exclude)
    rendered = [_i2r_prefix(fmt, example.instruction) + _i2r_suffix(fmt, example) for example in chosen]
    text = _assemble(fewshot.system.i2r, rendered, _i2r_prefix(fmt, instruction.strip()))
    return PromptInfo(text=text, fewshot_ids=tuple(e.id for e in chosen), stop=fmt.stops["i2r"])


# --- parsing: every parser returns (value, None) or (None, drop reason) --------------------------


def parse_concepts(text: str) -> tuple[list[str] | None, str | None]:
    concepts = [part.strip() for part in text.split(",") if part.strip()]
    if not concepts:
        return None, "no_concepts"
    if len(concepts) > MAX_CONCEPTS:
        return None, "too_many_concepts"
    if any(len(concept) > MAX_CONCEPT_CHARS for concept in concepts):
        return None, "concept_too_long"
    return concepts, None


def parse_instruction(text: str) -> tuple[str | None, str | None]:
    instruction = text.strip()
    if not instruction:
        return None, "empty_instruction"
    return instruction, None


def parse_response(text: str, fmt: PromptFormat = SCA) -> tuple[ParsedResponse | None, str | None]:
    """Split an I->R completion into the response and the tests, by the format's markers.

    The completion is cut before a stop string (``</tests>`` in ``sca``), so a missing final tag is normal.
    """
    parsed, reason = parse_answer(fmt, text)
    if parsed is None:
        return None, reason
    return ParsedResponse(response=parsed[0], tests=parsed[1]), None


# --- teacher corpus: prompt + the exact completion the pipeline expects --------------------------


def _continuation(prompt: PromptInfo, untrimmed_tail: str, answer: str, stop_tail: str) -> str:
    """Prompt text + what the model must emit: the whitespace ``rstrip`` removed, the answer, the stop."""
    removed = untrimmed_tail[len(untrimmed_tail.rstrip()) :]
    return prompt.text + removed + answer + stop_tail


def _next_example_header(prompt: PromptInfo) -> str:
    # After the query (example K+1) the model should open example K+2, which the stop string cuts.
    return f"\n\n## Example {len(prompt.fewshot_ids) + 2}"


def s2c_document(
    fewshot: InstructFewShot, example: InstructExample, seed: int, shots: int, snippet: str | None = None
) -> str:
    """``snippet`` replaces the example's own snippet as the query (the answer stays the example's concepts)."""
    query = example.snippet if snippet is None else snippet
    prompt = s2c_prompt(fewshot, query, seed, shots, exclude=example.id)
    return _continuation(prompt, _s2c_prefix(fewshot.format, query), _s2c_suffix(example), _next_example_header(prompt))


def c2i_document(fewshot: InstructFewShot, example: InstructExample, seed: int, shots: int) -> str:
    prompt = c2i_prompt(
        fewshot,
        example.concepts,
        seed,
        shots,
        category=example.category,
        difficulty=example.difficulty,
        exclude=example.id,
    )
    tail = _c2i_example_prefix(fewshot.format, example)
    return _continuation(prompt, tail, _c2i_suffix(example), _next_example_header(prompt))


def i2r_document(fewshot: InstructFewShot, example: InstructExample, seed: int, shots: int) -> str:
    prompt = i2r_prompt(fewshot, example.instruction, seed, shots, exclude=example.id)
    fmt = fewshot.format
    # The sca answer ends with its stop string </tests>; an sc2 answer is followed by the next example.
    stop_tail = "" if any(stop in _i2r_suffix(fmt, example) for stop in fmt.stops["i2r"]) else _next_example_header(prompt)
    return _continuation(prompt, _i2r_prefix(fmt, example.instruction), _i2r_suffix(fmt, example), stop_tail)


_INSTRUCT_DOCUMENTS: dict[str, Callable[[InstructFewShot, InstructExample, int, int], str]] = {
    "s2c": s2c_document,
    "c2i": c2i_document,
    "i2r": i2r_document,
}


def teacher_documents(
    fewshot: InstructFewShot,
    judge_fewshot: JudgeFewShot,
    count: int,
    seed: int,
    shots: Mapping[str, int] | None = None,
    weights: Mapping[str, int] | None = None,
    foreign_snippets: Sequence[str] = (),
) -> list[str]:
    """``count`` training documents for a demo teacher, cycling S->C, C->I, I->R and judge
    (``weights`` repeats a task in the cycle: {"i2r": 3} gives I->R three documents per cycle).
    With ``foreign_snippets``, every other S->C document queries one of them (answered with a random
    example's concepts), so a toy model learns to answer the format for code it has never seen.

    Each document is a real pipeline prompt whose query is one of the examples (left out of its own
    shots) followed by the completion the pipeline expects, stop string included, so the model
    learns both the format and where to stop.
    """
    unknown = set(shots or {}) - set(DEFAULT_SHOTS)
    if unknown:
        raise ValueError(f"unknown tasks in shots: {sorted(unknown)} (known: {', '.join(DEFAULT_SHOTS)})")
    per_task = {**DEFAULT_SHOTS, **(shots or {})}
    cycle = [task for task in TEACHER_TASKS for _ in range((weights or {}).get(task, 1))]
    rng = random.Random(seed)
    documents = []
    for index in range(count):
        task = cycle[index % len(cycle)]
        document_seed = rng.randrange(2**32)
        if task == "judge":
            example_id = rng.choice(judge_fewshot.examples).id
            documents.append(judge_document(judge_fewshot, example_id, document_seed, per_task["judge"]))
        elif task == "s2c" and foreign_snippets and rng.random() < 0.5:
            example = rng.choice(fewshot.examples)
            snippet = rng.choice(foreign_snippets)
            documents.append(s2c_document(fewshot, example, document_seed, per_task["s2c"], snippet=snippet))
        else:
            example = rng.choice(fewshot.examples)
            documents.append(_INSTRUCT_DOCUMENTS[task](fewshot, example, document_seed, per_task[task]))
    return documents
