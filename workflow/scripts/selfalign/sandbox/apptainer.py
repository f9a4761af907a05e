"""The Apptainer backend, for HPC clusters where bubblewrap is not installed or user namespaces are off.

Each sample runs as ``apptainer exec`` of the image built from ``workflow/envs/sandbox.def`` with
containment (``--containall``: own pid and IPC namespaces, private /tmp and /dev, clean environment),
no home, no network (``--net --network none``: loopback only), no site-configured binds, and one
bind: the sample's own directory, read-only, holding the program, the compiled syscall filter and
``confine.py``, which sets the rlimits and loads the filter before it executes the program. The wall
limit kills the whole process group (the container's init, hence the container). Verdicts come from
the same code as the other backends.

Unlike bubblewrap as root, the sample runs as the submitting user, so RLIMIT_NPROC counts that user's
other processes on the node too (the limit must leave room for them), and the size of the private
/tmp is set by the site's ``sessiondir max size``, not per sample.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
from dataclasses import asdict
from pathlib import Path

from .core import LAUNCHER_PREFIXES, Limits, Verdict
from .host import ProgramFile, execute, launcher_env
from .seccomp import filter_bpf

# Apptainer's own messages: an error from the launcher, not from the program.
APPTAINER_PREFIXES = ("FATAL:", "ERROR  :", *LAUNCHER_PREFIXES)
CONFINE_SOURCE = Path(__file__).with_name("confine.py").read_bytes()


class ApptainerSandbox:
    name = "apptainer"

    def __init__(self, image: str | None):
        if not image:
            raise ValueError(
                "execution.backend 'apptainer' needs execution.apptainer_image: "
                "build it with `apptainer build sandbox.sif workflow/envs/sandbox.def`"
            )
        self.image = os.path.abspath(image)
        self.bpf = filter_bpf()

    def argv(self, program_dir: str, limits: Limits) -> list[str]:
        return [
            shutil.which("apptainer") or "apptainer", "--quiet", "exec",
            "--containall", "--no-home", "--cleanenv", "--net", "--network", "none",
            "--no-mount", "hostfs,bind-paths",  # no site-configured binds: only the one below
            "--bind", f"{program_dir}:/sandbox:ro",
            "--pwd", "/tmp",
            "--env", "LANG=C.UTF-8",
            self.image,
            "python3", "-I", "-B", "/sandbox/confine.py", "--limits", json.dumps(asdict(limits)),
            "--seccomp", "/sandbox/seccomp.bpf", "--", "python3", "-I", "-B", "/sandbox/main.py",
        ]

    def run(self, program: str, limits: Limits) -> Verdict:
        if not os.path.exists(self.image):
            return Verdict("infra-error", None, "", f"FATAL: apptainer image {self.image} not found", 0.0)
        with ProgramFile(program, {"seccomp.bpf": self.bpf, "confine.py": CONFINE_SOURCE}) as path:
            return execute(
                self.argv(os.path.dirname(path), limits), limits, cwd="/", env=launcher_env(),
                launcher_prefixes=APPTAINER_PREFIXES,
            )

    def versions(self) -> dict[str, str]:
        try:
            version = subprocess.run(["apptainer", "--version"], capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError) as err:
            version = f"unavailable ({err})"
        return {"sandbox": self.name, "apptainer": version, "image": self.image, "host_python": platform.python_version()}

    def close(self) -> None:
        """Nothing outlives a sample here."""
