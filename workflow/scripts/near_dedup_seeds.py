"""Rule near_dedup_seeds: MinHash-LSH near-dedup of all judged seeds, in one job.

1. MinHash signatures of every shard, shards in parallel processes (one per rule thread);
2. one global LSH + union-find over all signatures;
3. every shard filtered to one representative per cluster, each kept seed with its absolute row index,
   fixed here once for the whole run (the per-row sampling seed is base + row). Rows interleave the shards
   (first seed of each shard, then the second, ...), so a `seeds.limit` takes seeds from every shard and
   every generation job gets work.
All outputs are published together at the end (``publish_together``).
"""

from itertools import zip_longest

from selfalign import neardedup
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, publish_together, write_json, write_jsonl

log = start_logging(snakemake.log[0], "near_dedup_seeds")
cfg = dict(snakemake.params.near_dedup)
limit = snakemake.params.limit
out = snakemake.output
stats = StageStats("near_dedup")

per_shard = neardedup.shard_signatures(
    list(snakemake.input), "seed", num_perm=cfg["num_perm"], seed=cfg["hash_seed"], workers=snakemake.threads
)
log.info("%d signatures from %d shards", sum(len(s.ids) for s in per_shard), len(per_shard))
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


# The text of every dropped seed and of each seed it duplicates, collected while the final shards are
# written (one read of the inputs), so that the removed list shows what a person judges by eye.
wanted = set(dropped) | {representative[seed_id] for seed_id, reason in dropped.items() if reason == "near_duplicate"}
texts: dict[str, str] = {}


def final_shard(source: str, target: str) -> int:
    """One shard's kept seeds, each with its row; returns how many."""

    def kept():
        for record in read_stage(source, "seeds"):
            if record["seed_id"] in wanted:
                texts[record["seed_id"]] = record["seed"]
            if record["seed_id"] in rows:
                yield {**record, "row": rows[record["seed_id"]]}

    return write_jsonl(target, kept())


# Clusters, stats and every final shard appear together at the end: a kill leaves none of them.
with publish_together(out.clusters, out.removed, out.stats, *out.shards, out.shard_counts) as pub:
    write_json(
        pub.path(out.clusters),
        {"rows": rows, "dropped": dropped, "representative": {k: v for k, v in representative.items() if k != v}},
    )
    per_shard_kept = {
        shard_name(target): final_shard(source, pub.path(target))
        for source, target in zip(snakemake.input, out.shards, strict=True)
    }
    # every dropped seed with its reason, its text and the seed it duplicates (the report samples them)
    write_jsonl(
        pub.path(out.removed),
        (
            {
                "seed_id": seed_id,
                "stage": "near_dedup",
                "reason": reason,
                "representative": (rep := representative.get(seed_id)),
                "seed": texts.get(seed_id),
                **({"representative_seed": texts.get(rep)} if reason == "near_duplicate" else {}),
            }
            for seed_id, reason in dropped.items()
        ),
    )
    if sum(per_shard_kept.values()) != len(rows):  # every row lands in exactly one shard
        raise SystemExit(f"near_dedup_seeds: {len(rows)} rows kept, but the final shards hold {sum(per_shard_kept.values())}")
    stats.extra.update(
        threshold=cfg["threshold"], num_perm=cfg["num_perm"], clusters=clusters, workers=snakemake.threads, shards=per_shard_kept
    )
    log.info("%s", stats.write(pub.path(out.stats)))
    # Beside the final shards, their record counts, which every reader of them checks (selfalign.shards.producer_count).
    write_json(pub.path(out.shard_counts), {"stage": "near_dedup", "stats": "../near_dedup/clusters.stats.json", "shards": per_shard_kept})
