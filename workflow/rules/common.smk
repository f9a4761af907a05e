# Config validation, shard helpers, resource classes and input and params helpers; nothing else.
import json
import math
import os
import re
import shutil
import sys
from collections.abc import Mapping
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


def unset_profile_variables(overwrite_resources):
    """Environment variables that the profile's set-resources name (e.g. slurm_partition:
    "$SNAKEMAKE_SLURM_GPU_PARTITION") but that are not set."""
    names = {
        str(resource.raw).strip("${}")
        for resources in overwrite_resources.values()
        for resource in resources.values()
        if isinstance(getattr(resource, "raw", None), str)
        and resource.raw.startswith("$")
    }
    return sorted(name for name in names if not os.environ.get(name))


# Fails in seconds, before any job: a Slurm profile whose GPU partition variable is not set.
if unset := unset_profile_variables(workflow.resource_settings.overwrite_resources):
    raise WorkflowError(
        f"{', '.join(unset)} not set: the profile's set-resources name it (the Slurm profile sends the GPU "
        "rules to $SNAKEMAKE_SLURM_GPU_PARTITION); export it, e.g. "
        "export SNAKEMAKE_SLURM_GPU_PARTITION=<partition with A100s>"
    )


def software_deployment():
    """Whether Snakemake builds every rule's conda env ("conda") or jobs run in its own env ("env")."""
    methods = workflow.deployment_settings.deployment_method
    return "conda" if any(str(m).lower().endswith("conda") for m in methods) else "env"


def rule_envs(wildcards):
    """Env file name -> the rules that use it and the file's dependencies, for the preflight's package
    check (called once every rule is defined; contents, not paths, so a moved run plans nothing).
    """
    envs = {}
    for defined in workflow.rules:
        env = defined.conda_env
        if env is None or callable(env):
            continue
        path = env.get_path_or_uri() if hasattr(env, "get_path_or_uri") else str(env)
        # a literal env path is relative to the file that defines the rule; a remote module's env file
        # is not local (conda deployment checks those)
        path = os.path.join(os.path.dirname(str(defined.snakefile)), path)
        if not os.path.isfile(path):
            continue
        entry = envs.setdefault(
            os.path.basename(path), {"rules": [], "dependencies": None}
        )
        entry["rules"].append(defined.name)
        if entry["dependencies"] is None:
            with open(path, encoding="utf-8") as handle:
                spec = yaml.safe_load(handle) or {}
            entry["dependencies"] = spec.get("dependencies", [])
    return {
        name: {**entry, "rules": sorted(entry["rules"])}
        for name, entry in sorted(envs.items())
    }


# The Slurm profile deploys per-rule conda envs; without conda on the submit host Snakemake would stop
# with "Error running conda info". Say what to do instead.
if (
    not workflow.remote_exec
    and software_deployment() == "conda"
    and not any(shutil.which(tool) for tool in ("conda", "mamba", "micromamba"))
):
    raise WorkflowError(
        "software deployment with conda was asked for (the Slurm profile sets software-deployment-method: "
        "conda), but no conda, mamba or micromamba is on PATH. Load one (e.g. `module load miniforge3`), or, "
        "with the install.sh environment on a file system the compute nodes share, replace the profile's "
        "method: snakemake --profile slurm --sdm env-modules (the rules declare no modules, so every job runs "
        "with the environment Snakemake runs in)"
    )

# A missing base model would surface as a MissingInputException naming a path; name the key instead. (Its
# contents are checked by the preflight rule: config and tokenizer load.)
if config["model"]["base"] and not Path(config["model"]["base"]).is_dir():
    raise WorkflowError(
        f"config model.base: {config['model']['base']} is not a directory (relative paths are from the working "
        "directory); put a local copy of the base model there, or set model.base: null for the demo teacher"
    )

# Likewise a missing code tree: the dry run already says so (the preflight then checks each holds Python files).
for index, tree in enumerate(config["sources"]["paths"]):
    if not Path(tree).is_dir():
        raise WorkflowError(f"config sources.paths[{index}]: {tree} is not a directory")

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


# Resources from the data: per-record costs, measured by benchmarks/resource_costs.py (BENCHMARKS.md,
# "Resources from the data"), except the GPU seconds per row, which come from that file's A100 sizing
# estimate (vLLM, a 15B model in bf16, prompts and outputs of the reference's size).
RESOURCE_COSTS = {
    "seed_record_bytes": 550,  # smallest mean line of the seed shards measured: more seeds per MB, not fewer
    "near_dedup_mib_per_1000_seeds": 2.1,
    "near_dedup_base_mib": 120,
    "gpu_seconds_per_row": {
        "judge": 0.1,
        "concepts": 0.2,
        "instructions": 0.3,
        "responses": 1.1,
    },
    "safety": 1.5,  # headroom over the estimate, before the retry's doubling
    # share of the extracted seeds that reach generation, for dry-run estimates (reference: ~5M -> ~250k)
    "final_seed_share": 0.05,
}


def expected_records(paths, share=1.0):
    """Records the job will read: from its input files' sizes once they exist (a real run), else from
    resources.expected_seeds spread over the shards, times the ``share`` of seeds that reach this stage
    (a dry run before any input exists)."""
    files = [Path(path) for path in paths]
    if files and all(path.is_file() for path in files):
        return (
            sum(path.stat().st_size for path in files)
            / RESOURCE_COSTS["seed_record_bytes"]
        )
    expected = config["resources"]["expected_seeds"] * share
    return expected * len(files) / max(1, config["shards"])


def model_weights_mb():
    """Size of the base model's weight files (0 before the demo teacher exists)."""
    folder = Path(base_model())
    if not folder.is_dir():
        return 0
    files = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return sum(path.stat().st_size for path in files) / 1e6


def gpu_job_mem_mb(resource_class, ranks=1):
    """Host memory of a GPU job: every rank (or the one inference engine) loads the weights through host
    memory once, plus the class's floor for everything else."""

    def mem(wildcards, attempt):
        floor = RESOURCE_CLASSES[resource_class]["mem_mb"]
        need = max(1, ranks) * model_weights_mb() * RESOURCE_COSTS["safety"]
        return attempt * math.ceil(floor + need)

    return mem


def sft_mem_mb(wildcards, input, attempt):
    """Host memory of the SFT job: the weights through every rank, or, once the sft_memory_plan rule has
    written it, the plan's host estimate per node (ZeRO's fp32 states pass through host memory; offload
    keeps them there) on top of the class's floor, whichever is larger."""
    weights = gpu_job_mem_mb("train", ranks=max(SFT_GPUS, 1))(wildcards, attempt)
    plan = Path(input.memory_plan)
    if not plan.is_file():  # a dry run before the plan exists
        return weights
    host_gib = json.loads(plan.read_text()).get("host_gib") or 0
    floor = RESOURCE_CLASSES["train"]["mem_mb"]
    planned = attempt * math.ceil(floor + host_gib * 1073.741824)  # GiB -> MB
    return max(weights, planned)


def near_dedup_mem_mb(wildcards, input, attempt):
    """All seeds' signatures and clusters in one process: grows with the seed count."""
    seeds = expected_records(input)
    estimate = RESOURCE_COSTS["near_dedup_base_mib"] + RESOURCE_COSTS[
        "near_dedup_mib_per_1000_seeds"
    ] * (seeds / 1000)
    need = math.ceil(estimate * RESOURCE_COSTS["safety"] * 1.048576)  # MiB -> MB
    return attempt * max(RESOURCE_CLASSES["cpu"]["mem_mb"], need)


def generation_runtime(step):
    """Minutes of one generation shard job: the class's floor, or its rows at the step's A100 rate."""

    def minutes(wildcards, input, attempt):
        share = 1.0 if step == "judge" else RESOURCE_COSTS["final_seed_share"]
        rows = expected_records([input.shard], share)
        estimate = rows * RESOURCE_COSTS["gpu_seconds_per_row"][step] / 60
        need = math.ceil(estimate * RESOURCE_COSTS["safety"])
        return attempt * max(RESOURCE_CLASSES["gpu"]["runtime"], need)

    return minutes


def canonical(value):
    """``value`` with every mapping's keys sorted, recursively. Snakemake detects changed params by their
    repr, so the order of keys in a user's config file must not make a rule rerun."""
    if isinstance(value, Mapping):
        return {key: canonical(value[key]) for key in sorted(value)}
    if isinstance(value, (list, tuple)):
        return [canonical(item) for item in value]
    return value


def section(*keys):
    """A config section for a rule's ``params:``, in canonical form, e.g. section("seeds", "judge")."""
    value = config
    for key in keys:
        value = value[key]
    return canonical(value)


def generation_params():
    """The generation backend settings a generating rule's params carry: the chosen backend and its own
    keys only, never the API key (the registry in selfalign.backends says which keys).
    """
    return canonical(library_module("backends").backend_params(config["generation"]))


def generation_gpus():
    """GPUs of a generating job: resources.gpus, or none when the backend is a server elsewhere."""
    return library_module("backends").job_gpus(config["generation"], GPUS)


def generation_env(role):
    """The conda env of a generating rule ("generate" or "evaluate") for the configured backend."""
    kind = library_module("backends").backend_kind(config["generation"]["backend"])
    return f"../envs/{kind.conda_envs[role]}"


def stack_shards(pattern):
    """Every shard of one Stack stage, when that source is enabled (else none)."""
    return shard_paths(pattern) if config["sources"]["stack"]["enabled"] else []


def judged_seeds():
    """What near-dedup reads: the judged shards, or, with the judge disabled, the decontaminated ones (a
    disabled judge is no job at all: no model to build or load, no GPU request)."""
    stage = "judged" if config["seeds"]["judge"]["enabled"] else "decontaminated"
    return shard_paths(f"results/seeds/{stage}/{{shard}}.jsonl")


def instruct_fewshot():
    """The configured Self-OSS-Instruct few-shot file: a bare name is a shipped file, anything else a path."""
    name = config["generation"]["fewshot"] or "self_oss_instruct.yaml"
    if Path(name).name != name:
        return name
    return workflow.source_path(f"../resources/fewshot/{name}")


def base_model():
    """The base model directory: the user's model, or the demo teacher a rule trains."""
    return config["model"]["base"] or "results/models/teacher"


def model_dir(wildcards):
    return base_model() if wildcards.model == "base" else "results/models/tuned"


def score_paths():
    """Every EvalPlus score file: each configured benchmark and model (base, tuned or both)."""
    return expand(
        "results/scores/{model}/{benchmark}.json",
        model=section("evaluation", "models"),
        benchmark=section("evaluation", "benchmarks"),
    )


def stage_table():
    """The library's stage table (selfalign/stages.py, standard library only)."""
    return library_module("stages")


def stage_stats():
    """Every stats file the funnel aggregates, as the stage table lists them (the judge's only when it runs)."""
    judged = config["seeds"]["judge"]["enabled"]
    return [
        path
        for path in stage_table().stats_paths(SHARDS)
        if judged or not path.startswith("results/seeds/judged/")
    ]


SFT_VERDICTS = []  # the memory plan's report, printed once per invocation


def failed_job_logs(main_log):
    """(rule, log path) of every job the main Snakemake log reports as failed."""
    paths = [main_log] if isinstance(main_log, (str, Path)) else list(main_log or [])
    text = "".join(
        Path(path).read_text(errors="replace") for path in paths if Path(path).is_file()
    )
    failed = []
    for block in re.split(r"Error in rule\s", text)[1:]:
        rule_name = block.split(":", 1)[0]
        for line in block.splitlines()[1:]:
            if not line.strip():
                break
            if line.strip().startswith("log: "):
                paths = line.strip()[len("log: ") :].split(" (check log")[0]
                failed.extend((rule_name, path.strip()) for path in paths.split(","))
    return failed


def print_failed_logs(main_log, lines=6):
    """After a failure: the last lines of each failed job's own log, so the error shows in the terminal
    (Snakemake itself prints only the log's path)."""
    for rule_name, path in failed_job_logs(main_log):
        log_file = Path(path)
        if not log_file.is_file():
            continue
        tail = [
            line
            for line in log_file.read_text(errors="replace").splitlines()
            if line.strip()
        ][-lines:]
        print(
            f"--- {rule_name}: last lines of {path}",
            *(f"    {line}" for line in tail),
            sep="\n",
        )


def print_funnel(path):
    if Path(path).exists():
        print(Path(path).read_text())


def sft_launcher_preview(wildcards, output, resources, input):
    """The SFT job's DeepSpeed launcher command, shown by dry runs (rule train_sft's message)."""
    launch = library_module("launch")
    args = launch.sft_arguments(
        config["sft"], input.model, input.data, output[0], gpus=resources.gpu
    )
    return launch.planned_command(resources.gpu, config["sft"]["ranks"], args)


def sft_memory_verdict(wildcards, input, resources):
    """train_sft's memory plan in config words, for its message; the verdict itself (the plan's estimate
    per GPU, FITS or DOES NOT FIT with the settings that would) is printed once, on the submit host, when
    Snakemake's own env has torch and the model's config exists; the sft_memory_plan rule checks it before the
    job is queued in any case. The returned text depends on the config only: it is a param, and a param
    that changed would rerun the SFT."""
    sft = config["sft"]
    described = (
        f"ZeRO-{sft['zero_stage']}"
        + (", gradient checkpointing" if sft["gradient_checkpointing"] else "")
        + (", optimizer offload" if sft["offload_optimizer"] else "")
        + f", {resources.gpu} x {sft['gpu_memory_gib']:g} GiB"
    )
    if not resources.gpu:
        return "CPU ranks, no GPU plan"
    config_json = Path(input.model) / "config.json"
    if not workflow.remote_exec and config_json.is_file() and not SFT_VERDICTS:
        try:
            memplan = library_module("memplan")
            verdict = memplan.check_plan(
                memplan.ModelShape.from_config(str(config_json)),
                memplan.plan_from_sft_config(sft, resources.gpu),
            )
            SFT_VERDICTS.append(verdict.report())
        except ImportError:
            SFT_VERDICTS.append(
                "SFT memory plan: checked by rule sft_memory_plan before train_sft "
                "(Snakemake's env has no torch to estimate it now)"
            )
        print(f"SFT memory plan ({described}):\n{SFT_VERDICTS[0]}", file=sys.stderr)
    return described


# Modules the workflow itself imports (the backend registry and the stage table while parsing; the launcher
# preview and the SFT memory verdict for train_sft's message). They import only the standard library at module level, so
# parsing never loads torch or vLLM (tests/unit/test_settings.py checks this); memplan imports torch only
# when it estimates.
PARSE_TIME_MODULES = ("backends", "launch", "memplan", "stages")


def library_module(name):
    """Import ``selfalign.<name>`` from where the rule scripts get it (checkout or source cache; LIBRARY_FILES is in library.smk)."""
    import importlib
    import sys

    if name not in PARSE_TIME_MODULES:
        raise ValueError(
            f"selfalign.{name} is not a parse-time module ({', '.join(PARSE_TIME_MODULES)})"
        )
    root = str(Path(LIBRARY_FILES[0]).parent.parent)
    if root not in sys.path:
        sys.path.append(
            root
        )  # appended: a script directory must not shadow an installed module
    return importlib.import_module(f"selfalign.{name}")
