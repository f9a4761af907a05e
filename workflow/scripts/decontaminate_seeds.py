"""Rule decontaminate_seeds: drop seeds containing benchmark text (exact substrings, as the reference),
and list every removed seed with the benchmark item it matched."""

from selfalign.decontam import Decontaminator, humaneval_strings
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, atomic_writer, dumps

log = start_logging(snakemake.log[0], "decontaminate_seeds")
cfg = dict(snakemake.params.decontamination)
stats = StageStats("decontaminate", shard_name(snakemake.output.shard))

strings = humaneval_strings() if cfg["humaneval"] else []
decontaminator = Decontaminator(strings)
stats.extra["benchmark_strings"] = len(strings)
log.info("%d benchmark strings", len(strings))

with atomic_writer(snakemake.output.shard) as kept, atomic_writer(snakemake.output.removed) as removed:
    for record in read_stage(snakemake.input[0], "seeds"):
        stats.seen()
        match = decontaminator.match(record["seed"])
        if match is None:
            kept.write(dumps(record) + "\n")
            stats.kept()
            continue
        stats.drop(f"{match.benchmark}_match")
        removed.write(
            dumps(
                {
                    "seed_id": record["seed_id"],
                    "source": record["source"],
                    "benchmark": match.benchmark,
                    "task_id": match.task_id,
                    "matched": match.text,
                }
            )
            + "\n"
        )
log.info("%s", stats.write(snakemake.output.stats))
