"""Named tasks on a real Redis server and real worker processes: delivery, shutdown, rejection.

``.ci/run`` starts a Redis server and sets ``GO_ASYNC_TEST_REDIS_URL``;
elsewhere the tests start ``redis-server`` themselves, or are skipped when
it is not installed (``GO_ASYNC_REQUIRE_REDIS=1`` makes that a failure).
Each test has its own queue, so tests never see each other's messages.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from go_async import call, prepend
from go_async.distributed import MessageRejected, Remote, Worker, WorkerStats
from go_async.distributed._redis import RedisTransport
from looping import in_loop
from remote_tasks import add, hold, multiply, pid, registry
from test_distributed import raw_send
from test_docs import ORDERS_OUTPUT

TESTS = Path(__file__).parent
WAIT = 30.0  # the most any event here may take before the test fails


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """A redis-server on a port of its own, that a test can stop and restart (with an append-only file)."""

    def __init__(self, folder: Path, *, append_only: bool = False) -> None:
        server = shutil.which("redis-server")
        if server is None:
            if os.environ.get("GO_ASYNC_REQUIRE_REDIS"):
                pytest.fail("redis-server is not installed and GO_ASYNC_REQUIRE_REDIS is set")
            pytest.skip("redis-server is not installed (apt-get install redis-server)")
        self.port = _free_port()
        self.command = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(folder)]
        self.command += ["--save", ""]
        if append_only:
            self.command += ["--appendonly", "yes", "--appendfsync", "always"]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[str] | None = None
        self.start()

    def start(self) -> None:
        process = subprocess.Popen(self.command, stdout=subprocess.PIPE, text=True)
        assert process.stdout is not None
        for line in process.stdout:  # the server says when it listens
            if "Ready to accept connections" in line:
                break
        else:
            pytest.fail(f"redis-server exited with {process.wait()}")
        threading.Thread(target=process.stdout.read, daemon=True).start()  # a full pipe would stall it
        self.process = process

    def stop(self) -> None:
        assert self.process is not None
        self.process.terminate()  # SIGTERM: it flushes its append-only file and exits
        self.process.wait(WAIT)
        assert self.process.stdout is not None
        self.process.stdout.close()
        self.process = None


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("GO_ASYNC_TEST_REDIS_URL")
    if given:
        yield given
        return
    running = Server(tmp_path_factory.mktemp("redis"))
    yield running.url
    running.stop()


@pytest.fixture
def queue() -> str:
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def _broker_url(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """``hold`` finds Redis through the variable, as real workers do."""
    monkeypatch.setenv("GO_ASYNC_BROKER_URL", redis_url)


class WorkerProcess:
    """``python -m go_async.worker remote_tasks:registry`` in a process of its own; its log, as it comes."""

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        concurrency: int = 4,
        redeliver_after: float = 1.0,
        max_deliveries: int = 5,
        target: str = "remote_tasks:registry",
        folder: Path = TESTS,
    ) -> None:
        command = [sys.executable, "-m", "go_async.worker", target, "--url", url]
        command += [
            "--queue",
            queue,
            "--concurrency",
            str(concurrency),
            "--redeliver-after",
            str(redeliver_after),
            "--max-deliveries",
            str(max_deliveries),
        ]
        self.process = subprocess.Popen(
            command,
            cwd=folder,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "GO_ASYNC_BROKER_URL": url},
        )
        self.pid = self.process.pid
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.wait_for("go_async worker ready")

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<exited>")
            self._changed.notify_all()

    def wait_for(self, text: str) -> str:
        """The first log line that holds ``text``; the test fails if the process ends first."""
        with self._changed:
            while True:
                found = next((line for line in self.lines if text in line), None)
                if found is not None:
                    return found
                if "<exited>" in self.lines:
                    raise AssertionError(f"the worker exited before {text!r}:\n{''.join(self.lines)}")
                if not self._changed.wait(WAIT):
                    raise AssertionError(f"no {text!r} in {WAIT} s:\n{''.join(self.lines)}")

    async def await_line(self, text: str) -> str:
        return await asyncio.to_thread(self.wait_for, text)

    def stop(self) -> int:
        """SIGTERM, then the exit status once it has finished its tasks."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(WAIT)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(WAIT)

    def close(self) -> None:
        """Kill it if it still runs; then close its log."""
        if self.process.poll() is None:
            self.kill()
        self._reader.join(WAIT)
        assert self.process.stderr is not None
        self.process.stderr.close()


@pytest.fixture
def workers(redis_url: str, queue: str) -> Iterator[list[WorkerProcess]]:
    """Started with ``start(...)``; whatever is left running at the end is killed."""
    started: list[WorkerProcess] = []
    yield started
    for worker in started:
        worker.close()


def start(workers: list[WorkerProcess], url: str, queue: str, **options: Any) -> WorkerProcess:
    worker = WorkerProcess(url, queue, **options)
    workers.append(worker)
    return worker


@asynccontextmanager
async def client(url: str) -> AsyncIterator[aioredis.Redis]:
    async with aioredis.from_url(url, socket_timeout=None) as redis:  # its waits may be long
        yield redis


async def started_pid(redis: aioredis.Redis, token: str) -> int:
    """Wait for the next ``hold(token)`` to start; the pid of the worker process it started in."""
    popped = await redis.blpop([f"started:{token}"], timeout=WAIT)
    assert popped is not None, f"no hold({token!r}) started in {WAIT} s"
    return int(popped[1].split()[0])


# Real worker processes


@in_loop
async def test_tasks_results_and_a_chain_cross_to_worker_processes(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    worker = start(workers, redis_url, queue)
    async with Remote(registry, url=redis_url, queue=queue) as remote:
        assert await (await remote.send(add, 1, 2, 3)) == 6
        assert await remote.amap(pid, [1, 2]) == [[1, worker.pid], [2, worker.pid]]
        chain = call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5, 6))
        assert await chain.then(prepend(remote.stub(multiply), 4)).arun(None) == 52
    assert await asyncio.to_thread(remote.map, add, [7]) == [7]  # as a script would, connecting for it
    assert worker.stop() == 0


@in_loop
async def test_each_worker_runs_at_most_its_concurrency_and_two_share_the_queue(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    first = start(workers, redis_url, queue, concurrency=1)
    second = start(workers, redis_url, queue, concurrency=1)
    token = uuid.uuid4().hex
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        handles = [await remote.send(hold, token) for _ in range(3)]
        pids = {await started_pid(redis, token), await started_pid(redis, token)}
        assert pids == {first.pid, second.pid}  # one each: each has room for one only
        await redis.rpush(f"release:{token}", "go")
        results = [await handle.result(timeout=WAIT) for handle in handles]
        assert set(results) <= pids
        marks = await redis.lrange(f"started:{token}", 0, -1)
    assert [int(mark.split()[1]) for mark in marks] == [1]  # the third ran when a slot was free


@in_loop
async def test_a_worker_killed_mid_task_loses_nothing_another_runs_it(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    one = start(workers, redis_url, queue, redeliver_after=1.0)
    other = start(workers, redis_url, queue, redeliver_after=1.0)
    token = uuid.uuid4().hex
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        handle = await remote.send(hold, token)
        first = await started_pid(redis, token)
        victim, survivor = (one, other) if first == one.pid else (other, one)
        victim.kill()  # SIGKILL: no goodbye, no acknowledgement
        assert await started_pid(redis, token) == survivor.pid
        await redis.rpush(f"release:{token}", "go")
        assert await handle.result(timeout=WAIT) == survivor.pid
    await survivor.await_line("redelivering abandoned message")
    assert survivor.stop() == 0


@in_loop
async def test_sigterm_finishes_the_started_task_takes_no_more_and_exits_0(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    leaving = start(workers, redis_url, queue, redeliver_after=1.0)
    token = uuid.uuid4().hex
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        held = await remote.send(hold, token)
        assert await started_pid(redis, token) == leaving.pid
        leaving.process.send_signal(signal.SIGTERM)
        await leaving.await_line("SIGTERM, finishing the tasks started, taking no more")
        later = await remote.send(pid, 9)
        await redis.rpush(f"release:{token}", "go")
        assert await held.result(timeout=WAIT) == leaving.pid  # finished where it started
        assert await asyncio.to_thread(leaving.process.wait, WAIT) == 0
        arriving = start(workers, redis_url, queue)
        assert await later.result(timeout=WAIT) == [9, arriving.pid]
        assert await redis.llen(f"started:{token}") == 0  # it ran once
    assert arriving.stop() == 0


def test_the_orders_example_runs_on_a_worker_process(redis_url: str, workers: list[WorkerProcess]) -> None:
    """As its docstring says: a worker in examples/, then the script with --url (default queue)."""
    root = TESTS.parent
    worker = start(workers, redis_url, "go_async", target="orders:registry", folder=root / "examples")
    command = [sys.executable, "examples/orders.py", "--url", redis_url]
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ORDERS_OUTPUT
    assert "task 'price' failed: LookupError" in worker.wait_for("failed")
    assert worker.stop() == 0


# A worker in this process: its counts and its log


@in_loop
@pytest.mark.usefixtures("_broker_url")
async def test_unknown_and_malformed_messages_are_rejected_counted_and_the_worker_goes_on(
    redis_url: str, queue: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="go_async.distributed")
    worker = Worker(registry, url=redis_url, queue=queue, concurrency=2, redeliver_after=1.0)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    await worker.ready.wait()
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        await redis.xadd(queue, {b"data": b"\x80\x04 not json"})
        await redis.xadd(queue, {b"other": b"no data at all"})
        with pytest.raises(MessageRejected, match=r"unknown task 'drop_tables'"):
            await (await raw_send(remote, {"task": "drop_tables", "args": {}})).result(timeout=WAIT)
        assert await (await remote.send(add, 40, 2)).result(timeout=WAIT) == 42
        assert await redis.xlen(queue) == 0  # every message, refused or run, is acknowledged and removed
        assert await redis.xpending(queue, queue) == {"pending": 0, "min": None, "max": None, "consumers": []}
        dead: Any = await redis.xrange(f"{queue}:dead")  # the refused ones are kept, with why
        assert [fields[b"reason"].split(b" ")[0] for _, fields in dead] == [b"malformed"] * 2 + [b"unknown"]
    stop.set()
    await running
    assert worker.stats() == WorkerStats(received=4, succeeded=1, rejected=3)
    rejected = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert [line.split(": ")[2].split(" ")[0] for line in rejected] == ["malformed", "malformed", "unknown"]


@in_loop
async def test_messages_on_the_queue_are_json_named_by_parameter(redis_url: str, queue: str) -> None:
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        await remote.send(multiply, 6, b=7)
        entries: Any = await redis.xrange(queue)
        [(_id, fields)] = entries
    message = json.loads(fields[b"data"])
    assert (message["task"], message["args"]) == ("multiply", {"a": 6, "b": 7})
    assert sorted(message) == ["args", "id", "reply", "task"]
    assert message["reply"].startswith(f"{queue}:reply:")


@in_loop
async def test_a_batch_sent_again_after_a_lost_answer_is_queued_once(redis_url: str, queue: str) -> None:
    """A pipeline retried because the server went away before it answered queues nothing twice."""
    transport = RedisTransport(redis_url, queue, redeliver_after=30.0)
    try:
        messages = [(f"m{index}".encode(), None) for index in range(5)] + [(b"later", 9e9)]
        for _ in range(2):  # the first try applied, its answer lost; then the retry
            async with transport._redis.pipeline(transaction=False) as pipe:
                transport._keys.add(pipe, "batch-1", messages)
                await pipe.execute()
        async with client(redis_url) as redis:
            entries: Any = await redis.xrange(queue)
            assert [fields[b"data"] for _, fields in entries] == [f"m{index}".encode() for index in range(5)]
            assert await redis.zcard(f"{queue}:delayed") == 1
    finally:
        await transport.close()
