"""Settings typed once at the rule boundary: the generation-backend registry and the typed sections."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from selfalign.backends import (
    BACKENDS,
    BackendChoice,
    OpenAISettings,
    TransformersSettings,
    VLLMSettings,
    backend_params,
    open_backend,
)
from selfalign.generation import SamplingSpec, StepSettings
from selfalign.judge import JudgeSettings
from selfalign.seed_filters import HeuristicsSettings, TypecheckSettings

REPO = Path(__file__).resolve().parents[2]
SCHEMA = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())


def schema_defaults(node: dict) -> object:
    """The schema's defaults of one object node, filled in recursively (what the workflow validates to)."""
    if node.get("type") == "object" and "properties" in node:
        return {key: schema_defaults(child) for key, child in node["properties"].items()}
    return node.get("default")


GENERATION = schema_defaults(SCHEMA["properties"]["generation"])


def test_every_backend_in_the_schema_has_a_registry_row_and_back() -> None:
    enum = SCHEMA["properties"]["generation"]["properties"]["backend"]["enum"]
    assert sorted(enum) == sorted(BACKENDS)
    for kind, entry in BACKENDS.items():
        for key in entry.config_keys:
            assert key in GENERATION, f"{kind}: config key generation.{key} is not in the schema"
        for role, env in entry.conda_envs.items():
            assert (REPO / "workflow" / "envs" / env).is_file(), f"{kind}/{role}: workflow/envs/{env} is missing"
        BackendChoice.from_config({**GENERATION, "backend": kind}, gpus=0)  # every schema default is accepted


def test_params_carry_only_the_chosen_backend_and_never_the_key() -> None:
    generation = {**GENERATION, "backend": "openai", "openai": {**GENERATION["openai"], "api_key": "sk-secret"}}
    params = backend_params(generation)
    assert set(params) == {"backend", "openai"}
    assert "sk-secret" not in repr(params)
    assert set(backend_params({**GENERATION, "backend": "transformers"})) == {"backend", "device", "batch_size"}
    fingerprint = BackendChoice.from_config(generation).fingerprint()
    assert "sk-secret" not in repr(fingerprint)


def test_vllm_tensor_parallelism_is_the_jobs_gpu_count() -> None:
    generation = {**GENERATION, "backend": "vllm", "vllm": {**GENERATION["vllm"], "dtype": "bfloat16"}}
    choice = BackendChoice.from_config(generation, gpus=4)
    assert isinstance(choice.settings, VLLMSettings)
    assert choice.settings.tensor_parallel_size == 4 and choice.settings.dtype == "bfloat16"
    assert BackendChoice.from_config(generation, gpus=0).settings.tensor_parallel_size == 1


def test_openai_base_url_falls_back_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    settings = BackendChoice.from_config({**GENERATION, "backend": "openai"}).settings
    assert isinstance(settings, OpenAISettings) and settings.base_url == "http://127.0.0.1:9/v1"


def test_typed_sections_from_the_demo_config() -> None:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    step = StepSettings.from_config(config["generation"]["responses"])
    assert step == StepSettings(shots=1, sampling=SamplingSpec(n=10, temperature=0.7, top_p=1.0, max_new_tokens=512))
    assert step.sampling.for_row(("</r>",), 7) == SamplingSpec(10, 0.7, 1.0, 512, ("</r>",), 7)
    assert JudgeSettings.from_config(config["seeds"]["judge"]).shots == 7
    assert HeuristicsSettings.from_config(config["seeds"]["heuristics"]).max_lines == 150
    assert TypecheckSettings.from_config(schema_defaults(SCHEMA["properties"]["seeds"]["properties"]["typecheck"]))
    choice = BackendChoice.from_config(config["generation"])
    assert choice.settings == TransformersSettings(device="auto", batch_size=8)


def test_open_backend_builds_the_transformers_backend(tmp_path: Path) -> None:
    from selfalign.teacher import build_model, train_tokenizer

    tokenizer = train_tokenizer([], ["def f(x):\n    return x\n" * 30], vocab_size=300)
    build_model(tokenizer, {"max_position_embeddings": 64, "num_hidden_layers": 1}).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    choice = BackendChoice("transformers", TransformersSettings(device="cpu", batch_size=2))
    backend = open_backend(choice, str(tmp_path), threads=1)
    assert backend.name == "transformers" and backend.max_context == 64


def test_parse_time_modules_import_no_heavy_packages() -> None:
    """The workflow imports these while parsing (common.smk's library_module): no torch, vLLM or transformers."""
    common = (REPO / "workflow" / "rules" / "common.smk").read_text()
    names = re.findall(r'"(\w+)"', re.search(r"PARSE_TIME_MODULES = \((.*?)\)", common, re.S).group(1))
    assert names
    code = (
        "import sys; sys.path.insert(0, 'workflow/scripts');"
        + "".join(f"import selfalign.{name};" for name in names)
        + "heavy = [m for m in ('torch', 'transformers', 'vllm', 'numpy') if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
