"""Rule filter_heuristics: the reference's cheap pre-filters (bad words, banned imports, length, arity)."""

from selfalign.heuristics import heuristic_reject
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl

log = start_logging(snakemake.log[0], "filter_heuristics")
cfg = dict(snakemake.params.heuristics)
stats = StageStats("heuristics", shard_name(snakemake.output.shard))
stats.extra["mode"] = cfg["mode"]


def kept():
    for record in read_stage(snakemake.input[0], "seeds"):
        stats.seen()
        reason = heuristic_reject(record["seed"], mode=cfg["mode"], max_lines=cfg["max_lines"])
        if reason:
            stats.drop(reason)
            continue
        stats.kept()
        yield record


write_jsonl(snakemake.output.shard, kept())
log.info("%s", stats.write(snakemake.output.stats))
