import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from go_async import Adaptive, Args, Drain, Pool, Task


async def send_input(args: Args[int]) -> None:
    args.drain.send(args.input)


async def wait_for_cancel(cancelled: list[int], index: int) -> None:
    """Wait until cancelled, recording `index` in `cancelled` when it comes."""
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        cancelled.append(index)
        raise


class Peak:
    """Counts tasks running at once; when `gate_at` run together, it opens the gate for all."""

    def __init__(self, gate_at: int) -> None:
        self.gate_at = gate_at
        self.running = 0
        self.peak = 0
        self.gate = asyncio.Event()

    async def __call__(self, args: Args[int]) -> None:
        self.running += 1
        self.peak = max(self.peak, self.running)
        if self.running >= self.gate_at:
            self.gate.set()
        await self.gate.wait()
        self.running -= 1


def test_go_runs_every_task_and_drains_every_value() -> None:
    """The quick-start shape: every input reaches the drain."""
    out: Drain[int] = Drain()
    Pool(limit=4).go(Task(send_input).with_input(n).drain_to(out) for n in range(100))
    assert sorted(out.drain()) == list(range(100))


@pytest.mark.parametrize(("limit", "tasks"), [(1, 5), (3, 20), (8, 8), (8, 3)])
def test_the_limit_is_reached_and_never_exceeded(limit: int, tasks: int) -> None:
    """The gate opens only once `limit` tasks run together; a pool above the limit shows a higher peak."""
    peak = Peak(gate_at=min(limit, tasks))
    Pool(limit=limit).go(Task(peak).with_input(n) for n in range(tasks))
    assert peak.peak == min(limit, tasks)


@pytest.mark.parametrize("tasks", [1, 50, 1_000])
def test_without_a_limit_every_task_starts_at_once(tasks: int) -> None:
    """No task can finish before all have started, however many batches of workers that takes."""
    peak = Peak(gate_at=tasks)
    Pool().go(Task(peak).with_input(n) for n in range(tasks))
    assert peak.peak == tasks


def test_sync_tasks_obey_the_limit_too() -> None:
    """Plain functions run in at most `limit` threads at once."""
    lock = threading.Lock()
    running = [0, 0]  # now, peak
    barrier = threading.Barrier(3)

    def work(args: Args[int]) -> None:
        with lock:
            running[0] += 1
            running[1] = max(running[1], running[0])
        if args.input < 3:
            barrier.wait(timeout=10)  # the first three must overlap
        with lock:
            running[0] -= 1

    Pool(limit=3).go(Task(work).with_input(n) for n in range(12))
    assert running == [0, 3]


def test_tasks_are_pulled_lazily() -> None:
    """A generator is consumed as workers free up: never more than `limit` specs out at once."""
    out: Drain[int] = Drain()
    pulled = 0
    out_at_pull: list[int] = []

    def specs() -> Iterator[Task[int]]:
        nonlocal pulled
        for n in range(40):
            out_at_pull.append(pulled - len(out))
            pulled += 1
            yield Task(send_input).with_input(n).drain_to(out)

    Pool(limit=4).go(specs())
    assert pulled == 40
    assert max(out_at_pull) <= 4


@pytest.mark.parametrize("stage", ["test", "TEST", " Test "])
def test_stage_test_runs_one_at_a_time_in_order(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """STAGE=test forces limit 1, so tasks finish in submission order whatever they await."""
    monkeypatch.setenv("STAGE", stage)
    out: Drain[int] = Drain()
    running: list[int] = []

    async def uneven(args: Args[int]) -> None:
        running.append(args.input)
        assert len(running) == 1
        for _ in range(10 - args.input):  # earlier tasks yield more often
            await asyncio.sleep(0)
        running.remove(args.input)
        args.drain.send(args.input)

    Pool(limit=10).go(Task(uneven).with_input(n).drain_to(out) for n in range(10))
    assert out.drain() == list(range(10))


@pytest.mark.parametrize("stage", ["prod", "testing", ""])
def test_other_stages_change_nothing(stage: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the value `test` has an effect."""
    monkeypatch.setenv("STAGE", stage)
    peak = Peak(gate_at=6)
    Pool(limit=6).go(Task(peak).with_input(n) for n in range(12))
    assert peak.peak == 6


def test_stage_is_read_when_a_run_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool made before STAGE=test was set still obeys it."""
    pool = Pool(limit=5)
    monkeypatch.setenv("STAGE", "test")
    peak = Peak(gate_at=1)
    pool.go(Task(peak).with_input(n) for n in range(5))
    assert peak.peak == 1
    assert pool.limit == 5


def test_failures_are_grouped_in_submission_order() -> None:
    """Later tasks that fail first are still reported after earlier ones."""
    out: Drain[int] = Drain()

    async def fail_odd(args: Args[int]) -> None:
        for _ in range(10 - args.input):  # task 9 finishes first
            await asyncio.sleep(0)
        if args.input % 2:
            raise ValueError(args.input)
        args.drain.send(args.input)

    pool = Pool()
    with pytest.raises(ExceptionGroup, match=r"^5 of 10 tasks failed") as caught:
        pool.go(Task(fail_odd).with_input(n).drain_to(out) for n in range(10))
    assert [error.args[0] for error in caught.value.exceptions] == [1, 3, 5, 7, 9]
    assert [error.args[0] for error in pool.errors()] == [1, 3, 5, 7, 9]
    assert sorted(out.drain()) == [0, 2, 4, 6, 8]


def test_except_star_catches_task_errors() -> None:
    """The group is an ExceptionGroup, so except* splits it by type."""

    async def fail(args: Args[int]) -> None:
        raise (KeyError if args.input else ValueError)(args.input)

    caught: list[str] = []
    try:
        Pool(limit=2).go(Task(fail).with_input(n) for n in range(3))
    except* KeyError as group:
        caught.append(f"keys {len(group.exceptions)}")
    except* ValueError as group:
        caught.append(f"values {len(group.exceptions)}")
    assert caught == ["keys 2", "values 1"]


def test_each_run_starts_afresh() -> None:
    """errors() describes the last run only, and is empty after a clean one."""

    async def fail_if(args: Args[bool]) -> None:
        if args.input:
            raise RuntimeError("boom")

    pool = Pool(limit=2)
    assert pool.errors() == []
    with pytest.raises(ExceptionGroup):
        pool.go([Task(fail_if).with_input(True)])
    assert len(pool.errors()) == 1
    pool.go([Task(fail_if).with_input(False)])
    assert pool.errors() == []


def test_go_inside_a_running_loop_points_to_ago() -> None:
    """go() blocks, so it refuses inside a loop and says what to do instead."""

    async def main() -> None:
        with pytest.raises(RuntimeError, match=r"await pool\.ago\(tasks\)"):
            Pool().go([])

    asyncio.run(main())


def test_ago_runs_inside_async_code() -> None:
    """The async twin does the same work."""
    out: Drain[int] = Drain()
    asyncio.run(Pool(limit=2).ago(Task(send_input).with_input(n).drain_to(out) for n in range(5)))
    assert sorted(out.drain()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    ("limit", "error", "message"),
    [
        (0, ValueError, r"Pool: limit must be an int >= 1, got 0"),
        (-2, ValueError, r"Pool: limit must be an int >= 1, got -2"),
        ("3", TypeError, r"Pool: limit must be an int >= 1, got '3' \(str\)"),
        (True, TypeError, r"Pool: limit must be an int >= 1, got True \(bool\)"),
    ],
)
def test_bad_limits_are_rejected(limit: object, error: type[Exception], message: str) -> None:
    """The constructor names the parameter and the value."""
    with pytest.raises(error, match=message):
        Pool(limit=limit)  # type: ignore[arg-type]
    with pytest.raises(error, match=message.replace("Pool:", r"Pool\.with_limit:")):
        Pool().with_limit(limit)  # type: ignore[arg-type]


def test_fluent_pool_calls_return_copies() -> None:
    """with_limit and with_retry leave the original pool alone."""
    base = Pool()
    limited = base.with_limit(3).with_retry(2, 0.5)
    assert repr(base) == "Pool(limit=None)"
    assert repr(limited) == "Pool(limit=3, retry=2x0.5s)"
    assert limited.with_limit(None).limit is None


def test_a_non_task_in_a_list_is_rejected_before_anything_runs() -> None:
    """Lists are checked whole: the error names the position and nothing starts."""
    out: Drain[int] = Drain()
    tasks = [Task(send_input).with_input(0).drain_to(out), send_input]
    with pytest.raises(TypeError, match=r"tasks\[1\] must be a Task, got <function send_input .*wrap"):
        Pool().go(tasks)  # type: ignore[arg-type]
    assert out.drain() == []


def test_a_non_task_in_a_generator_stops_the_supply() -> None:
    """Tasks before the bad one finish; none after it start; the error names the position."""
    out: Drain[int] = Drain()

    def specs() -> Iterator[object]:
        yield Task(send_input).with_input(0).drain_to(out)
        yield Task(send_input).with_input(1).drain_to(out)
        yield "not a task"
        yield Task(send_input).with_input(3).drain_to(out)

    with pytest.raises(TypeError, match=r"tasks\[2\] must be a Task, got 'not a task' \(str\)"):
        Pool(limit=1).go(specs())  # type: ignore[arg-type]
    assert out.drain() == [0, 1]


@pytest.mark.parametrize("tasks", [5, None, Task(send_input)])
def test_tasks_must_be_iterable(tasks: object) -> None:
    """A single task or a non-iterable is refused with the value named."""
    with pytest.raises(TypeError, match=r"Pool\.go\(tasks\): tasks must be an iterable of Task, got"):
        Pool().go(tasks)  # type: ignore[arg-type]


def test_an_error_from_the_tasks_iterable_is_raised_after_running_tasks_finish() -> None:
    """The iterable's own error is the caller's: raised as is, with task failures noted."""
    out: Drain[int] = Drain()

    async def fail_on_one(args: Args[int]) -> None:
        if args.input == 1:
            raise ValueError("task failed")
        args.drain.send(args.input)

    def specs() -> Iterator[Task[int]]:
        for n in range(3):
            yield Task(fail_on_one).with_input(n).drain_to(out)
        raise OSError("source broke")

    pool = Pool(limit=2)
    with pytest.raises(OSError, match="source broke") as caught:
        pool.go(specs())
    assert out.drain() == [0, 2]
    assert caught.value.__notes__ == [
        "raised by the tasks iterable after 3 tasks",
        "1 task failed too: see pool.errors()",
    ]
    assert [str(error) for error in pool.errors()] == ["task failed"]


@pytest.mark.parametrize("limit", [None, 3])
def test_cancelling_ago_cancels_running_tasks_and_starts_no_more(limit: int | None) -> None:
    """Every running task sees its cancellation; no new task starts; nothing is left running."""
    started: list[int] = []
    cancelled: list[int] = []
    total = 10 if limit is None else limit
    all_started = asyncio.Event()

    async def hang(args: Args[int]) -> None:
        started.append(args.input)
        if len(started) == total:
            all_started.set()
        await wait_for_cancel(cancelled, args.input)

    async def main() -> None:
        run = asyncio.create_task(Pool(limit=limit).ago(Task(hang).with_input(n) for n in range(10)))
        await all_started.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(main())
    assert sorted(started) == list(range(total))
    assert sorted(cancelled) == sorted(started)


def test_a_task_that_swallows_cancellation_does_not_start_the_next() -> None:
    """Even if a task eats its CancelledError, the cancelled worker stops pulling."""
    started: list[int] = []
    entered = asyncio.Event()

    async def stubborn(args: Args[int]) -> None:
        started.append(args.input)
        entered.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return  # swallowed, on purpose

    async def main() -> None:
        run = asyncio.create_task(Pool(limit=1).ago(Task(stubborn).with_input(n) for n in range(5)))
        await entered.wait()
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert started == [0]


def test_cancelling_waits_for_thread_work_to_end() -> None:
    """A sync task cannot be interrupted: the cancelled run returns only after its thread did."""
    in_thread = threading.Event()
    release = threading.Event()
    events: list[str] = []

    def blocking(args: Args[None]) -> None:
        in_thread.set()
        release.wait(timeout=10)
        events.append("thread done")

    async def main() -> None:
        run = asyncio.create_task(Pool(limit=1).ago([Task(blocking)]))
        await asyncio.to_thread(in_thread.wait, 10)
        run.cancel()
        for _ in range(20):  # give a wrong implementation every chance to return early
            await asyncio.sleep(0)
        assert not run.done()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await run
        events.append("run done")

    asyncio.run(main())
    assert events == ["thread done", "run done"]


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("limit", [None, 3])
def test_an_interrupt_in_a_task_stops_the_run_and_is_not_collected(
    interrupt: type[BaseException], limit: int | None
) -> None:
    """KeyboardInterrupt/SystemExit from a task cancels the others, which unwind, then it is raised."""
    started: list[int] = []
    cancelled: list[int] = []
    others_started = asyncio.Event()

    async def work(args: Args[int]) -> None:
        started.append(args.input)
        if args.input == 0:
            await others_started.wait()
            raise interrupt
        if len(started) == 3:
            others_started.set()
        await wait_for_cancel(cancelled, args.input)

    pool = Pool(limit=limit)
    with pytest.raises(interrupt):
        pool.go(Task(work).with_input(n) for n in range(3 if limit is None else 10))
    assert sorted(started) == [0, 1, 2]
    assert sorted(cancelled) == [1, 2]
    assert pool.errors() == []


def test_an_interrupt_from_a_task_run_alone_passes_through() -> None:
    """execute() outside a pool lets a KeyboardInterrupt out as it is."""

    async def interrupt(args: Args[None]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(Task(interrupt).execute())


def test_ctrl_c_during_go_cancels_running_tasks(tmp_path: Path) -> None:
    """SIGINT in a script: running tasks unwind, no new task starts, KeyboardInterrupt ends it."""
    script = tmp_path / "interrupted.py"
    script.write_text(
        textwrap.dedent(
            """
            import asyncio
            import signal
            from go_async import Args, Pool, Task

            # A shell runs a background job with SIGINT ignored, and children
            # inherit that: give this script Python's Ctrl-C handler back.
            signal.signal(signal.SIGINT, signal.default_int_handler)

            started = []

            async def hang(args: Args[int]) -> None:
                started.append(args.input)
                if len(started) == 2:
                    print("ready", flush=True)
                try:
                    await asyncio.Event().wait()
                finally:
                    print("unwound", args.input, flush=True)

            try:
                Pool(limit=2).go(Task(hang).with_input(n) for n in range(10))
            except KeyboardInterrupt:
                print("interrupted; started", sorted(started), flush=True)
                raise
            """
        )
    )
    process = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode != 0
    assert sorted(stdout.splitlines()) == ["interrupted; started [0, 1]", "unwound 0", "unwound 1"]
    assert "KeyboardInterrupt" in stderr


@pytest.mark.skipif(os.environ.get("GO_ASYNC_SKIP_SLOW") == "1", reason="slow memory check skipped")
@pytest.mark.parametrize("limit", [50, None])
def test_memory_is_bounded_by_the_limit_not_the_count(limit: int | None) -> None:
    """200,000 tasks from a generator stay within a few MB, flat as N grows.

    Without a limit too: tasks that never suspend leave a worker free at once,
    so no more workers are added than tasks run at the same time.
    """

    async def noop(args: Args[int]) -> None:
        pass

    def peak_bytes(count: int) -> int:
        pool = Pool(limit=limit)
        base = Task(noop)
        tracemalloc.start()
        try:
            pool.go(base.with_input(n) for n in range(count))
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak_bytes(20_000), peak_bytes(200_000)
    assert large < 4 * 1024 * 1024
    assert large < small * 1.5 + 256 * 1024


def test_a_pools_repr_shows_an_adaptive_limit_as_such() -> None:
    assert repr(Pool(limit=Adaptive(2, 8))) == "Pool(limit=Adaptive(min=2, max=8))"
    assert repr(Pool(limit=8)) == "Pool(limit=8)"
