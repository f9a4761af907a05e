"""A user's config is the schema's defaults + that file (nothing of the demo); reruns only on real changes;
a disabled judge is no job."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import DEFAULT_CONFIG, REPO, snakemake, write_config

PRESETS = sorted((REPO / "config" / "presets").glob("*.yaml"))


def resolved(workdir: Path, *args: str) -> dict:
    """The config the rules see, written by the resolved_config target."""
    result = snakemake("--cores", "1", "--directory", str(workdir), *args, "--", "resolved_config", cwd=workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    return yaml.safe_load((workdir / "results" / "config.yaml").read_text())


def test_a_user_config_inherits_nothing_from_the_demo(tmp_path: Path) -> None:
    user = tmp_path / "my.yaml"
    user.write_text("shards: 3\nsources: {stdlib: false, paths: [" + str(tmp_path) + "]}\n")
    config = resolved(tmp_path, "--configfile", str(user))
    demo = yaml.safe_load(DEFAULT_CONFIG.read_text())
    assert demo["seeds"]["limit"] == 40
    assert config["seeds"]["limit"] == 0  # every seed goes on: the schema's default, not the demo's 40
    assert config["shards"] == 3
    assert config["evaluation"]["datasets"] == {"humaneval": "evalplus", "mbpp": "evalplus"}
    assert config["generation"]["chunk_rows"] == 2000 and config["sft"]["learning_rate"] == 1e-5


def test_without_a_config_file_the_demo_runs(tmp_path: Path) -> None:
    write_config(tmp_path, DEFAULT_CONFIG.read_text())
    assert resolved(tmp_path)["seeds"]["limit"] == 40


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_presets_score_on_the_real_evalplus_releases(tmp_path: Path, preset: Path) -> None:
    base = yaml.safe_load(preset.read_text())["model"]["base"]
    (tmp_path / base).mkdir(parents=True)  # the preset's local model directory (parsing checks it exists)
    config = resolved(tmp_path, "--configfile", str(preset))
    assert set(config["evaluation"]["datasets"].values()) == {"evalplus"}
    assert config["evaluation"]["limit"] == 0


def reorder(value: object) -> object:
    """The same config with every mapping's keys in reverse order."""
    if isinstance(value, dict):
        return {key: reorder(value[key]) for key in reversed(list(value))}
    return value


QUICK = ["benchmark_strings", "evalplus_data", "resolved_config"]


def test_reordered_keys_and_a_copied_run_directory_rerun_nothing(tmp_path: Path) -> None:
    first = tmp_path / "run"
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    write_config(first, yaml.safe_dump(config, sort_keys=False))
    targets = ["results/seeds/benchmarks/strings.jsonl", "results/evalplus/humaneval.jsonl", "results/config.yaml"]
    done = snakemake("--cores", "1", "--directory", str(first), *targets, cwd=first)
    assert done.returncode == 0, done.stderr[-3000:]

    write_config(first, yaml.safe_dump(reorder(config), sort_keys=False))
    again = snakemake("-n", "--directory", str(first), *targets, cwd=first)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Nothing to be done" in again.stdout + again.stderr, again.stdout

    copy = tmp_path / "copy"
    shutil.copytree(first, copy, symlinks=True)  # copytree keeps modification times (copy2)
    moved = snakemake("-n", "--directory", str(copy), *targets, cwd=copy)
    assert moved.returncode == 0, moved.stderr[-3000:]
    assert "Nothing to be done" in moved.stdout + moved.stderr, moved.stdout


def test_a_disabled_judge_is_no_job_and_needs_no_model(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seeds"]["judge"]["enabled"] = False
    write_config(tmp_path, yaml.safe_dump(config))
    plan = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), "seeds", cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "near_dedup_seeds" in plan.stdout
    assert "judge_seeds" not in plan.stdout and "train_teacher" not in plan.stdout


def test_scoring_only_the_tuned_model_plans_no_base_scoring_job(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["evaluation"]["models"] = ["tuned"]
    write_config(tmp_path, yaml.safe_dump(config))
    plan = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert plan.returncode == 0, plan.stderr[-3000:]
    assert "results/scores/tuned/humaneval.json" in plan.stdout
    assert "results/scores/base/" not in plan.stdout


def test_the_sft_asks_for_the_host_memory_its_memory_plan_estimates(tmp_path: Path) -> None:
    """ZeRO's host-side states for a 15B model exceed the weights-per-rank formula: once the plan exists,
    train_sft's mem_mb follows its host estimate."""
    import json

    write_config(tmp_path, DEFAULT_CONFIG.read_text())
    plan = tmp_path / "results/models/sft_memory_plan.json"
    plan.parent.mkdir(parents=True)
    plan.write_text(json.dumps({"checked": True, "host_gib": 350.0}))
    result = snakemake("-n", "--directory", str(tmp_path), "results/models/tuned", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    message = next(line for line in result.stdout.splitlines() if "train_sft: " in line and "mem_mb=" in line)
    mem_mb = int(message.split("mem_mb=")[1].split(",")[0])
    assert mem_mb == math.ceil(32000 + 350 * 1073.741824)


def near_dedup_mem_mb(workdir: Path, config: dict) -> int:
    write_config(workdir, yaml.safe_dump(config))
    plan = snakemake("-n", "--directory", str(workdir), "seeds", cwd=workdir)
    assert plan.returncode == 0, plan.stderr[-3000:]
    block = plan.stdout[plan.stdout.index("rule near_dedup_seeds:"):]
    resources = block[block.index("resources:"):].splitlines()[0]
    return int(resources.split("mem_mb=")[1].split(",")[0])


def test_the_near_dedup_request_grows_with_the_seed_count(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    sizes = {}
    for seeds in (0, 2_000_000, 5_000_000):
        config["resources"]["expected_seeds"] = seeds
        sizes[seeds] = near_dedup_mem_mb(tmp_path / str(seeds), config)
    assert sizes[0] == 4000  # unknown: the CPU class's floor
    assert 4000 < sizes[2_000_000] < sizes[5_000_000]
    # 2.1 MiB per 1,000 seeds measured (benchmarks/resource_costs.py), with headroom: 5M seeds need > 11 GB
    assert sizes[5_000_000] > 11_000
    # once the judged shards exist, their size decides (the config's expectation no longer counts)
    existing = tmp_path / "existing"
    config["resources"]["expected_seeds"] = 0
    write_config(existing, yaml.safe_dump(config))
    for shard in ("00", "01"):  # sparse files: only their size is read, about 2.5M seeds' worth
        path = existing / "results" / "seeds" / "judged" / f"{shard}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            handle.truncate(700_000_000)
    assert near_dedup_mem_mb(existing, config) > 8_000


def test_a_missing_base_model_stops_parsing_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["model"]["base"] = "models/not-there"
    write_config(tmp_path, yaml.safe_dump(config))
    result = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "config model.base: models/not-there is not a directory" in result.stdout + result.stderr


def test_a_missing_source_tree_stops_the_dry_run_naming_the_key(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"]["paths"] = ["/nonexistent/code"]
    write_config(tmp_path, yaml.safe_dump(config))
    result = snakemake("-n", "--directory", str(tmp_path), cwd=tmp_path)
    assert result.returncode != 0
    assert "config sources.paths[0]: /nonexistent/code is not a directory" in result.stdout + result.stderr


def test_an_unset_gpu_partition_variable_stops_the_slurm_dry_run(tmp_path: Path) -> None:
    import os

    write_config(tmp_path, DEFAULT_CONFIG.read_text())
    env = {k: v for k, v in os.environ.items() if k != "SNAKEMAKE_SLURM_GPU_PARTITION"}
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
         "--profile", str(REPO / "profiles" / "slurm"), "--sdm", "env-modules", "--directory", str(tmp_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    assert "SNAKEMAKE_SLURM_GPU_PARTITION not set" in result.stdout + result.stderr


def test_the_preflight_stops_an_empty_source_tree_before_any_job(tmp_path: Path) -> None:
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    empty = tmp_path / "my-code"
    empty.mkdir()
    config["sources"] = {"stdlib": False, "paths": [str(empty)]}
    write_config(tmp_path, yaml.safe_dump(config))
    result = snakemake("--cores", "1", "--directory", str(tmp_path), "seeds", cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"config sources.paths[0]: {empty} holds no file matching" in output
    assert not (tmp_path / "results" / "seeds" / "extracted").exists()  # no job after the preflight ran


def test_the_preflight_names_a_package_the_backend_needs_but_this_environment_lacks(tmp_path: Path) -> None:
    """Without conda every job runs in this interpreter: backend vllm there needs vllm installed."""
    pytest.importorskip("snakemake")
    if shutil.which("vllm") or __import__("importlib.util").util.find_spec("vllm"):
        pytest.skip("vllm is installed in the test environment")
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["generation"]["backend"] = "vllm"
    write_config(tmp_path, yaml.safe_dump(config))
    result = snakemake("--cores", "1", "--directory", str(tmp_path), "results/preflight.json", cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "workflow/envs/generate-vllm.yaml (rules " in output and "needs vllm==" in output and "not installed" in output


def test_a_rerun_preflight_does_not_end_the_run_before_the_jobs_after_it(tmp_path: Path) -> None:
    """Changed sources rerun the preflight; the seed extraction after it must run in the same invocation.

    (Every job reads the preflight's verdict as an ancient input; Snakemake then skips evaluating the jobs
    after a rerun job, so without the checkpoint the run would stop, successful, after the preflight.)"""
    code = tmp_path / "my-code"
    (code / "pkg").mkdir(parents=True)
    for name in ("a", "b"):
        (code / "pkg" / f"{name}.py").write_text(f'def {name}(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n')
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"] = {"stdlib": False, "paths": [str(code)]}
    write_config(tmp_path, yaml.safe_dump(config))
    target = "results/seeds/extracted/stats.json"
    first = snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    config["sources"]["exclude"] = ["**/b.py"]
    write_config(tmp_path, yaml.safe_dump(config))
    again = snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    output = again.stdout + again.stderr
    assert "preflight:" in output and "extract_seeds:" in output
    seeds = [json.loads(line)["seed"] for shard in sorted((tmp_path / "results/seeds/extracted").glob("*.jsonl"))
             for line in shard.read_text().splitlines()]  # fmt: skip
    assert [seed.split("(")[0] for seed in seeds] == ["def a"]


def test_a_failed_preflight_then_fixed_reruns_no_finished_job(tmp_path: Path) -> None:
    """A typo in the sources fails the preflight (Snakemake removes its verdict); fixed, the preflight runs
    again and nothing finished reruns (a missing verdict used to rerun every job after it: all GPU jobs)."""
    code = tmp_path / "my-code"
    code.mkdir()
    (code / "a.py").write_text('def a(x: int) -> int:\n    """Twice x."""\n    return 2 * x\n')
    (tmp_path / "empty").mkdir()
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["sources"] = {"stdlib": False, "paths": [str(code)]}
    write_config(tmp_path, yaml.safe_dump(config))
    target = "results/seeds/extracted/stats.json"
    assert snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path).returncode == 0
    extracted = (tmp_path / target).stat().st_mtime_ns
    typo = {**config, "sources": {"stdlib": False, "paths": [str(tmp_path / "empty")]}}
    write_config(tmp_path, yaml.safe_dump(typo))
    assert snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path).returncode != 0
    assert not (tmp_path / "results/preflight.json").exists()
    write_config(tmp_path, yaml.safe_dump(config))
    fixed = snakemake("--cores", "1", "--directory", str(tmp_path), target, cwd=tmp_path)
    assert fixed.returncode == 0, fixed.stderr[-3000:]
    assert (tmp_path / "results/preflight.json").exists()
    assert "extract_seeds:" not in fixed.stdout + fixed.stderr
    assert (tmp_path / target).stat().st_mtime_ns == extracted
