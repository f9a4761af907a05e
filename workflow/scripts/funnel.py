"""Rule funnel: the run's funnel (TSV and Markdown) from the stage totals, with the scores."""

from selfalign import scores, stage_funnel
from selfalign.rulekit import start_logging
from selfalign.shards import atomic_writer

log = start_logging(snakemake.log[0], "funnel")
rows = stage_funnel.load_rows(snakemake.input.totals)
with atomic_writer(snakemake.output.tsv) as handle:
    handle.write(stage_funnel.to_tsv(rows))
with atomic_writer(snakemake.output.md) as handle:
    handle.write(stage_funnel.to_markdown(rows, scores.read_scores(snakemake.input.scores)))
log.info("funnel written")
