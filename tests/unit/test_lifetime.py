"""Nothing left running: a job killed with SIGKILL (its process group, or only its main process) takes pyright/node
and the DeepSpeed launcher's process tree with it. Real processes, real pyright; the processes left are listed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from proctree import left as _left
from proctree import short as _short
from proctree import stat as _stat
from proctree import tree as _tree

SCRIPTS = Path(__file__).resolve().parents[2] / "workflow" / "scripts"


def _start_job(code: str, *args: str) -> subprocess.Popen:
    """A job as Snakemake starts one: a Python process, here in a process group of its own."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SCRIPTS), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-c", code, *args], env=env, start_new_session=True)


def _wait_for(job: subprocess.Popen, wanted: str, timeout: float = 120.0, argument: str = "") -> dict[int, tuple[int, str]]:
    """The job's process tree once a process whose program or last argument is ``wanted`` runs in it
    (with ``argument`` among its arguments)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if job.poll() is not None:
            pytest.fail(f"the job ended (exit {job.returncode}) before {wanted!r} started")
        tree = _tree(job.pid)
        if any(
            (Path(cmd.split()[0]).name == wanted or cmd.split()[-1] == wanted) and (not argument or argument in cmd.split())
            for _, cmd in tree.values() if cmd
        ):
            return tree
        time.sleep(0.05)
    os.killpg(job.pid, signal.SIGKILL)
    pytest.fail(f"no {wanted!r} process within {timeout:g} s")


# One batch big enough that pyright works for many seconds more than the 10 s the test waits after the kill.
PYRIGHT_JOB = (
    "from selfalign.typecheck import typecheck\n"
    "functions = [f'import json\\ndef f{i}(x: str) -> int:\\n    \"\"\"Doc.\"\"\"\\n    return len(json.loads(x)) + {i}'"
    " for i in range(5000)]\n"
    "typecheck(functions, batch_size=5000, workers=1, timeout=600)\n"
)


@pytest.mark.parametrize("target", ["process group", "main process only"])
def test_a_job_killed_mid_pyright_leaves_no_pyright_or_node(target: str) -> None:
    job = _start_job(PYRIGHT_JOB)
    tree = _wait_for(job, "node", argument="--outputjson")  # the check itself, not `pyright --version`
    assert any("pyright" in cmd for _, cmd in tree.values()), [_short(cmd) for _, cmd in tree.values()]
    if target == "process group":
        os.killpg(job.pid, signal.SIGKILL)
    else:
        os.kill(job.pid, signal.SIGKILL)
    job.wait()
    left = _left(tree)
    assert not left, f"left running after SIGKILL of the job's {target}:\n" + "\n".join(map(_short, left))


LAUNCH_JOB = (
    "import os, sys\n"
    "from selfalign.launch import run_launch\n"
    # a stand-in for deepspeed's runner -> launcher -> rank: three levels of Python processes
    "rank = 'import time; time.sleep(300)'\n"
    "launcher = f'import subprocess, sys; subprocess.run([sys.executable, \"-c\", {rank!r}, \"fake-rank\"])'\n"
    "runner = f'import subprocess, sys; subprocess.run([sys.executable, \"-c\", {launcher!r}])'\n"
    "run_launch([sys.executable, '-c', runner], os.environ, sys.argv[1] if len(sys.argv) > 1 else 'launch.log')\n"
)


@pytest.mark.parametrize("target", ["process group", "main process only"])
def test_a_killed_sft_job_takes_the_launcher_and_its_ranks_along(target: str, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    job = _start_job(LAUNCH_JOB)
    tree = _wait_for(job, "fake-rank", timeout=30)
    assert len(tree) >= 4, [_short(cmd) for _, cmd in tree.values()]  # guardian, runner, launcher, rank
    if target == "process group":
        os.killpg(job.pid, signal.SIGKILL)
    else:
        os.kill(job.pid, signal.SIGKILL)
    job.wait()
    left = _left(tree)
    assert not left, f"left running after SIGKILL of the job's {target}:\n" + "\n".join(map(_short, left))


def test_the_guardian_passes_on_exit_codes_and_output_and_cleans_up_after_the_command(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    from selfalign.lifetime import guarded

    result = subprocess.run(guarded(["sh", "-c", "echo out; echo err >&2; exit 7"]), capture_output=True, text=True)
    assert (result.returncode, result.stdout, result.stderr) == (7, "out\n", "err\n")
    assert subprocess.run(guarded(["sh", "-c", "kill -TERM $$"])).returncode == -signal.SIGTERM
    # a command that leaves a daemon behind (new session, orphaned): the guardian ends it too
    pid_file = tmp_path / "daemon.pid"
    script = (
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        f"    open({str(pid_file)!r} + '.tmp', 'w').write(str(os.getpid())); os.rename({str(pid_file)!r} + '.tmp', {str(pid_file)!r})\n"
        "    time.sleep(300)\n"
        f"while not os.path.exists({str(pid_file)!r}):\n"
        "    time.sleep(0.01)\n"
    )
    assert subprocess.run(guarded([sys.executable, "-c", script]), timeout=60).returncode == 0
    daemon = int(pid_file.read_text())
    state = _stat(daemon)
    assert state is None or state[0] == "Z" or _left({daemon: (state[1], "daemon")}, wait=5) == []


SANDBOX_JOB = (
    "import sys\n"
    "from selfalign.sandbox import ExecutionSettings, Limits, make_sandbox, run_many\n"
    "sandbox = make_sandbox(ExecutionSettings(backend=sys.argv[1] if len(sys.argv) > 1 else 'pool'))\n"
    "program = 'import time\\ntime.sleep(120)  # sandboxed-sleeper'\n"
    "run_many(sandbox, [program, program], Limits(wall_seconds=120, cpu_seconds=120), workers=2)\n"
)


@pytest.mark.parametrize("target", ["process group", "main process only"])
def test_a_job_killed_mid_sample_leaves_no_sandbox(target: str) -> None:
    if os.geteuid() != 0 or not Path("/usr/bin/bwrap").exists():
        pytest.skip("the sandbox pool needs root and bubblewrap")
    job = _start_job(SANDBOX_JOB)
    deadline = time.monotonic() + 60
    while not any("bwrap" in cmd for _, cmd in _tree(job.pid).values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(2)  # the samples are running
    tree = _tree(job.pid)
    assert any("bwrap" in cmd for _, cmd in tree.values()), [_short(cmd) for _, cmd in tree.values()]
    if target == "process group":
        os.killpg(job.pid, signal.SIGKILL)
    else:
        os.kill(job.pid, signal.SIGKILL)
    job.wait()
    # the samples run in pid namespaces below bwrap: list every process left below the sandboxes too
    left = _left(tree)
    assert not left, f"left running after SIGKILL of the job's {target}:\n" + "\n".join(map(_short, left))


NEARDEDUP_JOB = (
    "import sys\n"
    "from selfalign.neardedup import shard_signatures\n"
    "shard_signatures(sys.argv[1:], 'seed', workers=2)\n"
)


def test_neardedup_workers_die_with_a_job_killed_alone(tmp_path: Path) -> None:
    sys.path.insert(0, str(SCRIPTS))
    from selfalign.shards import write_jsonl

    # Shards big enough that the two workers are still hashing when the job is killed.
    words = [f"w{i}" for i in range(400)]
    paths = []
    for shard in range(8):
        path = tmp_path / f"{shard:02d}.jsonl"
        write_jsonl(path, (
            {"seed_id": f"{shard}-{i}", "source": "s", "seed": " ".join(words[(i + k) % 400] for k in range(300))}
            for i in range(4000)
        ))
        paths.append(str(path))
    job = _start_job(NEARDEDUP_JOB, *paths)
    deadline = time.monotonic() + 120
    while len(tree := _tree(job.pid)) < 2 and time.monotonic() < deadline:
        assert job.poll() is None, f"the job ended (exit {job.returncode}) before its workers started"
        time.sleep(0.05)
    assert len(tree) >= 2, [_short(cmd) for _, cmd in tree.values()]
    os.kill(job.pid, signal.SIGKILL)  # the main process only: the workers are not told by their group
    job.wait()
    left = _left(tree)
    for pid, (start, _) in tree.items():  # a failing run must not leave its workers hashing on
        if (state := _stat(pid)) and state[1] == start:
            os.kill(pid, signal.SIGKILL)
    assert not left, "pool workers left running after SIGKILL of the job's main process:\n" + "\n".join(map(_short, left))
