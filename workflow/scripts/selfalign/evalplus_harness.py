"""The program that runs one EvalPlus solution inside the sandbox, and the value format it reports in.

Standard library only: its source (with evalplus's own ``evalplus/eval/utils.py``: ``reliability_guard``,
``swallow_io``, ``time_limit``, ``create_tempdir``) is pasted into each sample's program, so the
sandbox needs neither evalplus nor numpy (an Apptainer image with the bare standard library runs it).

What a solution's code can and cannot do to its score: the harness only *reports the values* the
solution returns for each input (encoded with ``encode``, builtin types only: a custom ``__eq__`` never
reaches the comparison); the expected outputs never enter the sandbox, and the trusted parent process
compares (``evalplus_scoring.set_status``). A solution can write anything to the result stream, but
to pass it must write the right values, which is solving the problem. Each solution is its own sample,
so it cannot touch another solution's result.

Per test set (base, plus) the harness forks a child, as evalplus runs each set in its own process:
the child applies evalplus's guard, executes the solution, calls the entry point on each input under
evalplus's per-input time limit and reports each output as one line; it stops at the first exception
(evalplus's fast check: any exception fails the set). The parent kills the child at evalplus's
time limit for the whole set. Lines (JSON arrays) on the result stream (the sample's stdout; the
solution's own stdout goes to /dev/null):
  ["ready"]                       the harness started (written before any solution code runs)
  ["loaded", set]                 the solution was executed and defines the entry point
  ["out", set, index, value]      the output for one input
  ["err", set, index, message]    an exception (index -1: while loading)
"""

from __future__ import annotations

import base64
import json
import math
import numbers
import os
import select
import signal
import types
from typing import Any

MAX_DEPTH = 100
SMALL_INT = 10**18  # larger ints travel as hex: JSON readers limit the digits of an int


def encode(value: Any, depth: int = 0) -> Any:
    """A JSON-ready form of a builtin value (subclasses as their builtin base, numpy scalars as their
    value); anything else raises TypeError. Unbound builtin methods are used throughout, so that an
    overridden method of a subclass is never called."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    kind = type(value)
    if value is None or kind is bool:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int) and not isinstance(value, bool):
        number = int.__index__(value)
        return number if abs(number) < SMALL_INT else ["i", hex(number)]
    if isinstance(value, float):
        number = float.__float__(value)
        return number if math.isfinite(number) else ["x", repr(number)]
    if isinstance(value, complex):
        number = complex.__complex__(value)
        return ["c", encode(number.real, depth + 1), encode(number.imag, depth + 1)]
    if isinstance(value, (bytes, bytearray)):
        return ["b", base64.b64encode(bytes(memoryview(value))).decode("ascii")]
    for base, tag in ((list, "l"), (tuple, "t"), (set, "s"), (frozenset, "f")):
        if isinstance(value, base):
            return [tag, [encode(item, depth + 1) for item in base.__iter__(value)]]
    if isinstance(value, dict):
        return ["d", [[encode(k, depth + 1), encode(v, depth + 1)] for k, v in dict.items(value)]]
    if kind.__module__ == "numpy" and (isinstance(value, numbers.Number) or kind.__name__ == "bool_"):
        return encode(value.item(), depth + 1)  # numpy scalars compare equal to their value
    raise TypeError(f"cannot report a value of type {kind.__module__}.{kind.__qualname__}")


def decode(data: Any, depth: int = 0) -> Any:
    """The value ``encode`` wrote; raises ValueError on anything it would not write."""
    if depth > MAX_DEPTH:
        raise ValueError("value nested too deeply")
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if not isinstance(data, list) or not data or not isinstance(data[0], str):
        raise ValueError("not an encoded value")
    tag, rest = data[0], data[1:]
    if tag in ("l", "t", "s", "f") and len(rest) == 1 and isinstance(rest[0], list):
        items = [decode(item, depth + 1) for item in rest[0]]
        return {"l": list, "t": tuple, "s": set, "f": frozenset}[tag](items)
    if tag == "d" and len(rest) == 1 and isinstance(rest[0], list):
        return {decode(k, depth + 1): decode(v, depth + 1) for k, v in rest[0]}
    if tag == "i" and len(rest) == 1 and isinstance(rest[0], str):
        return int(rest[0], 16)
    if tag == "x" and rest in (["nan"], ["inf"], ["-inf"]):
        return float(rest[0])
    if tag == "c" and len(rest) == 2:
        return complex(decode(rest[0], depth + 1), decode(rest[1], depth + 1))
    if tag == "b" and len(rest) == 1 and isinstance(rest[0], str):
        return base64.b64decode(rest[0], validate=True)
    raise ValueError(f"unknown value tag {tag!r}")


def _write(fd: int, line: list) -> None:
    data = (json.dumps(line) + "\n").encode()
    while data:
        data = data[os.write(fd, data) :]


def _run_set(job: dict, index: int, utils: types.ModuleType, out: int) -> None:
    """The child of one test set: what ``evalplus.eval.unsafe_execute`` does, minus the comparison."""
    test_set = job["sets"][index]
    inputs = decode(test_set["inputs"])
    with utils.create_tempdir():
        utils.reliability_guard(maximum_memory_bytes=None)  # the sandbox's rlimits cap memory
        exec_globals: dict = {}
        try:
            with utils.swallow_io():
                exec(job["solution"], exec_globals)
                fn = exec_globals[job["entry_point"]]
        except BaseException as error:  # noqa: BLE001 - as evalplus: anything ends the set as failed
            _write(out, ["err", index, -1, type(error).__name__])
            return
        _write(out, ["loaded", index])
        for i, (inp, limit) in enumerate(zip(inputs, test_set["time_limits"])):
            try:
                with utils.time_limit(limit):
                    with utils.swallow_io():
                        output = fn(*inp)
                line = ["out", index, i, encode(output)]
            except BaseException as error:  # noqa: BLE001
                _write(out, ["err", index, i, type(error).__name__])
                return
            _write(out, line)


def _wait(pid: int, seconds: float) -> None:
    """Wait for the child at most ``seconds``, then kill it (evalplus's join timeout)."""
    pidfd = os.pidfd_open(pid)
    try:
        if not select.select([pidfd], [], [], seconds)[0]:
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    os.waitpid(pid, 0)


def run(job_json: str, utils_source: str) -> None:
    """Check one solution on every test set of ``job_json``, reporting on stdout (see the module docstring)."""
    job = json.loads(job_json)
    utils = types.ModuleType("evalplus_eval_utils")
    exec(compile(utils_source, "evalplus/eval/utils.py", "exec"), utils.__dict__)
    out = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # whatever the solution prints, even through the descriptor, is not a result
    os.close(null)
    _write(out, ["ready"])
    for index, test_set in enumerate(job["sets"]):
        pid = os.fork()
        if pid == 0:
            try:
                _run_set(job, index, utils, out)
            finally:
                os._exit(0)
        _wait(pid, test_set["seconds"])
