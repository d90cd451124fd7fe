"""What every engine of the worker benchmark shares: the tasks' work, and CPU time from /proc.

Standard library only: the peers' virtual environments import it too
(``workers.py`` puts this folder on their ``PYTHONPATH``).
"""

from __future__ import annotations

import os

# The Redis URL the engines' task modules read at import time (their CLIs take no URL of ours).
URL_VARIABLE = "GO_ASYNC_BENCH_REDIS_URL"
# The result polling interval of the engines whose clients poll (arq, SAQ, taskiq), and arq's
# worker: their defaults (0.2 to 0.5 s) would cap 100 tasks in flight at a few hundred per second.
POLL_VARIABLE = "GO_ASYNC_BENCH_POLL"
DEFAULT_POLL = 0.01

# The same loop as remote_work.SPIN_STEPS: about a millisecond of pure-Python work.
SPIN_STEPS = 20_000


def spin(value: int) -> int:
    """About a millisecond of CPU: the "1 ms of CPU" workload of every engine."""
    total = value
    for step in range(SPIN_STEPS):
        total = (total + step * step) % 1_000_003
    return total


def echo(value: int) -> int:
    """The no-op workload: the input back."""
    return value


def redis_url() -> str:
    url = os.environ.get(URL_VARIABLE)
    if not url:
        msg = f"set {URL_VARIABLE} to the Redis URL"
        raise RuntimeError(msg)
    return url


def poll_interval() -> float:
    return float(os.environ.get(POLL_VARIABLE) or DEFAULT_POLL)


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> tuple[int, float] | None:
    """A process's parent and its CPU seconds, its reaped children's included; None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            text = file.read().decode(errors="replace")
    except OSError:
        return None
    # The command name, in parentheses, may hold spaces: the fields that follow it are fixed.
    fields = text[text.rindex(")") + 2 :].split()
    parent = int(fields[1])
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return parent, (utime + stime + cutime + cstime) / _TICKS


def tree_cpu_seconds(roots: list[int]) -> float:
    """User and system CPU seconds of these processes and all their descendants, alive or reaped."""
    stats: dict[int, tuple[int, float]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (stat := _stat(int(name))) is not None:
            stats[int(name)] = stat
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in stats.items():
        children.setdefault(parent, []).append(pid)
    total, seen, stack = 0.0, set(), list(roots)
    while stack:
        pid = stack.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        total += stats[pid][1]
        stack.extend(children.get(pid, ()))
    return total


def machine_cpu_seconds() -> float:
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait), from /proc/stat."""
    try:
        with open("/proc/stat") as file:
            fields = [int(value) for value in file.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = sum(fields[3:5])
    guests = sum(fields[8:10])  # already counted in user and nice
    return (sum(fields) - idle - guests) / _TICKS


def tree_size(roots: list[int]) -> int:
    """How many processes these and their descendants are."""
    parents = {
        int(name): stat[0] for name in os.listdir("/proc") if name.isdigit() and (stat := _stat(int(name)))
    }
    count, frontier = 0, {pid for pid in roots if pid in parents}
    while frontier:
        count += len(frontier)
        frontier = {pid for pid, parent in parents.items() if parent in frontier}
    return count
