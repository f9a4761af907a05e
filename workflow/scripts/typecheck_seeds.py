"""Rule typecheck_seeds: drop functions that pinned pyright reports errors for (basic mode, as the reference)."""

from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl
from selfalign.typecheck import typecheck

log = start_logging(snakemake.log[0], "typecheck_seeds")
cfg = dict(snakemake.params.typecheck)
stats = StageStats("typecheck", shard_name(snakemake.output.shard))

records = list(read_stage(snakemake.input[0], "seeds"))
stats.seen(len(records))
log.info("type-checking %d functions in batches of %d on %d workers", len(records), cfg["batch_size"], snakemake.threads)
result = typecheck(
    [r["seed"] for r in records], batch_size=cfg["batch_size"], workers=snakemake.threads, timeout=cfg["timeout"]
)
kept = []
for record, outcome in zip(records, result.checks, strict=True):
    if outcome.ok:
        kept.append(record)
    else:
        stats.drop(outcome.reason or "pyright_error")
stats.kept(write_jsonl(snakemake.output.shard, kept))
stats.versions = dict(result.versions)
stats.extra["pyright_runs"] = result.pyright_runs
log.info("%s", stats.write(snakemake.output.stats))
