"""Rule select_keep: the global choice of one passing response per instruction (seeded shuffle + dedup)."""

from selfalign import decontamination as decontam, selection
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats, publish_together, read_shards, write_json, write_jsonl

log = start_logging(snakemake.log[0], "select_keep")
cfg = dict(snakemake.params.selection)
stats = StageStats("select_keep")
keys = [record["selection_keys"] for record in read_shards(snakemake.input, {"selection_keys": dict})]
stats.seen(len(keys))
decontaminator = None
if cfg["decontamination"]["enabled"]:
    paths = dict(snakemake.params.benchmark_paths)
    strings = [
        string
        for benchmark in cfg["decontamination"]["benchmarks"]
        for string in decontam.benchmark_strings(benchmark, paths.get(benchmark))
    ]
    decontaminator = selection.lowercased_decontaminator(strings)
    log.info("final decontamination against %d benchmark strings", decontaminator.size)
near = cfg["near_dedup"]
near_dedup = selection.NearDedup(tuple(near["fields"]), near["threshold"], near["num_perm"], near["seed"])
removed: list = []
kept, dropped = selection.select(
    keys,
    seed=cfg["seed"],
    dedup_function_names=cfg["dedup_function_names"],
    decontaminator=decontaminator,
    near_dedup=near_dedup,
    name_key_style=cfg["name_keys"],
    removed=removed,
)
stats.kept(len(kept))
for reason, count in dropped.items():
    stats.drop(reason, count)
output = snakemake.output
with publish_together(*output) as pub:
    write_jsonl(pub.path(output.removed), removed)
    write_json(pub.path(output.keep), {"seed": cfg["seed"], "keep": kept})
    log.info("%s", stats.write(pub.path(output.stats)))
