"""Rule assemble_sft_data: the SFT set, in the selection's shuffled order, each pair with its lineage,
as JSONL and Parquet; ``selection.sanitize: smart`` applies the SC2 flow's final sanitisation."""

from selfalign import datacard, sanitize, selection
from selfalign.records import read_stage
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats, publish_together, read_json, write_jsonl

log = start_logging(snakemake.log[0], "assemble_sft_data")
keep = read_json(snakemake.input.keep)["keep"]
order = {response_id: i for i, response_id in enumerate(keep)}
# The stage's input is the selection's keep list; the candidates it did not keep are select_keep's drops.
stats = StageStats("sft_data")
stats.seen(len(keep))

chosen = {}
for path in snakemake.input.candidates:
    for record in read_stage(path, "verdicts"):
        if record["response_id"] in order:
            chosen[record["response_id"]] = selection.sft_record(record)
missing = set(order) - set(chosen)
if missing:
    raise SystemExit(f"{snakemake.input.keep}: {len(missing)} kept ids are in no candidate shard, e.g. {sorted(missing)[:3]}")
records = [chosen[i] for i in keep]
removed = []
if snakemake.params.sanitize == "smart":
    sanitized = [sanitize.smart_sanitize(record, snakemake.params.seed) for record in records]
    removed = [{"reason": "incomplete_marker", **record} for record, clean in zip(records, sanitized) if clean is None]
    if removed:
        stats.drop("incomplete_marker", len(removed))
    records = [record for record in sanitized if record is not None]
output = snakemake.output
with publish_together(*output) as pub:
    write_jsonl(pub.path(output.removed), removed)
    stats.kept(write_jsonl(pub.path(output.data), records))
    datacard.write_parquet(records, pub.path(output.parquet))
    log.info("%s", stats.write(pub.path(output.stats)))
