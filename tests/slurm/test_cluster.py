"""The Slurm profile on a real one-node Slurm: the workflow submitted through snakemake-executor-plugin-slurm,
checked against Slurm's own accounting records (sacct).

The session fixture starts munge, MariaDB + slurmdbd, slurmctld and slurmd (cluster/start.sh) with partitions
`cpu` (default) and `gpu`; the node declares 4 fake A100s as GRES (device files that are /dev/null clones) and
an A100 node's CPUs and memory, so the profile's real-size requests can be scheduled. The GPU rules run on the
CPU (generation.device auto). Memory limits are Slurm's own: jobacct_gather samples each step's RSS every
second and OverMemoryKill kills a step over its --mem (no cgroups in a container).

Needs root and the Debian packages that `install.sh --test` installs as root; skipped otherwise.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
CLUSTER_DIR = Path(__file__).resolve().parent / "cluster"
PROFILE = REPO / "profiles" / "slurm"
ACCOUNT = "selfalign"
# the rules the profile sends to the GPU partition (judge, generation, SFT, scoring)
GPU_RULES = set(yaml.safe_load((PROFILE / "config.yaml").read_text())["set-resources"])
# Conda channels are out of reach on the test machine; the project's venv has every rule's packages. The
# profile's `software-deployment-method: [conda]` is replaced by one that no rule uses (no `envmodules:`).
NO_CONDA = ["--sdm", "env-modules"]
# Status polls start 5 s after a submission instead of the plugin's 40 s (a chain of ~15 short jobs).
FAST_POLLS = ["--slurm-init-seconds-before-status-checks", "5"]


@dataclass(frozen=True)
class Cluster:
    account: str
    cpu_partition: str = "cpu"
    gpu_partition: str = "gpu"

    def env(self) -> dict[str, str]:
        """What a user exports before `snakemake --profile profiles/slurm` (README.md, "Running on Slurm")."""
        return {
            **os.environ,
            "SNAKEMAKE_SLURM_GPU_PARTITION": self.gpu_partition,
            "SBATCH_PARTITION": self.cpu_partition,
            "SBATCH_ACCOUNT": self.account,
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            # the test cluster's A100s are GRES device files: GPU jobs must run on the CPU here
            "SELFALIGN_ALLOW_NO_GPU": "1",
        }


def _missing_packages() -> list[str]:
    daemons = [name for name in ("munged", "slurmctld", "slurmd", "slurmdbd", "mariadbd")
               if not (shutil.which(name) or Path("/usr/sbin", name).exists())]
    return daemons + [name for name in ("sbatch", "sacct", "sacctmgr") if not shutil.which(name)]


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("starting slurmctld, slurmd and slurmdbd needs root (CI runs as root)")
    if missing := _missing_packages():
        pytest.skip(f"Slurm packages missing ({', '.join(missing)}): run `bash install.sh --test` as root")
    env = {**os.environ, "SLURM_TEST_ACCOUNT": ACCOUNT}
    started = subprocess.run(["bash", str(CLUSTER_DIR / "start.sh")], env=env, capture_output=True, text=True,
                             timeout=300)
    try:
        if started.returncode != 0:
            pytest.fail(f"the test cluster did not start:\n{started.stdout}\n{started.stderr}")
        yield Cluster(account=ACCOUNT)
    finally:
        subprocess.run(["bash", str(CLUSTER_DIR / "stop.sh")], capture_output=True, timeout=120)


def sacct(since: str) -> list[dict[str, str]]:
    """Slurm's accounting records of the allocations (no steps) that started at or after `since`."""
    fields = ["JobID", "State", "Partition", "Account", "ReqTRES", "AllocTRES", "Comment"]
    out = subprocess.run(
        ["sacct", "-X", "-n", "-P", "-a", "--starttime", since, "--format", ",".join(fields)],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout
    return [dict(zip(fields, line.split("|", len(fields) - 1))) for line in out.splitlines() if line.strip()]


def rule_of(record: dict[str, str]) -> str:
    """The rule name from the plugin's `--comment rule_<rule>_wildcards_<...>`."""
    comment = record["Comment"]
    return comment.removeprefix("rule_").split("_wildcards_")[0]


def now() -> str:
    return datetime.datetime.now().strftime("%Y-%m-%dT%H:%M:%S")


def run_snakemake(cluster: Cluster, workdir: Path, *args: str, snakefile: Path | None = None,
                  timeout: float = 4 * 3600) -> subprocess.CompletedProcess:
    # `timeout` only guards against a hung run (the jobs' work does not depend on the machine's speed)
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile or REPO / "workflow" / "Snakefile"),
               "--profile", str(PROFILE), "--directory", str(workdir), *NO_CONDA, *FAST_POLLS, *args]
    # SIGINT on time-out: the plugin cancels its Slurm jobs on SIGINT (SIGTERM may leave it waiting)
    return subprocess.run(["timeout", "-s", "INT", "-k", "30", str(int(timeout)), *command], cwd=workdir,
                          env=cluster.env(), capture_output=True, text=True)


def failure_report(workdir: Path, result: subprocess.CompletedProcess) -> str:
    logs = sorted((workdir / "results" / "logs").rglob("*.log")) + sorted(
        (workdir / ".snakemake" / "slurm_logs").rglob("*.log"))
    tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-2000:]}" for log in logs)
    return f"snakemake exited {result.returncode}:\n{result.stderr[-6000:]}\n{tails[-15000:]}"


def small_config() -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    # A short demo teacher (tests/workflow runs the pipeline for its outputs; here only the jobs matter).
    config["model"]["teacher"]["steps"] = int(os.environ.get("SLURM_TEST_TEACHER_STEPS", "300"))
    config["seeds"]["limit"] = 16
    config["evaluation"]["limit"] = 8
    config["sft"]["epochs"] = 1
    config["resources"]["sft_gpus"] = 1
    config["resources"]["gpus"] = 1  # the GPU rules' count is the config's; the profile maps them to the partition
    return config


@pytest.fixture(scope="module")
def pipeline(slurm_cluster: Cluster, tmp_path_factory) -> tuple[Path, list[dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("slurm_pipeline")
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(small_config()))
    since = now()
    # Every stage up to the SFT set ...
    result = run_snakemake(slurm_cluster, workdir, "--", "sft_data")
    if result.returncode != 0:
        pytest.fail(failure_report(workdir, result))
    # ... then the rest (SFT, scores, report). How many pairs survive depends on the short demo teacher trained
    # here (a fixed step count, so the same on any machine); an empty set (train_sft refuses it) is replaced by
    # a few pairs, so that the SFT job itself is checked.
    sft_set = workdir / "results" / "sft" / "train.jsonl"
    if not sft_set.read_text().strip():
        sft_set.write_text("".join(json.dumps(row) + "\n" for row in FALLBACK_SFT_PAIRS))
        # its readers check the record count against the producer's stats: record the replacement there too
        stats_path = sft_set.with_name("train.stats.json")
        stats = json.loads(stats_path.read_text())
        stats["out"] = len(FALLBACK_SFT_PAIRS)
        stats["in"] = stats["out"] + sum(stats["dropped"].values())
        stats_path.write_text(json.dumps(stats))
    result = run_snakemake(slurm_cluster, workdir)
    if result.returncode != 0:
        pytest.fail(failure_report(workdir, result))
    return workdir, sacct(since)


FALLBACK_SFT_PAIRS = [
    {"instruction": f"Write a Python function `double_{i}(x)` that returns x times 2.",
     "response": f"```python\ndef double_{i}(x):\n    return x * 2\n```\nIt multiplies by two."}
    for i in range(8)
]


def test_gpu_rules_go_to_the_gpu_partition_with_their_gpus(pipeline) -> None:
    _, records = pipeline
    by_rule: dict[str, list[dict[str, str]]] = {}
    for record in records:
        by_rule.setdefault(rule_of(record), []).append(record)
    assert GPU_RULES <= by_rule.keys(), sorted(by_rule)
    last_attempts = {record["Comment"]: record for record in sorted(records, key=lambda r: int(r["JobID"]))}
    assert all(job["State"] == "COMPLETED" for job in last_attempts.values()), last_attempts  # retries allowed
    for rule, jobs in by_rule.items():
        for job in jobs:
            assert job["Account"] == ACCOUNT, job
            if rule in GPU_RULES:
                assert job["Partition"] == "gpu", job
                assert "gres/gpu=1" in job["ReqTRES"] and "gres/gpu:a100=1" in job["AllocTRES"], job
            else:
                assert job["Partition"] == "cpu", job
                assert "gres/gpu" not in job["ReqTRES"] + job["AllocTRES"], job


def test_at_most_one_job_per_shard_and_light_steps_inside_heavy_jobs(pipeline) -> None:
    workdir, records = pipeline
    rules = Counter(rule_of(record) for record in records)
    per_shard = ("filter_seeds", "judge_seeds", "generate_concepts", "generate_instructions", "generate_responses",
                 "execute_responses")
    assert all(rules[rule] == 2 for rule in per_shard), rules  # two shards: one job per shard and stage
    assert rules["extract_seeds"] == rules["near_dedup_seeds"] == rules["select_keep"] == 1, rules
    # the light steps wrote their shards from inside those jobs, with no job of their own
    for light in ("seeds/heuristics", "seeds/decontaminated", "seeds/final", "select/candidates"):
        assert all((workdir / "results" / light / f"{shard}.jsonl").exists() for shard in ("00", "01")), light


def test_rerunning_one_stage_submits_only_its_jobs(pipeline, slurm_cluster: Cluster) -> None:
    workdir, _ = pipeline
    since = now()
    result = run_snakemake(slurm_cluster, workdir, "--forcerun", "generate_concepts", "--", "concepts")
    assert result.returncode == 0, failure_report(workdir, result)
    assert sorted(rule_of(record) for record in sacct(since)) == ["generate_concepts", "generate_concepts"]


MEMORY_SNAKEFILE = """
rule all:
    input:
        "hungry.done",


rule memory_hungry:
    output:
        "hungry.done",
    resources:
        mem_mb=lambda wildcards, attempt: 700 * attempt,
        runtime=5,
    shell:
        "python3 -c 'import time; block = bytearray(900 * 2**20); time.sleep(6)' && touch {output}"
"""


def test_a_job_killed_for_memory_succeeds_on_retry_with_more(slurm_cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "Snakefile").write_text(MEMORY_SNAKEFILE)
    since = now()
    result = run_snakemake(slurm_cluster, tmp_path, snakefile=tmp_path / "Snakefile", timeout=3600)
    assert result.returncode == 0, failure_report(tmp_path, result)
    jobs = [record for record in sacct(since) if rule_of(record) == "memory_hungry"]
    assert [job["State"] for job in jobs] == ["FAILED", "COMPLETED"], jobs
    assert "mem=700M" in jobs[0]["ReqTRES"] and "mem=1400M" in jobs[1]["ReqTRES"], jobs
    assert "exceeded memory limit" in result.stderr or "exceeded memory limit" in "".join(
        log.read_text() for log in (tmp_path / ".snakemake" / "slurm_logs").rglob("*.log"))
