"""The unsafe "process" backend, for debugging: rlimits and the syscall filter only. The program sees
the network, the filesystem and other processes of the user running the workflow."""

from __future__ import annotations

import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

from .core import Limits, Verdict
from .host import ProgramFile, execute, launcher_env
from .seccomp import filter_bpf

CONFINE = str(Path(__file__).with_name("confine.py"))


class ProcessSandbox:
    name = "process"

    def __init__(self) -> None:
        self.bpf = filter_bpf()

    def run(self, program: str, limits: Limits) -> Verdict:
        with ProgramFile(program, {"seccomp.bpf": self.bpf}) as path:
            directory = os.path.dirname(path)
            env = {**launcher_env(), "HOME": directory, "LANG": "C.UTF-8"}
            argv = [
                sys.executable, "-I", "-B", CONFINE, "--limits", json.dumps(asdict(limits)),
                "--seccomp", os.path.join(directory, "seccomp.bpf"), "--", sys.executable, "-I", "-B", path,
            ]
            return execute(argv, limits, cwd=directory, env=env)

    def versions(self) -> dict[str, str]:
        return {"sandbox": self.name, "python": platform.python_version(), "interpreter": sys.executable}

    def close(self) -> None:
        """Nothing outlives a sample here."""
