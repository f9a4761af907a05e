"""Static checks of the workflow: lint, formatting, dry run, config validation, rule conventions."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml
from selfalign.backends import BACKENDS

from conftest import DEFAULT_CONFIG, REPO, snakemake, write_config

RULE_FILES = sorted((REPO / "workflow" / "rules").glob("*.smk"))


def test_lint_is_clean():
    result = snakemake("--lint")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


def test_snakefmt_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "snakefmt", "--check", "workflow/Snakefile", *map(str, RULE_FILES)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_dry_run_plans_every_stage(tmp_path):
    write_config(tmp_path, DEFAULT_CONFIG.read_text())
    result = snakemake("-n", "--quiet", "rules", "--directory", str(tmp_path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    for rule in (
        "extract_seeds", "filter_seeds", "judge_seeds", "near_dedup_seeds",
        "generate_concepts", "generate_instructions", "generate_responses", "execute_responses",
        "select_keep", "assemble_sft_data", "train_sft", "evalplus_data", "score_evalplus", "funnel",
    ):
        assert rule in result.stdout, rule


def _rule_blocks() -> dict[str, str]:
    blocks = {}
    for path in [REPO / "workflow" / "Snakefile", *RULE_FILES]:
        text = path.read_text()
        for match in re.finditer(r"^(?:rule|checkpoint) (\w+):\n((?:    .*\n|\n)*)", text, re.M):
            blocks[match.group(1)] = match.group(2)
    return blocks


def test_every_rule_with_an_action_has_log_benchmark_and_pinned_conda_env():
    blocks = _rule_blocks()
    assert len(blocks) > 20
    for name, body in blocks.items():
        if "script:" not in body and "shell:" not in body:
            continue  # a target rule
        assert "    log:" in body, name
        assert "    benchmark:" in body, name
        env = re.search(r'conda:\n\s+"\.\./(envs/[\w.]+\.yaml)"', body)
        role = re.search(r'conda:\n\s+generation_env\("(\w+)"\)', body)
        assert env or role, f"{name}: no conda env under envs/"
        # a generating rule's env comes from the backend registry: every backend's env for its role
        envs = [env.group(1)] if env else [f"envs/{kind.conda_envs[role.group(1)]}" for kind in BACKENDS.values()]
        for path in envs:
            spec = yaml.safe_load((REPO / "workflow" / path).read_text())
            assert spec["channels"] == ["conda-forge", "nodefaults"], name
            for dep in spec["dependencies"]:
                if isinstance(dep, str) and dep.startswith("python"):
                    assert "=" in dep


def _dry_run_with(tmp_path: Path, config: dict) -> subprocess.CompletedProcess:
    write_config(tmp_path, yaml.safe_dump(config))
    return snakemake("-n", "--quiet", "--directory", str(tmp_path), cwd=tmp_path)


def test_unknown_config_key_fails_naming_the_key(tmp_path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["seeds"]["near_dedup"]["treshold"] = 0.5
    result = _dry_run_with(tmp_path, config)
    assert result.returncode != 0
    assert "treshold" in result.stderr + result.stdout


def test_wrong_config_type_fails_naming_the_key(tmp_path):
    config = yaml.safe_load(DEFAULT_CONFIG.read_text())
    config["shards"] = "two"
    result = _dry_run_with(tmp_path, config)
    assert result.returncode != 0
    output = result.stderr + result.stdout
    assert "shards" in output and "'two' is not of type 'integer'" in output


def test_minimal_config_gets_schema_defaults(tmp_path):
    result = _dry_run_with(tmp_path, {"shards": 3})
    assert result.returncode == 0, result.stderr


def _schema_keys(properties: dict, defs: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, spec in properties.items():
        keys.append(prefix + key)
        if "$ref" in spec:
            spec = defs[spec["$ref"].rsplit("/", 1)[-1]]
        keys += _schema_keys(spec.get("properties", {}), defs, prefix + key + ".")
    return keys


def test_config_readme_documents_every_schema_key():
    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    manual = (REPO / "config/README.md").read_text()
    missing = [key for key in _schema_keys(schema["properties"], schema["$defs"]) if f"`{key}`" not in manual]
    assert not missing, f"config/README.md does not document {missing}"


def test_presets_are_valid_configs():
    import jsonschema

    schema = yaml.safe_load((REPO / "workflow/schemas/config.schema.yaml").read_text())
    for preset in sorted((REPO / "config/presets").glob("*.yaml")):
        jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(preset.read_text()))


def test_one_shard_can_be_targeted_by_its_path(tmp_path):
    write_config(tmp_path, DEFAULT_CONFIG.read_text())
    result = snakemake(
        "-n", "results/instruct/concepts/01.jsonl", "--directory", str(tmp_path), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "results/instruct/concepts/01.jsonl" in result.stdout
    assert "results/instruct/concepts/00.jsonl" not in result.stdout
    assert "generate_responses" not in result.stdout


def test_every_conda_env_pins_every_package():
    """conda-forge packages with `=version`, pip packages with `==version`: an env file names one env."""
    for path in sorted((REPO / "workflow" / "envs").glob("*.yaml")):
        spec = yaml.safe_load(path.read_text())
        assert spec["channels"] == ["conda-forge", "nodefaults"], path.name
        for dep in spec["dependencies"]:
            if isinstance(dep, dict):
                assert all("==" in pip_dep for pip_dep in dep["pip"]), (path.name, dep)
            else:
                assert re.fullmatch(r"[\w.-]+=[\w.]+(=[\w.*]+)?", dep), (path.name, dep)  # a build string may follow
