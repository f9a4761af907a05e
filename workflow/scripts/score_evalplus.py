"""Rule score_evalplus: greedy pass@1 (base and plus) of one model on one EvalPlus benchmark.

The base model is prompted with the raw problem (completion style, as base models are scored); the
tuned model with the instruction layout it was trained on. evalplus's checks run in the sandbox.
"""

from selfalign import evalplus_scoring as scoring
from selfalign.evalplus_datasets import load_plus
from selfalign.backends import BackendChoice, open_backend
from selfalign.rulekit import progress_logger, start_logging
from selfalign.sandbox import ExecutionSettings, make_sandbox
from selfalign.shards import read_json, write_json, write_jsonl


def main() -> None:
    # Settings, typed once from the rule's params.
    choice = BackendChoice.from_config(snakemake.params.generation, gpus=int(snakemake.resources.get("gpu", 0) or 0))
    log = start_logging(snakemake.log[0], "score_evalplus")
    cfg = dict(snakemake.params.evaluation)
    execution = dict(snakemake.params.execution)
    model = snakemake.wildcards.model
    benchmark = snakemake.wildcards.benchmark
    style = "completion" if model == "base" else "instruct"
    dataset = read_json(snakemake.input.meta)

    problems = load_plus(benchmark, snakemake.input.data)
    expected = scoring.expected_outputs(benchmark, problems, dataset["md5"])
    task_ids = list(problems)[: cfg["limit"] or None]
    backend = open_backend(
        choice, str(snakemake.input.model), snakemake.threads, progress_logger(log, "problems generated"), job=snakemake.rule
    )
    requests = scoring.build_requests(
        benchmark, [problems[t] for t in task_ids], style, cfg["max_new_tokens"], bos=backend.tokenizer.bos_token or ""
    )
    log.info("%s model, %s: %d of %d problems, %s prompts", model, benchmark, len(task_ids), len(problems), style)
    completions = [outs[0] for outs in backend.generate(requests)]
    solutions = {
        t: scoring.completion_to_solution(benchmark, problems[t], style, c.text)
        for t, c in zip(task_ids, completions, strict=True)
    }
    settings = ExecutionSettings.from_config(execution)
    sandbox = make_sandbox(settings)
    statuses = scoring.check_solutions(
        benchmark, problems, solutions, expected, sandbox, settings.limits, workers=snakemake.threads,
        infra_retries=settings.infra_retries,
    )
    write_jsonl(
        snakemake.output.samples,
        (
            {
                "task_id": t, "completion": c.text, "finish_reason": c.finish_reason, "solution": solutions[t],
                "base_status": statuses[t]["base"], "plus_status": statuses[t]["plus"],
            }
            for t, c in zip(task_ids, completions, strict=True)
        ),
    )
    summary = {
        "model": model,
        "model_path": snakemake.input.model,
        "benchmark": benchmark,
        "dataset": {key: dataset[key] for key in ("name", "source", "version", "md5", "problems", "evalplus")},
        "prompt_style": style,
        "greedy": True,
        "max_new_tokens": cfg["max_new_tokens"],
        "limit": cfg["limit"],
        **scoring.summarize(task_ids, statuses),
        "versions": {**backend.versions(), **sandbox.versions(), "evalplus": dataset["evalplus"]},
    }
    write_json(snakemake.output.scores, summary)
    log.info("%s", summary)


# A main guard: vLLM may start its engine in a spawned process, which imports this script again as
# __mp_main__; without the guard that import would run the whole job a second time.
if __name__ == "__main__":
    main()
