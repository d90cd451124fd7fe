"""Workers' own features on real worker processes and a real Redis server.

Retries, delays, revocation, dead letters, flows with no client and kept
results, as ``tests/test_worker_features.py`` checks them in memory, but
here through ``python -m go_async.worker`` processes. Tests wait on what a
worker does (a log line, a Redis list, a handle), never on a timer; the
fixtures and helpers are those of ``test_distributed_redis``.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

import test_distributed_redis
from go_async.distributed import MessageRejected, Remote, RemoteError, TaskRevoked
from looping import in_loop
from remote_tasks import (
    add,
    fails_first,
    hold,
    linger,
    multiply,
    record,
    registry,
    revocable,
    stamped,
)
from test_distributed_redis import TESTS, WAIT, WorkerProcess, client, start, started_pid

# test_distributed_redis's fixtures, by name, for pytest to find here too.
redis_url = test_distributed_redis.redis_url
queue = test_distributed_redis.queue
workers = test_distributed_redis.workers

# Longer than --redeliver-after (1 s): a message its worker failed to keep
# claimed would be taken over, and run twice, while one of these runs.
LONG_TASK = 2.5


async def _pop_runs(redis: aioredis.Redis, key: str, count: int) -> list[str]:
    """Wait for ``count`` entries on the list ``key`` (one per run), taking them off it."""
    runs: list[str] = []
    for _ in range(count):
        popped = await redis.blpop([key], timeout=WAIT)
        assert popped is not None, f"only {runs} on {key} after {WAIT} s"
        runs.append(_text(popped[1]))
    return runs


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _said(worker: WorkerProcess, text: str) -> bool:
    return any(text in line for line in worker.lines)


# 1. A full worker and an idle one


@in_loop
async def test_an_idle_worker_takes_what_a_full_one_leaves_and_every_long_task_runs_once(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """A holds two tasks with no slot left; B starts and runs the queued ones; none runs twice.

    Every task outlasts --redeliver-after, and each worker has free slots
    while the other's tasks run: a worker that failed to keep its running
    messages claimed would see them taken over and started again elsewhere.
    """
    full = start(workers, redis_url, queue, concurrency=2, redeliver_after=1.0)
    token, runs = uuid.uuid4().hex, f"runs:{uuid.uuid4().hex}"
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        holds = [await remote.send(hold, token) for _ in range(2)]
        assert [await started_pid(redis, token) for _ in holds] == [full.pid, full.pid]
        # Queued behind a full worker. The first ends before the others: its result tells
        # the test that more than --redeliver-after has passed.
        seconds = [1.5, LONG_TASK, LONG_TASK, LONG_TASK]
        lingers = [await remote.send(linger, value, runs, took) for value, took in enumerate(seconds)]
        idle = start(workers, redis_url, queue, concurrency=8, redeliver_after=1.0)
        first_runs = await _pop_runs(redis, runs, len(lingers))
        assert sorted(first_runs) == [f"{value} {idle.pid}" for value in range(4)]  # all on B: A is full
        # 1.5 s in, with 4 of B's 8 slots free all along: A's holds have outlived
        # --redeliver-after under B's eyes.
        assert await lingers[0].result(timeout=WAIT) == 0
        await redis.rpush(f"release:{token}", "go")
        # Now A has free slots while B's long tasks run on for another second.
        assert [await handle.result(timeout=WAIT) for handle in lingers] == [0, 1, 2, 3]
        assert [await handle.result(timeout=WAIT) for handle in holds] == [full.pid, full.pid]
        assert await redis.llen(runs) == 0  # no linger started again
        assert await redis.llen(f"started:{token}") == 0  # nor any hold
        assert await redis.get(f"running:{token}") == b"0"
        assert await redis.xlen(queue) == 0
    assert (full.stop(), idle.stop()) == (0, 0)
    assert not _said(full, "redelivering")
    assert not _said(idle, "redelivering")
    assert "succeeded=2," in full.wait_for("go_async worker stopped")
    assert "succeeded=4," in idle.wait_for("go_async worker stopped")


# 2. Revocation


@in_loop
async def test_revoking_drops_a_queued_task_and_cancels_a_running_one_on_a_worker_process(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """One slot: a running task is revoked and cancelled; the one queued behind it never starts."""
    worker = start(workers, redis_url, queue, concurrency=1, redeliver_after=1.0)
    running_token, queued_token = uuid.uuid4().hex, uuid.uuid4().hex
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        running = await remote.send(revocable, running_token)
        assert await started_pid(redis, running_token) == worker.pid
        queued = await remote.send(revocable, queued_token)  # waits: the only slot is taken
        await remote.revoke(queued)
        await remote.revoke(running.task_id)  # by its id
        with pytest.raises(TaskRevoked, match="was revoked"):
            await running.result(timeout=WAIT)
        cancelled = await redis.blpop([f"cancelled:{running_token}"], timeout=WAIT)
        assert cancelled is not None
        assert int(cancelled[1]) == worker.pid  # cancelled where it ran
        with pytest.raises(TaskRevoked, match="was revoked"):
            await queued.result(timeout=WAIT)
        assert (running.attempts, queued.attempts) == (1, 1)
        assert await redis.llen(f"started:{queued_token}") == 0  # the queued one never started
        assert await redis.xlen(queue) == 0  # both acknowledged and removed
    assert worker.stop() == 0
    stopped = worker.wait_for("go_async worker stopped")
    assert "WorkerStats(received=2, running=0, succeeded=0, failed=0, retried=0, revoked=2" in stopped


# 3. A flow with no client left


# The client: starts the flow, says its id, then waits for a result it will never see (it is killed).
_FLOW_CLIENT = """
import asyncio, sys
from go_async import call, prepend
from go_async.distributed import Remote
from remote_tasks import add, gate, multiply, record, registry

async def main(url: str, queue: str, token: str, key: str) -> None:
    async with Remote(registry, url=url, queue=queue, keep_results=60) as remote:
        flow = (
            call(remote.stub(add), 20, 22)
            .then(prepend(remote.stub(gate), token))
            .then(prepend(remote.stub(multiply), 2))
            .then(prepend(remote.stub(record), key))
        )
        handle = await remote.start(flow, None)
        print(handle.task_id, flush=True)
        await handle

asyncio.run(main(*sys.argv[1:]))
"""


def _flow_client(url: str, queue: str, token: str, key: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", _FLOW_CLIENT, url, queue, token, key]
    return subprocess.Popen(command, cwd=TESTS, stdout=subprocess.PIPE, text=True)


@in_loop
async def test_a_flow_goes_on_to_its_end_after_its_client_is_killed(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """A client process starts add -> gate -> multiply -> record and is SIGKILLed while gate waits."""
    worker = start(workers, redis_url, queue, concurrency=2, redeliver_after=1.0)
    token, key = uuid.uuid4().hex, f"record:{uuid.uuid4().hex}"
    sender = _flow_client(redis_url, queue, token, key)
    try:
        assert sender.stdout is not None
        flow_id = (await asyncio.to_thread(sender.stdout.readline)).strip()
        assert len(flow_id) == 32, f"the client said {flow_id!r}, exit status {sender.poll()}"
        async with client(redis_url) as redis:
            assert await started_pid(redis, token) == worker.pid  # step 2 runs, and waits
            assert sender.poll() is None  # the client still waits for the flow
            sender.kill()  # SIGKILL: it leaves without a word
            assert await asyncio.to_thread(sender.wait, WAIT) == -signal.SIGKILL
            assert await redis.llen(key) == 0  # the last step has not run yet
            await redis.rpush(f"release:{token}", "go")
            recorded = await redis.blpop([key], timeout=WAIT)
            assert recorded is not None, f"the flow never reached its last step:\n{''.join(worker.lines)}"
            assert _text(recorded[1]) == f"{(20 + 22) * 2} {worker.pid}"
        # The client asked for its result to be kept: any other client reads it by the flow's id.
        async with Remote(registry, url=redis_url, queue=queue) as reader:
            assert await reader.result(record, flow_id, timeout=WAIT) == 84
    finally:
        if sender.poll() is None:
            sender.kill()
        sender.wait(WAIT)
        assert sender.stdout is not None
        sender.stdout.close()
    assert worker.stop() == 0
    assert "succeeded=4," in worker.wait_for("go_async worker stopped")


# 4. Dead letters


@in_loop
async def test_a_task_an_older_worker_refused_is_resent_from_the_dead_letters_and_runs(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """A worker on an older registry refuses multiply; after an upgrade its dead letter is resent and runs."""
    older = start(workers, redis_url, queue, target="remote_tasks:older_registry")
    async with Remote(registry, url=redis_url, queue=queue) as remote:
        refused = await remote.send(multiply, 6, 7)
        with pytest.raises(MessageRejected, match=r"unknown task 'multiply'"):
            await refused.result(timeout=WAIT)
        assert "rejected a message: unknown task 'multiply'" in older.wait_for("rejected")
        [letter] = await remote.dead_letters()
        assert (letter.task, letter.task_id) == ("multiply", refused.task_id)
        assert letter.reason.startswith("unknown task 'multiply'")
        # The upgrade: the older worker leaves, one with the whole registry comes.
        assert older.stop() == 0
        upgraded = start(workers, redis_url, queue)
        again = await remote.resend(letter)
        assert again.task_id != refused.task_id
        assert await again.result(timeout=WAIT) == 42
        assert await remote.dead_letters() == []
    assert upgraded.stop() == 0
    assert "received=1, running=0, succeeded=1," in upgraded.wait_for("go_async worker stopped")


# 5. Delays and retries


@in_loop
async def test_a_delayed_task_runs_no_sooner_than_its_delay_on_a_worker_process(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """.after(0.5) and .at(in 0.5 s) to an idle worker, then a task sent now: it runs first, they 0.5 s on."""
    start(workers, redis_url, queue)
    async with Remote(registry, url=redis_url, queue=queue) as remote:
        sent = time.time()  # the worker's clock is this machine's clock too
        delayed = await remote.submit(remote.call(stamped, 7).after(0.5))
        at = await remote.submit(remote.call(stamped, 8).at(datetime.fromtimestamp(sent + 0.5, UTC)))
        now = await remote.send(stamped, 9)
        assert (await now.result(timeout=WAIT))[0] == 9
        value, ran_at = await delayed.result(timeout=WAIT)
        value_at, ran_at_at = await at.result(timeout=WAIT)
        assert (value, value_at) == (7, 8)
        assert ran_at - sent >= 0.5, f"ran {ran_at - sent:.3f} s after it was sent"
        assert ran_at_at - sent >= 0.5, f"ran {ran_at_at - sent:.3f} s after it was sent"
        # The one sent now did not wait behind the delayed ones.
        assert (await now.result(timeout=WAIT))[1] < min(ran_at, ran_at_at)


@in_loop
async def test_a_failing_task_is_retried_on_a_worker_process_until_it_succeeds(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """fails_first fails twice (counted in Redis), then succeeds on its third try; out of tries, it fails."""
    worker = start(workers, redis_url, queue)
    recovers, never = f"runs:{uuid.uuid4().hex}", f"runs:{uuid.uuid4().hex}"
    async with Remote(registry, url=redis_url, queue=queue) as remote, client(redis_url) as redis:
        handle = await remote.send(fails_first, recovers, 2)
        assert await handle.result(timeout=WAIT) == 3
        assert handle.attempts == 3
        hopeless = await remote.send(fails_first, never, 99)
        with pytest.raises(RemoteError, match=r"after 4 tries: builtins\.ValueError: run 4 of 99") as caught:
            await hopeless.result(timeout=WAIT)
        assert (caught.value.attempts, hopeless.attempts) == (4, 4)
        assert (await redis.get(recovers), await redis.get(never)) == (b"3", b"4")  # no extra run
    assert worker.stop() == 0
    stopped = worker.wait_for("go_async worker stopped")
    assert "WorkerStats(received=7, running=0, succeeded=1, failed=1, retried=5, revoked=0" in stopped
    assert _said(worker, "task 'fails_first' failed (ValueError('run 1 of 2 planned failures')); try 2 at")


# 6. Kept results


@in_loop
async def test_a_kept_result_expires_on_redis_after_keep_results(
    redis_url: str, queue: str, workers: list[WorkerProcess]
) -> None:
    """keep_results=0.5: the result is there right after, with a TTL of 500 ms at most, then gone."""
    start(workers, redis_url, queue)
    async with (
        Remote(registry, url=redis_url, queue=queue, keep_results=0.5) as remote,
        client(redis_url) as redis,
    ):
        handle = await remote.send(add, 1, 2)
        assert await handle.result(timeout=WAIT) == 3
        kept = f"{queue}:result:{handle.task_id}"
        assert 0 < await redis.pttl(kept) <= 500
        assert await remote.result(add, handle.task_id) == 3
        deadline = time.monotonic() + WAIT
        while await redis.exists(kept):  # Redis expires it: wait for that, not for a time
            assert time.monotonic() < deadline, f"{kept} still there after {WAIT} s"
            await asyncio.sleep(0.02)
        with pytest.raises(LookupError, match=r"no result kept for 'add'"):
            await remote.result(add, handle.task_id)
        with pytest.raises(LookupError):  # nor does a wait for it bring it back
            await remote.result(add, handle.task_id, timeout=0.1)


@in_loop
async def test_a_wait_for_a_kept_result_longer_than_the_socket_timeout_ends_in_lookup_error(
    redis_url: str, queue: str
) -> None:
    """remote.result(timeout=1.5) on a connection with a 1 s socket timeout: LookupError at 1.5 s, no hang.

    redis-py's sockets time out after 5 s by default, so any wait longer than
    that is the same case; 1 s here keeps the test short.
    """
    url = f"{redis_url}{'&' if '?' in redis_url else '?'}socket_timeout=1"
    async with Remote(registry, url=url, queue=queue) as remote:
        began = time.monotonic()
        try:
            async with asyncio.timeout(1.5 + 3.0):
                with pytest.raises(LookupError, match=r"no result kept for 'add'"):
                    await remote.result(add, uuid.uuid4().hex, timeout=1.5)
        except TimeoutError:
            pytest.fail("remote.result(timeout=1.5) still waited 3 s past its timeout")
        assert time.monotonic() - began >= 1.5
