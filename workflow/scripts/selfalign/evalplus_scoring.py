"""EvalPlus scoring (HumanEval(+), MBPP(+)): prompts, solutions, sandboxed checks, greedy pass@1.

Prompts follow the reference's EvalPlus evaluation (section 9.1 of its SC2 script) in our own wording:

- tuned model (``instruct``): the SFT prompt layout (``format_instruct_prompt``) with a response prefix;
  HumanEval hands over the signature and the model continues the body; MBPP gives the task's
  description, a sentence, and its first assertion in a fence, the response opening a Python fence;
- base model (``completion``): the raw problem prompt, cut at the first top-level statement after it.

Checking follows evalplus's own: the expected outputs come from ``evalplus.evaluate.get_groundtruth``
(the canonical solution run on the base and plus inputs, trusted, in this process). Each solution is
one sandbox sample running ``evalplus_harness``: per test set a child process with evalplus's
``reliability_guard``, its per-input time limits and its time limit per set, reporting the values the
solution returns; those values are compared here with evalplus's comparison (special oracles and
tolerances included, ``set_status``), so nothing the solution's code does inside the sandbox can
write its verdict. "plus" counts a problem solved when both base and plus pass.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from selfalign import evalplus_harness as harness
from selfalign.generation import GenerationRequest, SamplingSpec
from selfalign.humaneval import COMPLETION_STOP, INSTRUCT_STOP, STYLES, format_instruct_prompt, instruct_parts
from selfalign.sandbox import Limits, Sandbox, run_many

MBPP_ASSERTION_SENTENCE = "Your code is checked with this assertion:"
PASS = "pass"
SETS = ("base", "plus")
HARNESS_SOURCE = Path(harness.__file__).read_text(encoding="utf-8")


def mbpp_instruction(problem: Mapping[str, Any]) -> str:
    """MBPP+ prompts are a docstring: the task's description, then its first ``assert`` line."""
    prompt = problem["prompt"]
    start, end = prompt.find('"""'), prompt.rfind('"""')
    inner = prompt[start + 3 : end] if 0 <= start < end else prompt
    description, separator, assertion = inner.partition("assert")
    if not separator:
        raise ValueError(f"{problem['task_id']}: the MBPP prompt has no assertion")
    description = description.strip()
    if not description.endswith((".", "?", "!")):
        description += "."
    return f"{description}\n\n{MBPP_ASSERTION_SENTENCE}\n```python\nassert {assertion.strip()}\n```"


def instruct_prompt_parts(benchmark: str, problem: Mapping[str, Any]) -> tuple[str, str]:
    """(instruction, response prefix) of a problem for a tuned model."""
    if benchmark == "humaneval":
        return instruct_parts(dict(problem))
    return mbpp_instruction(problem), "```python"


def build_requests(
    benchmark: str, problems: Sequence[Mapping[str, Any]], style: str, max_new_tokens: int, bos: str = ""
) -> list[GenerationRequest]:
    """One greedy request per problem, keyed by task id."""
    if style not in STYLES:
        raise ValueError(f"unknown prompt style {style!r}: expected one of {STYLES}")
    spec = SamplingSpec(
        n=1, temperature=0.0, max_new_tokens=max_new_tokens,
        stop=INSTRUCT_STOP if style == "instruct" else COMPLETION_STOP,
    )
    requests = []
    for problem in problems:
        if style == "instruct":
            instruction, prefix = instruct_prompt_parts(benchmark, problem)
            prompt = format_instruct_prompt(instruction, prefix)
        else:
            prompt = problem["prompt"]
        requests.append(GenerationRequest(prompt=bos + prompt, spec=spec, key=problem["task_id"]))
    return requests


def completion_to_solution(benchmark: str, problem: Mapping[str, Any], style: str, text: str) -> str:
    """The program evalplus checks (its ``solution`` field): prompt + completion, code fences removed."""
    if style == "completion":
        return problem["prompt"] + text
    # A model that opens a new fence restarts the code there; the first closing fence ends it.
    body = text.split("```python")[-1].split("```")[0]
    if benchmark == "humaneval" and not _defines(body, problem["entry_point"]):
        return problem["prompt"].rstrip() + body  # the body continues right after the docstring
    return problem["prompt"] + "\n" + body  # a complete definition replaces a docstring-only one


def _defines(code: str, name: str) -> bool:
    import re

    return re.search(rf"^(async\s+)?def\s+{re.escape(name)}\s*\(", code, re.MULTILINE) is not None


def canonical_solution(problem: Mapping[str, Any]) -> str:
    return problem["prompt"] + problem["canonical_solution"]


def expected_outputs(benchmark: str, problems: Mapping[str, dict], md5: str) -> dict[str, dict]:
    """evalplus's ground truth (cached in its cache dir under the data file's md5)."""
    from evalplus.eval._special_oracle import MBPP_OUTPUT_NOT_NONE_TASKS
    from evalplus.evaluate import get_groundtruth

    return get_groundtruth(problems, md5, MBPP_OUTPUT_NOT_NONE_TASKS if benchmark == "mbpp" else [])


def _time_limits(ref_time: Sequence[float]) -> tuple[list[float], float]:
    """evalplus's per-input limits and how long its parent waits for a whole test set (``untrusted_check``
    with fast_check: ``min(EVALPLUS_TIMEOUT_PER_TASK, sum) + 1``, then ``join(timeout + 1)``)."""
    from evalplus.config import DEFAULT_GT_TIME_LIMIT_FACTOR, DEFAULT_MIN_TIME_LIMIT

    limits = [max(DEFAULT_MIN_TIME_LIMIT, DEFAULT_GT_TIME_LIMIT_FACTOR * t) for t in ref_time]
    per_task = float(os.environ.get("EVALPLUS_TIMEOUT_PER_TASK", 60))
    return limits, min(per_task, sum(limits)) + 2


def _evalplus_utils_source() -> str:
    import evalplus.eval.utils

    return Path(evalplus.eval.utils.__file__).read_text(encoding="utf-8")


def check_program(benchmark: str, problem: Mapping[str, Any], solution: str, expected: Mapping[str, Any]) -> tuple[str, float]:
    """The sandbox program that checks one solution (``evalplus_harness``), and the seconds its test sets
    may take. Only the inputs and time limits go in; the expected outputs stay here."""
    sets, seconds = [], 0.0
    for name in SETS:
        time_limits, set_seconds = _time_limits(expected[f"{name}_time"])
        inputs = harness.encode(list(problem[f"{name}_input"]))
        sets.append({"name": name, "inputs": inputs, "time_limits": time_limits, "seconds": set_seconds})
        seconds += set_seconds
    job = {"dataset": benchmark, "entry_point": problem["entry_point"], "solution": solution, "sets": sets}
    program = (
        HARNESS_SOURCE
        + f"\n\nif __name__ == '__main__':\n    run({json.dumps(job)!r}, {_evalplus_utils_source()!r})\n"
    )
    return program, seconds


def read_report(stdout: str) -> tuple[bool, dict[tuple[int, int], tuple[str, Any]], set[int]]:
    """(harness started, (set, input) -> ("out", value) or ("err", name), sets whose solution loaded)
    from the result stream. Every line is untrusted: malformed ones are skipped, and the first line for
    an input counts."""
    ready, results, loaded = False, {}, set()
    for line in stdout.splitlines():
        try:
            row = json.loads(line)
            if row == ["ready"]:
                ready = True
            elif row[0] == "loaded" and isinstance(row[1], int):
                loaded.add(row[1])
            elif row[0] in ("out", "err") and isinstance(row[1], int) and isinstance(row[2], int):
                key = (row[1], row[2])
                if key not in results:
                    results[key] = ("out", harness.decode(row[3])) if row[0] == "out" else ("err", str(row[3]))
        except (ValueError, TypeError, IndexError, KeyError, RecursionError, OverflowError):
            continue
    return ready, results, loaded


def _matches(benchmark: str, entry_point: str, inp: Sequence[Any], out: Any, exp: Any, atol: float) -> tuple[bool, float]:
    """evalplus's comparison (``unsafe_execute``), special oracles included, on builtin values only;
    (match, the atol in force for the next inputs: evalplus raises it to 1e-6 once a float is expected)."""
    import numpy as np
    from evalplus.eval import is_floats
    from evalplus.eval._special_oracle import (
        MBPP_OUTPUT_NOT_NONE_TASKS, MBPP_OUTPUT_SET_EQ_TASKS, _digit_distance_nums, _poly, _surface_Area,
    )

    try:
        exact_match = out == exp
        if benchmark == "mbpp":
            if entry_point == "are_equivalent":
                exact_match = True
            elif entry_point == "sum_div":
                exact_match = exact_match or out == 0
            elif entry_point == "surface_Area":
                exact_match = exact_match or abs(out - _surface_Area(*inp)) <= atol
            elif entry_point == "digit_distance_nums":
                exact_match = exact_match or out == _digit_distance_nums(*inp)
            elif entry_point in MBPP_OUTPUT_SET_EQ_TASKS:
                exact_match = set(out) == set(exp)
            elif entry_point in MBPP_OUTPUT_NOT_NONE_TASKS:
                exact_match = out == exp if isinstance(out, bool) else exp == (out is not None)
        if benchmark == "humaneval" and entry_point == "find_zero":
            return bool(abs(_poly(*inp, out)) <= atol), atol
        if atol == 0 and is_floats(exp):
            atol = 1e-6
        if not exact_match and atol != 0:
            if type(out) is not type(exp) or (isinstance(exp, (list, tuple)) and len(out) != len(exp)):
                return False, atol
            return bool(np.allclose(out, exp, rtol=1e-07, atol=atol)), atol
        return bool(exact_match), atol
    except Exception:  # noqa: BLE001 - evalplus counts an error while comparing as a failure
        return False, atol


def set_status(
    benchmark: str, problem: Mapping[str, Any], index: int, expected: Sequence[Any],
    results: Mapping[tuple[int, int], tuple[str, Any]], loaded: set[int],
) -> str:
    """evalplus's status of one test set, from the reported values: "fail" at the first wrong output or
    exception (as its fast check stops there), "timeout" where the child ended or was killed with no
    report for the next input (evalplus's unknown status), else "pass"."""
    if (index, -1) in results:
        return "fail"  # the solution did not load, or lacks the entry point
    if index not in loaded:
        return "timeout"
    atol = problem["atol"]
    for i, inp in enumerate(problem[f"{SETS[index]}_input"]):
        if (index, i) not in results:
            return "timeout"
        kind, value = results[(index, i)]
        if kind == "err":
            return "fail"
        ok, atol = _matches(benchmark, problem["entry_point"], inp, value, expected[i], atol)
        if not ok:
            return "fail"
    return "pass"


def check_solutions(
    benchmark: str,
    problems: Mapping[str, dict],
    solutions: Mapping[str, str],
    expected: Mapping[str, dict],
    sandbox: Sandbox,
    limits: Limits,
    workers: int,
    infra_retries: int = 2,
) -> dict[str, dict[str, str]]:
    """task id -> {"base": status, "plus": status}, statuses as evalplus reports them (pass, fail,
    timeout). Each solution is its own sandbox sample (``evalplus_harness``) and is judged here, on the
    values it reported. ``limits`` are the execution limits: their wall and CPU seconds are the margin
    for starting and loading on top of evalplus's time limits for the test sets. A sample that the
    sandbox could not run, or whose harness did not start, raises: counting it as a failure would
    report a wrong number."""
    task_ids = list(solutions)
    programs, sample_limits = [], []
    for task_id in task_ids:
        program, seconds = check_program(benchmark, problems[task_id], solutions[task_id], expected[task_id])
        programs.append(program)
        expected_size = len(json.dumps([harness.encode(expected[task_id][name]) for name in SETS]))
        sample_limits.append(replace(
            limits,
            wall_seconds=limits.wall_seconds + seconds,
            cpu_seconds=limits.cpu_seconds + math.ceil(seconds),  # per process: the largest set's bound would do
            output_bytes=max(limits.output_bytes, 4 * expected_size + 65536),  # the reported values fit
        ))
    verdicts = run_many(sandbox, programs, sample_limits, workers, infra_retries)
    results: dict[str, dict[str, str]] = {}
    for task_id, verdict, sample in zip(task_ids, verdicts, sample_limits, strict=True):
        ready, reported, loaded = read_report(verdict.stdout_tail)
        truncated = len(verdict.stdout_tail.encode()) >= sample.output_bytes
        if verdict.status == "infra-error" or not (ready or truncated):
            raise RuntimeError(
                f"{benchmark}: the evalplus check of {task_id} did not run (sandbox status {verdict.status}); "
                f"stderr tail:\n{verdict.stderr_tail[-1500:]}"
            )
        results[task_id] = {
            name: set_status(benchmark, problems[task_id], index, expected[task_id][name], reported, loaded)
            for index, name in enumerate(SETS)
        }
    return results


def summarize(task_ids: Sequence[str], statuses: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """Greedy pass@1: the share of problems whose one solution passes (base), and passes base and plus."""
    base = sum(statuses[t]["base"] == PASS for t in task_ids)
    plus = sum(statuses[t]["base"] == PASS and statuses[t]["plus"] == PASS for t in task_ids)
    n = len(task_ids)
    return {
        "problems": n,
        "base": {"pass@1": base / n if n else 0.0, "passed": base},
        "plus": {"pass@1": plus / n if n else 0.0, "passed": plus},
        "statuses": {
            "base": dict(Counter(statuses[t]["base"] for t in task_ids)),
            "plus": dict(Counter(statuses[t]["plus"] for t in task_ids)),
        },
    }
