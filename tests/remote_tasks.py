"""Named tasks for the distributed tests: imported by the tests and by real worker processes.

The tasks that wait (``hold``) talk to the test through Redis, on the URL the
worker was given, so a test waits on what a worker does, never on a timer.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from dataclasses import dataclass

import redis.asyncio as aioredis

from go_async.distributed import Registry, Retry

registry = Registry()


@dataclass(frozen=True)
class Point:
    x: float
    y: float


@registry.task("add")
async def add(*numbers: int) -> int:
    return sum(numbers)


@registry.task("multiply")
async def multiply(a: int, b: int) -> int:
    return a * b


@registry.task("scale")
async def scale(point: Point, factor: float = 2.0) -> Point:
    return Point(point.x * factor, point.y * factor)


@registry.task("fail")
async def fail(message: str) -> int:
    raise ValueError(message)


@registry.task("thread")
def thread(tag: str) -> str:
    """A plain def: it runs in a worker thread."""
    return f"{tag} in {'main' if threading.current_thread() is threading.main_thread() else 'a thread'}"


@registry.task("pid")
async def pid(value: int) -> list[int]:
    return [value, os.getpid()]


@registry.task("hold")
async def hold(token: str) -> int:
    """Say "started" on ``started:<token>``, wait for ``release:<token>``, return this process's id."""
    async with aioredis.from_url(os.environ["GO_ASYNC_BROKER_URL"], socket_timeout=None) as redis:
        running = await redis.incr(f"running:{token}")
        await redis.rpush(f"started:{token}", f"{os.getpid()} {running}")
        await redis.blpop([f"release:{token}"], timeout=60)
        await redis.rpush(f"release:{token}", "go")  # the next holder may pass too
        await redis.decr(f"running:{token}")
    return os.getpid()


@registry.task("note")
async def note(path: str, value: int) -> int:
    """Wait a moment, append ``value`` to the file at ``path`` (one line per run), return it."""
    await asyncio.sleep(0.002)
    with open(path, "a", encoding="utf-8") as runs:  # noqa: ASYNC230 - one short line
        runs.write(f"{value}\n")
    return value


# For tests/test_worker_processes.py: tasks that leave their traces in Redis, so a test counts runs.


def _broker() -> aioredis.Redis:
    # No socket timeout (redis-py's default is 5 s): a blocking read waits as long as it says.
    return aioredis.from_url(os.environ["GO_ASYNC_BROKER_URL"], socket_timeout=None)


@registry.task("linger")
async def linger(value: int, key: str, seconds: float) -> int:
    """Push "<value> <pid>" to ``key`` as it starts (one entry per run), then work for ``seconds``."""
    async with _broker() as redis:
        await redis.rpush(key, f"{value} {os.getpid()}")
    await asyncio.sleep(seconds)
    return value


@registry.task("revocable")
async def revocable(token: str) -> int:
    """As ``hold``; if cancelled while it waits, push this process's id to ``cancelled:<token>``."""
    async with _broker() as redis:
        await redis.rpush(f"started:{token}", f"{os.getpid()} 1")
        try:
            await redis.blpop([f"release:{token}"], timeout=60)
        except asyncio.CancelledError:
            # A fresh connection: the one cut mid-read is closed.
            async with _broker() as other:
                await other.rpush(f"cancelled:{token}", str(os.getpid()))
            raise
    return os.getpid()


@registry.task("gate")
async def gate(value: int, token: str) -> int:
    """A step of a flow that says it started on ``started:<token>`` and waits for ``release:<token>``."""
    async with _broker() as redis:
        await redis.rpush(f"started:{token}", f"{os.getpid()} 1")
        await redis.blpop([f"release:{token}"], timeout=60)
    return value


@registry.task("record")
async def record(value: int, key: str) -> int:
    """Push "<value> <pid>" to ``key``; return ``value``."""
    async with _broker() as redis:
        await redis.rpush(key, f"{value} {os.getpid()}")
    return value


@registry.task("stamped")
async def stamped(value: int) -> tuple[int, float]:
    """``value`` and the wall-clock time (epoch seconds) it ran at on the worker."""
    return value, time.time()


@registry.task("fails_first", retry=Retry(4, sleep=0.05, max_wait=0.1))
async def fails_first(key: str, failures: int) -> int:
    """Fail the first ``failures`` runs (counted in ``key``), then return the run's number."""
    async with _broker() as redis:
        run = int(await redis.incr(key))
    if run <= failures:
        raise ValueError(f"run {run} of {failures} planned failures")
    return run


# An older deployment's registry: ``add`` only, so its workers refuse ``multiply``.
older_registry = Registry()
older_registry.task("add", add.fn)
