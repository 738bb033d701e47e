"""CPU time and peak memory of a process tree, from Linux /proc (no psutil).

A tree is a process and its live descendants (uvicorn's `--workers` and the like
fork). Each process counts its own user + system time and that of its children
it has reaped (cutime + cstime), so a descendant that ends mid-phase keeps
counting and nothing counts twice.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        with contextlib.suppress(OSError):
            for task in Path(f"/proc/{current}/task").iterdir():
                with contextlib.suppress(OSError):
                    found.extend(int(child) for child in (task / "children").read_text().split())
    return found


def _stat_fields(pid: int) -> list[str]:
    # The command name may hold spaces and parentheses: split after the last ")".
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU of the tree of `pid` so far."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            fields = _stat_fields(member)
            # utime stime cutime cstime: fields 14-17 of stat(5); [0] here is field 3
            total += sum(int(value) for value in fields[11:15])
    return total / CLOCK_TICKS


def _status_kib(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return int(line.split()[1])
    return 0


def peak_rss_bytes(pid: int) -> int:
    """The tree's peak resident set: the sum of each process's VmHWM (exact for one
    process, an upper bound for several, whose peaks need not coincide)."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            total += _status_kib(member, "VmHWM") * 1024
    return total


def rss_bytes(pid: int) -> int:
    """The tree's resident set now (the sum of VmRSS)."""
    total = 0
    for member in tree(pid):
        with contextlib.suppress(OSError):
            total += _status_kib(member, "VmRSS") * 1024
    return total
