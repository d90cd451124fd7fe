"""Every way of running n coroutines that the benchmark compares, one function each.

Each contender runs one workload over ``range(n)`` with a limit (``None`` for
none) and returns the values the workload collected, so the harness can check
that nothing was lost. Peers are imported inside their function: a case's
subprocess loads only the library it measures. ``go_async_before`` is plain
go_async run on the source of an earlier commit (see ``run.py``), so this
module imports nothing from go_async at the top that the earlier code lacks.
The running pool (``async with Pool(...) as pool``, then ``submit``) is
measured against the peers a user would pick for the same shape of code:
TaskGroup + Semaphore, aiojobs' spawn and asyncio-pool's spawn. The ``map``
entry points (``Pool(...).map`` and a running pool's ``await pool.map``)
return each input's value in input order: they are measured against the
peers that do the same, asyncio-pool's ``map`` and aiometer's ``run_all``,
all on ``Work.value``, and each records its list in ``Work.mapped`` so that
the harness can check the order outside the timed run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from go_async import Args, Drain, Pool, Task

WORKLOADS = ("noop", "sleep0", "collect")
# The last commit before one engine ran both `go` and the running pool:
# "go_async_before" runs its source, so that the report can tell whether plain
# `go` got slower.
BASELINE = "718bd0d"
# Contenders that only answer "what does this feature cost plain go_async".
FEATURE_COSTS = (
    "go_async_before",
    "go_async_timeout",
    "go_async_hooks",
    "go_async_middleware",
    "go_async_rate",
    "go_async_breaker",
    "go_async_checkpoint",
    "go_async_adaptive",
    "go_async_budget",
    "aiometer_rate",
)
# What a user would pick instead of the running pool (`async with Pool(...)`,
# then `submit`): the report's lead for the running pool is over the fastest.
RUNNING_PEERS = ("tg_semaphore", "aiojobs", "asyncio_pool_spawn")
# go_async's `map`s (blocking, and a running pool's) and the peers that also
# return each input's value in input order: the report's map section.
GO_ASYNC_MAPS = ("go_async_map", "go_async_running_map")
MAP_PEERS = ("asyncio_pool_map", "aiometer_run_all")
# A rate that never holds a start back (one a nanosecond): what remains is
# the cost of checking it.
NEVER_BINDS = 10**9
# A timeout no task comes near: what remains is the cost of arming it.
NEVER_FIRES = 10.0
# The bounded running pool's queue: submit waits while this many tasks wait to start.
RUNNING_QUEUE = 1_000


class Work:
    """One workload's coroutine functions, for peers (``item``) and for go_async (``task_fn``).

    ``value`` is the same workload returning its input, for the contenders
    that return a list of values; they leave that list in ``mapped``.
    """

    def __init__(self, kind: str) -> None:
        if kind not in WORKLOADS:
            msg = f"workload must be one of {WORKLOADS}, got {kind!r}"
            raise ValueError(msg)
        self.kind = kind
        self.collected: list[int] = []
        self.mapped: list[int] | None = None
        append = self.collected.append

        async def noop(_: object) -> None:
            return None

        async def sleep0(_: object) -> None:
            await asyncio.sleep(0)

        async def collect(x: int) -> None:
            append(x)

        async def collect_task(args: Args[int]) -> None:
            append(args.input)

        async def noop_value(x: int) -> int:
            return x

        async def sleep0_value(x: int) -> int:
            await asyncio.sleep(0)
            return x

        async def collect_value(x: int) -> int:
            append(x)
            return x

        self.item: Callable[[int], Coroutine[Any, Any, None]]
        self.task_fn: Callable[[Args[int]], Coroutine[Any, Any, None]]
        if kind == "collect":
            self.item, self.task_fn = collect, collect_task
        else:
            self.item = self.task_fn = noop if kind == "noop" else sleep0
        self.value: Callable[[int], Coroutine[Any, Any, int]] = {
            "noop": noop_value,
            "sleep0": sleep0_value,
            "collect": collect_value,
        }[kind]


async def numbers(n: int) -> AsyncIterator[int]:
    """0 to n - 1 from an async generator: an async source, as a cursor or a paginated API is."""
    for i in range(n):
        yield i


# --- the floor and a hand-written reference -------------------------------------


def sequential(work: Work, limit: int | None, n: int) -> None:
    item = work.item

    async def main() -> None:
        for i in range(n):
            await item(i)

    asyncio.run(main())


def hand_workers(work: Work, limit: int | None, n: int) -> None:
    item = work.item
    assert limit is not None

    async def main() -> None:
        numbers = iter(range(n))

        async def worker() -> None:
            for i in numbers:
                await item(i)

        async with asyncio.TaskGroup() as group:
            for _ in range(limit):
                group.create_task(worker())

    asyncio.run(main())


def async_for_semaphore(work: Work, limit: int | None, n: int) -> None:
    """The loop a user writes for an async source: ``async for`` + TaskGroup + Semaphore, O(limit) memory."""
    item = work.item
    assert limit is not None

    async def main() -> None:
        semaphore = asyncio.Semaphore(limit)

        async def guarded(i: int) -> None:
            try:
                await item(i)
            finally:
                semaphore.release()

        async with asyncio.TaskGroup() as group:
            async for i in numbers(n):
                await semaphore.acquire()
                group.create_task(guarded(i))

    asyncio.run(main())


# --- asyncio itself -------------------------------------------------------------


def gather(work: Work, limit: int | None, n: int) -> None:
    item = work.item

    async def main() -> None:
        await asyncio.gather(*(item(i) for i in range(n)))

    asyncio.run(main())


def task_group(work: Work, limit: int | None, n: int) -> None:
    item = work.item

    async def main() -> None:
        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(item(i))

    asyncio.run(main())


def task_group_semaphore(work: Work, limit: int | None, n: int) -> None:
    item = work.item
    assert limit is not None

    async def main() -> None:
        semaphore = asyncio.Semaphore(limit)

        async def guarded(i: int) -> None:
            async with semaphore:
                await item(i)

        async with asyncio.TaskGroup() as group:
            for i in range(n):
                group.create_task(guarded(i))

    asyncio.run(main())


# --- the peers --------------------------------------------------------------------


def anyio_group(work: Work, limit: int | None, n: int) -> None:
    import anyio  # noqa: PLC0415 - each case loads only what it measures

    item = work.item

    async def main() -> None:
        async with anyio.create_task_group() as group:
            if limit is None:
                for i in range(n):
                    group.start_soon(item, i)
                return
            limiter = anyio.CapacityLimiter(limit)

            async def guarded(i: int) -> None:
                async with limiter:
                    await item(i)

            for i in range(n):
                group.start_soon(guarded, i)

    asyncio.run(main())


def aiometer_each(work: Work, limit: int | None, n: int) -> None:
    import aiometer  # noqa: PLC0415

    async def main() -> None:
        await aiometer.run_on_each(work.item, range(n), max_at_once=limit)

    asyncio.run(main())


def aiometer_rate(work: Work, limit: int | None, n: int) -> None:
    import aiometer  # noqa: PLC0415

    async def main() -> None:
        await aiometer.run_on_each(work.item, range(n), max_at_once=limit, max_per_second=NEVER_BINDS)

    asyncio.run(main())


def aiojobs_scheduler(work: Work, limit: int | None, n: int) -> None:
    import aiojobs  # noqa: PLC0415

    item = work.item

    async def main() -> None:
        scheduler = aiojobs.Scheduler(limit=limit, wait_timeout=None)
        for i in range(n):
            await scheduler.spawn(item(i))
        await scheduler.wait_and_close()

    asyncio.run(main())


def asyncio_pool_spawn(work: Work, limit: int | None, n: int) -> None:
    from asyncio_pool import AioPool  # noqa: PLC0415

    item = work.item
    assert limit is not None

    async def main() -> None:
        async with AioPool(size=limit) as pool:
            for i in range(n):
                await pool.spawn(item(i))

    asyncio.run(main())


def asyncio_pool_map(work: Work, limit: int | None, n: int) -> None:
    from asyncio_pool import AioPool  # noqa: PLC0415

    assert limit is not None

    async def main() -> list[int]:
        async with AioPool(size=limit) as pool:
            results: list[int] = await pool.map(work.value, range(n))
        return results

    work.mapped = asyncio.run(main())


def aiometer_run_all(work: Work, limit: int | None, n: int) -> None:
    import aiometer  # noqa: PLC0415

    value = work.value

    async def main() -> list[int]:
        results: list[int] = await aiometer.run_all([partial(value, i) for i in range(n)], max_at_once=limit)
        return results

    work.mapped = asyncio.run(main())


def aiometer_each_async(work: Work, limit: int | None, n: int) -> None:
    """aiometer takes sync iterables only: the async source is read into a list first (O(n) memory)."""
    import aiometer  # noqa: PLC0415

    async def main() -> None:
        await aiometer.run_on_each(work.item, [i async for i in numbers(n)], max_at_once=limit)

    asyncio.run(main())


# --- go_async, used as its README shows -------------------------------------------


def go_async(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn)
    Pool(limit=limit).go(base.with_input(i) for i in range(n))


def go_async_drain(work: Work, limit: int | None, n: int) -> None:
    out: Drain[int] = Drain()

    async def send(args: Args[int]) -> None:
        args.drain.send(args.input)

    base = Task(send if work.kind == "collect" else work.task_fn).drain_to(out)
    Pool(limit=limit).go(base.with_input(i) for i in range(n))
    work.collected.extend(out.drain())


def go_async_map(work: Work, limit: int | None, n: int) -> None:
    work.mapped = Pool(limit=limit).map(work.value, range(n))


def go_async_running_map(work: Work, limit: int | None, n: int) -> None:
    async def main() -> list[int]:
        async with Pool(limit=limit) as pool:
            return await pool.map(work.value, range(n))

    work.mapped = asyncio.run(main())


def go_async_async_source(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn)

    async def main() -> None:
        await Pool(limit=limit).ago(base.with_input(i) async for i in numbers(n))

    asyncio.run(main())


def go_async_checkpoint(work: Work, limit: int | None, n: int) -> None:
    import tempfile  # noqa: PLC0415

    base = Task(work.task_fn)
    with tempfile.TemporaryDirectory() as directory:  # a new file each run: a rerun would skip every task
        checkpoint = f"{directory}/run.sqlite"
        Pool(limit=limit).go((base.with_input(i) for i in range(n)), checkpoint=checkpoint)


def go_async_adaptive(work: Work, limit: int | None, n: int) -> None:
    from go_async import Adaptive  # noqa: PLC0415 - absent from the baseline's source

    # Started at its max, so that it never binds: what the gate around each try costs.
    most = limit or n
    base = Task(work.task_fn)
    Pool(limit=Adaptive(min=1, max=most, initial=most)).go(base.with_input(i) for i in range(n))


def go_async_budget(work: Work, limit: int | None, n: int) -> None:
    # Tasks with a retry that never fails, under a retry budget: what counting first tries costs.
    base = Task(work.task_fn).with_retry(3)
    Pool(limit=limit).with_retry_budget().go(base.with_input(i) for i in range(n))


def go_async_retry(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn).with_retry(3)
    Pool(limit=limit).go(base.with_input(i) for i in range(n))


def go_async_running(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn)

    async def main() -> None:
        async with Pool(limit=limit) as pool:
            for i in range(n):
                await pool.submit(base.with_input(i))

    asyncio.run(main())


def go_async_running_bounded(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn)

    async def main() -> None:
        async with Pool(limit=limit).with_queue_size(RUNNING_QUEUE) as pool:
            for i in range(n):
                await pool.submit(base.with_input(i))

    asyncio.run(main())


def go_async_timeout(work: Work, limit: int | None, n: int) -> None:
    base = Task(work.task_fn)
    Pool(limit=limit).with_timeout(NEVER_FIRES).go(base.with_input(i) for i in range(n))


def go_async_hooks(work: Work, limit: int | None, n: int) -> None:
    from go_async import Hooks  # noqa: PLC0415 - absent from the baseline's source

    class Count(Hooks):
        """A monitor's usual minimum: it counts starts and successes."""

        def __init__(self) -> None:
            self.started = self.succeeded = 0

        def task_started(self, args: Args[Any]) -> None:
            self.started += 1

        def task_succeeded(self, args: Args[Any], seconds: float) -> None:
            self.succeeded += 1

    count = Count()
    base = Task(work.task_fn)
    Pool(limit=limit, hooks=[count]).go(base.with_input(i) for i in range(n))
    assert count.succeeded == n


def go_async_middleware(work: Work, limit: int | None, n: int) -> None:
    from go_async import CallNext  # noqa: PLC0415 - absent from the baseline's source

    R = TypeVar("R")

    async def pass_through(args: Args[Any], call_next: CallNext[R]) -> R:
        return await call_next()

    base = Task(work.task_fn)
    Pool(limit=limit, middleware=[pass_through]).go(base.with_input(i) for i in range(n))


def go_async_rate(work: Work, limit: int | None, n: int) -> None:
    from go_async import RateLimit  # noqa: PLC0415 - absent from the baseline's source

    base = Task(work.task_fn)
    Pool(limit=limit).with_rate_limit(RateLimit(NEVER_BINDS, per=1)).go(base.with_input(i) for i in range(n))


def go_async_breaker(work: Work, limit: int | None, n: int) -> None:
    from go_async import CircuitBreaker  # noqa: PLC0415 - absent from the baseline's source

    base = Task(work.task_fn).with_circuit_breaker(CircuitBreaker("bench"))
    Pool(limit=limit).go(base.with_input(i) for i in range(n))


@dataclass(frozen=True)
class Contender:
    key: str
    label: str
    run: Callable[[Work, int | None, int], None]
    limits: tuple[int | None, ...]
    kind: str  # "floor", "reference", "asyncio", "peer", "peer_rate", "go_async" or "baseline"


UNLIMITED: tuple[int | None, ...] = (None,)
NONE_AND_100: tuple[int | None, ...] = (None, 100)
ONLY_100: tuple[int | None, ...] = (100,)
LIMITED: tuple[int | None, ...] = (100, 1)
ANY: tuple[int | None, ...] = (None, 100, 1)

CONTENDERS = {
    c.key: c
    for c in [
        Contender("sequential", "sequential await (floor)", sequential, UNLIMITED, "floor"),
        Contender("workers", "hand-written workers", hand_workers, LIMITED, "reference"),
        Contender("gather", "asyncio.gather", gather, UNLIMITED, "asyncio"),
        Contender("taskgroup", "asyncio.TaskGroup", task_group, UNLIMITED, "asyncio"),
        Contender("tg_semaphore", "TaskGroup + Semaphore", task_group_semaphore, LIMITED, "peer"),
        Contender("anyio", "anyio (+ CapacityLimiter)", anyio_group, ANY, "peer"),
        Contender("aiometer", "aiometer.run_on_each", aiometer_each, ANY, "peer"),
        Contender("aiojobs", "aiojobs.Scheduler", aiojobs_scheduler, ANY, "peer"),
        Contender("asyncio_pool_map", "asyncio-pool map", asyncio_pool_map, LIMITED, "peer"),
        Contender("asyncio_pool_spawn", "asyncio-pool spawn", asyncio_pool_spawn, LIMITED, "peer"),
        Contender("aiometer_run_all", "aiometer.run_all", aiometer_run_all, ONLY_100, "peer"),
        Contender(
            "async_for_semaphore",
            "async source: async for + TaskGroup + Semaphore",
            async_for_semaphore,
            ONLY_100,
            "peer_async",
        ),
        Contender(
            "aiometer_each_async",
            "async source: aiometer.run_on_each (sync only: source read into a list first)",
            aiometer_each_async,
            ONLY_100,
            "peer_async",
        ),
        Contender(
            "go_async_async_source",
            "async source: go_async Pool.ago",
            go_async_async_source,
            ONLY_100,
            "go_async",
        ),
        Contender("go_async", "go_async Pool.go", go_async, ANY, "go_async"),
        Contender("go_async_drain", "go_async + drain", go_async_drain, ANY, "go_async"),
        Contender("go_async_retry", "go_async + unused retry", go_async_retry, ANY, "go_async"),
        Contender(
            "go_async_running", "go_async running pool, submit", go_async_running, ONLY_100, "go_async"
        ),
        Contender(
            "go_async_running_bounded",
            f"go_async running pool, submit, queue of {RUNNING_QUEUE:,}",
            go_async_running_bounded,
            ONLY_100,
            "go_async",
        ),
        Contender("go_async_map", "go_async Pool.map", go_async_map, ONLY_100, "go_async"),
        Contender(
            "go_async_running_map", "go_async running pool, map", go_async_running_map, ONLY_100, "go_async"
        ),
        Contender(
            "go_async_timeout",
            "go_async + a timeout that never fires",
            go_async_timeout,
            NONE_AND_100,
            "go_async",
        ),
        Contender("go_async_hooks", "go_async + a counting hook", go_async_hooks, NONE_AND_100, "go_async"),
        Contender(
            "go_async_middleware",
            "go_async + pass-through middleware",
            go_async_middleware,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "go_async_before",
            f"go_async at {BASELINE}, before the one engine",
            go_async,
            NONE_AND_100,
            "baseline",
        ),
        Contender(
            "go_async_rate",
            "go_async + a rate limit that never binds",
            go_async_rate,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "go_async_breaker",
            "go_async + a closed circuit breaker",
            go_async_breaker,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "go_async_adaptive",
            "go_async + an Adaptive limit that never binds",
            go_async_adaptive,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "go_async_budget",
            "go_async + a retry and a retry budget, never used",
            go_async_budget,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "go_async_checkpoint",
            "go_async + a checkpoint file",
            go_async_checkpoint,
            NONE_AND_100,
            "go_async",
        ),
        Contender(
            "aiometer_rate",
            "aiometer + a max_per_second that never binds",
            aiometer_rate,
            ONLY_100,
            "peer_rate",
        ),
    ]
}
