# Models: the demo teacher (only when no base model is configured) and the SFT of the base model.


rule train_teacher:
    input:
        preflight=ancient("results/preflight.json"),
        instruct_fewshot=instruct_fewshot(),
        judge_fewshot=workflow.source_path("../resources/fewshot/docstring_judge.yaml"),
    output:
        directory("results/models/teacher"),
    params:
        teacher=section("model", "teacher"),
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


# On the submit host: the SFT's memory per GPU against the GPUs it will get; a plan that does not fit stops
# here, naming the settings that would, instead of failing hours later in the queue.
rule sft_memory_plan:
    input:
        model=base_model(),
    output:
        "results/models/sft_memory_plan.json",
    params:
        sft=section("sft"),
        gpus=SFT_GPUS,
    localrule: True
    log:
        "results/logs/sft_memory_plan.log",
    benchmark:
        "results/benchmarks/sft_memory_plan.tsv"
    conda:
        "../envs/train.yaml"
    script:
        "../scripts/sft_memory_plan.py"


rule train_sft:
    input:
        memory_plan="results/models/sft_memory_plan.json",
        preflight=ancient("results/preflight.json"),
        data="results/sft/train.jsonl",
        model=base_model(),
        deepspeed=workflow.source_path(
            "../resources/deepspeed/zero{}.json".format(config["sft"]["zero_stage"])
        ),
    output:
        directory("results/models/tuned"),
    params:
        sft=section("sft"),
        launcher=sft_launcher_preview,
        memory=sft_memory_verdict,
    message:
        "train_sft: {resources.gpu} GPU(s) on {resources.nodes} node, mem_mb={resources.mem_mb}, "
        "runtime={resources.runtime} min; memory plan: {params.memory}; launcher: {params.launcher}"
    threads: GPU_THREADS
    log:
        "results/logs/train_sft.log",
    benchmark:
        "results/benchmarks/train_sft.tsv"
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=sft_mem_mb,
        runtime=runtime("train"),
        gpu=SFT_GPUS,
        nodes=1,  # one DeepSpeed launcher starts every rank on its own node
    script:
        "../scripts/train_sft.py"
