"""Rule select_keep: the global choice of one passing response per instruction (seeded shuffle + dedup)."""

from selfalign import selection
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats, read_shards, write_json

log = start_logging(snakemake.log[0], "select_keep")
cfg = dict(snakemake.params.selection)
stats = StageStats("select_keep")
keys = [record["selection_keys"] for record in read_shards(snakemake.input, {"selection_keys": dict})]
stats.seen(len(keys))
kept, dropped = selection.select(keys, seed=cfg["seed"], dedup_function_names=cfg["dedup_function_names"])
stats.kept(len(kept))
for reason, count in dropped.items():
    stats.drop(reason, count)
write_json(snakemake.output.keep, {"seed": cfg["seed"], "keep": kept})
log.info("%s", stats.write(snakemake.output.stats))
