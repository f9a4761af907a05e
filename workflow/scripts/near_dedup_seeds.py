"""Rule near_dedup_seeds: phase 2 of near-dedup, one global LSH + union-find over all signatures.

Writes, for every kept seed, its absolute row index, fixed here once for the whole run (the per-row
sampling seed is base + row). Rows interleave the shards (first seed of each shard, then the second, ...),
so a `seeds.limit` takes seeds from every shard and every generation job gets work.
"""

from itertools import zip_longest

from selfalign import neardedup
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats, write_json

log = start_logging(snakemake.log[0], "near_dedup_seeds")
cfg = dict(snakemake.params.near_dedup)
limit = snakemake.params.limit
stats = StageStats("near_dedup")

per_shard = [neardedup.load_signatures(path) for path in snakemake.input]
representative = neardedup.cluster(per_shard, threshold=cfg["threshold"], num_perm=cfg["num_perm"])
keep = neardedup.keep_set(representative)

rows: dict[str, int] = {}
dropped: dict[str, str] = {}
for position in zip_longest(*(signatures.ids for signatures in per_shard)):
    for seed_id in filter(None, position):
        stats.seen()
        if seed_id not in keep:
            dropped[seed_id] = "near_duplicate"
            stats.drop("near_duplicate")
        elif limit and len(rows) >= limit:
            dropped[seed_id] = "over_limit"
            stats.drop("over_limit")
        else:
            rows[seed_id] = len(rows)
            stats.kept()

clusters = sum(1 for seed_id, rep in representative.items() if seed_id == rep)
stats.extra.update(threshold=cfg["threshold"], num_perm=cfg["num_perm"], clusters=clusters)
write_json(
    snakemake.output.clusters,
    {"rows": rows, "dropped": dropped, "representative": {k: v for k, v in representative.items() if k != v}},
)
log.info("%s", stats.write(snakemake.output.stats))
