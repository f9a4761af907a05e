"""Checks run on the submit host before any GPU job is queued: what would otherwise fail hours later.

Each check names the config key and the path it is about. ``run_checks`` returns every problem found
(not only the first), so one preflight run tells the user everything to fix.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import envcheck
from .seeds import python_files

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


@dataclass(frozen=True)
class PreflightSettings:
    model_base: str | None = None  # None: the workflow builds the demo teacher itself
    stdlib: bool = False
    source_paths: Sequence[str] = ()
    include: Sequence[str] = ("**/*.py",)
    exclude: Sequence[str] = ()
    allow_empty_sources: bool = False
    stack_enabled: bool = False
    # the envs' packages: how jobs get their software ("conda" or "env"), env file -> its rules, and
    # requirements this configuration does not use
    software: str = "conda"
    rule_envs: Mapping[str, Mapping[str, Any]] | None = None
    skip_requirements: Sequence[str] = ()
    # envs whose missing packages stop the run: the generating rules' (the backend picks it); a package
    # missing from another env is a warning (a split setup may run those rules from another environment)
    required_envs: Sequence[str] | None = None

    @classmethod
    def from_config(
        cls,
        model: Mapping[str, Any],
        sources: Mapping[str, Any],
        software: str = "conda",
        rule_envs: Mapping[str, Mapping[str, Any]] | None = None,
        execution_backend: str = "bubblewrap",
        required_envs: Sequence[str] | None = None,
    ) -> PreflightSettings:
        return cls(
            model_base=model.get("base"),
            stdlib=bool(sources["stdlib"]),
            source_paths=tuple(sources["paths"]),
            include=tuple(sources["include"]),
            exclude=tuple(sources["exclude"]),
            allow_empty_sources=bool(sources.get("allow_empty", False)),
            stack_enabled=bool(sources["stack"]["enabled"]),
            software=software,
            rule_envs=dict(rule_envs or {}),
            # the bubblewrap program matters only to that sandbox backend
            skip_requirements=() if execution_backend == "bubblewrap" else ("bwrap",),
            required_envs=None if required_envs is None else tuple(required_envs),
        )


def check_model(path: str) -> list[str]:
    """``model.base`` must be a local model directory whose config and tokenizer load."""
    where = f"config model.base: {path}"
    folder = Path(path)
    if not folder.exists():
        return [f"{where} does not exist (a local copy of the base model is needed; compute nodes are often offline)"]
    if not folder.is_dir():
        return [f"{where} is not a directory"]
    if not any(folder.iterdir()):
        return [f"{where} is an empty directory (download the model into it, e.g. `huggingface-cli download "
                f"bigcode/starcoder2-15b --local-dir {path}`)"]
    problems = []
    if not (folder / "config.json").is_file():
        problems.append(f"{where} has no config.json: not a Hugging Face model directory")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        problems.append(f"{where} has no tokenizer files ({', '.join(TOKENIZER_FILES)})")
    if not any(folder.glob("*.safetensors")) and not any(folder.glob("*.bin")):
        problems.append(f"{where} has no weights (*.safetensors or *.bin)")
    if problems:
        return problems
    try:
        from transformers import AutoConfig, AutoTokenizer

        AutoConfig.from_pretrained(path)
        AutoTokenizer.from_pretrained(path)
    except Exception as err:  # noqa: BLE001 - any loader failure is the user's to see, with the key
        last = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        problems.append(f"{where}: the config or tokenizer does not load: {type(err).__name__}: {last}")
    return problems


def check_sources(settings: PreflightSettings) -> list[str]:
    """Every configured code tree exists and holds Python files; some seed source is configured."""
    problems = []
    if not (settings.stdlib or settings.source_paths or settings.stack_enabled):
        return ["config sources: no seed source (set sources.stdlib, sources.paths or sources.stack.enabled)"]
    for index, path in enumerate(settings.source_paths):
        where = f"config sources.paths[{index}]: {path}"
        root = Path(path)
        if not root.exists():
            problems.append(f"{where} does not exist")
        elif not root.is_dir():
            problems.append(f"{where} is not a directory")
        elif not settings.allow_empty_sources and not python_files([root], list(settings.include), list(settings.exclude)):
            problems.append(
                f"{where} holds no file matching sources.include {list(settings.include)} outside "
                "sources.exclude (set sources.allow_empty: true if that is intended)"
            )
    return problems


def run_checks(settings: PreflightSettings) -> dict[str, Any]:
    """Every check's problems by name, whether all passed, and notes worth reading (other versions)."""
    packages = (
        envcheck.check_env_packages(settings.rule_envs, settings.software, settings.skip_requirements, settings.required_envs)
        if settings.rule_envs is not None
        else {"problems": [], "notes": []}
    )
    checks = {
        "model": check_model(settings.model_base) if settings.model_base else [],
        "sources": check_sources(settings),
        "packages": packages["problems"],
    }
    return {"ok": not any(checks.values()), "checks": checks, "notes": {"packages": packages["notes"]}}
