# The configuration the run really uses: the user's file (or the demo) with the schema's defaults filled in.


rule resolved_config:
    output:
        "results/config.yaml",
    params:
        config=canonical(config),
    localrule: True
    log:
        "results/logs/resolved_config.log",
    benchmark:
        "results/benchmarks/resolved_config.tsv"
    conda:
        "../envs/seeds.yaml"
    script:
        "../scripts/resolved_config.py"


# On the submit host, in seconds, before any job that reads the seeds' sources or the model is queued:
# the model's config and tokenizer load, every source tree holds Python files, the envs' packages exist.
# A checkpoint, so that Snakemake plans the jobs after it again once it has run: they read its verdict as
# an ancient input, and Snakemake 9 does not evaluate the jobs below a rerun job across ancient inputs,
# so a preflight rerun by a changed setting would otherwise end the run, successfully, after itself; and
# a verdict that went missing (a failed preflight's output is removed) would rerun every job after it.
checkpoint preflight:
    output:
        "results/preflight.json",
    params:
        model=section("model"),
        sources=section("sources"),
        execution_backend=config["execution"]["backend"],
        software=software_deployment(),
        rule_envs=rule_envs,
        required_envs=sorted(
            {
                os.path.basename(generation_env(role))
                for role in ("generate", "evaluate")
            }
        ),
    localrule: True
    log:
        "results/logs/preflight.log",
    benchmark:
        "results/benchmarks/preflight.tsv"
    conda:
        "../envs/generate.yaml"
    script:
        "../scripts/preflight.py"
