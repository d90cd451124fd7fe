"""The retry policy and its adapter to tenacity (the only module importing tenacity)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, stop_after_attempt

from . import _testing
from ._checks import positive_int, seconds

R = TypeVar("R")

DEFAULT_MAX_WAIT = 30.0

# 2.0 ** 1024 overflows a float; no wait is ever that long anyway.
_MAX_DOUBLINGS = 1000


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often to try and how long to wait between tries.

    ``attempts`` counts every try, the first included. The wait after the
    n-th failure is ``sleep * 2 ** (n - 1)`` plus a jitter drawn from
    ``[0, half of that]``, and never more than ``max_wait`` in all.
    """

    attempts: int
    sleep: float
    max_wait: float

    @classmethod
    def checked(cls, where: str, attempts: object, sleep: object, max_wait: object) -> RetryPolicy:
        return cls(
            positive_int(where, "attempts", attempts),
            seconds(where, "sleep", sleep),
            seconds(where, "max_wait", max_wait),
        )

    def __str__(self) -> str:
        return f"{self.attempts}x{self.sleep}s"

    def wait(self, failures: int) -> float:
        """Seconds to wait after ``failures`` failed attempts."""
        base = self.sleep * 2.0 ** min(failures - 1, _MAX_DOUBLINGS)
        jitter = _testing.jitter_source().uniform(0, base / 2)
        return min(self.max_wait, base + jitter)

    def _tenacity_wait(self, state: RetryCallState) -> float:
        return self.wait(state.attempt_number)


async def retry_after(
    failure: Exception,
    call: Callable[[], Awaitable[R]],
    policy: RetryPolicy,
    on_retry: Callable[[Exception, int, float], object] | None = None,
) -> R:
    """Try ``call`` again after its first try failed with ``failure``, as ``policy`` allows.

    The first try runs bare, outside this function: entering tenacity costs
    tens of microseconds, so a call that succeeds at once (the common case)
    never pays for it. Only ``Exception`` is retried; cancellation,
    ``KeyboardInterrupt`` and ``SystemExit`` pass straight through. The last
    error is raised as it is. ``on_retry(error, attempt, wait)`` hears of
    each failed try that is tried again, before the wait.
    """
    if policy.attempts == 1:
        raise failure
    first_failure: Exception | None = failure

    async def attempt() -> R:
        # Tenacity's first attempt replays the failure we already saw, so that
        # its own loop owns every wait and the count of attempts.
        nonlocal first_failure
        if first_failure is not None:
            replayed, first_failure = first_failure, None
            raise replayed
        return await call()

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            assert isinstance(error, Exception)  # only Exception is retried
            on_retry(error, state.attempt_number, state.next_action.sleep)

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.attempts),
        wait=policy._tenacity_wait,
        retry=retry_if_exception_type(Exception),
        reraise=True,
        sleep=_testing.backoff_sleep,
        before_sleep=before_sleep,
    )
    return await retrying(attempt)
