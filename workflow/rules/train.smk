# Models: the demo teacher (only when no base model is configured) and the SFT of the base model.


rule train_teacher:
    input:
        instruct_fewshot=instruct_fewshot(),
        judge_fewshot=workflow.source_path("../resources/fewshot/docstring_judge.yaml"),
    output:
        directory("results/models/teacher"),
    params:
        teacher=config["model"]["teacher"],
    threads: GPU_THREADS
    log:
        "results/logs/train_teacher.log",
    benchmark:
        "results/benchmarks/train_teacher.tsv"
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=mem_mb("cpu"),
        runtime=runtime("cpu"),
    script:
        "../scripts/train_teacher.py"


rule train_sft:
    input:
        data="results/sft/train.jsonl",
        model=base_model(),
        deepspeed=workflow.source_path(
            "../resources/deepspeed/zero{}.json".format(config["sft"]["zero_stage"])
        ),
    output:
        directory("results/models/tuned"),
    params:
        sft=config["sft"],
        launcher=sft_launcher_preview,
    message:
        "train_sft: {resources.gpu} GPU(s), mem_mb={resources.mem_mb}, "
        "runtime={resources.runtime} min; launcher: {params.launcher}"
    threads: GPU_THREADS
    log:
        "results/logs/train_sft.log",
    benchmark:
        "results/benchmarks/train_sft.tsv"
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=mem_mb("train"),
        runtime=runtime("train"),
        gpu=SFT_GPUS,
    script:
        "../scripts/train_sft.py"
