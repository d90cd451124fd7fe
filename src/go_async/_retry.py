"""The retry policy and its adapter to tenacity (the only module importing tenacity)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar, cast

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_base,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_before_delay,
)
from tenacity.stop import stop_base

from . import _testing
from ._checks import positive_int, positive_seconds, seconds

R = TypeVar("R")

DEFAULT_MAX_WAIT = 30.0

# What `on=` takes: the errors to retry, as types or as a test of the error.
RetryOn = type[Exception] | tuple[type[Exception], ...] | Callable[[Exception], bool]

# 2.0 ** 1024 overflows a float; no wait is ever that long anyway.
_MAX_DOUBLINGS = 1000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to try, how long to wait between tries, which errors to try again.

    ``attempts`` counts every try, the first included. The wait after the
    n-th failure is ``sleep * 2 ** (n - 1)`` plus a jitter drawn from
    ``[0, half of that]``; ``max_wait`` caps each wait, not their sum.
    ``within``, if set, is a budget for all tries together, counted from the
    first try's start: no wait is taken that would end past it. ``on`` is
    tenacity's test of which errors are tried again.
    """

    attempts: int
    sleep: float
    max_wait: float
    within: float | None = None
    on: retry_base = field(default_factory=lambda: retry_if_exception_type(Exception))

    @classmethod
    def checked(
        cls,
        where: str,
        attempts: object,
        sleep: object,
        max_wait: object,
        on: object = Exception,
        within: object = None,
    ) -> RetryPolicy:
        """The policy of a ``with_retry`` call, its arguments checked: a bad one raises naming ``where``."""
        return cls(
            positive_int(where, "attempts", attempts),
            seconds(where, "sleep", sleep),
            seconds(where, "max_wait", max_wait),
            None if within is None else positive_seconds(where, "within", within),
            _retry_on(where, on),
        )

    def __str__(self) -> str:
        within = "" if self.within is None else f" within {self.within}s"
        return f"{self.attempts}x{self.sleep}s{within}"

    def wait(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts."""
        base = self.sleep * 2.0 ** min(failures - 1, _MAX_DOUBLINGS)
        jitter = _testing.jitter_source().uniform(0, base / 2)
        return min(self.max_wait, base + jitter)

    def covers(self, error: BaseException) -> bool:
        """Whether ``on`` says ``error`` is tried again (asked as tenacity asks it)."""
        state = RetryCallState(cast("AsyncRetrying", None), None, (), {})
        state.set_exception((type(error), error, error.__traceback__))
        return bool(self.on(state))

    def _tenacity_wait(self, state: RetryCallState) -> float:
        return self.wait(state.attempt_number)


def _is_error_type(kind: object) -> bool:
    return isinstance(kind, type) and issubclass(kind, Exception)


def _kinds(on: object) -> tuple[object, ...]:
    return cast("tuple[object, ...]", on) if isinstance(on, tuple) else (on,)


def _retry_on(where: str, on: object) -> retry_base:
    # Only Exception is ever retried: cancellation, KeyboardInterrupt and
    # SystemExit pass through whatever `on` says.
    kinds = _kinds(on)
    if kinds and all(map(_is_error_type, kinds)):
        return retry_if_exception_type(cast("tuple[type[Exception], ...]", kinds))
    if callable(on) and not isinstance(on, type):
        predicate = cast("Callable[[BaseException], bool]", on)
        return retry_if_exception_type(Exception) & retry_if_exception(predicate)
    msg = (
        f"{where}: on must be an Exception subclass, a tuple of them, or a function of the error "
        f"returning bool, got {on!r} ({type(on).__name__})"
    )
    raise TypeError(msg)


class _Gated(stop_base):
    # Stops when `gate` refuses the retry of the try that just failed.
    def __init__(self, gate: Callable[[Exception, int], bool]) -> None:
        self.gate = gate

    def __call__(self, retry_state: RetryCallState) -> bool:
        outcome = retry_state.outcome
        error = None if outcome is None else outcome.exception()
        assert isinstance(error, Exception)  # only Exception is retried
        return not self.gate(error, retry_state.attempt_number)


async def retry_after(
    failure: Exception,
    call: Callable[[], Awaitable[R]],
    policy: RetryPolicy,
    on_retry: Callable[[Exception, int, float], object] | None = None,
    started: float | None = None,
    gate: Callable[[Exception, int], bool] | None = None,
) -> R:
    """Try ``call`` again after its first try failed with ``failure``, as ``policy`` allows.

    The first try runs bare, outside this function: entering tenacity costs
    tens of microseconds, so a call that succeeds at once (the common case)
    never pays for it. ``started`` is when that try began (``time.monotonic()``,
    tenacity's clock), for a policy with a time budget. The last error is raised as it is.
    ``on_retry(error, attempt, wait)`` hears of each failed try that is
    tried again, before the wait. ``gate(error, attempt)``, if given, is asked
    last, once every other reason to stop says go on: ``False`` stops, and
    ``error`` is raised (a retry budget's refusal, see ``RetryBudget``).
    """
    if policy.attempts == 1:
        raise failure
    first_failure: Exception | None = failure

    async def attempt() -> R:
        # Tenacity's first attempt replays the failure we already saw, so that
        # its own loop owns every wait, the count of attempts and the budget.
        nonlocal first_failure
        if first_failure is not None:
            replayed, first_failure = first_failure, None
            raise replayed
        return await call()

    def before(state: RetryCallState) -> None:
        # The budget counts from the first try, which ran before tenacity's clock began.
        if state.attempt_number == 1 and started is not None:
            state.start_time = started

    def before_sleep(state: RetryCallState) -> None:
        wait = 0.0 if state.next_action is None else state.next_action.sleep
        if _testing.waits_are_instant():
            # A wait skipped in testing mode counts as waited, as on a manual clock.
            state.start_time -= wait
        if on_retry is not None and state.outcome is not None:
            error = state.outcome.exception()
            assert isinstance(error, Exception)  # only Exception is retried
            on_retry(error, state.attempt_number, wait)

    stop: stop_base = stop_after_attempt(policy.attempts)
    if policy.within is not None:
        stop = stop | stop_before_delay(policy.within)
    if gate is not None:
        stop = stop | _Gated(gate)
    retrying = AsyncRetrying(
        stop=stop,
        wait=policy._tenacity_wait,
        retry=policy.on,
        reraise=True,
        sleep=_testing.backoff_sleep,
        before=before,
        before_sleep=before_sleep,
    )
    return await retrying(attempt)
