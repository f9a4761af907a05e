"""Rule evalplus_data: the benchmark's plus-format file and its provenance (source, version, md5)."""

from selfalign.evalplus_datasets import materialize
from selfalign.rulekit import start_logging
from selfalign.shards import write_json

log = start_logging(snakemake.log[0], "evalplus_data")
benchmark = snakemake.wildcards.benchmark
meta = materialize(benchmark, snakemake.params.source, snakemake.output.data, snakemake.input.demo)
for problem in meta["quarantined"]:
    log.warning("%s: %s left out: %s", benchmark, problem["task_id"], problem["reason"])
log.info(
    "%s: %d problems from %s (%s), md5 %s, %d quarantined",
    benchmark, meta["problems"], meta["source"], meta["version"], meta["md5"], len(meta["quarantined"]),
)
write_json(snakemake.output.meta, meta)
