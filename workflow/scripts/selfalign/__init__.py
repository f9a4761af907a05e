"""selfalign: the library behind the workflow's rules (records, shards, prompts, backends, sandbox,
dedup, selection, training, scoring). Importable and testable without Snakemake."""

__version__ = "0.1.0"
