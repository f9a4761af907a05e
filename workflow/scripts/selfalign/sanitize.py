"""The SC2 flow's final sanitisation ("smart" mode of the reference's SC2 sanitize step), per training pair.

The selected responses are written in the four-section layout (``formats.SC2``). For the training set:

- the section tags go and the kept sections are joined by blank lines;
- the tests section is dropped unless the instruction mentions "test"; the explanation and the
  reasoning are each dropped with probability 0.5;
- ``#`` comment lines inside code blocks are removed (with a blank line just before one);
- with probability 0.5, when the tests were dropped and the instruction shows no assert, "for example"
  or "test", one to five of the test asserts (or the whole test block when it is not only asserts, at
  most five lines) are appended to the instruction.

Draws come from a generator seeded by the run's seed and the pair's response id, so a pair's result
does not depend on its position or shard (the reference drew from one global ``random.seed(0)`` stream).
The appended sentence is this project's wording.
"""

from __future__ import annotations

import random
from typing import Any

from .formats import SC2, section_texts
from .programs import code_block_spans, extract_code_blocks
from .records import content_hash
from .selection import INCOMPLETE_MARKERS, cut_tests

ASSERTION_NOTE = "Make sure your code satisfies the following {term}:\n```python\n{code}\n```"
SANITIZE_MODES = ("none", "smart")


def remove_comment_lines(content: str) -> str:
    """``content`` with the comment lines of its code blocks removed, as the reference's SC2 helper."""
    pieces: list[str] = []
    position = 0
    for start, end in code_block_spans(content):
        pieces.append(content[position:start])
        lines = content[start:end].splitlines(keepends=True)
        kept: list[str] = []
        index = 0
        while index < len(lines):
            line = lines[index]
            if index != 0 and index + 1 < len(lines) and not line.strip() and lines[index + 1].lstrip().startswith("#"):
                index += 2  # a blank line and the comment after it
                continue
            if line.lstrip().startswith("#"):
                index += 1
                continue
            kept.append(line)
            index += 1
        pieces.append("".join(kept))
        position = end
    pieces.append(content[position:])
    return "".join(pieces)


def smart_sanitize(record: dict[str, Any], seed: int) -> dict[str, Any] | None:
    """The training pair for one selected SC2-layout record, or None when it must be dropped."""
    if record.get("response_format") != SC2.name:
        return record
    response, tests, instruction = record["response"], record["tests"], record["instruction"]
    if any(marker in (response + "\n" + tests).lower() for marker in INCOMPLETE_MARKERS):
        return None
    rng = random.Random(int(content_hash(seed, record["response_id"]), 16))
    sections = section_texts(SC2, response)
    reasoning, implementation, explanation = (sections[m] for m in SC2.response_sections)
    tests = cut_tests(tests)
    drop_tests = "test" not in instruction.lower()
    drop_explanation = rng.random() < 0.5
    drop_reasoning = rng.random() < 0.5
    contents = [
        part
        for part, dropped in ((reasoning, drop_reasoning), (implementation, False), (explanation, drop_explanation), (tests, drop_tests))
        if not dropped
    ]
    blocks = extract_code_blocks(tests, "python")
    block = blocks[0] if blocks else ""
    lines = block.splitlines()
    if lines and all(line.startswith("assert") for line in lines):
        chosen = rng.sample(lines, k=min(rng.choice([1, 2, 3, 4, 5]), len(lines)))
        assertion, term = "\n".join(chosen), "assertion" + ("s" if len(chosen) > 1 else "")
    else:
        assertion, term = block, "test case"
    if (
        "assert" in assertion
        and len(assertion.splitlines()) <= 5
        and rng.random() < 0.5
        and "assert" not in instruction
        and "for example" not in instruction.lower()
        and "test" not in instruction.lower()
    ):
        instruction = instruction + "\n\n" + ASSERTION_NOTE.format(term=term, code=assertion.strip())
    return {**record, "instruction": instruction, "response": remove_comment_lines("\n\n".join(contents))}
