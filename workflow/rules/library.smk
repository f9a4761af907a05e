# The library the rule scripts import: workflow/scripts/selfalign/.
#
# Snakemake runs a `script:` with the script's directory on sys.path when the workflow is a local
# checkout, and, when it is used as a remote module (snakedeploy's `github(...)` Snakefile), with the
# directory of the script's copy in Snakemake's source cache. Only files that something asked for are in
# that cache, so every library module is asked for here, through the source cache, at parse time: the
# copies land in `<cache>/.../workflow/scripts/selfalign/`, beside the scripts' own copies, and
# `import selfalign` works in both cases; a subpackage's files are listed with their folder
# ("sandbox/core"). tests/unit/test_library_manifest.py keeps this list complete.

LIBRARY_MODULES = [
    "__init__",
    "backends",
    "datacard",
    "decontamination",
    "devices",
    "envcheck",
    "evalplus_datasets",
    "evalplus_harness",
    "evalplus_scoring",
    "execute_stage",
    "fewshot",
    "fewshot_stats",
    "formats",
    "generation",
    "heuristics",
    "humaneval",
    "instruct",
    "judge",
    "launch",
    "lifetime",
    "lineage",
    "memplan",
    "neardedup",
    "preflight_checks",
    "programs",
    "prompts",
    "records",
    "report",
    "report_pages",
    "resume",
    "rulekit",
    "sandbox/__init__",
    "sandbox/apptainer",
    "sandbox/batch",
    "sandbox/bubblewrap",
    "sandbox/confine",
    "sandbox/core",
    "sandbox/factory",
    "sandbox/host",
    "sandbox/pool",
    "sandbox/process",
    "sandbox/seccomp",
    "sandbox/supervisor",
    "sanitize",
    "scores",
    "seed_filters",
    "seeds",
    "selection",
    "sft",
    "shards",
    "stack",
    "stage_funnel",
    "stages",
    "teacher",
    "typecheck",
    "vllm_backends",
]
LIBRARY_FILES = [
    workflow.source_path(f"../scripts/selfalign/{name}.py") for name in LIBRARY_MODULES
]
