"""Per-record costs behind the resources the rules ask for (workflow/rules/common.smk, RESOURCE_COSTS).

    .venv/bin/python benchmarks/resource_costs.py [--sizes 25000 50000 100000] [--shards results/seeds/judged]

1. near-dedup memory: peak RSS of one process that runs what rule near_dedup_seeds runs (MinHash
   signatures of every shard, global banding and clusters, the keep set) on N generated seed records,
   for several N; the slope (MiB per 1,000 seeds) and intercept of a least-squares line.
2. bytes per seed record: the mean size of one line of real seed shards (a finished run's
   ``results/seeds/judged`` or ``decontaminated``), which turns a job's input size into a seed count.

Each measurement runs in a fresh child process, so its peak RSS (ru_maxrss) is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "workflow" / "scripts"))
sys.path.insert(0, str(REPO / "benchmarks"))

CHILD = """
import json, resource, sys
sys.path.insert(0, {scripts!r})
from selfalign import neardedup
paths = {paths!r}
per_shard = neardedup.shard_signatures(paths, "seed", num_perm=128, seed=42, workers=1)
keep = neardedup.keep_set(neardedup.cluster(per_shard, threshold=0.5, num_perm=128))
print(json.dumps({{"kept": len(keep), "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""


def near_dedup_peak(count: int, workdir: Path) -> dict:
    from seed_filters import generate

    records = generate(count)
    paths = []
    for shard in range(2):
        path = workdir / f"{count}-{shard:02d}.jsonl"
        with path.open("w") as handle:
            for record in records[shard::2]:
                handle.write(json.dumps({**record, "source": "generated"}) + "\n")
        paths.append(str(path))
    code = CHILD.format(scripts=str(REPO / "workflow" / "scripts"), paths=paths)
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {"seeds": count, **json.loads(out.stdout)}


def line_fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / sum((x - mean_x) ** 2 for x in xs)
    return slope, mean_y - slope * mean_x


def mean_record_bytes(directory: Path) -> tuple[float, int]:
    sizes = [len(line) for path in sorted(directory.glob("*.jsonl")) for line in path.read_bytes().splitlines()]
    return (sum(sizes) / len(sizes) if sizes else 0.0), len(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[25_000, 50_000, 100_000])
    parser.add_argument("--shards", type=Path, default=None, help="a finished run's seed shard directory")
    args = parser.parse_args()
    print(f"load average at start: {', '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [near_dedup_peak(count, Path(tmp)) for count in args.sizes]
    for row in rows:
        print(f"near-dedup {row['seeds']:>8} seeds: peak RSS {row['peak_mib']:8.1f} MiB ({row['kept']} kept)")
    slope, intercept = line_fit([r["seeds"] / 1000 for r in rows], [r["peak_mib"] for r in rows])
    print(f"near-dedup memory: {slope:.2f} MiB per 1,000 seeds + {intercept:.0f} MiB")
    if args.shards:
        mean, count = mean_record_bytes(args.shards)
        print(f"seed records in {args.shards}: {count}, mean {mean:.0f} bytes per record")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB)")


if __name__ == "__main__":
    main()
