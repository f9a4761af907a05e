"""Rule judge_seeds: the base model judges, few-shot and greedy, whether each docstring describes its
function well enough to re-implement it; ties and empty answers count as No, as in the reference."""

from selfalign import judge
from selfalign.backends import BackendChoice, open_backend
from selfalign.fewshot import load_judge_fewshot
from selfalign.records import read_stage
from selfalign.rulekit import progress_logger, shard_name, start_logging
from selfalign.shards import StageStats, publish_together, write_jsonl


def main() -> None:
    # Settings, typed once from the rule's params.
    settings = judge.JudgeSettings.from_config(snakemake.params.judge)
    choice = BackendChoice.from_config(snakemake.params.generation, gpus=int(snakemake.resources.get("gpu", 0) or 0))

    log = start_logging(snakemake.log[0], "judge_seeds")
    stats = StageStats("judge", shard_name(snakemake.output.shard))
    records = list(read_stage(snakemake.input.shard, "seeds"))
    stats.seen(len(records))
    # (with seeds.judge.enabled false the rule is not in the DAG: near-dedup reads the decontaminated shards)
    kept, removed = [], []
    if records:  # an empty shard loads no model
        backend = open_backend(
            choice, str(snakemake.input.model), snakemake.threads, progress_logger(log, "judge requests"), job=snakemake.rule
        )
        log.info("judging %d seeds with %s", len(records), settings)
        fewshot = load_judge_fewshot(snakemake.input.fewshot)
        kept = judge.judge_stage(records, fewshot, backend, settings, stats, removed)
        stats.versions = backend.versions()
    out = snakemake.output
    with publish_together(*out) as pub:  # the shard, its dropped seeds and its stats appear together
        stats.kept(write_jsonl(pub.path(out.shard), kept))
        write_jsonl(pub.path(out.removed), removed)
        log.info("%s", stats.write(pub.path(out.stats)))


# A main guard: vLLM may start its engine in a spawned process, which imports this script again as
# __mp_main__; without the guard that import would run the whole job a second time.
if __name__ == "__main__":
    main()
