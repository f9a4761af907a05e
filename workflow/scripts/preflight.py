"""Rule preflight: the submit-host checks (selfalign.preflight_checks); every problem is named, then the job fails."""

from selfalign.preflight_checks import PreflightSettings, run_checks
from selfalign.rulekit import start_logging
from selfalign.shards import write_json

params = snakemake.params
settings = PreflightSettings.from_config(
    params.model, params.sources, params.software, dict(params.rule_envs), params.execution_backend, params.required_envs
)
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
