"""What the preflight being a checkpoint costs a real run: Snakemake plans the jobs after it again once it
has run. Measured on a local run (no cluster needed) of the demo config with many shards.

    python benchmarks/preflight_checkpoint.py [--shards 1000] [--baseline-shards 2]

Starts `snakemake --cores 1 all` on the demo config with `shards` set to the baseline and to the large count,
times from the line saying the preflight finished to the next "Select jobs to execute" (the checkpoint's
re-planning, between two jobs), then stops the run. Prints a Markdown table with both times, the ratio to
the baseline, and the DAG's job count.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
FINISHED = re.compile(r"Finished jobid: \d+ \(Rule: preflight\)")


def replanning_seconds(shards: int) -> tuple[float, int]:
    """Seconds from the preflight's end to the next job selection, and the jobs in the first plan."""
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["shards"] = shards
    # a small tree keeps the preflight's own check short; the plan's size comes from the shard count
    config["sources"].update(stdlib=False, paths=[str(REPO / "workflow" / "scripts" / "selfalign")])
    with tempfile.TemporaryDirectory() as workdir:
        (Path(workdir) / "config").mkdir()
        (Path(workdir) / "config" / "config.yaml").write_text(yaml.safe_dump(config))
        command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
                   "--cores", "1", "--directory", workdir, "all"]  # fmt: skip
        run = subprocess.Popen(command, cwd=workdir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               start_new_session=True)  # fmt: skip
        jobs, finished_at, seconds = 0, None, None
        lines = []
        try:
            for line in run.stdout:
                lines.append(line)
                if not jobs and (total := re.match(r"^total\s+(\d+)$", line.strip())):
                    jobs = int(total.group(1))
                if FINISHED.search(line):
                    finished_at = time.perf_counter()
                elif finished_at is not None and "Select jobs to execute" in line:
                    seconds = time.perf_counter() - finished_at
                    break
        finally:
            os.killpg(run.pid, signal.SIGTERM)
            run.wait()
        if seconds is None:
            sys.exit("the run ended before the preflight's re-planning:\n" + "".join(lines[-40:]))
    return seconds, jobs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shards", type=int, default=1000)
    parser.add_argument("--baseline-shards", type=int, default=2)
    args = parser.parse_args()
    base, base_jobs = replanning_seconds(args.baseline_shards)
    large, jobs = replanning_seconds(args.shards)
    print("| run | jobs planned | preflight end -> next job selection | ratio to baseline |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| {args.baseline_shards} shards (baseline) | {base_jobs} | {base:.2f} s | 1x |")
    print(f"| {args.shards} shards | {jobs} | {large:.2f} s | {large / base:.1f}x |")


if __name__ == "__main__":
    main()
