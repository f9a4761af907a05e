"""Rule filter_seeds: heuristics -> autoimport + pyright -> decontamination on one shard, in one job
(selfalign.seed_filters); each step writes its own shard and stats file."""

from selfalign.rulekit import shard_name, start_logging
from selfalign.seed_filters import (
    DecontaminationSettings,
    HeuristicsSettings,
    TypecheckSettings,
    decontaminate_seeds,
    filter_heuristics,
    typecheck_seeds,
)
from selfalign.shards import StageStats, publish_together

# Settings, typed once from the rule's params.
heuristics = HeuristicsSettings.from_config(snakemake.params.heuristics)
typecheck = TypecheckSettings.from_config(snakemake.params.typecheck)
decontamination = DecontaminationSettings.from_config(snakemake.params.decontamination)

log = start_logging(snakemake.log[0], "filter_seeds")
out = snakemake.output
shard = shard_name(out.shard)

# The three steps' outputs appear together at the end: a kill between steps leaves none that looks finished.
with publish_together(*snakemake.output) as pub:
    stats = StageStats("heuristics", shard)
    filter_heuristics(snakemake.input.shard, pub.path(out.heuristics), pub.path(out.heuristics_removed), heuristics, stats)
    log.info("heuristics: %s", stats.write(pub.path(out.heuristics_stats)))

    stats = StageStats("typecheck", shard)
    typecheck_seeds(
        pub.path(out.heuristics), pub.path(out.typechecked), pub.path(out.typechecked_removed), typecheck,
        heuristics, snakemake.threads, stats,
    )
    log.info("type check: %s", stats.write(pub.path(out.typechecked_stats)))

    stats = StageStats("decontaminate", shard)
    decontaminate_seeds(
        pub.path(out.typechecked), snakemake.input.strings, pub.path(out.shard), pub.path(out.removed),
        decontamination, stats,
    )
    log.info("decontamination: %s", stats.write(pub.path(out.stats)))
