"""Rule funnel: the run's funnel (TSV and Markdown) from the stage totals, with the scores."""

from selfalign import funnel
from selfalign.rulekit import start_logging
from selfalign.shards import atomic_writer, read_json

log = start_logging(snakemake.log[0], "funnel")
rows = funnel.load_rows(snakemake.input.totals)
scores = [read_json(path) for path in snakemake.input.scores]
with atomic_writer(snakemake.output.tsv) as handle:
    handle.write(funnel.to_tsv(rows))
with atomic_writer(snakemake.output.md) as handle:
    handle.write(funnel.to_markdown(rows, scores))
log.info("funnel written")
