"""Rule sft_card: the SFT set's dataset card (Hugging Face format): counts per stage, fields, licences,
configuration, citation."""

from selfalign import datacard, selection, stage_funnel
from selfalign.rulekit import start_logging
from selfalign.shards import atomic_writer, read_jsonl

log = start_logging(snakemake.log[0], "sft_card")
records = list(read_jsonl(snakemake.input.data))
fields = [field for field in selection.SFT_FIELDS if any(field in record for record in records)]
card = datacard.dataset_card(stage_funnel.load_rows(snakemake.input.totals), snakemake.params.config, len(records), fields)
with atomic_writer(snakemake.output[0]) as handle:
    handle.write(card)
log.info("dataset card for %d records", len(records))
