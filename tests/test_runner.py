"""The task runner on its own, with no pool: its layers' order, and what each layer does per try."""

import asyncio
import threading
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import pytest

from go_async import (
    Args,
    CallNext,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Hooks,
    ManualClock,
    RateLimit,
    Task,
    WaitLog,
)
from go_async._hookset import HookSet
from go_async._retry import RetryPolicy
from go_async._runner import Runner
from go_async._spec import Layers
from go_async._threads import Threads
from looping import in_loop, settle

R = TypeVar("R")

Fn = Callable[[Args[None]], Awaitable[Any]]

where_from: ContextVar[str] = ContextVar("where_from")


class Around:
    """Middleware that records entering, and leaving with the outcome's kind, under its label."""

    def __init__(self, label: str, trace: list[str]) -> None:
        self.label = label
        self.trace = trace

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        self.trace.append(f"{self.label}>")
        try:
            value = await call_next()
        except BaseException as error:
            self.trace.append(f"{self.label}< {type(error).__name__}")
            raise
        self.trace.append(f"{self.label}<")
        return value


class Heard(Hooks):
    """Hooks that record the task events they hear, in order."""

    def __init__(self, trace: list[str]) -> None:
        self.trace = trace

    def task_started(self, args: Args[Any]) -> None:
        self.trace.append("started")

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        self.trace.append(f"retried {attempt}: {error!r}")

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        self.trace.append("succeeded")

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self.trace.append(f"failed: {error!r}")

    def task_cancelled(self, args: Args[Any]) -> None:
        self.trace.append("cancelled")

    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        self.trace.append(f"circuit {state.value}")


class TurnClock(ManualClock):
    """A manual clock that records each reading: a rate limit reads it once per turn it gives."""

    def __init__(self, trace: list[str]) -> None:
        super().__init__()
        self.trace = trace

    def time(self) -> float:
        self.trace.append("turn")
        return super().time()


def heard(trace: list[str]) -> HookSet:
    hook_set = HookSet.of([Heard(trace)], Hooks)
    assert hook_set is not None
    return hook_set


def pool_around(*labels: str, trace: list[str]) -> Layers:
    return Layers(middleware=tuple(Around(label, trace) for label in labels))


def failing(times: int, trace: list[str]) -> Fn:
    """A function whose first ``times`` tries raise ValueError; the next returns "done"."""
    tries = 0

    async def fn(args: Args[None]) -> Any:
        nonlocal tries
        tries += 1
        trace.append(f"try {tries}")
        if tries <= times:
            raise ValueError(f"failure {tries}")
        return "done"

    return fn


async def never(args: Args[None]) -> Any:
    await asyncio.Event().wait()


# Layer order


def every_layer(trace: list[str], breaker: CircuitBreaker, rate: RateLimit, *, attempts: int) -> Task[None]:
    """A task failing twice, with a layer of each kind: retry, timeout, breaker, rate limit, middleware."""
    return (
        Task(failing(2, trace))
        .with_retry(attempts, 0)
        .with_timeout(5)
        .with_circuit_breaker(breaker)
        .with_rate_limit(rate)
        .with_middleware(Around("task", trace))
    )


@in_loop
async def test_retries_run_inside_breaker_middleware_and_hooks_each_try_taking_a_turn(waits: WaitLog) -> None:
    """Two failures, then a success: one run for hooks and middleware, three turns and tries inside."""
    trace: list[str] = []
    breaker = CircuitBreaker("svc", failures=1)
    rate = RateLimit(10, clock=TurnClock(trace))
    task = every_layer(trace, breaker, rate, attempts=3)
    runner = Runner(pool_around("pool", trace=trace), heard(trace))
    assert await runner.run(task._spec, Args(task)) == "done"
    assert trace == [
        "started",
        "pool>",
        "task>",
        "turn",
        "try 1",
        "retried 1: ValueError('failure 1')",
        "turn",
        "try 2",
        "retried 2: ValueError('failure 2')",
        "turn",
        "try 3",
        "task<",
        "pool<",
        "succeeded",
    ]
    assert (breaker.state, breaker.failures_in_a_row) == (CircuitState.CLOSED, 0)
    assert (rate.started, runner.retried, waits.waits) == (3, 1, [0.0, 0.0])


@in_loop
async def test_a_final_failure_reaches_the_breaker_once_after_every_retry(waits: WaitLog) -> None:
    """A breaker opened by one failure opens after the last try, inside the middleware, before the hooks."""
    trace: list[str] = []
    breaker = CircuitBreaker("svc", failures=1)
    rate = RateLimit(10, clock=TurnClock(trace))
    task = every_layer(trace, breaker, rate, attempts=2)
    runner = Runner(pool_around("pool", trace=trace), heard(trace))
    with pytest.raises(ValueError, match="failure 2") as caught:
        await runner.run(task._spec, Args(task))
    assert trace == [
        "started",
        "pool>",
        "task>",
        "turn",
        "try 1",
        "retried 1: ValueError('failure 1')",
        "turn",
        "try 2",
        "circuit open",
        "task< ValueError",
        "pool< ValueError",
        "failed: ValueError('failure 2')",
    ]
    assert breaker.failures_in_a_row == 1
    assert breaker.last_error is caught.value


@in_loop
async def test_a_breaker_counts_a_task_not_its_tries(waits: WaitLog) -> None:
    """Three tries that fail are one failure in a row: a breaker that opens at three stays closed."""
    trace: list[str] = []
    breaker = CircuitBreaker("svc", failures=3)
    task = Task(failing(99, trace)).with_retry(3, 0).with_circuit_breaker(breaker)
    runner = Runner()
    for _ in range(2):
        with pytest.raises(ValueError, match="failure"):
            await runner.run(task._spec, Args(task))
    assert len(trace) == 6
    assert (breaker.state, breaker.failures_in_a_row) == (CircuitState.CLOSED, 2)


@in_loop
async def test_an_open_breaker_refuses_before_any_retry_turn_or_try(waits: WaitLog) -> None:
    """CircuitOpenError comes from outside the retry: no try, no turn taken, no retry, as one failure."""
    trace: list[str] = []
    breaker = CircuitBreaker("svc", failures=1)
    opener = Task(failing(1, [])).with_circuit_breaker(breaker)
    with pytest.raises(ValueError, match="failure 1"):
        await Runner().run(opener._spec, Args(opener))
    assert breaker.state is CircuitState.OPEN
    rate = RateLimit(10, clock=ManualClock())
    task = (
        Task(failing(0, trace))
        .with_retry(3, 0)
        .with_rate_limit(rate)
        .with_circuit_breaker(breaker)
        .with_middleware(Around("task", trace))
    )
    runner = Runner(hooks=heard(trace))
    with pytest.raises(CircuitOpenError) as caught:
        await runner.run(task._spec, Args(task))
    assert trace == ["started", "task>", "task< CircuitOpenError", f"failed: {caught.value!r}"]
    assert (rate.started, runner.retried, breaker.rejected) == (0, 0, 1)


@in_loop
async def test_pool_middleware_wraps_the_tasks_each_in_its_order() -> None:
    """Pool middleware [a, b] and task middleware [c, d]: a, b, c, d, the try, then back out."""
    trace: list[str] = []
    task = Task(failing(0, trace)).with_middleware(Around("c", trace), Around("d", trace))
    runner = Runner(pool_around("a", "b", trace=trace))
    assert await runner.run(task._spec, Args(task)) == "done"
    assert trace == ["a>", "b>", "c>", "d>", "try 1", "d<", "c<", "b<", "a<"]


# Rate limit


@in_loop
async def test_a_rate_limit_gives_each_try_its_own_turn(waits: WaitLog) -> None:
    """Retries are starts too: two failures and a success take three turns, of the task's and the pool's."""
    own, pools = RateLimit(10, clock=ManualClock()), RateLimit(10, clock=ManualClock())
    task = Task(failing(2, [])).with_retry(3, 0).with_rate_limit(own)
    runner = Runner(Layers(rate=pools))
    assert await runner.run(task._spec, Args(task)) == "done"
    assert (own.started, own.waited) == (3, 0)
    assert (pools.started, pools.waited) == (3, 0)


@in_loop
async def test_waiting_for_a_turn_is_not_part_of_the_tries_timeout() -> None:
    """No deadline runs while a try waits for its turn: it starts with the try, which has all its time."""
    clock = ManualClock()
    rate = RateLimit(1, per=10, clock=clock)
    runner = Runner()
    timed: list[bool] = []

    async def work(args: Args[None]) -> Any:
        timed.append(asyncio.current_task() in runner.deadlines._due)
        return "done"

    task = Task(work).with_rate_limit(rate).with_timeout(1)
    assert await runner.run(task._spec, Args(task)) == "done"  # takes the only turn of the period
    waiting = asyncio.create_task(runner.run(task._spec, Args(task)))
    await settle()
    assert clock.sleepers == 1
    assert runner.deadlines._due == {}  # no time limit runs while the turn is awaited
    await clock.advance(10)  # ten times the timeout, waited for the turn
    assert await waiting == "done"
    assert timed == [True, True]
    assert (rate.started, rate.waited) == (2, 1)


# Timeout


@in_loop
async def test_a_try_that_runs_out_of_time_fails_with_timeout_error() -> None:
    """A try waiting for ever is cancelled at its deadline; the task sees TimeoutError, noted."""
    task = Task(never).with_timeout(0.01)
    with pytest.raises(TimeoutError) as caught:
        await Runner().run(task._spec, Args(task))
    assert caught.value.__notes__ == ["timed out after 0.01s"]
    me = asyncio.current_task()
    assert me is not None
    assert me.cancelling() == 0


@in_loop
async def test_every_try_has_its_own_deadline(waits: WaitLog) -> None:
    """With two tries, each times out on its own: the first is retried, the second is the final error."""
    trace: list[str] = []
    tries: list[int] = []

    async def hangs(args: Args[None]) -> Any:
        tries.append(len(tries) + 1)
        await asyncio.Event().wait()

    task = Task(hangs).with_retry(2, 0).with_timeout(0.01)
    with pytest.raises(TimeoutError) as caught:
        await Runner(hooks=heard(trace)).run(task._spec, Args(task))
    assert tries == [1, 2]
    assert trace == ["started", "retried 1: TimeoutError()", f"failed: {caught.value!r}"]
    assert caught.value.__notes__ == ["timed out after 0.01s"]
    assert waits.waits == [0.0]


@in_loop
async def test_a_try_that_swallows_its_timeout_keeps_its_value() -> None:
    """A function that catches the cancellation and returns: its value stands, and the task is uncancelled."""

    async def stubborn(args: Args[None]) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return "kept"
        return "never"

    task = Task(stubborn).with_timeout(0.01)
    assert await Runner().run(task._spec, Args(task)) == "kept"
    me = asyncio.current_task()
    assert me is not None
    assert me.cancelling() == 0


@in_loop
async def test_a_try_that_turns_its_timeout_into_an_error_leaves_the_task_uncancelled() -> None:
    """Its own error is the try's, and the deadline's cancellation is taken back as for any try."""

    async def converts(args: Args[None]) -> Any:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise LookupError("closed while cleaning up") from None

    task = Task(converts).with_timeout(0.01)
    runner = Runner()

    async def run_then_count() -> int:
        with pytest.raises(LookupError, match="closed while cleaning up"):
            await runner.run(task._spec, Args(task))
        me = asyncio.current_task()
        assert me is not None
        return me.cancelling()

    assert await asyncio.create_task(run_then_count()) == 0
    assert runner.deadlines._expired == set()


@in_loop
async def test_a_tasks_own_timeout_replaces_the_pools() -> None:
    """The pool's 0.01 s gives way to the task's own 0.02 s, and applies to a task with none."""
    runner = Runner(Layers(timeout=0.01))
    own = Task(never).with_timeout(0.02)
    with pytest.raises(TimeoutError) as caught:
        await runner.run(own._spec, Args(own))
    assert caught.value.__notes__ == ["timed out after 0.02s"]
    pools = Task(never)
    with pytest.raises(TimeoutError) as caught:
        await runner.run(pools._spec, Args(pools))
    assert caught.value.__notes__ == ["timed out after 0.01s"]


@in_loop
async def test_a_tasks_own_retry_replaces_the_pools(waits: WaitLog) -> None:
    """The pool's five tries give way to the task's two; a task with none gets the pool's."""
    trace: list[str] = []
    runner = Runner(Layers(retry=RetryPolicy(5, 0.0, 30.0)))
    own = Task(failing(99, trace)).with_retry(2, 0)
    with pytest.raises(ValueError, match="failure 2"):
        await runner.run(own._spec, Args(own))
    pools = Task(failing(99, trace))
    with pytest.raises(ValueError, match="failure 5"):
        await runner.run(pools._spec, Args(pools))
    assert len(trace) == 2 + 5


# Cancellation


@in_loop
async def test_cancellation_passes_through_every_layer_untried_and_uncounted(waits: WaitLog) -> None:
    """Cancelled mid-try: not retried, middleware and hooks hear it, the breaker counts nothing."""
    trace: list[str] = []
    calls: list[int] = []
    entered = asyncio.Event()
    breaker = CircuitBreaker("svc", failures=1)
    rate = RateLimit(10, clock=ManualClock())

    async def hangs(args: Args[None]) -> Any:
        calls.append(1)
        entered.set()
        await asyncio.Event().wait()

    task = (
        Task(hangs)
        .with_retry(3, 0)
        .with_timeout(5)
        .with_circuit_breaker(breaker)
        .with_rate_limit(rate)
        .with_middleware(Around("task", trace))
    )
    runner = Runner(pool_around("pool", trace=trace), heard(trace))
    running = asyncio.create_task(runner.run(task._spec, Args(task)))
    await entered.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert calls == [1]
    assert trace == ["started", "pool>", "task>", "task< CancelledError", "pool< CancelledError", "cancelled"]
    assert (breaker.state, breaker.failures_in_a_row) == (CircuitState.CLOSED, 0)
    assert (rate.started, runner.retried, waits.waits) == (1, 0, [])


@in_loop
async def test_cancellation_during_a_retry_ends_the_retries(waits: WaitLog) -> None:
    """Cancelled in its second try, a task of three tries is not tried a third time."""
    trace: list[str] = []
    calls: list[int] = []
    entered = asyncio.Event()
    breaker = CircuitBreaker("svc", failures=1)

    async def fails_then_hangs(args: Args[None]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("failure 1")
        entered.set()
        await asyncio.Event().wait()

    task = Task(fails_then_hangs).with_retry(3, 0).with_timeout(5).with_circuit_breaker(breaker)
    running = asyncio.create_task(Runner(hooks=heard(trace)).run(task._spec, Args(task)))
    await entered.wait()
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert calls == [1, 1]
    assert trace == ["started", "retried 1: ValueError('failure 1')", "cancelled"]
    assert (breaker.state, breaker.failures_in_a_row) == (CircuitState.CLOSED, 0)


# Threads


@pytest.mark.parametrize("seconds", [None, 5.0])
@in_loop
async def test_a_plain_def_runs_in_a_thread_in_the_callers_context(seconds: float | None) -> None:
    """A plain def runs off the event loop's thread, seeing the context variables set before the run."""

    def where(args: Args[None]) -> Any:
        return threading.current_thread() is threading.main_thread(), where_from.get()

    where_from.set("set before the run")
    threads = Threads(1)
    task = Task(where).with_timeout(seconds)
    try:
        value = await Runner(threads=threads).run(task._spec, Args(task))
    finally:
        threads.close()
    assert value == (False, "set before the run")


# What entry points ask of a runner


def test_a_runner_is_bare_until_it_has_a_layer_a_plain_task_needs_before_failing() -> None:
    """Bare with no layer or a retry only (a failure enters it); not with middleware, rate, timeout, hooks."""
    assert Runner().bare
    assert Runner(Layers(retry=RetryPolicy(3, 0.0, 30.0))).bare
    assert not Runner(pool_around("pool", trace=[])).bare
    assert not Runner(Layers(rate=RateLimit(1))).bare
    assert not Runner(Layers(timeout=1.0)).bare
    assert not Runner(hooks=heard([])).bare


def test_the_plan_of_a_task_with_no_layers_is_its_function() -> None:
    """Nothing wraps an async function with no layer: the plan is the function itself."""
    fn = failing(0, [])
    task = Task(fn).with_name("plain").with_input(None)
    assert Runner().plan(task._spec) is fn

    def in_thread(args: Args[None]) -> None:
        pass

    plan: object = Runner().plan(Task(in_thread)._spec)
    assert plan is not in_thread  # a plain def goes to a thread


def test_a_specs_plan_is_composed_once_and_shared_by_its_inputs() -> None:
    """The same spec gives the same plan, whichever input it runs."""
    task = Task(failing(0, [])).with_retry(3, 0).with_timeout(5)
    runner = Runner(pool_around("pool", trace=[]))
    first = runner.plan(task._spec)
    assert runner.plan(task._spec) is first
    assert runner.plan(task.with_input(None)._spec) is first
    assert runner.plan(task.with_timeout(6)._spec) is not first


@in_loop
async def test_after_failure_retries_a_bare_task_as_its_policy_allows(waits: WaitLog) -> None:
    """A bare first try failed: after_failure tries again, its value is the task's."""
    trace: list[str] = []
    task = Task(failing(2, trace)).with_retry(3, 0)
    args = Args(task)
    runner = Runner()
    assert runner.bare
    assert task._spec.plain
    with pytest.raises(ValueError, match="failure 1") as caught:
        await task._spec.fn(args)  # what a worker awaits for a bare task
    assert await runner.after_failure(task._spec, args, caught.value) == "done"
    assert trace == ["try 1", "try 2", "try 3"]
    assert (runner.retried, waits.waits) == (1, [0.0, 0.0])


@in_loop
async def test_after_failure_follows_the_pools_retry_for_a_task_with_none(waits: WaitLog) -> None:
    """A pool retry reaches a bare task only through after_failure."""
    trace: list[str] = []
    task = Task(failing(0, trace))
    runner = Runner(Layers(retry=RetryPolicy(2, 0.0, 30.0)))
    assert await runner.after_failure(task._spec, Args(task), ValueError("first")) == "done"
    assert trace == ["try 1"]
    assert waits.waits == [0.0]


@in_loop
async def test_after_failure_without_a_retry_raises_the_first_error() -> None:
    """No retry (or one try): the failure given is the final error, and nothing runs again."""
    trace: list[str] = []
    runner = Runner()
    for task in (Task(failing(0, trace)), Task(failing(0, trace)).with_retry(1)):
        first = ValueError("first")
        with pytest.raises(ValueError, match="first") as caught:
            await runner.after_failure(task._spec, Args(task), first)
        assert caught.value is first
    assert trace == []
    assert runner.retried == 0
