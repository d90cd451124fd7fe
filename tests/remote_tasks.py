"""Named tasks for the distributed tests: imported by the tests and by real worker processes.

The tasks that wait (``hold``) talk to the test through Redis, on the URL the
worker was given, so a test waits on what a worker does, never on a timer.
"""

from __future__ import annotations

import asyncio
import os
import threading
from dataclasses import dataclass

import redis.asyncio as aioredis

from go_async.distributed import Registry

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
    async with aioredis.from_url(os.environ["GO_ASYNC_BROKER_URL"]) as redis:
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
