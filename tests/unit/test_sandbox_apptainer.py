"""The Apptainer backend. Where ``apptainer`` is on PATH the image is built from workflow/envs/sandbox.def
(or taken from $SELFALIGN_APPTAINER_IMAGE) and real samples run; elsewhere those tests are skipped,
saying so, and only the command line and the infra-error path are checked."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many
from selfalign.sandbox.apptainer import ApptainerSandbox

REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(wall_seconds=10, cpu_seconds=2, memory_mb=512, processes=512, output_bytes=4096)
needs_apptainer = pytest.mark.skipif(
    shutil.which("apptainer") is None, reason="apptainer is not on PATH: the Apptainer backend was not run here"
)


def test_command_contains_the_sample_and_binds_only_its_directory(tmp_path):
    argv = ApptainerSandbox(str(tmp_path / "sandbox.sif")).argv("/tmp/sandbox-abc", LIMITS)
    options = argv[: argv.index(str(tmp_path / "sandbox.sif"))]
    for flag in ("--containall", "--no-home", "--cleanenv", "--net"):
        assert flag in options
    assert options[options.index("--network") + 1] == "none"
    assert [options[i + 1] for i, value in enumerate(options) if value == "--bind"] == ["/tmp/sandbox-abc:/sandbox:ro"]
    assert argv[-4:] == ["python3", "-I", "-B", "/sandbox/main.py"]
    # confine.py, bound with the program, sets the limits and loads the syscall filter first
    confine = argv.index("/sandbox/confine.py")
    assert argv[confine - 3 : confine] == ["python3", "-I", "-B"] and "/sandbox/seccomp.bpf" in argv[confine:]
    assert '"memory_mb": 512' in argv[argv.index("--limits") + 1]


def test_the_backend_needs_an_image():
    with pytest.raises(ValueError, match="apptainer_image"):
        make_sandbox(ExecutionSettings(backend="apptainer"))


def test_missing_apptainer_or_image_is_an_infra_error(tmp_path, monkeypatch):
    image = tmp_path / "sandbox.sif"
    [missing_image] = run_many(make_sandbox(ExecutionSettings(backend="apptainer", apptainer_image=str(image))), ["print(1)"], LIMITS, workers=1, infra_retries=1)
    assert (missing_image.status, missing_image.attempts) == ("infra-error", 2)
    image.write_bytes(b"")
    monkeypatch.setenv("PATH", str(tmp_path))  # no apptainer binary
    [missing_tool] = run_many(make_sandbox(ExecutionSettings(backend="apptainer", apptainer_image=str(image))), ["print(1)"], LIMITS, workers=1, infra_retries=0)
    assert missing_tool.status == "infra-error" and "apptainer" in missing_tool.stderr_tail


@pytest.fixture(scope="module")
def apptainer(tmp_path_factory):
    image = os.environ.get("SELFALIGN_APPTAINER_IMAGE")
    if not image:
        image = str(tmp_path_factory.mktemp("apptainer") / "sandbox.sif")
        subprocess.run(["apptainer", "build", image, str(REPO / "workflow/envs/sandbox.def")], check=True)
    return make_sandbox(ExecutionSettings(backend="apptainer", apptainer_image=image))


@needs_apptainer
def test_verdicts_in_apptainer(apptainer):
    programs = ["print('ok')", "assert 1 == 2", "import time\ntime.sleep(60)", "while True:\n    pass"]
    verdicts = run_many(apptainer, programs, LIMITS, workers=2)
    assert [v.status for v in verdicts] == ["pass", "fail", "timeout", "timeout"]


@needs_apptainer
def test_isolation_in_apptainer(apptainer, monkeypatch):
    monkeypatch.setenv("SELFALIGN_TEST_SECRET", "hunter2")
    program = f"""
import os, socket
try:
    socket.create_connection(("1.1.1.1", 53), timeout=2).close()
    print("network")
except OSError:
    print("no network")
print("secret" if "SELFALIGN_TEST_SECRET" in os.environ else "clean env")
home = {str(Path.home())!r}
print("home" if os.path.isdir(home) and os.listdir(home) else "no home")  # --contain may leave it empty
print("repo" if os.path.exists({str(REPO)!r}) else "no repo")
for path in ("/tmp/ok", "/usr/evil", "/sandbox/main.py"):
    try:
        open(path, "w").close()
        print("wrote", path)
    except OSError:
        print("blocked", path)
"""
    verdict = apptainer.run(program, LIMITS)
    assert verdict.stdout_tail.splitlines() == [
        "no network", "clean env", "no home", "no repo", "wrote /tmp/ok", "blocked /usr/evil", "blocked /sandbox/main.py"
    ], verdict.stderr_tail
