# Execution-based self-validation: every response runs with its tests in the sandbox. The same job then
# keeps the passing samples with a usable format (selection's per-shard step, too light for a job of its own).


rule execute_responses:
    input:
        "results/respond/responses/{shard}.jsonl",
    output:
        shard="results/execute/verdicts/{shard}.jsonl",
        stats="results/execute/verdicts/{shard}.stats.json",
        candidates="results/select/candidates/{shard}.jsonl",
        candidates_stats="results/select/candidates/{shard}.stats.json",
        candidates_removed="results/select/candidates/{shard}.removed.jsonl",
    params:
        execution=section("execution"),
        # only what the format checks read: a change to selection's dedup must not rerun execution
        max_instruction_words=section("selection", "max_instruction_words"),
    threads: CPU_THREADS
    log:
        "results/logs/execute_responses/{shard}.log",
    benchmark:
        "results/benchmarks/execute_responses/{shard}.tsv"
    conda:
        "../envs/execute.yaml"
    resources:
        mem_mb=mem_mb("cpu"),
        runtime=runtime("cpu"),
    script:
        "../scripts/execute_responses.py"
