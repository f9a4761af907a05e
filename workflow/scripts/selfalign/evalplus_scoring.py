"""EvalPlus scoring (HumanEval(+), MBPP(+)): prompts, solutions, sandboxed checks, greedy pass@1.

Prompts follow the reference's EvalPlus evaluation (section 9.1 of its SC2 script) in our own wording:

- tuned model (``instruct``): the SFT prompt layout (``format_instruct_prompt``) with a response prefix;
  HumanEval hands over the signature and the model continues the body; MBPP gives the task's
  description, a sentence, and its first assertion in a fence, the response opening a Python fence;
- base model (``completion``): the raw problem prompt, cut at the first top-level statement after it.

Checking uses evalplus's own code: the expected outputs come from ``evalplus.evaluate.get_groundtruth``
(the canonical solution run on the base and plus inputs, trusted, in this process) and each solution
is judged by ``evalplus.evaluate.check_correctness``, which runs it in a child process with evalplus's
per-input time limits and its ``reliability_guard``. That guard is not a sandbox, so those checks run
inside the project's sandbox (bubblewrap: no network, read-only system, private /tmp, rlimits), a
chunk of solutions per sandbox run. "plus" counts a problem solved when both base and plus pass.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from selfalign.generation import GenerationRequest, SamplingSpec
from selfalign.humaneval import COMPLETION_STOP, INSTRUCT_STOP, STYLES, format_instruct_prompt, instruct_parts
from selfalign.sandbox import Limits, Sandbox, run_many

MBPP_ASSERTION_SENTENCE = "Your code is checked with this assertion:"
PASS = "pass"
# evalplus gives one solution at most 60 s (EVALPLUS_TIMEOUT_PER_TASK) plus 2 s of slack, per test set
SECONDS_PER_SOLUTION = 2 * 62 + 5
RESULT_PREFIX = "EVALPLUS_RESULT "


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


def check_program(jobs: Sequence[Mapping[str, Any]]) -> str:
    """A program that runs ``check_correctness`` on each job and prints one result line per job."""
    payload = base64.b64encode(pickle.dumps(list(jobs))).decode("ascii")
    return (
        "import base64, json, os, pickle\n"
        # The sandbox's RLIMIT_AS already caps memory; evalplus raising its own limit above it would fail.
        "os.environ['EVALPLUS_MAX_MEMORY_BYTES'] = '-1'\n"
        "from evalplus.evaluate import check_correctness\n"
        f"jobs = pickle.loads(base64.b64decode({payload!r}))\n"
        "for job in jobs:\n"
        "    result = check_correctness(**job)\n"
        "    line = {'task_id': result['task_id'], 'base': result['base'][0], 'plus': result['plus'][0]}\n"
        f"    print({RESULT_PREFIX!r} + json.dumps(line), flush=True)\n"
    )


def check_solutions(
    benchmark: str,
    problems: Mapping[str, dict],
    solutions: Mapping[str, str],
    expected: Mapping[str, dict],
    sandbox: Sandbox,
    memory_mb: int,
    workers: int,
    chunk_size: int = 16,
) -> dict[str, dict[str, str]]:
    """task id -> {"base": status, "plus": status}, statuses as evalplus reports them (pass, fail,
    timeout). A sandbox run that ends without a result for each of its solutions raises: counting
    them as failures would report a wrong number."""
    task_ids = list(solutions)
    jobs = [
        {
            "dataset": benchmark,
            "completion_id": 0,
            "problem": problems[task_id],
            "solution": solutions[task_id],
            "expected_output": expected[task_id],
            "fast_check": True,  # as evalplus.evaluate without --test-details: stop at the first failure
            "identifier": task_id,
        }
        for task_id in task_ids
    ]
    chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
    limits = Limits(
        wall_seconds=SECONDS_PER_SOLUTION * chunk_size,
        cpu_seconds=SECONDS_PER_SOLUTION * chunk_size,
        memory_mb=memory_mb,
        tmp_mb=256,
    )
    verdicts = run_many(sandbox, [check_program(chunk) for chunk in chunks], limits, workers)
    results: dict[str, dict[str, str]] = {}
    for chunk, verdict in zip(chunks, verdicts, strict=True):
        lines = [line[len(RESULT_PREFIX) :] for line in verdict.stdout_tail.splitlines() if line.startswith(RESULT_PREFIX)]
        found = {row["task_id"]: {"base": row["base"], "plus": row["plus"]} for row in map(json.loads, lines)}
        missing = [job["identifier"] for job in chunk if job["identifier"] not in found]
        if missing:
            raise RuntimeError(
                f"{benchmark}: the evalplus check of {missing[0]} (and {len(missing) - 1} more) returned no result "
                f"(sandbox status {verdict.status}); stderr tail:\n{verdict.stderr_tail[-1500:]}"
            )
        results.update(found)
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
