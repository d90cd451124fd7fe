"""The running pool: submit while it runs, handles, priorities, backpressure, shutdown, sub-pools, stats."""

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Args, Drain, Handle, Pool, QueueFull, RunningPool, Task, WaitLog

T = TypeVar("T")


async def send_input(args: Args[int]) -> None:
    args.drain.send(args.input)


class Gate:
    """Tasks that wait until the test opens the gate; records the order they started in."""

    def __init__(self) -> None:
        self.opened = asyncio.Event()
        self.started: list[int] = []

    async def __call__(self, args: Args[int]) -> None:
        self.started.append(args.input)
        await self.opened.wait()


def run(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return asyncio.run(main())


async def settle() -> None:
    """Let every ready task take its turn (a few loop iterations, no wall-clock time)."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_running_pool_takes_tasks_and_its_block_waits_for_them() -> None:
    """Handles resolve when their task ends; leaving the block waits for every task."""
    out: Drain[int] = Drain()

    async def main() -> list[Handle[None]]:
        async with Pool(limit=2) as pool:
            assert isinstance(pool, RunningPool)
            assert pool.is_running
            handles = [await pool.submit(Task(send_input).with_input(n).drain_to(out)) for n in range(5)]
            await handles[0]
            assert handles[0].done()
        assert not pool.is_running
        return handles

    handles = run(main)
    assert all(h.done() and not h.cancelled() for h in handles)
    assert sorted(out.drain()) == [0, 1, 2, 3, 4]


def test_a_failure_is_raised_by_its_handle_or_else_at_the_end_of_the_block() -> None:
    """Nothing is lost: an error nobody retrieved comes out when the block ends."""

    async def fail(args: Args[int]) -> None:
        raise ValueError(f"bad {args.input}")

    async def main() -> None:
        async with Pool() as pool:
            seen = await pool.submit(Task(fail).with_input(1))
            with pytest.raises(ValueError, match="bad 1"):
                await seen
            pool.submit_nowait(Task(fail).with_input(2))
            pool.submit_nowait(Task(fail).with_input(3))

    with pytest.raises(
        ExceptionGroup, match="2 of 3 tasks failed and nobody awaited their handles"
    ) as caught:
        run(main)
    assert [str(e) for e in caught.value.exceptions] == ["bad 2", "bad 3"]


@pytest.mark.parametrize("count", [1, 2])
def test_failures_nobody_awaited_are_a_note_on_the_blocks_own_error(count: int) -> None:
    async def fail(args: Args[int]) -> None:
        raise ValueError(f"bad {args.input}")

    async def main() -> None:
        async with Pool() as pool:
            handles = [pool.submit_nowait(Task(fail).with_input(n)) for n in range(count)]
            while not all(handle.done() for handle in handles):
                await settle()
            raise LookupError("the block failed")

    with pytest.raises(LookupError, match="the block failed") as caught:
        run(main)
    tasks = "1 submitted task" if count == 1 else "2 submitted tasks"
    assert caught.value.__notes__ == [f"{tasks} failed too, and nobody awaited their handles"]


def test_handles_cancel_queued_and_running_tasks() -> None:
    """cancel() works before and after the start; awaiting a cancelled handle raises CancelledError."""
    gate = Gate()

    async def main() -> None:
        async with Pool(limit=1) as pool:
            running = await pool.submit(Task(gate).with_input(0))
            queued = await pool.submit(Task(gate).with_input(1))
            await settle()
            assert gate.started == [0]
            assert queued.cancel()
            assert running.cancel()
            await settle()
            assert running.done()
            assert running.cancelled()
            assert queued.done()
            assert queued.cancelled()
            assert not queued.cancel()
            with pytest.raises(asyncio.CancelledError):
                await queued
            assert pool.stats().cancelled == 2
        assert gate.started == [0]

    run(main)


def test_waiting_with_a_timeout_leaves_the_task_running() -> None:
    """wait(timeout) gives up waiting, not the task."""
    gate = Gate()

    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(gate).with_input(0))
            with pytest.raises(TimeoutError):
                await handle.wait(timeout=0.01)
            assert not handle.done()
            gate.opened.set()
            await handle.wait(timeout=60)
            assert handle.done()

    run(main)


def test_running_tasks_submit_more_work_through_their_args() -> None:
    """args.pool is the running pool; the block waits for work submitted from inside too."""
    out: Drain[int] = Drain()

    async def countdown(args: Args[int]) -> None:
        args.drain.send(args.input)
        if args.input:
            await args.pool.submit(args.task.with_input(args.input - 1))

    async def main() -> None:
        async with Pool(limit=2) as pool:
            await pool.submit(Task(countdown).with_input(4).drain_to(out))

    run(main)
    assert out.drain() == [4, 3, 2, 1, 0]


def test_tasks_run_by_go_have_no_pool_to_submit_to() -> None:
    """args.pool names the task and says which pools take work."""

    async def submits(args: Args[int]) -> None:
        args.pool  # noqa: B018 - the read is the test

    with pytest.raises(ExceptionGroup) as caught:
        Pool().go([Task(submits)])
    [error] = caught.value.exceptions
    assert isinstance(error, LookupError)
    assert "is not run by a running pool: only `async with Pool() as pool` takes work" in str(error)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-3, 3), max_size=25))
def test_queued_tasks_start_by_priority_then_in_submission_order(priorities: list[int]) -> None:
    """Higher priority first; FIFO among equals."""
    gate = Gate()
    order: list[int] = []

    async def record(args: Args[int]) -> None:
        order.append(args.input)

    async def main() -> None:
        async with Pool(limit=1) as pool:
            await pool.submit(Task(gate).with_input(-1))
            for index, priority in enumerate(priorities):
                await pool.submit(Task(record).with_input(index).with_priority(priority))
            gate.opened.set()

    run(main)
    assert order == sorted(range(len(priorities)), key=lambda i: (-priorities[i], i))


@settings(max_examples=30, deadline=None)
@given(limit=st.integers(1, 4), queue_size=st.integers(1, 4), extra=st.integers(1, 5))
def test_a_full_queue_refuses_submit_nowait_and_makes_submit_wait(
    limit: int, queue_size: int, extra: int
) -> None:
    """limit tasks run, queue_size wait; beyond that submit_nowait raises and submit waits for room."""
    gate = Gate()

    async def main() -> None:
        async with Pool(limit=limit).with_queue_size(queue_size) as pool:
            for n in range(limit + queue_size):
                pool.submit_nowait(Task(gate).with_input(n))
            await settle()
            for n in range(extra):
                with pytest.raises(
                    QueueFull, match=rf"the pool's queue is full \({queue_size} tasks queued\)"
                ):
                    pool.submit_nowait(Task(gate).with_input(100 + n))
            waiting = asyncio.ensure_future(pool.submit(Task(gate).with_input(99)))
            await settle()
            assert not waiting.done()
            assert pool.stats().running == limit
            assert pool.stats().queued == queue_size
            gate.opened.set()
            handle = await waiting
            await handle
        assert sorted(gate.started) == [*range(limit + queue_size), 99]

    run(main)


def test_the_pool_timeout_and_retry_apply_to_submitted_tasks(waits: WaitLog) -> None:
    """A task that overruns fails with TimeoutError, retried as its retry says."""
    tries: list[int] = []

    async def hangs(args: Args[int]) -> None:
        tries.append(args.input)
        await asyncio.Event().wait()

    async def main() -> None:
        async with Pool().with_timeout(0.01).with_retry(2, 0.1) as pool:
            handle = await pool.submit(Task(hangs).with_input(1))
            with pytest.raises(TimeoutError):
                await handle
            assert pool.stats().retried == 1

    run(main)
    assert tries == [1, 1]


def test_cancel_cancels_everything_and_the_pool_stays_open() -> None:
    """pool.cancel() returns the handles it cancelled; new work is still taken."""
    gate = Gate()
    out: Drain[int] = Drain()

    async def main() -> None:
        async with Pool(limit=1) as pool:
            handles = [await pool.submit(Task(gate).with_input(n)) for n in range(3)]
            await settle()
            cancelled = pool.cancel()
            assert cancelled == handles
            await settle()
            assert all(h.cancelled() for h in handles)
            await (await pool.submit(Task(send_input).with_input(7).drain_to(out)))

    run(main)
    assert out.drain() == [7]


def test_shutdown_finishes_what_it_can_in_time_then_cancels_the_rest() -> None:
    """No new work; queued and running tasks get the timeout to end; the rest are cancelled and named."""
    gate = Gate()
    out: Drain[int] = Drain()

    async def main() -> None:
        async with Pool(limit=1) as pool:
            quick = await pool.submit(Task(send_input).with_input(1).drain_to(out))
            stuck = await pool.submit(Task(gate).with_input(2))
            queued = await pool.submit(Task(send_input).with_input(3).drain_to(out))
            cancelled = await pool.shutdown(timeout=0.05)
            assert cancelled == [stuck, queued]
            assert quick.done()
            assert not quick.cancelled()
            assert not pool.is_running
            with pytest.raises(RuntimeError, match=r"RunningPool.submit_nowait\(\): the pool is not running"):
                pool.submit_nowait(Task(send_input).with_input(4))

    run(main)
    assert out.drain() == [1]


def test_shutdown_cancels_nothing_when_everything_ends_in_time() -> None:
    """With time enough, every queued task runs."""
    out: Drain[int] = Drain()

    async def main() -> None:
        async with Pool(limit=1) as pool:
            for n in range(5):
                await pool.submit(Task(send_input).with_input(n).drain_to(out))
            assert await pool.shutdown(timeout=60) == []

    run(main)
    assert out.drain() == [0, 1, 2, 3, 4]


def test_sub_pools_keep_their_own_limit_and_count_against_the_parent() -> None:
    """A child at limit 1 runs one at a time; together parent and child never exceed the parent's limit."""
    running = 0
    peak = 0
    child_running = 0
    child_peak = 0
    gate = asyncio.Event()

    async def work(args: Args[str]) -> None:
        nonlocal running, peak, child_running, child_peak
        running += 1
        peak = max(peak, running)
        if args.input == "child":
            child_running += 1
            child_peak = max(child_peak, child_running)
        await gate.wait()
        running -= 1
        if args.input == "child":
            child_running -= 1

    async def main() -> None:
        async with Pool(limit=3) as pool:
            child = pool.sub(limit=1)
            for _ in range(3):
                await child.submit(Task(work).with_input("child"))
                await pool.submit(Task(work).with_input("parent"))
            await settle()
            assert (running, child_running) == (3, 1)
            stats = pool.stats()
            assert (stats.running, stats.queued) == (3, 3)
            gate.set()

    run(main)
    assert (peak, child_peak) == (3, 1)


def test_sub_pools_are_shut_down_and_cancelled_with_their_parent() -> None:
    """A parent's shutdown reaches its sub-pools: they take no more work, and stuck tasks are cancelled."""
    gate = Gate()

    async def main() -> None:
        async with Pool(limit=2) as pool:
            child = pool.sub()
            stuck = await child.submit(Task(gate).with_input(1))
            assert await pool.shutdown(timeout=0.01) == [stuck]
            assert not child.is_running
            with pytest.raises(RuntimeError, match="not running"):
                await child.submit(Task(gate).with_input(2))

    run(main)


def test_stats_count_outcomes_durations_and_tags() -> None:
    """Completed, failed, cancelled, per tag, mean and p95 durations."""
    gate = Gate()

    async def fail(args: Args[int]) -> None:
        raise ValueError(args.input)

    async def main() -> None:
        async with Pool(limit=4) as pool:
            for n in range(3):
                await pool.submit(Task(send_input).with_input(n).drain_to(Drain()).with_tags("ok", "io"))
            failed = await pool.submit(Task(fail).with_input(9).with_tags("io"))
            stuck = await pool.submit(Task(gate).with_input(5))
            await settle()
            stuck.cancel()
            await settle()
            assert isinstance(failed.exception(), ValueError)
            stats = pool.stats()
            assert (stats.running, stats.queued, stats.completed, stats.failed, stats.cancelled) == (
                0,
                0,
                3,
                1,
                1,
            )
            assert dict(stats.per_tag) == {"ok": 3, "io": 4}
            assert stats.mean_duration is not None
            assert stats.mean_duration >= 0
            assert stats.p95_duration is not None
            assert stats.p95_duration >= 0
            assert stats.throughput > 0

    run(main)


def test_stage_test_runs_a_running_pool_one_task_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """STAGE=test forces limit 1 here too."""
    monkeypatch.setenv("STAGE", "test")
    gate = Gate()

    async def main() -> None:
        async with Pool(limit=8) as pool:
            for n in range(3):
                await pool.submit(Task(gate).with_input(n))
            await settle()
            assert gate.started == [0]
            gate.opened.set()

    run(main)
    assert gate.started == [0, 1, 2]


def test_an_error_in_the_block_cancels_the_tasks_and_is_raised() -> None:
    """The block's own exception wins; nothing keeps running."""
    gate = Gate()

    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(gate).with_input(1))
            await settle()
            raise KeyError("boom")
        assert handle.cancelled()  # pragma: no cover - not reached

    with pytest.raises(KeyError, match="boom"):
        run(main)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from(["ok", "fail", "hang"]), max_size=20), st.integers(1, 4))
def test_every_submitted_task_ends_exactly_once(plan: list[str], limit: int) -> None:
    """Accounting: completed + failed + cancelled == submitted, and each handle agrees with the counts."""
    gate = asyncio.Event()

    async def act(args: Args[str]) -> None:
        if args.input == "fail":
            raise ValueError
        if args.input == "hang":
            await gate.wait()

    async def main() -> None:
        async with Pool(limit=limit) as pool:
            handles = [await pool.submit(Task(act).with_input(kind)) for kind in plan]
            await settle()
            await pool.shutdown(timeout=0)
            outcomes = []
            for kind, handle in zip(plan, handles, strict=True):
                assert handle.done()
                if handle.cancelled():
                    outcomes.append("cancelled")
                    continue
                error = handle.exception()  # retrieved: the block does not raise it again
                assert kind != "hang"
                assert isinstance(error, ValueError) == (kind == "fail")
                outcomes.append("failed" if error else "completed")
            stats = pool.stats()
            assert stats.completed + stats.failed + stats.cancelled == len(plan)
            assert (stats.completed, stats.failed, stats.cancelled) == (
                outcomes.count("completed"),
                outcomes.count("failed"),
                outcomes.count("cancelled"),
            )
            assert (stats.running, stats.queued) == (0, 0)

    run(main)


def test_bad_arguments_are_refused_where_they_are_given() -> None:
    """Wrong types and values name the call, the parameter and the value."""
    with pytest.raises(ValueError, match=r"Pool.with_queue_size: size must be an int >= 1, got 0"):
        Pool().with_queue_size(0)
    with pytest.raises(TypeError, match=r"Task.with_priority: priority must be an int, got 'high' \(str\)"):
        Task(send_input).with_priority("high")  # type: ignore[arg-type]

    async def main() -> None:
        async with Pool() as pool:
            with pytest.raises(
                TypeError, match=r"RunningPool.submit_nowait\(task\): task must be a Task, got 3"
            ):
                pool.submit_nowait(3)  # type: ignore[arg-type]
            with pytest.raises(ValueError, match=r"RunningPool.sub: limit must be an int >= 1, got 0"):
                pool.sub(limit=0)

    run(main)


def test_a_task_cancelled_before_its_first_step_still_ends() -> None:
    """Cancelling right after submit, before the task ran at all, ends its handle and lets the pool close."""

    async def main() -> tuple[Handle[None], list[Handle[Any]]]:
        async with Pool(limit=2) as pool:
            alone = await pool.submit(Task(Gate()).with_input(1))
            assert alone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await alone.wait(timeout=5)
            assert alone.done()  # it once stayed "running" for ever
            others = [await pool.submit(Task(Gate()).with_input(n)) for n in range(3)]
            cancelled = pool.cancel()
        assert cancelled == others
        assert pool.stats().cancelled == 4
        assert pool.stats().running == 0
        return alone, cancelled

    alone, cancelled = run(main)
    assert alone.cancelled()
    assert all(h.cancelled() for h in cancelled)
