"""Rule filter_seeds: the per-shard CPU filters of the seed stage, in the reference's order, in one job.

1. heuristics: the reference's cheap pre-filters (bad words, banned imports, length, arity);
2. type check: add missing imports (autoimport, as the reference's --infer-imports), then drop functions
   that pinned pyright reports errors for (basic mode, as the reference), batches in parallel;
3. decontamination: drop seeds containing benchmark text (exact substrings, as the reference, plus optional
   word n-gram overlap), and list every removed seed with the benchmark item it matched.

Each step reads the shard the step before wrote and writes its own shard and stats file, as separate rules
would; they share a job because the first and last are too light to be worth a Slurm job each.
"""

from selfalign.decontam import Decontaminator, load_strings
from selfalign.heuristics import heuristic_reject
from selfalign.records import read_stage
from selfalign.rulekit import shard_name, start_logging
from selfalign.shards import StageStats, atomic_writer, dumps, write_jsonl
from selfalign.typecheck import add_missing_imports, import_environment, typecheck

log = start_logging(snakemake.log[0], "filter_seeds")
out = snakemake.output
shard = shard_name(out.shard)


def filter_heuristics(source: str, cfg: dict) -> None:
    stats = StageStats("heuristics", shard)
    stats.extra["mode"] = cfg["mode"]

    def kept():
        for record in read_stage(source, "seeds"):
            stats.seen()
            reason = heuristic_reject(record["seed"], mode=cfg["mode"], max_lines=cfg["max_lines"])
            if reason:
                stats.drop(reason)
                continue
            stats.kept()
            yield record

    write_jsonl(out.heuristics, kept())
    log.info("heuristics: %s", stats.write(out.heuristics_stats))


def typecheck_seeds(source: str, cfg: dict, heuristics: dict, workers: int) -> None:
    stats = StageStats("typecheck", shard)
    records = []
    imports_added = 0
    for record in read_stage(source, "seeds"):
        stats.seen()
        if cfg["autoimport"]:
            fixed = add_missing_imports(record["seed"])
            if fixed != record["seed"]:
                # The reference ran its heuristics after this step: an added `import os` is still a banned import.
                reason = heuristic_reject(fixed, mode=heuristics["mode"], max_lines=heuristics["max_lines"])
                if reason is not None:
                    stats.drop(f"autoimport_{reason}")
                    continue
                imports_added += 1
                record = {**record, "seed": fixed}  # seed_id stays the extracted function's id (lineage)
        records.append(record)
    log.info(
        "type-checking %d functions (%d with imports added) in batches of %d on %d workers",
        len(records), imports_added, cfg["batch_size"], workers,
    )
    result = typecheck(
        [r["seed"] for r in records], batch_size=cfg["batch_size"], workers=workers, timeout=cfg["timeout"]
    )
    kept = []
    for record, outcome in zip(records, result.checks, strict=True):
        if outcome.ok:
            kept.append(record)
        else:
            stats.drop(outcome.reason or "pyright_error")
    stats.kept(write_jsonl(out.typechecked, kept))
    stats.versions = dict(result.versions)
    stats.extra.update(
        pyright_runs=result.pyright_runs,
        workers=workers,
        imports_added=imports_added,
        import_environment=import_environment(),
    )
    log.info("type check: %s", stats.write(out.typechecked_stats))


def decontaminate_seeds(source: str, strings_path: str, cfg: dict) -> None:
    stats = StageStats("decontaminate", shard)
    strings = load_strings(strings_path)
    decontaminator = Decontaminator(strings, ngram=cfg["ngram"])
    stats.extra.update(benchmark_strings=len(strings), ngram=cfg["ngram"], benchmark_ngrams=decontaminator.ngram_count)
    log.info("%d benchmark strings, %d distinct %d-grams", len(strings), decontaminator.ngram_count, cfg["ngram"])
    with atomic_writer(out.shard) as kept, atomic_writer(out.removed) as removed:
        for record in read_stage(source, "seeds"):
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
    log.info("decontamination: %s", stats.write(out.stats))


params = snakemake.params
filter_heuristics(snakemake.input.shard, dict(params.heuristics))
typecheck_seeds(out.heuristics, dict(params.typecheck), dict(params.heuristics), snakemake.threads)
decontaminate_seeds(out.typechecked, snakemake.input.strings, dict(params.decontamination))
