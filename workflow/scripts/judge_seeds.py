"""Rule judge_seeds: the base model judges, few-shot and greedy, whether each docstring describes its
function well enough to re-implement it; ties and empty answers count as No, as in the reference."""

from selfalign import judge
from selfalign.fewshot import load_judge_fewshot
from selfalign.generation import GenerationRequest
from selfalign.records import read_stage
from selfalign.rulekit import rule_backend, shard_name, start_logging
from selfalign.shards import StageStats, write_jsonl

log = start_logging(snakemake.log[0], "judge_seeds")
cfg = dict(snakemake.params.judge)
stats = StageStats("judge", shard_name(snakemake.output.shard))
records = list(read_stage(snakemake.input.shard, "seeds"))
stats.seen(len(records))

if not cfg["enabled"]:
    stats.extra["judge"] = "disabled"
    stats.kept(write_jsonl(snakemake.output.shard, records))
    stats.write(snakemake.output.stats)
    raise SystemExit(0)

fewshot = load_judge_fewshot(snakemake.input.fewshot)
backend = rule_backend(snakemake, log, "judge requests", kind=snakemake.params.backend)
limit = min(cfg["max_prompt_tokens"], backend.max_context - judge.JUDGE_MAX_NEW_TOKENS)

candidates, requests = [], []
for record in records:
    parts = judge.split_docstring(record["seed"])
    if parts is None:
        stats.drop("no_docstring")
        continue
    code, docstring = parts
    # Shot order is reshuffled per prompt with a seed derived from the seed's content id, so a
    # function gets the same prompt whatever shard or position it lands in.
    prompt = judge.judge_prompt(fewshot, code, docstring, seed=int(record["seed_id"][2:10], 16), shots=cfg["shots"])
    if backend.count_tokens(prompt) > limit:
        stats.drop("prompt_too_long")
        continue
    candidates.append(record)
    requests.append(GenerationRequest(prompt=prompt, spec=judge.JUDGE_SAMPLING, key=record["seed_id"]))

log.info("judging %d seeds (%d skipped before generation)", len(requests), len(records) - len(requests))
completions = backend.generate(requests)
answers = {"yes": 0, "no": 0}
kept = []
for record, (completion,) in zip(candidates, completions, strict=True):
    if judge.judge_verdict(completion.text):
        answers["yes"] += 1
        kept.append(record)
    else:
        answers["no"] += 1
        stats.drop("judged_no")
stats.kept(write_jsonl(snakemake.output.shard, kept))
stats.extra["answers"] = answers
stats.versions = backend.versions()
log.info("%s", stats.write(snakemake.output.stats))
