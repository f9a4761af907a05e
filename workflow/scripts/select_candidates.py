"""Rule select_candidates: passing samples with a usable format, plus their dedup keys."""

from selfalign import selection
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl

log = start_logging(snakemake.log[0], "select_candidates")
cfg = dict(snakemake.params.selection)
stats = StageStats("select_candidates", shard_name(snakemake.output.shard))


def candidates():
    for record in read_stage(snakemake.input[0], "verdicts"):
        stats.seen()
        if record["verdict"] != "pass":
            stats.drop(f"verdict_{record['verdict']}")
            continue
        problem = selection.format_problem(record, cfg["max_instruction_words"])
        if problem:
            stats.drop(problem)
            continue
        stats.kept()
        yield {**record, "selection_keys": selection.candidate_keys(record)}


write_jsonl(snakemake.output.shard, candidates())
log.info("%s", stats.write(snakemake.output.stats))
