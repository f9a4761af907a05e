# Scores: HumanEval pass@1 (greedy) of the base model and of the tuned model.


rule score_humaneval:
    input:
        model=model_dir,
    output:
        scores="results/scores/{model}/humaneval.json",
        samples="results/scores/{model}/humaneval.samples.jsonl",
    params:
        evaluation=config["evaluation"],
        execution=config["execution"],
        backend=config["generation"]["backend"],
        batch_size=config["generation"]["batch_size"],
        device=config["generation"]["device"],
    threads: GPU_THREADS
    log:
        "results/logs/score_humaneval/{model}.log",
    benchmark:
        "results/benchmarks/score_humaneval/{model}.tsv"
    conda:
        "../envs/evaluate.yaml"
    resources:
        mem_mb=mem_mb("gpu"),
        runtime=runtime("gpu"),
        gpu=GPUS,
    script:
        "../scripts/score_humaneval.py"
