"""CircuitBreaker: K failures in a row open it, runs then fail fast, and one probe decides."""

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import (
    Args,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    Hooks,
    ManualClock,
    Pool,
    Task,
    WaitLog,
)


class Service:
    """A flaky dependency: each call takes the next planned outcome (True: it works)."""

    def __init__(self, *outcomes: bool) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self, args: Args[Any]) -> None:
        self.calls += 1
        if not self.outcomes.pop(0):
            raise ConnectionError(f"call {self.calls}")


async def outcome(task: Task[Any]) -> str:
    try:
        await task.execute()
    except CircuitOpenError:
        return "fast"
    except ConnectionError:
        return "failed"
    return "ok"


def test_failures_in_a_row_open_the_circuit_and_runs_then_fail_fast() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("db", failures=3, cooldown=30, clock=clock)
    service = Service(False, False, False)
    task = Task(service).with_circuit_breaker(breaker)

    async def main() -> list[str]:
        return [await outcome(task) for _ in range(5)]

    assert asyncio.run(main()) == ["failed", "failed", "failed", "fast", "fast"]
    assert service.calls == 3
    assert breaker.state is CircuitState.OPEN
    assert (breaker.rejected, breaker.failures_in_a_row) == (2, 3)
    assert repr(breaker.last_error) == "ConnectionError('call 3')"


def test_a_success_resets_the_count() -> None:
    breaker = CircuitBreaker(failures=3, clock=ManualClock())
    task = Task(Service(False, False, True, False, False)).with_circuit_breaker(breaker)

    async def main() -> list[str]:
        return [await outcome(task) for _ in range(5)]

    assert asyncio.run(main()) == ["failed", "failed", "ok", "failed", "failed"]
    assert breaker.state is CircuitState.CLOSED


@pytest.mark.parametrize(("probe_works", "after"), [(True, CircuitState.CLOSED), (False, CircuitState.OPEN)])
def test_after_the_cooldown_one_probe_decides(probe_works: bool, after: CircuitState) -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("api", failures=1, cooldown=10, clock=clock)
    task = Task(Service(False, probe_works, True)).with_circuit_breaker(breaker)

    async def main() -> list[str]:
        outcomes = [await outcome(task)]
        await clock.advance(9)
        outcomes.append(await outcome(task))
        await clock.advance(1)
        assert breaker.state is CircuitState.HALF_OPEN
        outcomes.append(await outcome(task))
        assert breaker.state is after
        if not probe_works:
            with pytest.raises(CircuitOpenError) as info:
                await task.execute()
            assert info.value.retry_in == 10  # a failed probe opens it for a whole cooldown again
        outcomes.append(await outcome(task))
        return outcomes

    probe = "ok" if probe_works else "failed"
    after_probe = "ok" if probe_works else "fast"
    assert asyncio.run(main()) == ["failed", "fast", probe, after_probe]


def test_while_the_probe_runs_the_others_fail_fast_and_a_cancelled_probe_lets_the_next_probe() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("api", failures=1, cooldown=5, clock=clock)
    release = asyncio.Event()
    calls: list[int] = []

    async def slow(args: Args[int]) -> None:
        calls.append(args.input)
        if args.input == 0:
            raise ConnectionError
        await release.wait()

    task = Task(slow).with_circuit_breaker(breaker)

    async def main() -> None:
        with pytest.raises(ConnectionError):
            await task.with_input(0).execute()
        await clock.advance(5)
        probe = asyncio.create_task(task.with_input(1).execute())
        await clock.advance(0)
        with pytest.raises(CircuitOpenError, match=r"circuit 'api' is half-open: a probe is running") as info:
            await task.with_input(2).execute()
        assert info.value.retry_in == 0
        probe.cancel()
        await asyncio.wait([probe])
        assert breaker.state is CircuitState.HALF_OPEN
        release.set()
        await task.with_input(3).execute()  # the next probe, and it closes the circuit

    asyncio.run(main())
    assert calls == [0, 1, 3]
    assert breaker.state is CircuitState.CLOSED


def test_a_failure_counts_once_after_the_retries_and_tasks_sharing_a_breaker_count_together(
    waits: WaitLog,
) -> None:
    breaker = CircuitBreaker("shared", failures=2, clock=ManualClock())
    read, write = Service(False, False, False), Service(False, False, False)
    tasks = [
        Task(read).with_retry(3).with_circuit_breaker(breaker),
        Task(write).with_circuit_breaker(breaker),
        Task(write).with_circuit_breaker(breaker),
    ]

    async def main() -> list[str]:
        return [await outcome(task) for task in tasks]

    assert asyncio.run(main()) == ["failed", "failed", "fast"]
    assert (read.calls, write.calls) == (3, 1)


def test_a_pool_reports_every_fast_failure_and_its_hooks_hear_each_state_change() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("db", failures=2, cooldown=1, clock=clock)

    class Watch(Hooks):
        def __init__(self) -> None:
            self.states: list[tuple[str, CircuitState]] = []

        def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
            self.states.append((breaker.name, state))

    watch = Watch()
    service = Service(False, False, False, True)
    pool = Pool(limit=1, hooks=[watch])
    task = Task(service).with_circuit_breaker(breaker)

    with pytest.raises(ExceptionGroup) as info:
        pool.go(task.with_input(n) for n in range(4))
    kinds = [type(error).__name__ for error in info.value.exceptions]
    assert kinds == ["ConnectionError", "ConnectionError", "CircuitOpenError", "CircuitOpenError"]
    assert watch.states == [("db", CircuitState.OPEN)]

    asyncio.run(clock.advance(1))
    with pytest.raises(ExceptionGroup):
        pool.go([task.with_input(4)])  # the probe fails: open again
    asyncio.run(clock.advance(1))
    pool.go([task.with_input(5)])  # this probe works: closed
    assert watch.states == [
        ("db", CircuitState.OPEN),
        ("db", CircuitState.HALF_OPEN),
        ("db", CircuitState.OPEN),
        ("db", CircuitState.HALF_OPEN),
        ("db", CircuitState.CLOSED),
    ]
    assert service.calls == 4


@given(
    failures=st.integers(1, 4),
    steps=st.lists(st.one_of(st.booleans(), st.sampled_from([0.5, 2.0, 5.0])), max_size=40),
)
def test_the_breaker_follows_its_state_machine(failures: int, steps: list[bool | float]) -> None:
    """Runs (True: it works, False: it fails) and waits (seconds), against a model of the breaker."""
    clock = ManualClock()
    breaker = CircuitBreaker(failures=failures, cooldown=2, clock=clock)
    expected: list[str] = []
    called: list[bool] = []  # the outcome of each run that reached the service
    in_a_row, opened_at, now = 0, None, 0.0
    for step in steps:
        if not isinstance(step, bool):
            now += step
            continue
        if opened_at is not None and now < opened_at + 2:
            expected.append("fast")
            continue
        called.append(step)
        expected.append("ok" if step else "failed")
        if opened_at is not None:  # the probe
            in_a_row, opened_at = (0, None) if step else (in_a_row + 1, now)
        else:
            in_a_row = 0 if step else in_a_row + 1
            if in_a_row >= failures:
                opened_at = now
    service = Service(*called)
    task = Task(service).with_circuit_breaker(breaker)

    async def main() -> list[str]:
        outcomes = []
        for step in steps:
            if isinstance(step, bool):
                outcomes.append(await outcome(task))
            else:
                await clock.advance(step)
        return outcomes

    assert asyncio.run(main()) == expected
    assert service.calls == len(called)
    assert breaker.rejected == expected.count("fast")


def test_reset_closes_the_circuit_by_hand() -> None:
    breaker = CircuitBreaker("db", failures=1, clock=ManualClock())
    asyncio.run(outcome(Task(Service(False)).with_circuit_breaker(breaker)))
    assert breaker.state is CircuitState.OPEN
    breaker.reset()
    assert (breaker.state, breaker.failures_in_a_row) == (CircuitState.CLOSED, 0)
    assert repr(breaker) == "CircuitBreaker('db', failures=1, cooldown=30.0): closed"


def test_an_open_circuit_error_says_which_circuit_and_for_how_long() -> None:
    clock = ManualClock()
    breaker = CircuitBreaker("payments", failures=1, cooldown=30, clock=clock)
    task = Task(Service(False)).with_circuit_breaker(breaker)

    async def main() -> None:
        await outcome(task)
        await clock.advance(12)
        await task.execute()

    with pytest.raises(CircuitOpenError, match=r"circuit 'payments' is open: failing fast for 18s") as info:
        asyncio.run(main())
    assert "the last failure: ConnectionError('call 1')" in str(info.value)
    assert info.value.breaker is breaker


def test_bad_breakers_are_refused_naming_the_call() -> None:
    with pytest.raises(ValueError, match=r"CircuitBreaker: failures must be an int >= 1, got 0"):
        CircuitBreaker(failures=0)
    with pytest.raises(ValueError, match=r"CircuitBreaker: cooldown must be finite and >= 0 seconds, got -1"):
        CircuitBreaker(cooldown=-1)
    with pytest.raises(ValueError, match=r"CircuitBreaker: name must not be empty"):
        CircuitBreaker("")
    with pytest.raises(TypeError, match=r"with_circuit_breaker: breaker must be a CircuitBreaker, got 3"):
        Task(Service()).with_circuit_breaker(3)  # type: ignore[arg-type]
