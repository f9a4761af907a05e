"""Dry-run time and Slurm submissions per stage with the Slurm profile, for a config with many shards.

    python benchmarks/slurm_dryrun.py [--shards 1000] [--baseline-shards 2]

Runs `snakemake -n --profile profiles/slurm` (no cluster needed) on the demo config with `shards` set to the
baseline and to the large count, and the large count twice more: with a copy of the profile without its
`notemp: true`, and with The Stack as a seed source too; all in one run. Prints Markdown tables: wall time
of each dry run and its ratio to the baseline, and per rule the jobs in the DAG and the Slurm submissions
they become (one per job, except local rules: target rules and `localrule: True`, which run on the submit
host).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
PROFILE = REPO / "profiles" / "slurm"


def local_rules() -> set[str]:
    """Rules Snakemake runs on the submit host: no action (target rules) or `localrule: True`."""
    local = set()
    for smk in [REPO / "workflow" / "Snakefile", *(REPO / "workflow" / "rules").glob("*.smk")]:
        for name, body in re.findall(r"^(?:rule|checkpoint) (\w+):\n((?:[ \t].*\n|\n)*)", smk.read_text(), re.M):
            if "localrule: True" in body or not re.search(r"^\s+(script|shell|run|notebook|wrapper):", body, re.M):
                local.add(name)
    return local


def dry_run(shards: int, notemp: bool = True, stack: bool = False) -> tuple[float, dict[str, int]]:
    """Wall time and per-rule job counts of one dry run; `notemp=False` drops the profile's `notemp`,
    `stack=True` adds The Stack as a seed source (its per-shard parsing jobs)."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["shards"] = shards
    config["sources"]["stack"] = {"enabled": stack}
    with tempfile.TemporaryDirectory() as workdir:
        profile = PROFILE
        if not notemp:
            settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
            settings.pop("notemp")
            profile = Path(workdir) / "profile"
            profile.mkdir()
            (profile / "config.yaml").write_text(yaml.safe_dump(settings))
        (Path(workdir) / "config").mkdir()
        (Path(workdir) / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        # --sdm env-modules: a dry run with the profile's conda needs a conda binary, which it does not use
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
                   "--profile", str(profile), "--sdm", "env-modules", "--directory", workdir]
        env = {**os.environ, "SNAKEMAKE_SLURM_GPU_PARTITION": "gpu"}
        start = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    table = (result.stdout + result.stderr).split("Job stats:", 1)[1]
    counts = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if name != "total"}
    return seconds, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--baseline-shards", type=int, default=2)
    args = parser.parse_args()
    if "groups" in yaml.safe_load((PROFILE / "config.yaml").read_text()):
        sys.exit("the profile has `groups:`; this benchmark counts one submission per non-local job")
    base_seconds, _ = dry_run(args.baseline_shards)
    seconds, counts = dry_run(args.shards)
    with_temp_seconds, _ = dry_run(args.shards, notemp=False)
    stack_seconds, stack_counts = dry_run(args.shards, stack=True)
    local = local_rules()
    print("| dry run | wall time | ratio to baseline |\n| --- | ---: | ---: |")
    print(f"| {args.baseline_shards} shards, profile (baseline) | {base_seconds:.1f} s | 1x |")
    print(f"| {args.shards} shards, profile | {seconds:.1f} s | {seconds / base_seconds:.1f}x |")
    print(f"| {args.shards} shards, profile without `notemp` | {with_temp_seconds:.1f} s "
          f"| {with_temp_seconds / base_seconds:.1f}x |")
    print(f"| {args.shards} shards, profile, The Stack as a source too ({sum(stack_counts.values())} jobs) "
          f"| {stack_seconds:.1f} s | {stack_seconds / base_seconds:.1f}x |\n")
    print("| rule | jobs in the DAG | Slurm submissions |\n| --- | ---: | ---: |")
    for rule, count in counts.items():
        print(f"| {rule} | {count} | {0 if rule in local else count} |")
    submitted = sum(count for rule, count in counts.items() if rule not in local)
    print(f"| **total** | {sum(counts.values())} | {submitted} |")
    over = {rule: count for rule, count in counts.items() if count > args.shards}
    if over:
        sys.exit(f"more than one job per shard: {over}")


if __name__ == "__main__":
    main()
