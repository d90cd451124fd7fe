"""Event hooks: which events arrive, in what order, with what; a failing hook; no cost without hooks."""

import asyncio
import logging
from typing import Any

import pytest

from go_async import Args, Drain, Hooks, Pool, Task, WaitLog
from go_async._hookset import HookSet
from go_async._runner import Runner


class Recorder(Hooks):
    """Every event, as a short tuple, in the order it arrived."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def pool_started(self, pool: Pool) -> None:
        self.events.append(("pool_started", pool))

    def pool_closed(self, pool: Pool) -> None:
        self.events.append(("pool_closed", pool))

    def task_queued(self, args: Args[Any]) -> None:
        self.events.append(("queued", args.input))

    def task_started(self, args: Args[Any]) -> None:
        self.events.append(("started", args.input))

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        self.events.append(("retried", args.input, repr(error), attempt, wait))

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("succeeded", args.input))

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        assert seconds >= 0
        self.events.append(("failed", args.input, repr(error)))

    def task_cancelled(self, args: Args[Any]) -> None:
        self.events.append(("cancelled", args.input))


def test_a_run_tells_every_event_in_order(waits: WaitLog) -> None:
    """Started, retried (attempt and wait), succeeded and failed; the pool's start and end around them."""
    tries: dict[str, int] = {}

    async def work(args: Args[str]) -> None:
        tries[args.input] = tries.get(args.input, 0) + 1
        if args.input == "flaky" and tries["flaky"] < 3:
            raise OSError(tries["flaky"])

    recorder = Recorder()
    pool = Pool(limit=1, hooks=[recorder])
    pool.go(Task(work).with_retry(3, 0.1).with_input(name) for name in ["ok", "flaky"])
    assert tries == {"ok": 1, "flaky": 3}
    wait_1, wait_2 = waits.waits
    assert recorder.events == [
        ("pool_started", pool),
        ("started", "ok"),
        ("succeeded", "ok"),
        ("started", "flaky"),
        ("retried", "flaky", "OSError(1)", 1, wait_1),
        ("retried", "flaky", "OSError(2)", 2, wait_2),
        ("succeeded", "flaky"),
        ("pool_closed", pool),
    ]


def test_a_failure_is_told_with_its_final_error(waits: WaitLog) -> None:
    async def bad(args: Args[str]) -> None:
        raise ValueError(args.input)

    recorder = Recorder()
    with pytest.raises(ExceptionGroup):
        Pool(hooks=[recorder]).with_retry(2, 0.1).go([Task(bad).with_input("x")])
    assert recorder.events[1:-1] == [
        ("started", "x"),
        ("retried", "x", "ValueError('x')", 1, waits.waits[0]),
        ("failed", "x", "ValueError('x')"),
    ]


def test_a_timeout_is_a_failure_and_map_runs_tell_events_too() -> None:
    async def hangs(x: int) -> int:
        await asyncio.Event().wait()
        return x

    recorder = Recorder()
    with pytest.raises(ExceptionGroup):
        Pool(hooks=[recorder]).with_timeout(0.01).map(hangs, [1])
    assert [event[:2] for event in recorder.events[1:-1]] == [("started", 1), ("failed", 1)]
    assert "TimeoutError" in recorder.events[2][2]


def test_a_failing_hook_is_logged_and_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Each raising hook is reported on the go_async logger; the results and errors are as without it."""

    class Broken(Hooks):
        def task_succeeded(self, args: Args[Any], seconds: float) -> None:
            raise RuntimeError("hook bug")

        def pool_started(self, pool: Pool) -> None:
            raise RuntimeError("hook bug at start")

    recorder = Recorder()
    out: Drain[int] = Drain()

    async def send(args: Args[int]) -> None:
        if args.input == 3:
            raise KeyError(3)
        args.drain.send(args.input)

    with caplog.at_level(logging.ERROR, logger="go_async"), pytest.raises(ExceptionGroup) as caught:
        Pool(limit=2, hooks=[Broken(), recorder]).go(Task(send).drain_to(out).with_input(n) for n in range(5))
    assert sorted(out.drain()) == [0, 1, 2, 4]
    assert [type(e) for e in caught.value.exceptions] == [KeyError]
    reports = [r for r in caplog.records if r.name == "go_async"]
    assert len(reports) == 1 + 4  # the pool's start, and each success
    assert all("Broken." in r.getMessage() and r.exc_info for r in reports)
    assert sum(1 for e in recorder.events if e[0] == "succeeded") == 4  # the next hook still heard


def test_only_the_overridden_events_are_called() -> None:
    """A hook that overrides one method costs the others nothing: they are not even listed."""

    class FailuresOnly(Hooks):
        def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
            pass

    hook = FailuresOnly()
    hook_set = HookSet.of([hook], Hooks)
    assert hook_set is not None
    assert hook_set.task_started == ()
    assert hook_set.task_failed == (hook.task_failed,)
    assert HookSet.of([], Hooks) is None


def test_without_hooks_or_middleware_tasks_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """No hooks: the worker awaits the task itself, never the path that calls hooks."""

    def not_here(*_: object) -> None:
        raise AssertionError("the slow path ran")

    monkeypatch.setattr(Runner, "plan", not_here)
    out: Drain[int] = Drain()

    async def send(args: Args[int]) -> None:
        args.drain.send(args.input)

    Pool(limit=4).go(Task(send).drain_to(out).with_input(n) for n in range(10))
    assert sorted(out.drain()) == list(range(10))
    with pytest.raises(ExceptionGroup) as raised:
        Pool(limit=4, hooks=[Recorder()]).go([Task(send).drain_to(out).with_input(0)])
    assert raised.group_contains(AssertionError, match="the slow path ran")


def test_a_running_pool_tells_queued_started_and_cancelled() -> None:
    """A queued task cancelled is told once, with no start; a running one cancelled is told once too."""
    recorder = Recorder()
    started, gate = asyncio.Event(), asyncio.Event()

    async def blocked(args: Args[int]) -> None:
        started.set()
        await gate.wait()

    async def main() -> Pool:
        config = Pool(limit=1, hooks=[recorder])
        async with config as pool:
            first = await pool.submit(Task(blocked).with_input(1))
            second = await pool.submit(Task(blocked).with_input(2))
            assert second.cancel()
            await started.wait()
            assert first.cancel()
        return config

    config = asyncio.run(main())
    assert recorder.events == [
        ("pool_started", config),
        ("queued", 1),
        ("queued", 2),
        ("cancelled", 2),
        ("started", 1),
        ("cancelled", 1),
        ("pool_closed", config),
    ]


def test_with_hooks_adds_and_bad_hooks_are_refused() -> None:
    first, second = Recorder(), Recorder()

    async def noop(args: Args[int]) -> None:
        pass

    base = Pool(hooks=[first])
    base.with_hooks(second).go([Task(noop).with_input(0)])
    assert len(first.events) == len(second.events) == 4
    base.go([Task(noop).with_input(1)])
    assert len(first.events) == 8
    assert len(second.events) == 4
    with pytest.raises(TypeError, match=r"Pool\(hooks\): hooks\[1\] must be a Hooks instance, got 3 \(int\)"):
        Pool(hooks=[first, 3])  # type: ignore[list-item]
    with pytest.raises(TypeError, match=r"Pool\(hooks\): hooks must be an iterable of Hooks, got <"):
        Pool(hooks=first)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Pool.with_hooks: hooks\[0\] must be a Hooks instance"):
        base.with_hooks(print)  # type: ignore[arg-type]
