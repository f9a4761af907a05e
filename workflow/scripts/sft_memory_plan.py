"""Rule sft_memory_plan: on the submit host, before train_sft is queued, estimate the SFT's memory per GPU
(selfalign.memplan) and refuse a plan that will not fit, naming the settings that would."""

from selfalign import memplan
from selfalign.rulekit import start_logging
from selfalign.shards import write_json

gpus = int(snakemake.params.gpus)
plan = memplan.plan_from_sft_config(snakemake.params.sft, gpus) if gpus > 0 else None
log = start_logging(snakemake.log[0], "sft_memory_plan")
if plan is None:
    write_json(snakemake.output[0], {"checked": False, "why": "resources.sft_gpus is 0: CPU ranks, no GPU plan"})
    log.info("no GPU plan to check (resources.sft_gpus: 0)")
else:
    verdict = memplan.check_plan(memplan.ModelShape.from_config(str(snakemake.input.model)), plan)
    log.info("%s", verdict.report())
    if not verdict.fits:
        raise SystemExit(f"sft_memory_plan: the SFT plan does not fit:\n{verdict.report()}")
    write_json(snakemake.output[0], {"checked": True, **memplan.verdict_json(verdict)})
