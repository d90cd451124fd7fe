"""Workers and clients on a Redis server that goes away and comes back, and workers that die.

Each test starts its own ``redis-server`` with an append-only file, so that
it can stop and restart it; they are skipped without ``redis-server``
(``GO_ASYNC_REQUIRE_REDIS=1`` makes that a failure).
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from go_async.distributed import MessageRejected, Remote
from looping import in_loop
from remote_tasks import hold, note, registry
from test_distributed_redis import WAIT, Server, WorkerProcess, client, started_pid


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = Server(tmp_path, append_only=True)
    yield running
    if running.process is not None:
        running.stop()


@pytest.fixture
def workers() -> Iterator[list[WorkerProcess]]:
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()


@in_loop
async def test_a_redis_restart_mid_run_loses_nothing_and_runs_nothing_twice(
    server: Server, workers: list[WorkerProcess], tmp_path: Path
) -> None:
    """Redis stops for a second with 300 tasks in flight: workers and client wait for it, then finish."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    runs = tmp_path / "runs.txt"
    workers.extend(WorkerProcess(server.url, queue, concurrency=5, redeliver_after=30.0) for _ in range(2))
    async with Remote(registry, url=server.url, queue=queue) as remote:
        first = asyncio.gather(*[_run(remote, runs, value) for value in range(300)])
        while len(_lines(runs)) < 50:
            await asyncio.sleep(0.01)
        server.stop()
        await asyncio.sleep(1.0)  # Redis is away for a second: everything in flight must wait for it
        server.start()
        try:
            results = await asyncio.wait_for(first, WAIT)
        except TimeoutError:
            logs = "".join(line for worker in workers for line in worker.lines)
            pytest.fail(f"{len(_lines(runs))} runs; the workers said:\n{logs}")
        assert sorted(results) == list(range(300))
        fresh = asyncio.gather(*[_run(remote, runs, value) for value in range(300, 320)])
        assert await asyncio.wait_for(fresh, WAIT) == list(range(300, 320))
    counts = Counter(int(line) for line in _lines(runs))
    assert set(counts) == set(range(320))
    assert [value for value, times in counts.items() if times > 1] == []  # none finished twice
    for worker in workers:
        assert worker.process.poll() is None  # both workers lived through it
        assert worker.stop() == 0
    assert any("works again" in line for worker in workers for line in worker.lines)


async def _run(remote: Remote, runs: Path, value: int) -> int:
    handle = await remote.send(note, str(runs), value)
    return await handle


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@in_loop
async def test_a_message_handed_out_more_than_max_deliveries_goes_to_the_dead_letters(
    server: Server, workers: list[WorkerProcess]
) -> None:
    """A worker dies on the task; the next one to take it finds it out of deliveries and buries it."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    os.environ["GO_ASYNC_BROKER_URL"] = server.url  # `hold` finds Redis through it, in the workers
    try:
        first = WorkerProcess(server.url, queue, redeliver_after=1.0, max_deliveries=1)
        workers.append(first)
        token = uuid.uuid4().hex
        async with Remote(registry, url=server.url, queue=queue) as remote, client(server.url) as redis:
            handle = await remote.send(hold, token)
            assert await started_pid(redis, token) == first.pid
            first.kill()  # it dies on the task, which stays pending
            workers.append(WorkerProcess(server.url, queue, redeliver_after=1.0, max_deliveries=1))
            with pytest.raises(MessageRejected, match=r"handed out 1 times without an answer"):
                await handle.result(timeout=WAIT)
            dead: Any = await redis.xrange(f"{queue}:dead")
            [(_, fields)] = dead
            assert json.loads(fields[b"data"])["id"] == handle.task_id
            assert b"without an answer" in fields[b"reason"]
            assert await redis.xlen(queue) == 0
    finally:
        del os.environ["GO_ASYNC_BROKER_URL"]


@in_loop
async def test_maxlen_caps_the_queue_and_a_handle_can_be_awaited_again(server: Server) -> None:
    """With no worker, 30 sends leave the last 10 on a stream capped at 10; handles await twice."""
    queue = f"test-{uuid.uuid4().hex[:12]}"
    async with (
        Remote(registry, url=server.url, queue=queue, maxlen=10) as remote,
        client(server.url) as redis,
    ):
        for value in range(30):
            await remote.send(note, "unused", value)
        entries: Any = await redis.xrange(queue)
        assert [json.loads(fields[b"data"])["args"]["value"] for _, fields in entries] == list(range(20, 30))
    async with Remote(registry) as embedded:  # the same handle, awaited twice
        handle = await embedded.send(note, os.devnull, 7)
        assert (await handle, await handle, await handle.result()) == (7, 7, 7)
