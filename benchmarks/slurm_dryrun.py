"""Dry-run time and Slurm submissions per stage with the Slurm profile, for a config with many shards.

    python benchmarks/slurm_dryrun.py [--shards 1000] [--baseline-shards 2]

Runs `snakemake -n --profile profiles/slurm` (no cluster needed) on the demo config with `shards` set to the
baseline and to the large count, in one run, and prints a Markdown table: wall time of each dry run, their
ratio, and per rule the jobs in the DAG and the Slurm submissions they become. Submissions: one per job,
except rules the profile groups (`groups:` + `group-components:`), which go to Slurm as one job per
`group-components` connected components (shards), and local rules (target rules, `localrule: True`), which
are not submitted.
"""

from __future__ import annotations

import argparse
import math
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
        for name, body in re.findall(r"^rule (\w+):\n((?:[ \t].*\n|\n)*)", smk.read_text(), re.M):
            if "localrule: True" in body or not re.search(r"^\s+(script|shell|run|notebook|wrapper):", body, re.M):
                local.add(name)
    return local


def dry_run(shards: int, grouped: bool = True) -> tuple[float, dict[str, int]]:
    """Wall time and per-rule job counts of one dry run; `grouped=False` drops the profile's groups."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["shards"] = shards
    with tempfile.TemporaryDirectory() as workdir:
        profile = PROFILE
        if not grouped:
            settings = yaml.safe_load((PROFILE / "config.yaml").read_text())
            settings.pop("groups"), settings.pop("group-components")
            profile = Path(workdir) / "profile"
            profile.mkdir()
            (profile / "config.yaml").write_text(yaml.safe_dump(settings))
        (Path(workdir) / "config").mkdir()
        (Path(workdir) / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
                   "--profile", str(profile), "--sdm", "env-modules", "--quiet", "rules", "--directory", workdir]
        env = {**os.environ, "SNAKEMAKE_SLURM_GPU_PARTITION": "gpu"}
        start = time.perf_counter()
        result = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(result.stderr[-3000:])
    table = (result.stdout + result.stderr).split("Job stats:", 1)[1]
    counts = {name: int(count) for name, count in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if name != "total"}
    return seconds, counts


def submissions(counts: dict[str, int], shards: int) -> dict[str, int]:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    groups, components = profile.get("groups", {}), profile.get("group-components", {})
    local = local_rules()
    out = {}
    for rule, count in counts.items():
        if rule in local:
            out[rule] = 0
        elif rule in groups:
            out[rule] = math.ceil(count / components.get(groups[rule], 1))
        else:
            out[rule] = count
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--baseline-shards", type=int, default=2)
    args = parser.parse_args()
    base_seconds, _ = dry_run(args.baseline_shards)
    seconds, counts = dry_run(args.shards)
    ungrouped_seconds, _ = dry_run(args.shards, grouped=False)
    jobs = submissions(counts, args.shards)
    groups = yaml.safe_load((PROFILE / "config.yaml").read_text()).get("groups", {})
    print(f"dry run, {args.baseline_shards} shards (baseline): {base_seconds:.1f} s; "
          f"{args.shards} shards: {seconds:.1f} s (ratio {seconds / base_seconds:.1f}x); "
          f"{args.shards} shards without the profile's groups: {ungrouped_seconds:.1f} s "
          f"(ratio {ungrouped_seconds / base_seconds:.1f}x)\n")
    print("| rule | jobs in the DAG | Slurm submissions |\n| --- | ---: | ---: |")
    for rule, count in counts.items():
        note = f" (group `{groups[rule]}`)" if rule in groups else ""
        print(f"| {rule}{note} | {count} | {jobs[rule]} |")
    grouped = {groups[rule] for rule in jobs if rule in groups}
    # a group's rules share their submissions: count each group once
    total = sum(n for rule, n in jobs.items() if rule not in groups) + sum(
        max(jobs[rule] for rule in jobs if groups.get(rule) == group) for group in grouped)
    print(f"| **total** | {sum(counts.values())} | {total} |")


if __name__ == "__main__":
    main()
