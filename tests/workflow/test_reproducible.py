"""Same config, same bytes; kill -9 anywhere loses nothing and leaves nothing running; every record accounted for.

Expensive (three pipeline runs of the smallest config that still yields an SFT set, plus reruns after kills), so
they run together on one session-scoped clean run:

- two clean runs compare the hashes of every output, timings excepted (the files ``selfalign.shards.is_timing_file``
  names and the ``TIMING_KEYS`` and ``RUN_HISTORY_KEYS`` of JSON files);
- a third run is killed with SIGKILL to Snakemake's whole process group at three points (during pyright,
  mid-generation after a flushed chunk, during the SFT), each time listing the processes left, then finished by
  the rerun Snakemake asks for (``--unlock``, then ``--rerun-incomplete``), and must equal the clean run;
- a record deleted from a finished shard fails the downstream job, naming the file and both counts.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from conftest import GUARD_SECONDS, REPO, SNAKEMAKE, small_config, snakemake, write_config
from proctree import left as _left
from proctree import tree as _tree

sys.path.insert(0, str(REPO / "workflow" / "scripts"))
from selfalign.shards import RUN_HISTORY_KEYS, TIMING_KEYS, is_timing_file  # noqa: E402


def tiny_config() -> dict:
    config = small_config()  # the teacher's steps and the seed limit that still give a non-empty SFT set
    config["evaluation"]["limit"] = 4
    config["generation"]["chunk_rows"] = 4  # several flushed chunks per shard: a kill can land between them
    return config


def _without_timings(value: object) -> object:
    if isinstance(value, dict):
        return {
            key: _without_timings(item) for key, item in value.items() if key not in TIMING_KEYS | RUN_HISTORY_KEYS
        }
    if isinstance(value, list):
        return [_without_timings(item) for item in value]
    return value


# Resume state, not outputs: the SFT's checkpoints (the Trainer pickles its arguments, with paths, into them)
# and generation chunks (removed once a shard is complete).
RESUME_STATE = ("models/tuned.checkpoints/", ".chunks/")


def output_hashes(results: Path) -> dict[str, str]:
    """sha256 of every file under ``results``; JSON files hashed without their timing and run-history keys;
    timing files and resume state left out."""
    hashes = {}
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results).as_posix()
        if not path.is_file() or is_timing_file(relative) or any(part in relative for part in RESUME_STATE):
            continue
        data = path.read_bytes()
        if path.suffix == ".json":
            data = json.dumps(_without_timings(json.loads(data)), sort_keys=True).encode()
        hashes[relative] = hashlib.sha256(data).hexdigest()
    return hashes


def differences(first: dict[str, str], second: dict[str, str]) -> list[str]:
    return sorted(
        f"{name}: {'missing' if name not in first else 'extra' if name not in second else 'differs'}"
        for name in first.keys() | second.keys()
        if first.get(name) != second.get(name)
    )


def run_pipeline(workdir: Path) -> Path:
    write_config(workdir, yaml.safe_dump(tiny_config()))
    result = snakemake("--cores", "2", "--directory", str(workdir), cwd=workdir)
    assert result.returncode == 0, result.stderr[-5000:]
    return workdir / "results"


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory) -> Path:
    return run_pipeline(tmp_path_factory.mktemp("clean"))


@pytest.fixture(scope="module")
def clean(clean_run: Path) -> dict[str, str]:
    return output_hashes(clean_run)


def test_same_config_same_bytes(clean: dict[str, str], tmp_path: Path) -> None:
    again = output_hashes(run_pipeline(tmp_path))
    assert len(clean) > 50 and not differences(clean, again), differences(clean, again)


# --- kill -9 at three points --------------------------------------------------------------------------------------


def _kill_when(workdir: Path, ready: Callable[[dict[int, tuple[int, str]]], bool], what: str) -> None:
    """Run Snakemake in a process group of its own; SIGKILL the group once ``ready(tree)``; assert nothing is left."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [
        *SNAKEMAKE, "--snakefile", str(REPO / "workflow" / "Snakefile"), "--cores", "2", "--rerun-incomplete",
        "--directory", str(workdir),
    ]
    log = open(workdir / f"killed-{what.split()[0]}.log", "w")
    process = subprocess.Popen(command, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + GUARD_SECONDS
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(f"the run ended (exit {process.returncode}) before {what}; see {log.name}")
            tree = _tree(process.pid)
            if ready(tree):
                break
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {GUARD_SECONDS} s")
            time.sleep(0.1)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finally:
        log.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    left = _left(tree, wait=15.0)
    assert not left, f"left running after kill -9 {what}:\n" + "\n".join(left)
    # the rerun Snakemake asks for after a crash: release its lock, then redo the incomplete jobs
    unlock = snakemake("--unlock", "--cores", "1", "--directory", str(workdir), cwd=workdir)
    assert unlock.returncode == 0, unlock.stderr[-3000:]


def _runs(tree: dict[int, tuple[int, str]], *words: str) -> bool:
    return any(all(word in command for word in words) for _, command in tree.values())


def test_kill_9_at_three_points_then_rerun_gives_the_same_bytes(clean: dict[str, str], tmp_path: Path) -> None:
    write_config(tmp_path, yaml.safe_dump(tiny_config()))
    results = tmp_path / "results"
    _kill_when(tmp_path, lambda tree: _runs(tree, "node", "--outputjson"), "during pyright")

    def chunk_flushed(tree: dict[int, tuple[int, str]]) -> bool:
        flushed = [*results.glob("instruct/*/*.jsonl.chunks/000000.stats.json"), *results.glob("respond/*/*.jsonl.chunks/000000.stats.json")]
        return bool(flushed) and _runs(tree, "generate")

    _kill_when(tmp_path, chunk_flushed, "mid-generation after a flushed chunk")
    first_seen: list[float] = []

    def training(tree: dict[int, tuple[int, str]]) -> bool:
        if not _runs(tree, "-m selfalign.sft"):  # a rank (the launcher's own command says --module)
            return False
        first_seen.append(first_seen[0] if first_seen else time.monotonic())
        return time.monotonic() - first_seen[0] > 5  # past start-up, into training

    _kill_when(tmp_path, training, "during the SFT")
    result = snakemake("--cores", "2", "--rerun-incomplete", "--directory", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-5000:]
    killed = output_hashes(results)
    assert not differences(clean, killed), differences(clean, killed)
    staged = [p.relative_to(results).as_posix() for p in results.rglob(".publishing.*")]
    assert not staged, f"staged files left after the rerun: {staged}"


def test_a_record_deleted_from_a_finished_shard_fails_downstream(clean_run: Path) -> None:
    # last in this file: it edits the clean run the tests above compared against
    shard = max(clean_run.glob("instruct/concepts/*.jsonl"), key=lambda path: path.stat().st_size)
    lines = shard.read_text().splitlines(keepends=True)
    assert len(lines) >= 2, shard
    shard.write_text("".join(lines[:-1]))  # still valid JSONL: only the count shows the loss
    workdir = clean_run.parent
    result = snakemake("--cores", "2", "--directory", str(workdir), "instructions", cwd=workdir)
    assert result.returncode != 0, "the truncated shard was read without an error"
    log = (clean_run / "logs" / "generate_instructions" / f"{shard.name.split('.')[0]}.log").read_text()
    relative = shard.relative_to(workdir)  # Snakemake hands jobs paths relative to the working directory
    stats = relative.with_name(relative.name.replace(".jsonl", ".stats.json"))
    expected = f"{relative}: {len(lines) - 1} records, but its producer's stats {stats} count {len(lines)}"
    assert expected in log + result.stderr, (log + result.stderr)[-3000:]
