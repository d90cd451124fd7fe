"""Middleware: the order it wraps in, what it sees and returns, and the three ready-made ones."""

import asyncio
import logging
from collections.abc import Iterator
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import Args, CallNext, CatchErrors, Drain, LogTasks, Pool, Task, Timing, WaitLog, set_testing

R = TypeVar("R")


class Trace:
    """Middleware that records when it enters and leaves, under its own label."""

    def __init__(self, label: str, log: list[str]) -> None:
        self.label = label
        self.log = log

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        self.log.append(f"{self.label}>{args.input}")
        try:
            return await call_next()
        finally:
            self.log.append(f"{self.label}<{args.input}")


async def double(x: int) -> int:
    return 2 * x


def test_pool_middleware_wraps_outermost_first_and_the_tasks_own_inside() -> None:
    """Pool(middleware=[a, b]) with a task's c: a, b, c, the task, then back out."""
    log: list[str] = []

    async def body(args: Args[int]) -> None:
        log.append(f"task {args.input}")

    pool = Pool(limit=1, middleware=[Trace("a", log), Trace("b", log)])
    pool.go([Task(body).with_middleware(Trace("c", log)).with_input(1)])
    assert log == ["a>1", "b>1", "c>1", "task 1", "c<1", "b<1", "a<1"]


def test_with_middleware_adds_inside_what_was_there() -> None:
    """Pool.with_middleware and Task.with_middleware add inner layers, and copy rather than change."""
    log: list[str] = []

    async def body(args: Args[int]) -> None:
        log.append("task")

    base = Pool(middleware=[Trace("a", log)])
    pool = base.with_middleware(Trace("b", log))
    task = Task(body).with_middleware(Trace("c", log)).with_middleware(Trace("d", log))
    pool.go([task.with_input(0)])
    assert log == ["a>0", "b>0", "c>0", "d>0", "task", "d<0", "c<0", "b<0", "a<0"]
    log.clear()
    base.go([Task(body).with_input(1)])
    assert log == ["a>1", "task", "a<1"]


def test_middleware_wraps_every_try_of_a_task_once(waits: WaitLog) -> None:
    """Retries run inside call_next: the middleware sees one run and the final outcome."""
    log: list[str] = []
    tries: list[int] = []

    async def flaky(args: Args[int]) -> None:
        tries.append(args.input)
        if len(tries) < 3:
            raise OSError("not yet")

    Pool(middleware=[Trace("m", log)]).go([Task(flaky).with_retry(3, 0.1).with_input(7)])
    assert tries == [7, 7, 7]
    assert log == ["m>7", "m<7"]
    assert len(waits.waits) == 2


def test_middleware_results_are_what_map_returns() -> None:
    """A middleware may replace a result; map returns what the chain returned, in input order."""

    async def plus_one(args: Args[Any], call_next: CallNext[R]) -> R:
        value: Any = await call_next()
        return value + 1  # type: ignore[no-any-return]

    assert Pool(limit=3, middleware=[plus_one]).map(double, [1, 2, 3]) == [3, 5, 7]


@given(st.lists(st.integers(), max_size=40), st.integers(min_value=1, max_value=5), st.integers(0, 3))
def test_pass_through_middleware_loses_no_result(values: list[int], limit: int, layers: int) -> None:
    """Any number of pass-through layers: map's results equal the plain map's, in order."""
    log: list[str] = []
    pool = Pool(limit=limit, middleware=[Trace(str(n), log) for n in range(layers)])
    assert pool.map(double, values) == [2 * v for v in values]
    assert len(log) == 2 * layers * len(values)


def test_a_middleware_that_raises_fails_its_task_and_only_it() -> None:
    """Its error is the task's final error, reported like any other."""

    async def refuse_odd(args: Args[Any], call_next: CallNext[R]) -> R:
        if args.input % 2:
            raise PermissionError(args.input)
        return await call_next()

    pool = Pool(middleware=[refuse_odd])
    with pytest.raises(ExceptionGroup) as caught:
        pool.map(double, range(4))
    assert [e.args for e in caught.value.exceptions] == [(1,), (3,)]


def test_middleware_sees_a_timeout_and_runs_plain_functions_in_threads() -> None:
    """A try that times out reaches the middleware as TimeoutError; plain defs run as usual."""
    seen: list[str] = []

    async def note(args: Args[Any], call_next: CallNext[R]) -> R:
        try:
            return await call_next()
        except Exception as error:
            seen.append(type(error).__name__)
            raise

    async def hangs(args: Args[int]) -> None:
        await asyncio.Event().wait()

    out: Drain[int] = Drain()

    def in_thread(args: Args[int]) -> None:
        args.drain.send(args.input)

    pool = Pool(middleware=[note])
    with pytest.raises(ExceptionGroup):
        pool.go([Task(hangs).with_timeout(0.01).with_input(0), Task(in_thread).drain_to(out).with_input(5)])
    assert seen == ["TimeoutError"]
    assert out.drain() == [5]


def test_a_running_pool_runs_its_middleware() -> None:
    """Submitted tasks are wrapped too."""
    log: list[str] = []

    async def body(args: Args[int]) -> None:
        log.append("task")

    async def main() -> None:
        async with Pool(middleware=[Trace("m", log)]) as pool:
            await (await pool.submit(Task(body).with_input(4)))

    asyncio.run(main())
    assert log == ["m>4", "task", "m<4"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Pool(middleware=[1]), "Pool(middleware): middleware[0] must be an async callable"),  # type: ignore[list-item]
        (lambda: Pool(middleware=double), "Pool(middleware): middleware must be an iterable"),  # type: ignore[arg-type]
        (lambda: Task(double).with_middleware("m"), "Task.with_middleware: middleware[0] must be"),  # type: ignore[arg-type]
        (lambda: Pool().with_middleware(None), "Pool.with_middleware: middleware[0] must be"),  # type: ignore[arg-type]
    ],
)
def test_bad_middleware_is_refused_where_it_is_given(make: Any, message: str) -> None:
    with pytest.raises(TypeError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        make()


# --- LogTasks ----------------------------------------------------------------------


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def test_log_tasks_as_hooks_logs_every_event_with_a_fixed_message_and_fields(
    logs: pytest.LogCaptureFixture,
) -> None:
    """Start, each retry with its attempt and wait, the end: one fixed message each, details as fields."""
    tries: list[int] = []

    async def flaky(args: Args[int]) -> None:
        tries.append(args.input)
        if args.input == 1 or len(tries) < 3:
            raise ValueError(f"no {args.input}")

    task = Task(flaky).with_name("flaky").with_tags("a", "b").with_retry(3, 0.5)
    logger = logging.getLogger("test.tasks")
    with set_testing(seed=3) as waits, pytest.raises(ExceptionGroup):
        Pool(limit=1, hooks=[LogTasks(logger, logging.DEBUG)]).go([task.with_input(0), task.with_input(1)])
    ours = [r for r in logs.records if r.name == "test.tasks"]
    assert [(r.getMessage(), r.levelno) for r in ours] == [
        ("task started", logging.DEBUG),
        ("task retried", logging.WARNING),
        ("task retried", logging.WARNING),
        ("task succeeded", logging.DEBUG),
        ("task started", logging.DEBUG),
        ("task retried", logging.WARNING),
        ("task retried", logging.WARNING),
        ("task failed", logging.ERROR),
    ]
    retried = [r for r in ours if r.getMessage() == "task retried"]
    assert [r.attempt for r in retried] == [1, 2, 1, 2]  # type: ignore[attr-defined]
    assert [r.wait for r in retried] == waits.waits  # type: ignore[attr-defined]
    assert retried[0].error == "ValueError('no 0')"  # type: ignore[attr-defined]
    failed = ours[-1]
    assert failed.exc_info is not None
    assert isinstance(failed.exc_info[1], ValueError)
    assert failed.duration >= 0  # type: ignore[attr-defined]
    for record in ours:
        assert record.task_name == "flaky"  # type: ignore[attr-defined]
        assert record.task_tags == ("a", "b")  # type: ignore[attr-defined]
    assert [r.task_id.split(".")[1] for r in ours] == ["0"] * 4 + ["1"] * 4  # type: ignore[attr-defined]


def test_log_tasks_logs_a_retry_the_budget_refused(logs: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test.refused")

    async def failing(args: Args[int]) -> None:
        raise ConnectionError(args.input)

    # No first tries to earn retries, and no floor: the budget refuses the first retry.
    pool = Pool(limit=1, hooks=[LogTasks(logger)]).with_retry(3).with_retry_budget(0.0, 0.0)
    with set_testing(), pytest.raises(ExceptionGroup):
        pool.go([Task(failing).with_input(1)])
    refused = [r for r in logs.records if r.name == logger.name and r.getMessage() == "task retry refused"]
    assert [(r.levelno, r.attempt, r.error) for r in refused] == [  # type: ignore[attr-defined]
        (logging.WARNING, 1, "ConnectionError(1)")
    ]


def test_log_tasks_as_middleware_logs_the_ends_only(logs: pytest.LogCaptureFixture) -> None:
    """Around the retries, it sees a task's end, not its tries."""

    async def maybe(args: Args[int]) -> None:
        if args.input:
            raise ValueError("odd")

    task = Task(maybe).with_name("maybe")
    logger = logging.getLogger("test.ends")
    with set_testing(), pytest.raises(ExceptionGroup):
        Pool(limit=1, middleware=[LogTasks(logger, logging.DEBUG)]).with_retry(2).go(
            [task.with_input(0), task.with_input(1)]
        )
    ours = [r for r in logs.records if r.name == "test.ends"]
    assert [(r.getMessage(), r.levelno) for r in ours] == [
        ("task succeeded", logging.DEBUG),
        ("task failed", logging.ERROR),
    ]
    assert all(record.duration >= 0 for record in ours)  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["hooks", "middleware"])
def test_log_tasks_logs_a_cancelled_task(how: str, logs: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger(f"test.cancel.{how}")
    log = LogTasks(logger)
    started = asyncio.Event()

    async def forever(args: Args[None]) -> None:
        started.set()
        await asyncio.Event().wait()

    async def main() -> None:
        pool = Pool(hooks=[log]) if how == "hooks" else Pool(middleware=[log])
        async with pool as running:
            handle = await running.submit(Task(forever).with_name("forever"))
            await started.wait()
            handle.cancel()
            with pytest.raises(asyncio.CancelledError):
                await handle

    asyncio.run(main())
    ours = [r for r in logs.records if r.name == logger.name]
    heard = [(r.getMessage(), r.levelno) for r in ours]
    start = [("task started", logging.DEBUG)] if how == "hooks" else []  # middleware sees no start
    assert heard == [*start, ("task cancelled", logging.WARNING)]
    assert ours[-1].task_name == "forever"  # type: ignore[attr-defined]


def test_log_tasks_defaults_to_the_go_async_tasks_logger(logs: pytest.LogCaptureFixture) -> None:
    Pool(middleware=[LogTasks()]).map(double, [1])
    [record] = [r for r in logs.records if r.name == "go_async.tasks"]
    assert record.levelno == logging.INFO
    assert (record.getMessage(), record.task_name) == ("task succeeded", "double")  # type: ignore[attr-defined]
    assert repr(LogTasks()) == "LogTasks('go_async.tasks', INFO)"


def test_log_tasks_refuses_a_bad_logger_or_level() -> None:
    with pytest.raises(TypeError, match=r"LogTasks\(logger\): logger must be a logging.Logger, got 'x'"):
        LogTasks("x")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"LogTasks: level must be an int, got 'INFO'"):
        LogTasks(level="INFO")  # type: ignore[arg-type]


# --- Timing ------------------------------------------------------------------------


class FakeClock:
    """A clock that moves only when a task moves it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_timing_sums_up_every_task_failed_ones_included() -> None:
    clock = FakeClock()
    heard: list[tuple[int, float]] = []

    async def takes(args: Args[float]) -> None:
        clock.now += args.input
        if args.input > 2:
            raise TimeoutError

    timing = Timing(lambda args, seconds: heard.append((args._index, seconds)), clock=clock)
    assert timing.mean is None
    with pytest.raises(ExceptionGroup):
        Pool(limit=1, middleware=[timing]).go(Task(takes).with_input(s) for s in [1.0, 3.0, 0.5])
    assert timing.count == 3
    assert timing.total == 4.5
    assert timing.mean == 1.5
    assert timing.slowest is not None
    assert timing.slowest[1] == 3.0
    assert timing.slowest[0].endswith(".1")
    assert heard == [(0, 1.0), (1, 3.0), (2, 0.5)]
    assert "count=3" in repr(timing)


def test_timing_refuses_what_it_cannot_call() -> None:
    with pytest.raises(TypeError, match=r"Timing\(on_timed\): on_timed must be callable, got 5"):
        Timing(5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Timing\(clock\): clock must be callable"):
        Timing(clock="now")  # type: ignore[arg-type]


# --- CatchErrors -------------------------------------------------------------------


async def lookup(key: str) -> int:
    table = {"a": 1, "b": 2}
    return table[key]


def test_catch_errors_turns_the_named_errors_into_fallback_results(logs: pytest.LogCaptureFixture) -> None:
    catch = CatchErrors(KeyError, fallback=lambda args, error: -1)
    assert Pool(middleware=[catch]).map(lookup, ["a", "zz", "b"]) == [1, -1, 2]
    assert catch.caught == 1
    [warning] = [r for r in logs.records if r.name == "go_async.errors"]
    assert warning.levelno == logging.WARNING
    assert "caught KeyError('zz')" in warning.getMessage()


def test_catch_errors_without_fallback_gives_none_and_can_stay_quiet(logs: pytest.LogCaptureFixture) -> None:
    catch = CatchErrors(KeyError, LookupError, log=False)
    assert Pool(middleware=[catch]).map(lookup, ["zz", "a"]) == [None, 1]
    assert catch.caught == 1
    assert not [r for r in logs.records if r.name == "go_async.errors"]


def test_catch_errors_lets_every_other_error_through() -> None:
    async def broken(key: str) -> int:
        raise RuntimeError(key)

    catch = CatchErrors(KeyError)
    with pytest.raises(ExceptionGroup) as caught:
        Pool(middleware=[catch]).map(broken, ["x"])
    assert isinstance(caught.value.exceptions[0], RuntimeError)
    assert catch.caught == 0


def test_catch_errors_fallback_may_be_async_or_send_to_the_drain() -> None:
    out: Drain[str] = Drain()

    async def parse(args: Args[str]) -> None:
        args.drain.send(str(int(args.input)))

    def send_zero(args: Args[Any], error: Exception) -> None:
        args.drain.send("0")

    Pool(middleware=[CatchErrors(ValueError, fallback=send_zero)]).go(
        Task(parse).drain_to(out).with_input(text) for text in ["4", "x"]
    )
    assert sorted(out.drain()) == ["0", "4"]

    async def later(args: Args[Any], error: Exception) -> int:
        await asyncio.sleep(0)
        return 99

    assert Pool(middleware=[CatchErrors(KeyError, fallback=later)]).map(lookup, ["q"]) == [99]


def test_catch_errors_catches_after_the_retries(waits: WaitLog) -> None:
    """It wraps the whole run: the retries happen first, then the last error is caught."""
    tries: list[str] = []

    async def missing(args: Args[str]) -> None:
        tries.append(args.input)
        raise KeyError(args.input)

    catch = CatchErrors(KeyError, log=False)
    Pool(middleware=[catch]).with_retry(3, 0.1).go([Task(missing).with_input("k")])
    assert tries == ["k", "k", "k"]
    assert catch.caught == 1


def test_catch_errors_must_be_told_what_to_catch() -> None:
    with pytest.raises(TypeError, match="name at least one exception type"):
        CatchErrors()
    with pytest.raises(
        TypeError, match="each kind must be an Exception subclass, got <class 'KeyboardInterrupt'>"
    ):
        CatchErrors(KeyboardInterrupt)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"CatchErrors\(fallback\): fallback must be callable, got 0"):
        CatchErrors(KeyError, fallback=0)  # type: ignore[arg-type]
    assert repr(CatchErrors(KeyError, ValueError)) == "CatchErrors(KeyError, ValueError, caught=0)"
