"""Tasks per second through one and two worker processes on Redis, against a local pool.

    python benchmarks/distributed.py            # prints the table
    python benchmarks/run.py                    # includes it in results.md

The same named tasks (``remote_work.py``) run four ways: in a local ``Pool``
(the function called in this process), through ``Remote`` with its embedded
in-memory worker (taskiq's path and JSON, no network), and through one and
two ``python -m go_async.worker`` processes on a Redis server on loopback.
The client keeps 100 tasks in flight; each worker runs 10 at once; the
local pool's limit is 100. Redis comes from ``GO_ASYNC_TEST_REDIS_URL``, or
a ``redis-server`` started here; without either, the worker rows are skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from go_async import Pool
from go_async.distributed import Named, Remote
from remote_work import echo, registry, spin

HERE = Path(__file__).resolve().parent
IN_FLIGHT = 100
WORKER_CONCURRENCY = 10
WORKLOADS: dict[str, Named[[int], int]] = {"no-op": echo, "1 ms of CPU": spin}
SETUPS = ("local pool", "in-memory remote", "1 worker", "2 workers")
TASKS = {"no-op": (200, 2_000), "1 ms of CPU": (100, 500)}  # per timed run: quick, full


@dataclass
class Row:
    workload: str
    setup: str
    tasks: int
    per_second: list[float] = field(default_factory=list)
    skipped: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.per_second)


def measure(*, quick: bool, reps: int) -> list[Row]:
    """Every workload through every setup, ``reps`` timed runs each after a warm-up."""
    rows = [
        Row(workload, setup, TASKS[workload][0 if quick else 1]) for workload in WORKLOADS for setup in SETUPS
    ]
    in_process: dict[str, Runner] = {"local pool": _local, "in-memory remote": _in_memory}
    for row in rows:
        if row.setup in in_process:
            row.per_second = asyncio.run(
                _timed(WORKLOADS[row.workload], row.tasks, reps, in_process[row.setup])
            )
    with _redis() as url:
        for count, setup in ((1, "1 worker"), (2, "2 workers")):
            through = [row for row in rows if row.setup == setup]
            if url is None:
                for row in through:
                    row.skipped = "no Redis server: install redis-server"
                continue
            with _workers(url, count):
                for row in through:
                    row.per_second = asyncio.run(_through(url, WORKLOADS[row.workload], row.tasks, reps))
    return rows


Runner = Callable[[Named[[int], int], int], Awaitable[list[int]]]


async def _timed(task: Named[[int], int], tasks: int, reps: int, run: Runner) -> list[float]:
    await run(task, min(tasks, 50))  # warm-up
    rates = []
    for _ in range(reps):
        started = time.perf_counter()
        results = await run(task, tasks)
        rates.append(tasks / (time.perf_counter() - started))
        assert len(results) == tasks
    return rates


async def _local(task: Named[[int], int], tasks: int) -> list[int]:
    function: Callable[[int], Awaitable[int]] = task.fn
    return await Pool(limit=IN_FLIGHT).amap(function, range(tasks))


async def _in_memory(task: Named[[int], int], tasks: int) -> list[int]:
    return await Remote(registry, limit=IN_FLIGHT, concurrency=IN_FLIGHT).amap(task, range(tasks))


async def _through(url: str, task: Named[[int], int], tasks: int, reps: int) -> list[float]:
    async with Remote(registry, url=url, queue=_QUEUE, limit=IN_FLIGHT) as remote:

        async def run(named: Named[[int], int], count: int) -> list[int]:
            return await remote.amap(named, range(count))

        return await _timed(task, tasks, reps, run)


_QUEUE = f"bench-{os.getpid()}"


@contextmanager
def _redis() -> Iterator[str | None]:
    given = os.environ.get("GO_ASYNC_TEST_REDIS_URL")
    server = shutil.which("redis-server")
    if given or server is None:
        yield given
        return
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryDirectory() as folder:
        command = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", folder]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if "Ready to accept connections" in line:
                    break
            threading.Thread(target=process.stdout.read, daemon=True).start()  # keep its pipe empty
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            process.terminate()
            process.wait(30)
            if process.stdout is not None:
                process.stdout.close()


@contextmanager
def _workers(url: str, count: int) -> Iterator[None]:
    command = [
        sys.executable,
        "-m",
        "go_async.worker",
        "remote_work:registry",
        "--url",
        url,
        "--queue",
        _QUEUE,
    ]
    command += ["--concurrency", str(WORKER_CONCURRENCY)]
    processes = [subprocess.Popen(command, cwd=HERE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    readers = []
    try:
        for process in processes:
            assert process.stderr is not None
            _wait_until_ready(process.stderr)
            # Read the rest of its log too: a worker blocked on a full pipe would stall the figures.
            reader = threading.Thread(target=process.stderr.read, daemon=True)
            reader.start()
            readers.append(reader)
        yield
    finally:
        for process in processes:
            process.terminate()
            process.wait(30)
        for reader in readers:
            reader.join(30)
        for process in processes:
            if process.stderr is not None:
                process.stderr.close()


def _wait_until_ready(log: IO[str]) -> None:
    for line in log:
        if "go_async worker ready" in line:
            return
    msg = "a benchmark worker exited before it was ready"
    raise RuntimeError(msg)


def markdown(rows: list[Row]) -> list[str]:
    """The section of results.md: tasks per second, and each setup against the local pool."""
    lines = [
        "## Through workers: tasks per second",
        "",
        "The same named task in a local `Pool` (limit 100), through `Remote`'s embedded in-memory "
        "worker, and through one and two `python -m go_async.worker` processes (10 tasks at once "
        "each) on a Redis server on loopback, the client keeping 100 in flight. Medians of the "
        "timed runs; more is better.",
        "",
        "| workload | tasks | " + " | ".join(SETUPS) + " |",
        "|---|---:|" + "---:|" * len(SETUPS),
    ]
    for workload in WORKLOADS:
        mine = [row for row in rows if row.workload == workload]
        local = mine[0].median
        cells = [
            row.skipped or f"{row.median:,.0f}" + ("" if row is mine[0] else f" ({row.median / local:.2g}×)")
            for row in mine
        ]
        lines.append(f"| {workload} | {mine[0].tasks:,} | " + " | ".join(cells) + " |")
    return lines


def main() -> None:
    rows = measure(quick="--quick" in sys.argv, reps=5)
    print("\n".join(markdown(rows)))


if __name__ == "__main__":
    main()
