"""Rule final_seeds: phase 3 of near-dedup, keep one representative per cluster and attach the absolute row."""

from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, read_json, write_jsonl

log = start_logging(snakemake.log[0], "final_seeds")
clusters = read_json(snakemake.input.clusters)
rows, dropped = clusters["rows"], clusters["dropped"]
stats = StageStats("near_dedup", shard_name(snakemake.output.shard))


def kept():
    for record in read_stage(snakemake.input.shard, "seeds"):
        stats.seen()
        seed_id = record["seed_id"]
        if seed_id in rows:
            stats.kept()
            yield {**record, "row": rows[seed_id]}
        else:
            stats.drop(dropped.get(seed_id, "missing_from_clusters"))


write_jsonl(snakemake.output.shard, kept())
log.info("%s", stats.write(snakemake.output.stats))
