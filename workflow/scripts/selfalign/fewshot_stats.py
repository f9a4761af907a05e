"""Length statistics of a few-shot file's I->R answers, to compare this project's examples with the
reference's: how much prose a response has (reasoning before the code, explanation after it, the
sentence introducing the tests), how long its code is and how many asserts its tests make."""

from __future__ import annotations

import re
import statistics
from dataclasses import dataclass

from .fewshot import InstructExample, InstructFewShot

_FENCED = re.compile(r"```.*?```", re.DOTALL)
_SECTION_TAG = re.compile(r"\[(?:Reasoning|Implementation|Explanation|Tests)\]")
_ASSERT = re.compile(r"^\s*assert\b", re.MULTILINE)


@dataclass(frozen=True)
class AnswerStats:
    prose_words: int  # words outside code blocks in the response (reasoning, explanation), section tags excluded
    test_prose_words: int  # words outside code blocks in the tests
    code_lines: int  # non-blank lines in the response's code blocks
    test_asserts: int  # assert statements in the tests


def prose_words(text: str) -> int:
    return len(_SECTION_TAG.sub(" ", _FENCED.sub(" ", text)).split())


def code_lines(text: str) -> int:
    return sum(1 for block in _FENCED.findall(text) for line in block.splitlines()[1:-1] if line.strip())


def answer_stats(example: InstructExample) -> AnswerStats:
    return AnswerStats(
        prose_words=prose_words(example.response),
        test_prose_words=prose_words(example.tests),
        code_lines=code_lines(example.response),
        test_asserts=len(_ASSERT.findall(example.tests)),
    )


def summary(fewshot: InstructFewShot) -> dict[str, float]:
    """Medians over the examples used as I->R shots, plus their count."""
    rows = [answer_stats(example) for example in fewshot.i2r_examples]
    return {
        "examples": len(fewshot.examples),
        "i2r_examples": len(rows),
        "median_prose_words": statistics.median(row.prose_words for row in rows),
        "median_test_prose_words": statistics.median(row.test_prose_words for row in rows),
        "median_code_lines": statistics.median(row.code_lines for row in rows),
        "median_test_asserts": statistics.median(row.test_asserts for row in rows),
    }
