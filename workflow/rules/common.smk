# Config validation, shard helpers, resource classes and input helpers; nothing else.
from pathlib import Path

import jsonschema
import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import validate


def config_problems(config, schema_path):
    """One line per problem, naming the key's path (Snakemake's own message buries it in the schema dump)."""
    with open(schema_path) as handle:
        schema = yaml.safe_load(handle)
    validator = jsonschema.Draft202012Validator(schema)
    return [
        "{}: {}".format(
            ".".join(map(str, error.absolute_path)) or "(top level)", error.message
        )
        for error in sorted(
            validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path))
        )
    ]


SCHEMA = workflow.source_path("../schemas/config.schema.yaml")
if problems := config_problems(config, SCHEMA):
    raise WorkflowError("Invalid configuration:\n  " + "\n  ".join(problems))
validate(config, schema="../schemas/config.schema.yaml")  # fills in the defaults

SHARDS = [f"{i:02d}" for i in range(config["shards"])]
GPUS = config["resources"]["gpus"]
SFT_GPUS = config["resources"]["sft_gpus"]
CPU_THREADS = config["resources"]["cpu_threads"]
GPU_THREADS = config["resources"]["gpu_threads"]


wildcard_constraints:
    shard=r"\d+",
    model="base|tuned",
    benchmark="humaneval|mbpp",


def shard_paths(pattern):
    """Every shard of one stage, e.g. shard_paths("results/seeds/final/{shard}.jsonl")."""
    return expand(pattern, shard=SHARDS)


# Resource classes: portable resources only (partition, account and GPU model live in profiles).
# Memory and runtime grow with the attempt so that a retry after an out-of-memory or timeout kill asks
# for more.
RESOURCE_CLASSES = {
    "light": {"mem_mb": 1000, "runtime": 30},
    "cpu": {"mem_mb": 4000, "runtime": 120},
    "gpu": {"mem_mb": 16000, "runtime": 240},
    "train": {"mem_mb": 32000, "runtime": 720},
}


def mem_mb(resource_class):
    base = RESOURCE_CLASSES[resource_class]["mem_mb"]
    return lambda wildcards, attempt: base * attempt


def runtime(resource_class):
    base = RESOURCE_CLASSES[resource_class]["runtime"]
    return lambda wildcards, attempt: base * attempt


def stack_shards(pattern):
    """Every shard of one Stack stage, when that source is enabled (else none)."""
    return shard_paths(pattern) if config["sources"]["stack"]["enabled"] else []


def base_model():
    """The base model directory: the user's model, or the demo teacher a rule trains."""
    return config["model"]["base"] or "results/models/teacher"


def model_dir(wildcards):
    return base_model() if wildcards.model == "base" else "results/models/tuned"


def score_paths():
    """Every EvalPlus score file: each configured benchmark, base and tuned model."""
    return expand(
        "results/scores/{model}/{benchmark}.json",
        model=["base", "tuned"],
        benchmark=config["evaluation"]["benchmarks"],
    )


def stage_table():
    """The library's stage table (selfalign/stages.py: standard library only), loaded as one file so
    that parsing the workflow imports nothing else of the library."""
    import importlib.util
    import sys

    name = "selfalign_stage_table"
    if name not in sys.modules:
        path = workflow.source_path("../scripts/selfalign/stages.py")
        spec = importlib.util.spec_from_file_location(name, path)
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    return sys.modules[name]


def stage_stats():
    """Every stats file the funnel aggregates, as the stage table lists them."""
    return stage_table().stats_paths(SHARDS)


def print_funnel(path):
    if Path(path).exists():
        print(Path(path).read_text())


def sft_launcher_preview(wildcards, output, resources, input):
    """The SFT job's DeepSpeed launcher command, shown by dry runs (rule train_sft's message)."""
    import sys

    # the library where library.smk resolved it: the checkout, or the source cache of a deployed module
    sys.path.insert(0, str(Path(LIBRARY_FILES[0]).parent.parent))
    from selfalign.launch import planned_command, sft_arguments

    args = sft_arguments(config["sft"], input.model, input.data, output[0])
    return planned_command(resources.gpu, config["sft"]["ranks"], args)
