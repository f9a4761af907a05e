"""Process-tree helpers for the tests that kill jobs and list what is left running (from /proc)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def stat(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process, None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rpartition(b")")[2].split()
    except OSError:
        return None
    return fields[0].decode(), int(fields[19])


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return "?"


def short(command: str) -> str:
    return command if len(command) < 160 else command[:160] + " ..."


def tree(root: int) -> dict[int, tuple[int, str]]:
    """Every live process below ``root``: pid -> (start time, command line)."""
    parents = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_bytes().rpartition(b")")[2].split()[1])
        except OSError:
            continue
    found, todo = {}, [pid for pid, parent in parents.items() if parent == root]
    while todo:
        pid = todo.pop()
        if (state := stat(pid)) and state[0] != "Z":
            found[pid] = (state[1], cmdline(pid))
        todo.extend(child for child, parent in parents.items() if parent == pid)
    return found


def left(snapshot: dict[int, tuple[int, str]], wait: float = 10.0) -> list[str]:
    """The command lines of the processes in ``snapshot`` still running after ``wait`` seconds (a pid reused by
    a new process does not count: the start time must match)."""
    deadline = time.monotonic() + wait
    while True:
        alive = [cmd for pid, (start, cmd) in snapshot.items() if (s := stat(pid)) and s[1] == start and s[0] != "Z"]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)
