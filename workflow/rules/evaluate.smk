# Scores: EvalPlus HumanEval(+) and MBPP(+), greedy pass@1, of the base model and of the tuned model.


# A local rule: fetching an EvalPlus release needs internet, which login nodes usually have.
rule evalplus_data:
    input:
        demo=workflow.source_path("../resources/benchmarks/mbpp_plus_demo.jsonl"),
    output:
        data="results/evalplus/{benchmark}.jsonl",
        meta="results/evalplus/{benchmark}.meta.json",
    params:
        source=lambda wildcards: config["evaluation"]["datasets"][wildcards.benchmark],
    log:
        "results/logs/evalplus_data/{benchmark}.log",
    benchmark:
        "results/benchmarks/evalplus_data/{benchmark}.tsv"
    conda:
        "../envs/evaluate.yaml"
    localrule: True
    script:
        "../scripts/evalplus_data.py"


rule score_evalplus:
    input:
        preflight=ancient("results/preflight.json"),
        model=model_dir,
        data="results/evalplus/{benchmark}.jsonl",
        meta="results/evalplus/{benchmark}.meta.json",
    output:
        scores="results/scores/{model}/{benchmark}.json",
        samples="results/scores/{model}/{benchmark}.samples.jsonl",
    params:
        evaluation=section("evaluation"),
        execution=section("execution"),
        generation=generation_params(),
    threads: GPU_THREADS
    log:
        "results/logs/score_evalplus/{model}/{benchmark}.log",
    benchmark:
        "results/benchmarks/score_evalplus/{model}/{benchmark}.tsv"
    conda:
        generation_env("evaluate")
    resources:
        mem_mb=gpu_job_mem_mb("gpu"),
        runtime=runtime("gpu"),
        gpu=generation_gpus(),
    script:
        "../scripts/score_evalplus.py"
