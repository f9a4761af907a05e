"""The Slurm profile without a cluster: its settings, and what a dry run with it shows for the SFT job."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
PROFILE = REPO / "profiles" / "slurm"


def test_profile_leaves_site_settings_to_the_user() -> None:
    profile = yaml.safe_load((PROFILE / "config.yaml").read_text())
    assert profile["executor"] == "slurm"
    assert "default-resources" not in profile  # it would replace a site profile's whole block
    assert "code" not in profile["rerun-triggers"]  # editing a script must not rerun GPU jobs
    assert profile["retries"] >= 1
    text = (PROFILE / "config.yaml").read_text()
    assert not re.search(r"^\s*(slurm_account|qos|slurm_qos):", text, re.M)  # the user's, from the environment
    for rule, resources in profile["set-resources"].items():
        assert resources["slurm_partition"] == "$SNAKEMAKE_SLURM_GPU_PARTITION", rule
        assert resources["gpu_model"] == "a100", rule
        # GPU counts, memory and runtime are the workflow's (config and data), never fixed here
        assert not {"gpu", "gpus", "mem_mb", "runtime"} & set(resources), rule
    assert profile["set-resources"]["train_sft"]["nodes"] == 1


def dry_run(workdir: Path, sft_gpus: int) -> str:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    config["resources"]["sft_gpus"] = sft_gpus
    config["resources"]["gpus"] = 1
    (workdir / "config").mkdir()
    (workdir / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n", "-p",
         "--profile", str(PROFILE), "--sdm", "env-modules", "--directory", str(workdir), "--", "model"],
        cwd=workdir, env={**os.environ, "SNAKEMAKE_SLURM_GPU_PARTITION": "a100"}, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout + result.stderr


@pytest.mark.parametrize("gpus", [1, 4])
def test_dry_run_shows_the_sft_job_on_1_or_4_a100s(tmp_path: Path, gpus: int) -> None:
    out = dry_run(tmp_path, gpus)
    line = next(line for line in out.splitlines() if "train_sft:" in line)
    # every rank on one node (the launcher refuses several): the profile and the rule both say nodes=1
    assert f"train_sft: {gpus} GPU(s) on 1 node, mem_mb=32000, runtime=720 min" in line
    assert f"launcher: deepspeed --include localhost:<{gpus} ids from CUDA_VISIBLE_DEVICES>" in line
    assert "--module selfalign.sft --model results/models/teacher --data results/sft/train.jsonl" in line
    # an inference rule: one A100 on the user's GPU partition, the profile's memory and runtime
    judge = out[out.index("rule judge_seeds:"):]
    resources = judge[judge.index("resources:"):].splitlines()[0]
    for item in ("gpu=1", "mem_mb=16000", "runtime=240", "slurm_partition=a100", "gpu_model=a100",
                 "cpus_per_gpu=8"):
        assert item in resources, resources



def test_the_example_partition_file_is_read_by_the_plugin() -> None:
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    partitions = {p.name: p for p in read_partition_file(PROFILE / "partitions.example.yaml")}
    assert partitions["a100"].limits.available_gpu_models == ["a100"]
    assert all(p.limits.max_gpu == 0 for name, p in partitions.items() if name != "a100")


def test_install_links_the_profile_so_profile_slurm_resolves(tmp_path: Path) -> None:
    """After the README's setup (install.sh), `snakemake --profile slurm` finds the profile by name."""
    home = tmp_path / "xdg"
    env = {**os.environ, "XDG_CONFIG_HOME": str(home), "SNAKEMAKE_SLURM_GPU_PARTITION": "a100"}
    env.pop("SELFALIGN_NO_PROFILE_LINK", None)
    install = subprocess.run(["bash", str(REPO / "install.sh")], env=env, capture_output=True, text=True, timeout=900)
    assert install.returncode == 0, install.stderr[-3000:]
    assert (home / "snakemake" / "slurm").resolve() == PROFILE.resolve()
    workdir = tmp_path / "run"
    (workdir / "config").mkdir(parents=True)
    (workdir / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
         "--profile", "slurm", "--sdm", "env-modules", "--directory", str(workdir)],
        cwd=workdir, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Using profile slurm" in result.stdout + result.stderr


def test_conda_deployment_without_conda_says_what_to_do(tmp_path: Path) -> None:
    """An install.sh (venv) user with the conda profile gets the fix, not `Error running conda info`."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text((REPO / "config" / "config.yaml").read_text())
    path = os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if not any(
        (Path(p) / tool).exists() for tool in ("conda", "mamba", "micromamba")))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
         "--profile", str(PROFILE), "--directory", str(tmp_path)],
        cwd=tmp_path, env={**os.environ, "PATH": path, "SNAKEMAKE_SLURM_GPU_PARTITION": "a100"},
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "no conda, mamba or micromamba is on PATH" in output and "--sdm env-modules" in output


STARCODER2_15B = {  # bigcode/starcoder2-15b's config.json (the dimensions the memory plan reads)
    "architectures": ["Starcoder2ForCausalLM"], "model_type": "starcoder2", "hidden_size": 6144,
    "intermediate_size": 24576, "num_attention_heads": 48, "num_hidden_layers": 40, "num_key_value_heads": 4,
    "vocab_size": 49152, "max_position_embeddings": 16384, "rope_theta": 100000, "sliding_window": 4096,
    "use_bias": True, "norm_epsilon": 1e-05, "hidden_act": "gelu_pytorch_tanh", "torch_dtype": "bfloat16",
}  # fmt: skip


def test_the_15b_preset_dry_run_uses_vllm_one_node_and_a_plan_that_fits(tmp_path: Path) -> None:
    """`snakemake -n --profile slurm --configfile config/presets/starcoder2-15b.yaml model`: vLLM generation
    rules in the vLLM env, the SFT on one node with 4 GPUs, and the memory check's verdict in the output."""
    import json

    preset = REPO / "config" / "presets" / "starcoder2-15b.yaml"
    model = tmp_path / yaml.safe_load(preset.read_text())["model"]["base"]
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps(STARCODER2_15B))
    result = subprocess.run(
        [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "workflow" / "Snakefile"), "-n",
         "--profile", str(PROFILE), "--sdm", "env-modules", "--configfile", str(preset),
         "--directory", str(tmp_path), "--", "model"],
        cwd=tmp_path, env={**os.environ, "SNAKEMAKE_SLURM_GPU_PARTITION": "a100"}, capture_output=True, text=True,
        timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    out = result.stdout + result.stderr
    assert "verdict: FITS" in out and "DOES NOT FIT" not in out
    line = next(line for line in out.splitlines() if "train_sft:" in line)
    assert "train_sft: 4 GPU(s) on 1 node" in line and "memory plan: ZeRO-3, gradient checkpointing, 4 x 80 GiB" in line
    responses = out[out.index("rule generate_responses:"):]
    resources = responses[responses.index("resources:"):].splitlines()[0]
    assert "gpu=1" in resources and "slurm_partition=a100" in resources, resources

    # the env each rule would run in (what --sdm conda deploys), from the parsed workflow
    code = (
        "import sys; from pathlib import Path\n"
        "from snakemake.api import SnakemakeApi\n"
        "from snakemake.settings.types import ConfigSettings, ResourceSettings, StorageSettings\n"
        "with SnakemakeApi() as api:\n"
        "    wf = api.workflow(resource_settings=ResourceSettings(), storage_settings=StorageSettings(),\n"
        "        config_settings=ConfigSettings(configfiles=[Path(sys.argv[1])]), snakefile=Path(sys.argv[2]),\n"
        "        workdir=Path(sys.argv[3]))\n"
        "    for name in ('judge_seeds', 'generate_concepts', 'generate_instructions', 'generate_responses',\n"
        "                 'score_evalplus', 'train_sft'):\n"
        "        print(name, wf._workflow.get_rule(name).conda_env)\n"
    )
    envs = subprocess.run(
        [sys.executable, "-c", code, str(preset), str(REPO / "workflow" / "Snakefile"), str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert envs.returncode == 0, envs.stderr[-3000:]
    found = dict(line.split() for line in envs.stdout.splitlines() if line.count(" ") == 1)
    assert {found[rule] for rule in found if rule != "train_sft"} == {"../envs/generate-vllm.yaml"}, found
    assert found["train_sft"] == "../envs/train.yaml"


def test_every_environment_variable_the_docs_name_is_read_somewhere() -> None:
    """The docs, the profile and the code agree: a variable users are told to export is used."""
    import re as regex

    docs = "\n".join((REPO / name).read_text() for name in ("README.md", "config/README.md", "profiles/slurm/config.yaml"))
    named = set(regex.findall(r"\b((?:SNAKEMAKE_SLURM|SBATCH|SELFALIGN)_[A-Z_]+)\b", docs))
    assert "SNAKEMAKE_SLURM_GPU_PARTITION" in named
    sbatch_own = {"SBATCH_ACCOUNT", "SBATCH_QOS", "SBATCH_PARTITION"}  # read by sbatch itself
    plugin = {"SNAKEMAKE_SLURM_PARTITIONS"}  # read by snakemake-executor-plugin-slurm
    sources = "\n".join(
        path.read_text(errors="replace")
        for pattern in ("workflow/**/*.smk", "workflow/**/*.py", "workflow/Snakefile", "install.sh", "profiles/**/*.yaml")
        for path in REPO.glob(pattern)
    )
    import snakemake_executor_plugin_slurm

    plugin_source = "\n".join(p.read_text() for p in Path(snakemake_executor_plugin_slurm.__file__).parent.glob("*.py"))
    for name in sorted(named - sbatch_own):
        read_by_plugin = name in plugin and name in plugin_source
        # read as $NAME / ${NAME} (shell, profile) or named as a string in the workflow's Python code
        assert read_by_plugin or regex.search(rf"\${{?{name}\b|[\"']{name}[\"']", sources), name
