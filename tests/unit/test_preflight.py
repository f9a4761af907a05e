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
