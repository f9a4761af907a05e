# Execution-based self-validation: every response runs with its tests in the sandbox.


rule execute_responses:
    input:
        "results/respond/responses/{shard}.jsonl",
    output:
        shard="results/execute/verdicts/{shard}.jsonl",
        stats="results/execute/verdicts/{shard}.stats.json",
    params:
        execution=config["execution"],
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
