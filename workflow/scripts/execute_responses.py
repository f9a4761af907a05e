"""Rule execute_responses: run every response's code with its tests in the sandbox and record the verdict;
then selection's per-shard step (the passing samples with a usable format), too light for a job of its own."""

from selfalign.execute_stage import execute_samples, select_candidates
from selfalign.records import read_stage
from selfalign.rulekit import progress_logger, shard_name, start_logging
from selfalign.sandbox import ExecutionSettings, make_sandbox
from selfalign.shards import StageStats, publish_together, write_jsonl

log = start_logging(snakemake.log[0], "execute_responses")
cfg = dict(snakemake.params.execution)
settings = ExecutionSettings.from_config(cfg)
limits = settings.limits
# The pool holds one sandbox per rule thread (execute_samples runs that many samples at once).
sandbox = make_sandbox(settings)

stats = StageStats("execute", shard_name(snakemake.output.shard))
rows = list(read_stage(snakemake.input[0], "responses"))
out = execute_samples(
    rows, sandbox, limits, snakemake.threads, settings.infra_retries, stats, progress_logger(log, "executed")
)
output = snakemake.output
# Verdicts and candidates appear together: a kill between them leaves neither looking finished.
with publish_together(*output) as pub:
    write_jsonl(pub.path(output.shard), out)
    stats.versions = sandbox.versions()
    sandbox.close()
    log.info("%s", stats.write(pub.path(output.stats)))

    candidate_stats = StageStats("select_candidates", shard_name(output.candidates))
    format_drops: list = []
    write_jsonl(
        pub.path(output.candidates),
        select_candidates(out, int(snakemake.params.max_instruction_words), candidate_stats, format_drops),
    )
    write_jsonl(pub.path(output.candidates_removed), format_drops)
    log.info("%s", candidate_stats.write(pub.path(output.candidates_stats)))
