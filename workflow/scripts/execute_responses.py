"""Rule execute_responses: run every response's code with its tests in the sandbox and record the verdict;
then selection's per-shard step: the passing samples with a usable format, with their dedup keys.

Every sample is written with its verdict (pass, fail, timeout, memory, infra-error, or not run because it
has no code or does not compile) to the verdicts shard; the candidates shard holds the passing ones that
pass the format checks, and its stats count every other sample by reason.
"""

from collections import Counter

from selfalign import programs, records, selection
from selfalign.records import read_stage
from selfalign.rulekit import progress_logger, shard_name, start_logging
from selfalign.sandbox import Limits, make_sandbox, run_many
from selfalign.shards import StageStats, write_jsonl

log = start_logging(snakemake.log[0], "execute_responses")
cfg = dict(snakemake.params.execution)
stats = StageStats("execute", shard_name(snakemake.output.shard))
limits = Limits(
    wall_seconds=cfg["wall_seconds"],
    cpu_seconds=cfg["cpu_seconds"],
    memory_mb=cfg["memory_mb"],
    processes=cfg["processes"],
)
# The pool holds one sandbox per rule thread (run_many below runs that many samples at once).
sandbox = make_sandbox(cfg["backend"], pool_start=cfg["pool_start"], apptainer_image=cfg["apptainer_image"])

rows = list(read_stage(snakemake.input[0], "responses"))
stats.seen(len(rows))
built = [programs.build_program(row["response"], row["tests"]) for row in rows]
runnable = [i for i, b in enumerate(built) if b.program is not None]
log.info("%d samples, %d runnable, %d workers, limits %s", len(rows), len(runnable), snakemake.threads, limits)
verdicts = run_many(
    sandbox,
    [built[i].program for i in runnable],
    limits,
    workers=snakemake.threads,
    infra_retries=cfg["infra_retries"],
    progress=progress_logger(log, "executed"),
)
by_index = dict(zip(runnable, verdicts, strict=True))

counts: Counter = Counter()
execution_seconds = 0.0
out = []
for i, row in enumerate(rows):
    program = built[i].program
    if program is None:
        status, detail = built[i].drop_reason, {"returncode": None, "stdout_tail": "", "stderr_tail": ""}
    else:
        verdict = by_index[i]
        status = verdict.status
        # No timing in the record (same config, same bytes): run times go to the stats only.
        execution_seconds += verdict.seconds
        detail = {
            "returncode": verdict.returncode,
            "stdout_tail": verdict.stdout_tail,
            "stderr_tail": verdict.stderr_tail,
            "attempts": verdict.attempts,
        }
    counts[status] += 1
    out.append(
        {
            **row,
            "verdict_id": records.verdict_id(row["response_id"], status),
            "verdict": status,
            "program": program,
            "execution": detail,
        }
    )
stats.kept(write_jsonl(snakemake.output.shard, out))
stats.extra["verdicts"] = dict(sorted(counts.items()))
stats.extra["execution_seconds"] = round(execution_seconds, 3)  # timing: sum of the samples' run times
stats.extra["limits"] = limits.__dict__
stats.versions = sandbox.versions()
if hasattr(sandbox, "close"):
    sandbox.close()
if counts.get("infra-error"):
    log.warning("%d samples could not be run by the sandbox (infra-error); they are kept and reported", counts["infra-error"])
log.info("%s", stats.write(snakemake.output.stats))

candidate_stats = StageStats("select_candidates", shard_name(snakemake.output.candidates))


def candidates():
    for record in out:
        candidate_stats.seen()
        if record["verdict"] != "pass":
            candidate_stats.drop(f"verdict_{record['verdict']}")
            continue
        problem = selection.format_problem(record, snakemake.params.max_instruction_words)
        if problem:
            candidate_stats.drop(problem)
            continue
        candidate_stats.kept()
        yield {**record, "selection_keys": selection.candidate_keys(record)}


write_jsonl(snakemake.output.candidates, candidates())
log.info("%s", candidate_stats.write(snakemake.output.candidates_stats))
