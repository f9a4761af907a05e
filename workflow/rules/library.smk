# The library the rule scripts import: workflow/scripts/selfalign/.
#
# Snakemake runs a `script:` with the script's directory on sys.path when the workflow is a local
# checkout, and, when it is used as a remote module (snakedeploy's `github(...)` Snakefile), with the
# directory of the script's copy in Snakemake's source cache. Only files that something asked for are in
# that cache, so every library module is asked for here, through the source cache, at parse time: the
# copies land in `<cache>/.../workflow/scripts/selfalign/`, beside the scripts' own copies, and
# `import selfalign` works in both cases. tests/unit/test_library_manifest.py keeps this list complete.

LIBRARY_MODULES = [
    "__init__",
    "backends",
    "datacard",
    "decontam",
    "evalplus_data",
    "evalplus_scoring",
    "fewshot",
    "funnel",
    "generation",
    "heuristics",
    "humaneval",
    "instruct",
    "judge",
    "launch",
    "lifetime",
    "neardedup",
    "pool_supervisor",
    "programs",
    "prompts",
    "records",
    "report",
    "resume",
    "rulekit",
    "sandbox",
    "sandbox_apptainer",
    "sandbox_pool",
    "seeds",
    "selection",
    "sft",
    "shards",
    "stack",
    "teacher",
    "typecheck",
    "vllm_backends",
]
LIBRARY_FILES = [
    workflow.source_path(f"../scripts/selfalign/{name}.py") for name in LIBRARY_MODULES
]
