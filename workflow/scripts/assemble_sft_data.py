"""Rule assemble_sft_data: the SFT set, in the selection's shuffled order, each pair with its lineage,
as JSONL and Parquet; ``selection.sanitize: smart`` applies the SC2 flow's final sanitisation."""

from selfalign import datacard, sanitize, selection
from selfalign.records import read_stage
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats, read_json, write_jsonl

log = start_logging(snakemake.log[0], "assemble_sft_data")
keep = read_json(snakemake.input.keep)["keep"]
order = {response_id: i for i, response_id in enumerate(keep)}
stats = StageStats("sft_data")

chosen = {}
for path in snakemake.input.candidates:
    for record in read_stage(path, "verdicts"):
        stats.seen()
        if record["response_id"] in order:
            chosen[record["response_id"]] = selection.sft_record(record)
        else:
            stats.drop("not_selected")
missing = set(order) - set(chosen)
if missing:
    raise SystemExit(f"{snakemake.input.keep}: {len(missing)} kept ids are in no candidate shard, e.g. {sorted(missing)[:3]}")
records = [chosen[i] for i in keep]
if snakemake.params.sanitize == "smart":
    sanitized = [sanitize.smart_sanitize(record, snakemake.params.seed) for record in records]
    if incomplete := sum(record is None for record in sanitized):
        stats.drop("incomplete_marker", incomplete)
    records = [record for record in sanitized if record is not None]
stats.kept(write_jsonl(snakemake.output.data, records))
datacard.write_parquet(records, snakemake.output.parquet)
log.info("%s", stats.write(snakemake.output.stats))
