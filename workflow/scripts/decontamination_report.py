"""Rule decontamination_report: one TSV row per removed seed (seed id, where it came from, the benchmark
item it matched, how, and the matched text), over all shards."""

import csv

from selfalign.rulekit import start_logging
from selfalign.shards import atomic_path, read_shards

log = start_logging(snakemake.log[0], "decontamination_report")
fields = ["seed_id", "source", "benchmark", "task_id", "method", "matched"]
rows = sorted(read_shards(snakemake.input), key=lambda r: (r["task_id"], r["seed_id"]))
with atomic_path(snakemake.output[0]) as tmp, open(tmp, "w", encoding="utf-8", newline="") as handle:
    writer = csv.DictWriter(handle, fields, delimiter="\t", extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        # one line per row: the matched text's newlines and tabs are escaped
        writer.writerow({**row, "matched": row["matched"].replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")})
log.info("%d removed seeds across %d shards", len(rows), len(snakemake.input))
