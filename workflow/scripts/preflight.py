"""Rule preflight: the submit-host checks (selfalign.preflight_checks); every problem is named, then the job fails."""

from selfalign.preflight_checks import PreflightSettings, run_checks
from selfalign.rulekit import start_logging
from selfalign.shards import write_json

params = snakemake.params
# The envs' package check (selfalign.envcheck) is not wired in yet: as params, the env contents change
# with the generation backend and would rerun this rule, which stopped the generation rules' DAG in a test.
settings = PreflightSettings.from_config(params.model, params.sources)
log = start_logging(snakemake.log[0], "preflight")
result = run_checks(settings)
for name, notes in result["notes"].items():
    for note in notes:
        log.info("%s: %s", name, note)
for name, problems in result["checks"].items():
    for problem in problems:
        log.error("%s: %s", name, problem)
if not result["ok"]:
    raise SystemExit("preflight failed:\n  " + "\n  ".join(p for ps in result["checks"].values() for p in ps))
write_json(snakemake.output[0], result)
log.info("preflight passed: %s", ", ".join(result["checks"]))
