import asyncio

import pytest
import tenacity

import go_async._retry
from go_async import Args, Pool, Task, WaitLog, set_testing
from go_async._retry import RetryPolicy


def failing_until(successes_after: int, calls: list[int]) -> Task[None]:
    """A task whose first `successes_after` calls raise ValueError."""

    async def run(args: Args[None]) -> None:
        calls.append(len(calls) + 1)
        if len(calls) <= successes_after:
            raise ValueError(f"failure {len(calls)}")

    return Task(run)


@pytest.mark.parametrize("attempts", [1, 2, 5])
def test_attempts_count_every_try_and_the_last_error_wins(attempts: int, waits: WaitLog) -> None:
    """A task that always fails runs exactly `attempts` times."""
    calls: list[int] = []
    with pytest.raises(ValueError, match=f"failure {attempts}"):
        asyncio.run(failing_until(99, calls).with_retry(attempts, 0.1).execute())
    assert calls == list(range(1, attempts + 1))
    assert len(waits.waits) == attempts - 1


def test_success_after_failures_stops_retrying(waits: WaitLog) -> None:
    """Two failures then a success: three calls and no error."""
    calls: list[int] = []
    asyncio.run(failing_until(2, calls).with_retry(5, 0.1).execute())
    assert calls == [1, 2, 3]


def test_waits_double_with_additive_jitter_of_at_most_half(waits: WaitLog) -> None:
    """The n-th wait lies in [sleep * 2**(n-1), 1.5 times that]."""
    with pytest.raises(ValueError, match="failure 6"):
        asyncio.run(failing_until(99, []).with_retry(6, 0.5, max_wait=100).execute())
    bases = [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(waits.waits) == len(bases)
    for wait, base in zip(waits.waits, bases, strict=True):
        assert base <= wait <= 1.5 * base
    assert waits.waits != bases  # the jitter did add something


def test_max_wait_caps_every_wait(waits: WaitLog) -> None:
    """No wait exceeds max_wait, jitter included."""
    with pytest.raises(ValueError, match="failure 8"):
        asyncio.run(failing_until(99, []).with_retry(8, 1.0, max_wait=3.0).execute())
    assert max(waits.waits) == 3.0
    assert waits.waits[:2] != [3.0, 3.0]


def test_the_same_seed_gives_the_same_waits() -> None:
    """Jitter is reproducible through set_testing(seed=...)."""

    def waits_for(seed: int) -> list[float]:
        with set_testing(seed=seed) as log, pytest.raises(ValueError, match="failure 4"):
            asyncio.run(failing_until(99, []).with_retry(4, 0.2).execute())
        return log.waits

    assert waits_for(7) == waits_for(7)
    assert waits_for(7) != waits_for(8)


def test_set_testing_restores_what_was_in_force() -> None:
    """Leaving a block restores the outer log; set_testing(False) turns it off."""
    with set_testing(seed=1) as outer:
        with set_testing(seed=2) as inner:
            asyncio.run(failing_until(1, []).with_retry(2, 0.1).execute())
        asyncio.run(failing_until(1, []).with_retry(2, 0.1).execute())
        with set_testing(False):
            assert go_async._testing._active is None
        assert go_async._testing._active is outer
    assert go_async._testing._active is None
    assert len(inner.waits) == 1
    assert len(outer.waits) == 1


def test_waits_really_sleep_when_not_instant() -> None:
    """instant=False records and sleeps for real (here zero seconds)."""
    with set_testing(instant=False) as log:
        asyncio.run(failing_until(1, []).with_retry(2, 0).execute())
    assert log.instant is False
    assert log.waits == [0.0]


@pytest.mark.parametrize("error", [KeyboardInterrupt, SystemExit, asyncio.CancelledError])
def test_base_exceptions_are_never_retried(error: type[BaseException], waits: WaitLog) -> None:
    """Cancellation and interpreter exits pass straight through, on the first try."""
    calls: list[int] = []

    async def stop(args: Args[None]) -> None:
        calls.append(1)
        raise error

    with pytest.raises(error):
        asyncio.run(Task(stop).with_retry(5, 0.1).execute())
    assert calls == [1]
    assert waits.waits == []


def test_a_first_try_that_succeeds_never_enters_tenacity(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tenacity is entered only after a failure, never on the common path."""
    entered: list[RetryPolicy] = []
    real = tenacity.AsyncRetrying

    def spy(**kwargs: object) -> object:
        entered.append(kwargs["wait"])  # type: ignore[arg-type]
        return real(**kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(go_async._retry, "AsyncRetrying", spy)
    with set_testing():
        asyncio.run(failing_until(0, []).with_retry(3, 0.1).execute())
        assert entered == []
        asyncio.run(failing_until(1, []).with_retry(3, 0.1).execute())
    assert len(entered) == 1


def test_pool_retry_is_the_default_and_a_task_retry_wins(waits: WaitLog) -> None:
    """Tasks without a retry take the pool's; a task's own retry overrides it."""
    plain: list[int] = []
    own: list[int] = []
    pool = Pool().with_retry(3, 0.1)
    with pytest.raises(ExceptionGroup) as caught:
        pool.go([failing_until(99, plain), failing_until(99, own).with_retry(2, 0.1)])
    assert plain == [1, 2, 3]
    assert own == [1, 2]
    assert [str(error) for error in caught.value.exceptions] == ["failure 3", "failure 2"]


def test_pool_with_retry_checks_its_arguments() -> None:
    """Pool.with_retry names the call, the parameter and the value."""
    with pytest.raises(ValueError, match=r"Pool\.with_retry: attempts must be an int >= 1, got 0"):
        Pool().with_retry(0)


def test_huge_attempt_numbers_do_not_overflow(waits: WaitLog) -> None:
    """The exponent is bounded, so the wait stays finite and capped."""
    assert RetryPolicy(attempts=5000, sleep=1.0, max_wait=60.0).wait(4000) == 60.0
