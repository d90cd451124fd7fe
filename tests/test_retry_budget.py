"""The retry budget: a pool-wide cap on retries as a share of recent first tries, on a manual clock.

The formula (see ``RetryBudget``): a retry goes ahead while
``ratio * first_tries + min_per_second * window - retries >= 1``, both counted
over the last ``window`` seconds (an event at ``s`` counts while ``now - window < s``).
The bound: ``N`` first tries bring at most ``ratio * N + min_per_second * (elapsed + window)``
retries, so ``N * (1 + ratio) + min_per_second * (elapsed + window)`` tries in all,
``elapsed`` being the time from the first first try to the last retry.
"""

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from go_async import (
    Args,
    CircuitBreaker,
    FlowError,
    Hooks,
    ManualClock,
    Pool,
    RetryBudget,
    Task,
    WaitLog,
    set_testing,
    step,
)
from go_async._retry import RetryPolicy
from go_async._runner import Inline, Runner
from go_async._spec import Layers, Spec
from go_async.otel import OpenTelemetry

RATIO, MIN_PER_SECOND, WINDOW = 0.2, 10.0, 10.0
STEP = 0.01  # each try moves the manual clock this far


@dataclass
class Model:
    """The formula, computed from every event's time: what the budget must decide."""

    ratio: float
    min_per_second: float
    window: float
    firsts: list[float] = field(default_factory=list[float])
    retries: list[float] = field(default_factory=list[float])

    def allows(self, now: float) -> bool:
        horizon = now - self.window
        firsts = sum(1 for time in self.firsts if time > horizon)
        retries = sum(1 for time in self.retries if time > horizon)
        return self.ratio * firsts + self.min_per_second * self.window - retries >= 1

    def bound(self) -> float:
        """The most retries that the first tries so far may bring."""
        times = self.firsts + self.retries
        elapsed = max(self.retries) - min(times) if self.retries else 0.0
        return self.ratio * len(self.firsts) + self.min_per_second * (elapsed + self.window)


class Refusals(Hooks):
    """Records each refusal, with the budget's balance at that moment."""

    def __init__(self, budget: RetryBudget | None = None) -> None:
        self.budget = budget
        self.refused: list[tuple[Any, int, float]] = []
        self.retried = 0

    def retry_refused(self, args: Args[Any], error: Exception, attempt: int) -> None:
        balance = math.nan if self.budget is None else self.budget.balance()
        self.refused.append((args.input, attempt, balance))

    def task_retried(self, args: Args[Any], error: Exception, attempt: int, wait: float) -> None:
        self.retried += 1


def always_failing(clock: ManualClock, tries: list[float]) -> Task[int, int, None]:
    async def fail(args: Args[int]) -> None:
        tries.append(clock.time())
        await clock.advance(STEP)
        raise ValueError(f"down {args.input}")

    return Task(fail)


def expected_sequential(tasks: int, attempts: int, failures: list[int] | None = None) -> tuple[int, int]:
    """Tries and refusals of ``tasks`` run one at a time, each try STEP long, task i failing
    ``failures[i]`` times (always, by default): the formula applied by hand."""
    model, now, tries, refused = Model(RATIO, MIN_PER_SECOND, WINDOW), 0.0, 0, 0
    for index in range(tasks):
        fails = attempts if failures is None else failures[index]
        model.firsts.append(now)
        tries, now, attempt = tries + 1, now + STEP, 1
        while attempt <= fails and attempt < attempts:
            if not model.allows(now):
                refused += 1
                break
            model.retries.append(now)
            tries, now, attempt = tries + 1, now + STEP, attempt + 1
    return tries, refused


def test_always_failing_tasks_stay_within_the_bound_and_refusals_are_counted(waits: WaitLog) -> None:
    """1,000 tasks that always fail, 5 attempts each: at most 1000 * 1.2 + 10 * (elapsed + 10) tries."""
    clock, tries = ManualClock(), list[float]()
    budget = RetryBudget(RATIO, MIN_PER_SECOND, window=WINDOW, clock=clock)
    hooks = Refusals(budget)
    pool = Pool(limit=1, hooks=[hooks]).with_retry(5, 0.1).with_retry_budget(budget)
    with pytest.raises(ExceptionGroup) as failed:
        pool.go(always_failing(clock, tries).with_input(n) for n in range(1000))
    elapsed = clock.time()
    bound = 1000 * (1 + RATIO) + MIN_PER_SECOND * (elapsed + WINDOW)
    assert len(tries) <= bound
    # One at a time, each try 0.01 s long, the formula decides every retry as computed here.
    assert (len(tries), len(hooks.refused)) == expected_sequential(1000, 5)
    assert (len(tries), len(hooks.refused)) == (1399, 948)
    assert all(balance < 1 for _, _, balance in hooks.refused)
    # Without the budget, 5,000 tries.
    assert len(failed.value.exceptions) == 1000
    refused = [error for error in failed.value.exceptions if "retry budget refused" in str(error.__notes__)]
    assert len(refused) == 948
    assert "go_async: the retry budget refused a retry after try 1" in refused[-1].__notes__[0]


def test_a_running_pools_stats_and_hooks_count_the_refused_retries(waits: WaitLog) -> None:
    """The same through a running pool (and a sub-pool): stats().retries_refused, per pool."""
    clock, tries = ManualClock(), list[float]()
    budget = RetryBudget(RATIO, MIN_PER_SECOND, window=WINDOW, clock=clock)
    hooks = Refusals(budget)

    async def main() -> tuple[int, int, int]:
        async with Pool(limit=1, hooks=[hooks]).with_retry(5, 0.1).with_retry_budget(budget) as pool:
            sub = pool.sub()
            handles = [await pool.submit(always_failing(clock, tries).with_input(n)) for n in range(900)]
            handles += [
                await sub.submit(always_failing(clock, tries).with_input(n)) for n in range(900, 1000)
            ]
            for handle in handles:
                with pytest.raises(ValueError, match="down"):
                    await handle
            return pool.stats().retries_refused, sub.stats().retries_refused, pool.stats().failed

    every, below, failed = asyncio.run(main())
    assert (len(tries), len(hooks.refused)) == expected_sequential(1000, 5)
    assert every == len(hooks.refused) == 948
    assert below == sum(1 for number, _, _ in hooks.refused if number >= 900) == 100
    assert failed == 1000
    assert len(tries) <= 1000 * (1 + RATIO) + MIN_PER_SECOND * (clock.time() + WINDOW)


def test_transient_failures_recover_under_the_budget_when_traffic_is_healthy(waits: WaitLog) -> None:
    """One task in ten fails once, then succeeds: every one recovers, no retry is refused."""
    clock, tries = ManualClock(), list[float]()

    async def flaky(args: Args[int]) -> None:
        tries.append(args.input)
        await clock.advance(STEP)
        if args.input % 10 == 0 and tries.count(args.input) == 1:
            raise ConnectionError(args.input)

    hooks = Refusals()
    pool = (
        Pool(limit=1, hooks=[hooks]).with_retry(3, 0.1).with_retry_budget(RATIO, MIN_PER_SECOND, clock=clock)
    )
    pool.go(Task(flaky).with_input(n) for n in range(1000))
    assert pool.errors() == []
    assert (len(tries), hooks.retried, hooks.refused) == (1100, 100, [])
    # Even a pool's first task recovers, on the reserve: no traffic yet.
    lonely = Pool().with_retry(3, 0.1).with_retry_budget(RATIO, 0.1, window=10, clock=clock)
    tries.clear()
    lonely.go([Task(flaky).with_input(0)])
    assert tries == [0, 0]


def test_the_budget_refills_as_the_window_slides() -> None:
    """Retries, then first tries, drop out of the window `window` seconds after they happened."""
    clock = ManualClock()
    reserve = RetryBudget(0, 1, window=10, clock=clock)  # 10 retries per 10 s, whatever the traffic
    assert [reserve.allow() for _ in range(11)] == [True] * 10 + [False]
    asyncio.run(clock.advance(9.5))
    assert (reserve.allow(), reserve.counts(), reserve.balance()) == (False, (0, 10), 0)
    asyncio.run(clock.advance(0.5))  # now - window = 0: the retries at 0 no longer count
    assert (reserve.counts(), reserve.balance()) == ((0, 0), 10)
    assert reserve.allow()

    shared = RetryBudget(1, 0, window=10, clock=clock)  # one retry per first try, no reserve
    shared.first_try()
    shared.first_try()
    assert [shared.allow() for _ in range(3)] == [True, True, False]
    asyncio.run(clock.advance(5))
    shared.first_try()
    assert [shared.allow() for _ in range(2)] == [True, False]
    asyncio.run(clock.advance(5))  # the first two first tries and retries drop out, the third stays
    assert (shared.counts(), shared.balance()) == ((1, 1), 0)
    asyncio.run(clock.advance(5))
    assert (shared.counts(), shared.balance()) == ((0, 0), 0)
    assert not shared.allow()


def test_a_spent_budget_refills_for_the_pools_next_run(waits: WaitLog) -> None:
    """Runs of one pool share its budget: spent by one run, it is back a window later."""
    clock, tries = ManualClock(), list[float]()
    pool = Pool().with_retry(2, 0.1).with_retry_budget(0, 0.5, window=10, clock=clock)  # 5 retries

    async def run() -> int:
        tries.clear()
        with pytest.raises(ExceptionGroup):
            await pool.ago(always_failing(clock, tries).with_input(n) for n in range(8))
        return len(tries)

    assert asyncio.run(run()) == 8 + 5
    asyncio.run(clock.advance(5))
    assert asyncio.run(run()) == 8  # the five retries still count: none is left
    asyncio.run(clock.advance(10))
    assert asyncio.run(run()) == 8 + 5


@settings(max_examples=200, deadline=None)
@given(
    ratio=st.sampled_from([0.0, 0.1, 0.2, 0.5, 1.0]),
    min_per_second=st.sampled_from([0.0, 0.1, 0.5, 2.0]),
    window=st.sampled_from([1.0, 2.5, 10.0]),
    steps=st.lists(
        st.one_of(st.just("first"), st.just("retry"), st.floats(0, 4).map(lambda s: round(s, 2))),
        max_size=200,
    ),
)
def test_property_a_retry_is_refused_exactly_when_the_formula_says(
    ratio: float, min_per_second: float, window: float, steps: list[str | float]
) -> None:
    """Any sequence of first tries, retries asked for and clock steps: the budget decides as the
    formula does, and the retries it allows never exceed the bound."""
    clock = ManualClock()
    budget = RetryBudget(ratio, min_per_second, window=window, clock=clock)
    model = Model(ratio, min_per_second, window)
    now = 0.0
    for event in steps:
        if event == "first":
            budget.first_try()
            model.firsts.append(now)
        elif event == "retry":
            allowed = model.allows(now)
            assert budget.allow() is allowed
            if allowed:
                model.retries.append(now)
        else:
            assert isinstance(event, float)
            asyncio.run(clock.advance(event))
            now = clock.time()
        assert len(model.retries) <= model.bound() + 1e-9


@settings(max_examples=40, deadline=None)
@given(
    failures=st.lists(st.integers(0, 5), min_size=1, max_size=60),
    pauses=st.lists(st.sampled_from([0.0, 0.0, 0.5, 3.0]), min_size=1, max_size=60),
)
def test_property_a_pools_tries_stay_within_the_bound(failures: list[int], pauses: list[float]) -> None:
    """Tasks failing 0 to 5 times, with clock steps between them, through a pool: tries stay within
    N * (1 + ratio) + min_per_second * (elapsed + window), and each refusal found the budget spent."""
    clock = ManualClock()
    budget = RetryBudget(0.2, 1.0, window=2.0, clock=clock)
    hooks = Refusals(budget)
    tries: list[int] = []

    async def flaky(args: Args[int]) -> None:
        tries.append(args.input)
        await clock.advance(pauses[len(tries) % len(pauses)])
        if tries.count(args.input) <= failures[args.input]:
            raise ValueError(args.input)

    async def main() -> None:
        # One at a time: each try moves the manual clock itself.
        pool = Pool(limit=1, hooks=[hooks]).with_retry(4, 0).with_retry_budget(budget)
        await pool.ago([Task(flaky).with_input(n) for n in range(len(failures))])

    with set_testing():
        try:
            asyncio.run(main())
        except ExceptionGroup:
            assert any(failures)
    bound = len(failures) * 1.2 + 1.0 * (clock.time() + 2.0)
    assert len(tries) <= bound + 1e-9
    assert all(balance < 1 for _, _, balance in hooks.refused)
    # Every task ran until it succeeded, ran out of attempts, or was refused.
    for number, fails in enumerate(failures):
        refused = [attempt for task, attempt, _ in hooks.refused if task == number]
        assert tries.count(number) == (refused[0] if refused else min(fails + 1, 4))


def test_tasks_without_a_retry_are_not_counted_and_a_pool_without_a_budget_is_unchanged() -> None:
    """Only tasks that may retry go through the runner's plan with a budget; without one, nothing changes."""
    clock = ManualClock()
    budget = RetryBudget(clock=clock)

    async def fine(args: Args[int]) -> None:
        pass

    Pool().with_retry_budget(budget).go(Task(fine).with_input(n) for n in range(5))
    assert budget.counts() == (0, 0)
    Pool().with_retry_budget(budget).go(Task(fine).with_retry(2).with_input(n) for n in range(5))
    assert budget.counts() == (5, 0)
    # Mixed in one run, of go and of a running pool: only those with a retry are counted.
    mixed = [Task(fine).with_retry(2) if n % 3 == 0 else Task(fine) for n in range(9)]
    Pool(limit=2).with_retry_budget(budget).go(task.with_input(n) for n, task in enumerate(mixed))
    assert budget.counts() == (8, 0)

    async def running() -> None:
        async with Pool(limit=2).with_retry_budget(budget) as pool:
            for handle in [await pool.submit(task.with_input(n)) for n, task in enumerate(mixed)]:
                await handle

    asyncio.run(running())
    assert budget.counts() == (11, 0)

    once = Spec(fine, is_async=True)
    retrying = Spec(fine, is_async=True, layers=Layers(retry=RetryPolicy.checked("test", 3, 0.1, 1.0)))
    without = Runner(Layers())
    assert without.bare  # the hot path of go: a plain task is awaited by the worker itself
    assert without.inline(retrying) is not None
    with_budget = Runner(Layers(budget=budget))
    assert with_budget.bare  # a plain task without a retry of its own: nothing to count
    assert with_budget.budgeted  # one with its own retry is counted, through `plan`
    assert not Runner(Layers(budget=budget, retry=retrying.layers.retry)).bare  # the pool's retry
    assert with_budget.inline(once) == Inline(None, (), None, None)  # no retry: nothing to count
    # A task that may retry has its first try counted by the worker that runs it inline.
    assert with_budget.inline(retrying) == Inline(None, (), None, budget.first_try)


def test_with_retry_budget_takes_a_budget_to_share_or_none_to_remove() -> None:
    budget = RetryBudget(0.1, 1, window=5)
    one, other = Pool().with_retry_budget(budget), Pool(limit=2).with_retry_budget(budget)
    assert one._settings.layers.budget is other._settings.layers.budget is budget
    assert one.with_retry_budget(None)._settings.layers.budget is None
    made = Pool().with_retry_budget(0.5, 2, window=3)._settings.layers.budget
    assert made is not None
    assert (made.ratio, made.min_per_second, made.window) == (0.5, 2.0, 3.0)
    assert repr(made) == "RetryBudget(ratio=0.5, min_per_second=2.0, window=3.0)"
    assert Pool().with_retry_budget()._settings.layers.budget is not None


# Untyped, to pass what the types refuse.
_Budget: Any = RetryBudget
_Pool: Any = Pool


@pytest.mark.parametrize(
    ("call", "kind", "message"),
    [
        (lambda: _Budget("0.2"), TypeError, "RetryBudget: ratio must be a number >= 0, got '0.2' (str)"),
        (lambda: _Budget(True), TypeError, "RetryBudget: ratio must be a number >= 0, got True (bool)"),
        (lambda: _Budget(-0.1), ValueError, "RetryBudget: ratio must be a finite number >= 0, got -0.1"),
        (lambda: _Budget(0.2, math.inf), ValueError, "RetryBudget: min_per_second must be a finite"),
        (lambda: _Budget(window=0), ValueError, "RetryBudget: window must be finite and > 0 seconds, got 0"),
        (lambda: _Budget(clock=object()), TypeError, "RetryBudget: clock must be a Clock, got <object"),
        (
            lambda: _Pool().with_retry_budget("x"),
            TypeError,
            "Pool.with_retry_budget: ratio must be a RetryBudget",
        ),
        (
            lambda: _Pool().with_retry_budget(0.2, -1),
            ValueError,
            "Pool.with_retry_budget: min_per_second must",
        ),
        (lambda: _Pool().with_retry_budget(window="1"), TypeError, "Pool.with_retry_budget: window must be"),
    ],
)
def test_bad_arguments_name_the_parameter_and_the_value(
    call: Any, kind: type[Exception], message: str
) -> None:
    with pytest.raises(kind) as raised:
        call()
    assert str(raised.value).startswith(message)


def test_a_budget_or_none_comes_alone_to_with_retry_budget() -> None:
    """Other arguments beside a RetryBudget (even a default's value) or None are refused, not ignored."""
    budget = RetryBudget(0.2, 1)
    with pytest.raises(TypeError) as raised:
        _Pool().with_retry_budget(budget, 99, window=-5, clock="x")
    assert str(raised.value) == (
        "Pool.with_retry_budget: a RetryBudget has settings of its own, so it comes alone:"
        " got RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)"
        " with min_per_second=99, window=-5, clock='x'"
    )
    with pytest.raises(TypeError, match=r"so it comes alone: got RetryBudget\(.*\) with window=10.0$"):
        _Pool().with_retry_budget(budget, window=10.0)
    with pytest.raises(TypeError) as raised:
        _Pool().with_retry_budget(None, 1)
    assert str(raised.value) == (
        "Pool.with_retry_budget: None removes the budget, so it comes alone: got None with min_per_second=1"
    )
    assert repr(budget) == "RetryBudget(ratio=0.2, min_per_second=1.0, window=10.0)"
    # Not given beside a ratio, they take a budget's defaults.
    made = Pool().with_retry_budget(0.3)._settings.layers.budget
    assert repr(made) == "RetryBudget(ratio=0.3, min_per_second=10.0, window=10.0)"


def test_open_telemetry_counts_the_refused_retries(waits: WaitLog) -> None:
    reader = InMemoryMetricReader()
    otel = OpenTelemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    clock, tries = ManualClock(), list[float]()
    pool = otel.instrument(Pool(limit=1).with_retry(3, 0.1).with_retry_budget(0, 0.2, window=10, clock=clock))
    with pytest.raises(ExceptionGroup):
        pool.go(always_failing(clock, tries).with_input(n) for n in range(4))
    assert len(tries) == 4 + 2  # the reserve: 2 retries, then each task's first retry is refused
    data = reader.get_metrics_data()
    assert data is not None
    points = [
        (dict(point.attributes or {}), getattr(point, "value", None))
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "go_async.retries.refused"
        for point in metric.data.data_points
    ]
    assert points == [({"go_async.task.name": "always_failing.<locals>.fail"}, 3)]


def test_map_and_flows_through_the_pool_share_its_budget(waits: WaitLog) -> None:
    """A map run spends the budget's one retry; a flow through the same pool then gets none."""
    clock, calls = ManualClock(), list[int]()
    pool = Pool(limit=1).with_retry(3, 0.1).with_retry_budget(0, 0.1, window=10, clock=clock)  # 1 retry

    async def down(n: int) -> int:
        calls.append(n)
        raise ConnectionError(n)

    results = pool.map(down, [1, 2, 3], return_exceptions=True)
    assert calls == [1, 1, 2, 3]  # the reserve, 0.1 * 10, is one retry: the first call's
    assert all(isinstance(result, ConnectionError) for result in results)
    with pytest.raises(FlowError) as failed:
        step(down).with_retry(3).run(4, pool)
    assert calls[4:] == [4]
    assert "retry budget refused" in failed.value.__cause__.__notes__[0]  # type: ignore[union-attr]


def test_the_budget_forgets_first_tries_that_left_its_window() -> None:
    """Memory follows the window, not the traffic: a long-lived pool's budget stays small."""
    clock = ManualClock()
    budget = RetryBudget(0.2, 10, window=10.0, clock=clock)

    async def main() -> None:
        for _ in range(1000):  # a thousand first tries, one per clock second
            budget.first_try()
            await clock.advance(1)

    asyncio.run(main())
    assert len(budget._firsts.times) <= 11


def test_a_budgets_refusal_counts_one_as_one() -> None:
    budget = RetryBudget(0.0, 0.0, window=10)

    async def fail(args: Args[int]) -> None:
        raise ValueError("down")

    with pytest.raises(ExceptionGroup) as raised:
        Pool().with_retry(3, 0.1).with_retry_budget(budget).go([Task(fail).with_input(1)])
    (error,) = raised.value.exceptions
    assert "(0 retries and 1 first try in the last 10.0s)" in error.__notes__[0]


def test_a_first_try_run_inline_is_counted_once_and_its_retry_asks_the_budget() -> None:
    """A task with a breaker and a rate limit has its first try run by the worker itself, not by `plan`."""
    budget = RetryBudget(0.0, 0.0, window=10)  # no retries at all
    breaker = CircuitBreaker("service", failures=100)
    tries: list[int] = []

    async def fail(args: Args[int]) -> None:
        tries.append(args.input)
        raise ValueError("down")

    task = Task(fail).with_circuit_breaker(breaker).with_rate_limit(1_000_000).with_retry(3, 0.1)
    pool = Pool(limit=2).with_retry_budget(budget)
    spec = task._spec
    assert Runner(pool._settings.layers).inline(spec) is not None  # the worker runs its first try
    with pytest.raises(ExceptionGroup) as raised:
        pool.go(task.with_input(n) for n in range(3))
    assert sorted(tries) == [0, 1, 2]  # each first try, and no retry
    assert budget.counts() == (3, 0)
    refused = "the retry budget refused a retry after try 1"
    assert all(refused in error.__notes__[0] for error in raised.value.exceptions)


def test_a_first_try_refused_by_an_open_breaker_is_not_counted() -> None:
    budget = RetryBudget(clock=ManualClock())
    breaker = CircuitBreaker("service", failures=1)

    async def fail(args: Args[int]) -> None:
        raise ValueError("down")

    task = Task(fail).with_circuit_breaker(breaker).with_retry(2, 0.1)
    with set_testing(seed=0), pytest.raises(ExceptionGroup):
        Pool(limit=1).with_retry_budget(budget).go(task.with_input(n) for n in range(3))
    assert budget.counts() == (1, 1)  # the first task's first try and its retry; then the circuit is open
