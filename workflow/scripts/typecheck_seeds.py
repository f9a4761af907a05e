"""Rule typecheck_seeds: add missing imports (autoimport, as the reference's --infer-imports), then drop
functions that pinned pyright reports errors for (basic mode, as the reference), batches in parallel."""

from selfalign.heuristics import heuristic_reject
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl
from selfalign.typecheck import add_missing_imports, import_environment, typecheck

log = start_logging(snakemake.log[0], "typecheck_seeds")
cfg = dict(snakemake.params.typecheck)
heuristics = dict(snakemake.params.heuristics)
stats = StageStats("typecheck", shard_name(snakemake.output.shard))

records = []
imports_added = 0
for record in read_stage(snakemake.input[0], "seeds"):
    stats.seen()
    if cfg["autoimport"]:
        fixed = add_missing_imports(record["seed"])
        if fixed != record["seed"]:
            # The reference ran its heuristics after this step: an added `import os` is still a banned import.
            reason = heuristic_reject(fixed, mode=heuristics["mode"], max_lines=heuristics["max_lines"])
            if reason is not None:
                stats.drop(f"autoimport_{reason}")
                continue
            imports_added += 1
            record = {**record, "seed": fixed}  # seed_id stays the extracted function's id (lineage)
    records.append(record)
log.info(
    "type-checking %d functions (%d with imports added) in batches of %d on %d workers",
    len(records), imports_added, cfg["batch_size"], snakemake.threads,
)
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
stats.extra.update(
    pyright_runs=result.pyright_runs,
    workers=snakemake.threads,
    imports_added=imports_added,
    import_environment=import_environment(),
)
log.info("%s", stats.write(snakemake.output.stats))
