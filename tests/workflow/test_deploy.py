"""Catalog users deploy the workflow with snakedeploy and run it as a Snakemake module.

`snakedeploy deploy-workflow <repository> <empty dir>` copies config/, profiles/ and LICENSE and writes a
workflow/Snakefile that declares our workflow/Snakefile as a module. From a GitHub URL that module is
remote (`github("owner/repo", path=..., tag=...)`): Snakemake fetches the Snakefile, the rule files,
scripts, the library, env files and resources through its source cache. Here the deployment is made from a
local copy of the repository and the module is then used twice: from the copy's directory (a local module)
and over HTTP from a server on localhost (a remote module, fetched through the source cache exactly as from
GitHub). Both dry-run the whole workflow and run the seed extraction for real.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from conftest import REPO

SNAKEDEPLOY = Path(sys.executable).parent / "snakedeploy"
MODULE_LINE = '"workflow/Snakefile"'


def repository_copy(dest: Path) -> Path:
    """The files git tracks or would track (a clean clone of the working tree, uncommitted edits included)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("deploy")
    source = repository_copy(base / "selfalign")
    target = base / "deployment"
    target.mkdir()
    result = subprocess.run(
        [str(SNAKEDEPLOY), "deploy-workflow", str(source), str(target), "--branch", "main"],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stderr
    return source, target


@pytest.fixture(scope="module")
def http_source(deployment) -> Iterator[str]:
    source, _ = deployment
    handler = functools.partial(QuietHandler, directory=str(source))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep pytest's output clean
        pass


def use_module(deployment: tuple[Path, Path], snakefile: str, name: str) -> Path:
    """A copy of the deployment whose module Snakefile is ``snakefile``.

    snakedeploy writes the module path of a local source relative to that source's root
    ("workflow/Snakefile"), which Snakemake reads relative to the deployed Snakefile; this is the one line
    a local deployment has to point at the source (a GitHub deployment writes github(...) instead)."""
    _, target = deployment
    workdir = target.parent / name
    shutil.copytree(target, workdir)
    deployed = workdir / "workflow" / "Snakefile"
    text = deployed.read_text()
    assert text.count(MODULE_LINE) == 1, text
    deployed.write_text(text.replace(MODULE_LINE, repr(snakefile)))
    # A small real target: seeds from the library's own code instead of the whole standard library.
    config = yaml.safe_load((workdir / "config" / "config.yaml").read_text())
    config["sources"].update(stdlib=False, paths=[str(REPO / "workflow" / "scripts" / "selfalign")])
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return workdir


def snakemake_in(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "1", *args], cwd=workdir, capture_output=True, text=True, timeout=600
    )


def test_snakedeploy_copies_config_profiles_license_and_declares_the_module(deployment):
    source, target = deployment
    assert (target / "config" / "config.yaml").read_text() == (source / "config" / "config.yaml").read_text()
    assert (target / "config" / "README.md").exists()
    assert (target / "profiles" / "slurm" / "config.yaml").exists()
    assert (target / "LICENSE").exists()
    snakefile = (target / "workflow" / "Snakefile").read_text()
    assert "module selfalign:" in snakefile and "use rule * from selfalign" in snakefile


@pytest.mark.parametrize("where", ["local", "remote"])
def test_deployment_dry_runs_and_extracts_seeds(deployment, http_source, where):
    source, _ = deployment
    snakefile = str(source / "workflow" / "Snakefile") if where == "local" else f"{http_source}/workflow/Snakefile"
    workdir = use_module(deployment, snakefile, where)

    dry = snakemake_in(workdir, "-n")
    assert dry.returncode == 0, dry.stderr[-4000:]
    for rule in ("extract_seeds", "generate_responses", "execute_responses", "train_sft", "report_sections"):
        assert rule in dry.stdout, rule

    real = snakemake_in(workdir, "results/seeds/extracted/00.jsonl")
    log = workdir / "results" / "logs" / "extract_seeds.log"
    assert real.returncode == 0, real.stderr[-4000:] + (log.read_text()[-3000:] if log.exists() else "")
    counts = [len((workdir / f"results/seeds/extracted/{s}.jsonl").read_text().splitlines()) for s in ("00", "01")]
    assert sum(counts) > 0
    if where == "remote":
        # nothing was read from the source tree directly: the scripts ran from Snakemake's source cache
        assert str(source) not in log.read_text()


def test_deploying_from_a_local_clone_leaves_venvs_and_results_behind(tmp_path):
    """tools/deploy.sh: snakedeploy from a clean clone, the module path absolute (snakedeploy alone copies
    the whole directory and writes a path that resolves to workflow/workflow/Snakefile)."""
    source = repository_copy(tmp_path / "clone")
    git = ["git", "-c", "user.email=test@example.org", "-c", "user.name=test"]
    subprocess.run(["git", "init", "-q", "-b", "main"], cwd=source, check=True)
    subprocess.run([*git, "add", "-A"], cwd=source, check=True)
    subprocess.run([*git, "commit", "-qm", "clone"], cwd=source, check=True)
    for leftover in (".venv/lib/big.bin", ".venv-vllm/x", "results/seeds/x.jsonl"):
        (source / leftover).parent.mkdir(parents=True, exist_ok=True)
        (source / leftover).write_text("not to be deployed")
    target = tmp_path / "deployment"
    result = subprocess.run(
        ["bash", str(source / "tools" / "deploy.sh"), str(target)],
        capture_output=True, text=True, env={**__import__("os").environ, "SNAKEDEPLOY": str(SNAKEDEPLOY)},
    )
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["LICENSE", "config", "profiles", "workflow"]
    snakefile = (target / "workflow" / "Snakefile").read_text()
    assert f'"{source / "workflow" / "Snakefile"}"' in snakefile
    dry = snakemake_in(target, "-n")
    assert dry.returncode == 0, dry.stderr[-4000:]
    assert "train_sft" in dry.stdout
