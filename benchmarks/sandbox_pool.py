"""Samples per second of the sandbox pool against one fresh bubblewrap sandbox per sample.

Runs the same generated samples (a function plus asserts, like a response with its tests: mostly
passing or failing, a small share of endless loops and hangs) through each backend in one process,
with as many workers as cores (``--workers``), the backends taking turns on chunks of samples, and
checks that every backend gives every sample the same verdict. Needs root and bubblewrap. Prints a Markdown table for BENCHMARKS.md.

    python benchmarks/sandbox_pool.py --samples 1000 --workers 2 --wall-seconds 1
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow" / "scripts"))

from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many  # noqa: E402

# Solutions in the style of generated responses; each is paired with asserts that hold ("pass") or
# with one wrong expectation or a crashing call ("fail").
SOLUTIONS = [
    (
        "from collections import Counter\n\ndef most_common_char(text: str) -> str:\n"
        "    counts = Counter(text)\n    return max(sorted(counts), key=counts.__getitem__)\n",
        ["most_common_char('abracadabra{k}') == 'a'", "most_common_char('zz{k}y') == 'z'"],
        "most_common_char('') == ''",
    ),
    (
        "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        ["fib(10) == 55", "fib({k} % 15) == [0,1,1,2,3,5,8,13,21,34,55,89,144,233,377][{k} % 15]"],
        "fib(10) == 56",
    ),
    (
        "import re\n\ndef snake_case(name: str) -> str:\n"
        "    return re.sub(r'(?<!^)(?=[A-Z])', '_', name).lower()\n",
        ["snake_case('CamelCase{k}') == 'camel_case{k}'", "snake_case('a') == 'a'"],
        "snake_case('HTTPServer') == 'http_server'",
    ),
    (
        "from dataclasses import dataclass\n\n@dataclass(frozen=True)\nclass Interval:\n    start: int\n    end: int\n\n"
        "def merge(intervals: list[Interval]) -> list[Interval]:\n    merged: list[Interval] = []\n"
        "    for item in sorted(intervals, key=lambda i: i.start):\n"
        "        if merged and item.start <= merged[-1].end:\n"
        "            merged[-1] = Interval(merged[-1].start, max(merged[-1].end, item.end))\n"
        "        else:\n            merged.append(item)\n    return merged\n",
        ["merge([Interval(1, 3), Interval(2, {k} + 4)]) == [Interval(1, {k} + 4)]", "merge([]) == []"],
        "merge([Interval(1, 2), Interval(3, 4)]) == [Interval(1, 4)]",
    ),
    (
        "import heapq\nfrom typing import Iterable\n\ndef k_smallest(values: Iterable[int], k: int) -> list[int]:\n"
        "    return heapq.nsmallest(k, values)\n",
        ["k_smallest(range({k}, {k} + 10), 3) == [{k}, {k} + 1, {k} + 2]", "k_smallest([], 2) == []"],
        "k_smallest([3, 1, 2], 2) == [2, 1]",
    ),
    (
        "import json\n\ndef roundtrip(data: dict) -> dict:\n    return json.loads(json.dumps(data, sort_keys=True))\n",
        ["roundtrip({{'a': {k}}}) == {{'a': {k}}}", "roundtrip({{}}) == {{}}"],
        "roundtrip({{1: 'x'}}) == {{1: 'x'}}",
    ),
    (
        "import itertools\nimport math\n\ndef pairs_with_gcd(values: list[int], g: int) -> int:\n"
        "    return sum(1 for a, b in itertools.combinations(values, 2) if math.gcd(a, b) == g)\n",
        ["pairs_with_gcd([2, 4, 6, {k} * 2 + 8], 2) >= 1", "pairs_with_gcd([], 1) == 0"],
        "pairs_with_gcd([2, 4], 4) == 1",
    ),
    (
        "def parse_pairs(text: str) -> dict[str, int]:\n"
        "    return {key: int(value) for key, value in (item.split('=') for item in text.split(';') if item)}\n",
        ["parse_pairs('a=1;b={k}') == {{'a': 1, 'b': {k}}}", "parse_pairs('') == {{}}"],
        "parse_pairs('a=1;b') == {{'a': 1}}",  # ValueError: not enough values to unpack
    ),
]
# Samples that never finish: endless loops (the common case) and a hang on a lock.
HANGS = [
    "def count_down(n):\n    while n != 0:\n        n -= 2\n    return n\n\nassert count_down({k} * 2 + 1) == 0\n",
    "import threading\nlock = threading.Lock()\nlock.acquire()\n\ndef guarded():\n    with lock:\n        return {k}\n\nassert guarded() == {k}\n",
]


def generate(count: int, timeout_share: float, seed: int) -> list[str]:
    rng = random.Random(seed)
    programs = []
    for k in range(count):
        if rng.random() < timeout_share:
            programs.append(rng.choice(HANGS).format(k=k))
            continue
        solution, good, bad = rng.choice(SOLUTIONS)
        asserts = [line.format(k=k) for line in good]
        if rng.random() < 0.5:
            asserts.insert(rng.randrange(len(asserts) + 1), bad.format(k=k))
        programs.append(solution + "\n\n" + "\n".join(f"assert {line}" for line in asserts) + "\n")
    return programs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--wall-seconds", type=float, default=1.0)
    parser.add_argument("--timeout-share", type=float, default=0.015, help="share of samples that never finish")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk", type=int, default=100, help="samples per turn of each backend")
    parser.add_argument("--backends", default="bubblewrap,pool-exec,pool-fork")
    args = parser.parse_args()

    programs = generate(args.samples, args.timeout_share, args.seed)
    limits = Limits(wall_seconds=args.wall_seconds)
    names = args.backends.split(",")
    sandboxes = {}
    for name in names:
        backend, _, start = name.partition("-")
        sandboxes[name] = make_sandbox(ExecutionSettings(backend=backend, pool_start=start or "fork"))
    # The machine may be shared: the backends take turns on chunks of the samples, so that a change
    # in outside load falls on all of them alike. Pool start-up is inside the first chunk's time.
    seconds = dict.fromkeys(names, 0.0)
    statuses: dict[str, list[str]] = {name: [] for name in names}
    for first in range(0, len(programs), args.chunk):
        chunk = programs[first : first + args.chunk]
        for name in names:
            began = time.monotonic()
            verdicts = run_many(sandboxes[name], chunk, limits, workers=args.workers)
            seconds[name] += time.monotonic() - began
            statuses[name] += [v.status for v in verdicts]
    for name, sandbox in sandboxes.items():
        if hasattr(sandbox, "close"):
            sandbox.close()
        print(f"{name}: {seconds[name]:.1f} s, {dict(Counter(statuses[name]))}", file=sys.stderr)
    results = {name: (seconds[name], statuses[name]) for name in names}

    baseline_name = next(iter(results))
    baseline_seconds, baseline_verdicts = results[baseline_name]
    mismatches = {
        name: sum(a != b for a, b in zip(verdicts, baseline_verdicts)) for name, (_, verdicts) in results.items()
    }
    load = os.getloadavg()
    print(
        f"{args.samples} samples ({dict(sorted(Counter(baseline_verdicts).items()))}), {args.workers} workers, "
        f"wall limit {args.wall_seconds} s, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"taking turns on chunks of {args.chunk}, 1-minute load average at the end {load[0]:.2f}\n"
    )
    print("| backend | seconds | samples/s | speed-up vs " + baseline_name + " | verdicts differing |")
    print("|---|---:|---:|---:|---:|")
    for name, (seconds, _) in results.items():
        print(
            f"| {name} | {seconds:.1f} | {args.samples / seconds:.1f} | {baseline_seconds / seconds:.2f}x | {mismatches[name]} |"
        )
    if any(mismatches.values()):
        raise SystemExit("verdicts differ between backends")


if __name__ == "__main__":
    main()
