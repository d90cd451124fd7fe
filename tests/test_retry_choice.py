"""Retries that choose: which errors are tried again (``on``), and a time budget for all tries."""

import asyncio
import math
from collections.abc import Callable

import pytest

from go_async import Args, Pool, Task, WaitLog


def failing_with(errors: list[Exception], tries: list[int]) -> Callable[[Args[int]], object]:
    """A task function raising each of ``errors`` in turn, then returning its input."""

    async def run(args: Args[int]) -> int:
        tries.append(args.input)
        if len(tries) <= len(errors):
            raise errors[len(tries) - 1]
        return args.input

    return run


@pytest.mark.parametrize(
    ("on", "retried"),
    [
        (ConnectionError, [ConnectionError]),
        ((ConnectionError, KeyError), [ConnectionError, KeyError]),
        (lambda error: type(error) is ValueError, [ValueError]),
    ],
)
def test_on_retries_only_the_errors_it_names(
    on: object, retried: list[type[Exception]], waits: WaitLog
) -> None:
    """A named error is tried again; any other is final at its first occurrence."""
    for kind in (ConnectionError, KeyError, ValueError, LookupError):
        tries: list[int] = []
        error = kind("transient")
        task = Task(failing_with([error], tries)).with_input(7).with_retry(3, 0.1, on=on)  # type: ignore[arg-type]
        if kind in retried:
            assert asyncio.run(task.execute()) == 7
            assert tries == [7, 7]
        else:
            with pytest.raises(kind) as caught:
                asyncio.run(task.execute())
            assert caught.value is error
            assert tries == [7]


def test_on_stops_at_the_first_error_it_does_not_name(waits: WaitLog) -> None:
    """A retried error followed by one not named ends the retries with the second."""
    tries: list[int] = []
    final = KeyError("not found")
    task = (
        Task(failing_with([ConnectionError(), final], tries)).with_input(1).with_retry(5, on=ConnectionError)
    )
    with pytest.raises(KeyError) as caught:
        asyncio.run(task.execute())
    assert caught.value is final
    assert tries == [1, 1]
    assert len(waits.waits) == 1


def test_a_pool_retry_chooses_too_in_go(waits: WaitLog) -> None:
    """The pool's retry takes ``on`` as a task's does, on the fast path of go as well."""
    tries: list[int] = []
    pool = Pool(limit=2).with_retry(4, on=ConnectionError)
    with pytest.raises(ExceptionGroup) as caught:
        pool.go([Task(failing_with([KeyError("k")], tries)).with_input(1)])
    [error] = caught.value.exceptions
    assert isinstance(error, KeyError)
    assert tries == [1]
    tries.clear()
    pool.go([Task(failing_with([ConnectionError()] * 3, tries)).with_input(2)])
    assert tries == [2, 2, 2, 2]


def test_cancellation_is_never_retried_whatever_on_says(waits: WaitLog) -> None:
    """A predicate that would retry everything still never sees a BaseException."""
    seen: list[BaseException] = []

    def anything(error: BaseException) -> bool:
        seen.append(error)
        return True

    async def interrupted(args: Args[int]) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        asyncio.run(Task(interrupted).with_input(1).with_retry(3, on=anything).execute())
    assert seen == []


@pytest.mark.parametrize("on", [int, (ValueError, str), (), "ValueError", BaseException, 3])
def test_on_refuses_what_is_not_an_error_type_or_predicate(on: object) -> None:
    """The error names the call, the parameter and the value."""
    with pytest.raises(TypeError, match=r"Task\.with_retry: on must be an Exception subclass") as caught:
        Task(failing_with([], [])).with_retry(3, on=on)  # type: ignore[arg-type]
    assert repr(on) in str(caught.value)
    with pytest.raises(TypeError, match=r"Pool\.with_retry: on must be"):
        Pool().with_retry(3, on=on)  # type: ignore[arg-type]


def test_within_stops_retries_before_a_wait_would_end_past_the_budget(waits: WaitLog) -> None:
    """In testing mode each skipped wait counts as waited: no wait ends past ``within``."""
    tries: list[int] = []
    task = Task(failing_with([ConnectionError()] * 50, tries)).with_input(1).with_retry(50, 1.0, within=20)
    with pytest.raises(ConnectionError):
        asyncio.run(task.execute())
    # Waits of 1, 2, 4, 8 seconds plus jitter: their sum stays within 20 s,
    # and the next one would have passed it.
    assert sum(waits.waits) < 20
    assert len(tries) == len(waits.waits) + 1
    assert 3 <= len(waits.waits) <= 4
    assert all(1.0 * 2**n <= wait <= 1.5 * 2**n for n, wait in enumerate(waits.waits))


def test_within_counts_the_first_try_too(waits: WaitLog) -> None:
    """A first try that used up the budget is not tried again, though a wait is short."""
    tries: list[int] = []

    async def slow_then_fails(args: Args[int]) -> None:
        tries.append(args.input)
        await asyncio.sleep(0.05)  # the try itself takes time: the budget counts it
        raise ConnectionError

    task = Task(slow_then_fails).with_input(1).with_retry(5, 0.001, within=0.05)
    with pytest.raises(ConnectionError):
        asyncio.run(task.execute())
    assert tries == [1]
    assert waits.waits == []
    pool = Pool(limit=1).with_retry(5, 0.001, within=0.05)
    tries.clear()
    with pytest.raises(ExceptionGroup):
        pool.go([Task(slow_then_fails).with_input(2)])
    assert tries == [2]


def test_within_is_checked() -> None:
    """A budget is seconds > 0, or None for none."""
    with pytest.raises(ValueError, match=r"Task\.with_retry: within must be finite and > 0 seconds, got 0"):
        Task(failing_with([], [])).with_retry(3, within=0)
    with pytest.raises(TypeError, match=r"Pool\.with_retry: within must be seconds"):
        Pool().with_retry(3, within="30")  # type: ignore[arg-type]
    assert "3x0.1s within 30.0s" in repr(Pool().with_retry(3, within=30))


def test_max_wait_caps_each_wait_not_their_sum(waits: WaitLog) -> None:
    """Five waits capped at 1 s each: they add up to 5 s, past the cap."""
    tries: list[int] = []
    task = Task(failing_with([ConnectionError()] * 5, tries)).with_input(1).with_retry(6, 10.0, max_wait=1.0)
    assert asyncio.run(task.execute()) == 1
    assert waits.waits == [1.0] * 5
    assert math.isclose(sum(waits.waits), 5.0)
