"""Rule stage_totals: sum every shard's stats file into the funnel rows and the recorded tool versions."""

from selfalign import stage_funnel
from selfalign.rulekit import start_logging
from selfalign.shards import write_json

log = start_logging(snakemake.log[0], "stage_totals")
totals = stage_funnel.totals(snakemake.input)
write_json(snakemake.output[0], totals)
log.info("%d stats files, %d stages", totals["stats_files"], len(totals["rows"]))
