"""The client side of the worker benchmark: one engine's client, run by that engine's Python.

``workers.py`` starts it once per round, engine and setup, after the workers
are up::

    python worker_client.py ENGINE --url URL --workloads noop,cpu --watch PID,PID ...

For each workload it warms up (three or more batches of growing size, for
``--warm-up`` seconds at least), sizes the timed run from the last batch's
rate unless told how many tasks to send, then times one run with 100 tasks
in flight, reading from /proc before and after the CPU time of itself, of the
worker processes (and their children), of Redis and of the whole machine.
Then it times ``--latency`` tasks sent one at a time. It prints one JSON
line. Standard library only at import: each engine's modules are imported
when that engine is chosen, in the environment that has it.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import itertools
import json
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from typing import Any

from worker_common import (
    POLL_VARIABLE,
    URL_VARIABLE,
    machine_cpu_seconds,
    poll_interval,
    spin,
    tree_cpu_seconds,
)

IN_FLIGHT = 100
TASK_OF = {"noop": "echo", "cpu": "spin"}
RESULT_TIMEOUT = 60.0
MIN_TASKS, MAX_TASKS = 100, 60_000  # per timed run


class Engine:
    """One engine's client: ``map`` keeps ``IN_FLIGHT`` tasks in flight; ``one`` sends a single task."""

    def map(self, task: str, values: list[int]) -> list[int]:
        raise NotImplementedError

    def one(self, task: str, value: int) -> int:
        return self.map(task, [value])[0]

    def close(self) -> None:
        """Let go of the connections."""


class AsyncEngine(Engine):
    """An asyncio client, on one event loop kept between calls."""

    def __init__(self) -> None:
        self.runner = asyncio.Runner()
        self.stack = AsyncExitStack()
        self.runner.run(self.start())

    async def start(self) -> None:
        """Connect."""

    async def call(self, task: str, value: int) -> int:
        raise NotImplementedError

    async def amap(self, task: str, values: list[int]) -> list[int]:
        return await windowed(lambda value: self.call(task, value), values, IN_FLIGHT)

    def map(self, task: str, values: list[int]) -> list[int]:
        return self.runner.run(self.amap(task, values))

    def one(self, task: str, value: int) -> int:
        return self.runner.run(self.call(task, value))

    def close(self) -> None:
        self.runner.run(self.stack.aclose())
        self.runner.close()


async def windowed(call: Callable[[int], Awaitable[int]], values: list[int], in_flight: int) -> list[int]:
    """``call(value)`` for every value, ``in_flight`` lanes each sending its next when one returns."""
    results = [0] * len(values)
    pending = iter(enumerate(values))

    async def lane() -> None:
        for index, value in pending:
            results[index] = await call(value)

    await asyncio.gather(*(lane() for _ in range(min(in_flight, len(values)))))
    return results


class GoAsync(AsyncEngine):
    async def start(self) -> None:
        from go_async.distributed import Remote  # noqa: PLC0415 - absent from the peers' environments
        from worker_go_async import echo, registry, spin  # noqa: PLC0415 - needs its engine

        self.tasks = {"echo": echo, "spin": spin}
        self.remote = await self.stack.enter_async_context(
            Remote(registry, url=os.environ[URL_VARIABLE], limit=IN_FLIGHT)
        )

    async def amap(self, task: str, values: list[int]) -> list[int]:
        return await self.remote.amap(self.tasks[task], values)

    async def call(self, task: str, value: int) -> int:
        return await (await self.remote.send(self.tasks[task], value))


class Lean(AsyncEngine):
    async def start(self) -> None:
        from worker_lean import Client  # noqa: PLC0415 - needs its engine

        self.client = Client(os.environ[URL_VARIABLE], IN_FLIGHT)
        self.stack.push_async_callback(self.client.close)

    async def amap(self, task: str, values: list[int]) -> list[int]:
        return await self.client.map(task, values)

    async def call(self, task: str, value: int) -> int:
        return (await self.client.map(task, [value]))[0]


class Arq(AsyncEngine):
    async def start(self) -> None:
        connections = importlib.import_module("arq.connections")
        self.pool: Any = await connections.create_pool(
            connections.RedisSettings.from_dsn(os.environ[URL_VARIABLE])
        )
        self.stack.push_async_callback(self.pool.aclose)

    async def call(self, task: str, value: int) -> int:
        job = await self.pool.enqueue_job(task, value)
        result: int = await job.result(timeout=RESULT_TIMEOUT, poll_delay=poll_interval())
        return result


class Saq(AsyncEngine):
    async def start(self) -> None:
        from worker_saq import queue  # noqa: PLC0415 - needs its engine

        self.queue: Any = queue
        await queue.connect()
        self.stack.push_async_callback(queue.disconnect)

    async def call(self, task: str, value: int) -> int:
        result: int = await self.queue.apply(
            task, timeout=RESULT_TIMEOUT, poll_interval=poll_interval(), value=value
        )
        return result


class Taskiq(AsyncEngine):
    async def start(self) -> None:
        from worker_taskiq import broker, tasks  # noqa: PLC0415 - needs its engine

        self.broker: Any = broker
        self.tasks = tasks
        await broker.startup()
        self.stack.push_async_callback(broker.shutdown)

    async def call(self, task: str, value: int) -> int:
        sent = await self.tasks[task].kiq(value)
        result = await sent.wait_result(check_interval=poll_interval(), timeout=RESULT_TIMEOUT)
        if result.is_err:
            raise RuntimeError(result.error)
        answer: int = result.return_value
        return answer


class SyncWindow(Engine):
    """A synchronous client: a window of sent tasks, waiting on the oldest before sending more."""

    def send(self, task: str, value: int) -> Any:
        raise NotImplementedError

    def wait(self, sent: Any) -> int:
        raise NotImplementedError

    def map(self, task: str, values: list[int]) -> list[int]:
        results: list[int] = []
        window: deque[Any] = deque()
        for value in values:
            if len(window) >= IN_FLIGHT:
                results.append(self.wait(window.popleft()))
            window.append(self.send(task, value))
        results.extend(self.wait(sent) for sent in window)
        return results


class Dramatiq(SyncWindow):
    def __init__(self) -> None:
        from worker_dramatiq import actors  # noqa: PLC0415 - needs its engine

        self.actors = actors

    def send(self, task: str, value: int) -> Any:
        return self.actors[task].send(value)

    def wait(self, sent: Any) -> int:
        result: int = sent.get_result(block=True, timeout=int(RESULT_TIMEOUT * 1000))
        return result


class Celery(SyncWindow):
    def __init__(self) -> None:
        from worker_celery import tasks  # noqa: PLC0415 - needs its engine

        self.tasks = tasks

    def send(self, task: str, value: int) -> Any:
        return self.tasks[task].delay(value)

    def wait(self, sent: Any) -> int:
        result: int = sent.get(timeout=RESULT_TIMEOUT)
        return result


ENGINES: dict[str, Callable[[], Engine]] = {
    "go_async": GoAsync,
    "lean": Lean,
    "dramatiq": Dramatiq,
    "arq": Arq,
    "saq": Saq,
    "taskiq": Taskiq,
    "celery": Celery,
}


def task_count(rate: float, seconds: float, *, low: int, high: int) -> int:
    """How many tasks take about ``seconds`` at ``rate`` a second: two significant digits, within bounds."""
    wanted = max(rate * seconds, 1.0)
    step = 10 ** max(math.floor(math.log10(wanted)) - 1, 0)
    return int(min(max(round(wanted / step) * step, low), high))


def percentile(samples: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile."""
    ordered = sorted(samples)
    return ordered[max(math.ceil(percent / 100 * len(ordered)) - 1, 0)]


def _check(task: str, values: list[int], results: list[int]) -> None:
    if len(results) != len(values):
        msg = f"{task}: {len(results)} results for {len(values)} tasks"
        raise RuntimeError(msg)
    for index in {0, len(values) // 2, len(values) - 1}:
        expected = values[index] if task == "echo" else spin(values[index])
        if results[index] != expected:
            msg = f"{task}({values[index]}) gave {results[index]!r}, not {expected!r}"
            raise RuntimeError(msg)


def measure(engine: Engine, options: argparse.Namespace) -> dict[str, Any]:
    watched: list[int] = options.watch
    redis: list[int] = [options.redis_pid] if options.redis_pid else []
    runs: list[dict[str, Any]] = []
    for workload, given in zip(options.workloads, options.tasks, strict=True):
        task = TASK_OF[workload]
        batch, rate, started = 50, 0.0, time.perf_counter()
        for batches in itertools.count(1):  # the warm-up, whose last batch sizes the timed run
            began = time.perf_counter()
            _check(task, list(range(batch)), engine.map(task, list(range(batch))))
            rate = batch / (time.perf_counter() - began)
            if batches >= 3 and time.perf_counter() - started >= options.warm_up:
                break
            batch *= 2
        tasks = given or task_count(rate, options.target, low=options.min_tasks, high=options.max_tasks)
        values = list(range(tasks))
        before = (
            *(tree_cpu_seconds([os.getpid()]), tree_cpu_seconds(watched), tree_cpu_seconds(redis)),
            machine_cpu_seconds(),
        )
        began = time.perf_counter()
        results = engine.map(task, values)
        seconds = time.perf_counter() - began
        after = (
            *(tree_cpu_seconds([os.getpid()]), tree_cpu_seconds(watched), tree_cpu_seconds(redis)),
            machine_cpu_seconds(),
        )
        _check(task, values, results)
        client, workers, server, machine = (end - start for start, end in zip(before, after, strict=True))
        runs.append(
            {
                "workload": workload,
                "tasks": tasks,
                "seconds": seconds,
                "client_cpu": client,
                "worker_cpu": workers,
                "redis_cpu": server,
                "machine_cpu": machine,
                "warm_up_rate": rate,
            }
        )
    latency_ms: list[float] = []
    if options.latency:
        for value in range(5):
            engine.one("echo", value)
        for value in range(options.latency):
            began = time.perf_counter()
            if engine.one("echo", value) != value:
                msg = f"echo({value}) came back wrong"
                raise RuntimeError(msg)
            latency_ms.append((time.perf_counter() - began) * 1000)
    return {"runs": runs, "latency_ms": latency_ms}


def _numbers(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part]


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="one engine's client for the worker benchmark")
    parser.add_argument("engine", choices=sorted(ENGINES))
    parser.add_argument("--url", required=True, help="the Redis URL")
    parser.add_argument("--workloads", type=lambda text: text.split(","), default=["noop", "cpu"])
    parser.add_argument(
        "--tasks", type=_numbers, help="tasks per timed run, per workload (0: from the warm-up)"
    )
    parser.add_argument("--target", type=float, default=1.5, help="seconds a timed run should take")
    parser.add_argument("--warm-up", type=float, default=0.5, help="seconds of warm-up per workload")
    parser.add_argument("--min-tasks", type=int, default=MIN_TASKS)
    parser.add_argument("--max-tasks", type=int, default=MAX_TASKS)
    parser.add_argument("--latency", type=int, default=0, help="tasks sent one at a time after the runs")
    parser.add_argument("--watch", type=_numbers, default=[], help="the worker processes' ids")
    parser.add_argument("--redis-pid", type=int, default=0)
    parser.add_argument("--poll", type=float, help="the result polling interval of arq, SAQ and taskiq")
    options = parser.parse_args(argv)
    unknown = [workload for workload in options.workloads if workload not in TASK_OF]
    if unknown:
        parser.error(f"unknown workloads {unknown}: choose from {sorted(TASK_OF)}")
    if options.tasks is None:
        options.tasks = [0] * len(options.workloads)
    if len(options.tasks) != len(options.workloads):
        parser.error("--tasks needs one number per workload")
    return options


def main(argv: Sequence[str] | None = None) -> None:
    options = parse(argv)
    os.environ[URL_VARIABLE] = options.url  # read by the engines' modules as they are imported
    if options.poll is not None:
        os.environ[POLL_VARIABLE] = str(options.poll)
    engine = ENGINES[options.engine]()
    try:
        report = measure(engine, options)
    finally:
        engine.close()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main()
