"""Rule decontaminate_seeds: drop seeds containing benchmark text (exact substrings, as the reference, plus
optional word n-gram overlap), and list every removed seed with the benchmark item it matched."""

from selfalign.decontam import Decontaminator, load_strings
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, atomic_writer, dumps

log = start_logging(snakemake.log[0], "decontaminate_seeds")
cfg = dict(snakemake.params.decontamination)
stats = StageStats("decontaminate", shard_name(snakemake.output.shard))

strings = load_strings(snakemake.input.strings)
decontaminator = Decontaminator(strings, ngram=cfg["ngram"])
stats.extra.update(benchmark_strings=len(strings), ngram=cfg["ngram"], benchmark_ngrams=decontaminator.ngram_count)
log.info("%d benchmark strings, %d distinct %d-grams", len(strings), decontaminator.ngram_count, cfg["ngram"])

with atomic_writer(snakemake.output.shard) as kept, atomic_writer(snakemake.output.removed) as removed:
    for record in read_stage(snakemake.input.shard, "seeds"):
        stats.seen()
        found = decontaminator.find(record["seed"])
        if found is None:
            kept.write(dumps(record) + "\n")
            stats.kept()
            continue
        # "<benchmark>_match" for exact substrings (the reference's reason), "<benchmark>_ngram" for n-grams
        suffix = "match" if found.method == "substring" else "ngram"
        stats.drop(f"{found.string.benchmark}_{suffix}")
        removed.write(
            dumps(
                {
                    "seed_id": record["seed_id"],
                    "source": record["source"],
                    "benchmark": found.string.benchmark,
                    "task_id": found.string.task_id,
                    "method": found.method,
                    "matched": found.evidence,
                }
            )
            + "\n"
        )
log.info("%s", stats.write(snakemake.output.stats))
