"""Run one benchmark case in this process and print its figures as JSON.

    python benchmarks/case.py CONTENDER WORKLOAD LIMIT N REPS LOOP

LIMIT is a number or ``none``; LOOP is ``asyncio`` or ``uvloop``. The run
harness starts one process per case, so each case's peak memory is its own.
The special contender ``drain_send`` times ``Drain.send`` from one thread.
A contender that returns its values (a ``map``) must return each input's in
input order; that is checked after each timed run, outside its time.
"""

from __future__ import annotations

import asyncio
import gc
import json
import resource
import sys
import time

from contenders import CONTENDERS, Work
from go_async import Drain

WARM_UP_SIZE = 10_000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def time_case(key: str, workload: str, limit: int | None, n: int, reps: int) -> list[float]:
    contender = CONTENDERS[key]
    contender.run(Work(workload), limit, min(n, WARM_UP_SIZE))
    per_task = []
    for _ in range(reps):
        work = Work(workload)
        gc.collect()
        start = time.perf_counter_ns()
        contender.run(work, limit, n)
        elapsed = time.perf_counter_ns() - start
        if workload == "collect" and sorted(work.collected) != list(range(n)):
            msg = f"{key} lost values: collected {len(work.collected)} of {n}"
            raise AssertionError(msg)
        if work.mapped is not None and work.mapped != list(range(n)):
            msg = f"{key} returned {len(work.mapped)} values for {n} inputs, or not in input order"
            raise AssertionError(msg)
        per_task.append(elapsed / n)
    return per_task


def time_drain_send(n: int, reps: int) -> list[float]:
    per_send = []
    for _ in range(reps + 1):  # the first round warms up
        drain: Drain[int] = Drain()
        send = drain.send
        gc.collect()
        start = time.perf_counter_ns()
        for i in range(n):
            send(i)
        per_send.append((time.perf_counter_ns() - start) / n)
        assert len(drain) == n
    return per_send[1:]


def main(argv: list[str]) -> None:
    key, workload, limit_text, n_text, reps_text, loop = argv
    limit = None if limit_text == "none" else int(limit_text)
    n, reps = int(n_text), int(reps_text)
    if loop == "uvloop":
        import uvloop  # noqa: PLC0415

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    elif loop != "asyncio":
        msg = f"loop must be asyncio or uvloop, got {loop!r}"
        raise ValueError(msg)
    baseline = peak_rss_mb()
    per_task = time_drain_send(n, reps) if key == "drain_send" else time_case(key, workload, limit, n, reps)
    print(json.dumps({"ns_per_task": per_task, "peak_mb": peak_rss_mb() - baseline}))


if __name__ == "__main__":
    main(sys.argv[1:])
