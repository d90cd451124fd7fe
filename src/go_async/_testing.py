"""The testing switch: instant, recorded backoff waits and reproducible jitter.

Time and randomness are seams here, not globals reached from the retry code:
``_retry`` asks this module for its sleep and its random source.
"""

from __future__ import annotations

import asyncio
import random
from types import TracebackType
from typing import Self

# Private, so that seeding it never disturbs (nor is disturbed by) the user's
# use of the `random` module.
_RANDOM = random.Random()
_active: WaitLog | None = None


class WaitLog:
    """Backoff waits recorded while testing mode is on; see :func:`set_testing`.

    ``waits`` lists every backoff wait, in seconds, in the order retries asked
    for them (jitter included).

    Example::

        with set_testing(seed=0) as log:
            await Task(flaky).with_retry(3, 0.5).execute()
        assert 0.5 <= log.waits[0] <= 0.75
    """

    __slots__ = ("_previous", "instant", "random", "waits")

    def __init__(self, *, seed: int, instant: bool, previous: WaitLog | None) -> None:
        self.instant: bool = instant
        self.random: random.Random = random.Random(seed)
        self.waits: list[float] = []
        self._previous = previous

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        global _active  # noqa: PLW0603 - testing mode is process-wide by design
        _active = self._previous

    def __repr__(self) -> str:
        return f"WaitLog(instant={self.instant}, waits={self.waits!r})"


def set_testing(on: bool = True, *, seed: int = 0, instant: bool = True) -> WaitLog:
    """Make retries deterministic for tests: on at once, restored by ``with``.

    While on, every backoff wait is recorded in the returned log's ``waits``
    and, with ``instant=True`` (the default), skipped: the retrying task only
    yields to the event loop. Jitter comes from a random source seeded with
    ``seed``, so a test sees the same waits every time. ``set_testing(False)``
    turns it off. Used as a context manager, leaving the block restores what
    was in force before, so calls nest.

    Example::

        with set_testing(seed=1) as log:
            pool.go(tasks)
        assert len(log.waits) == 2
    """
    global _active  # noqa: PLW0603 - testing mode is process-wide by design
    log = WaitLog(seed=seed, instant=instant, previous=_active)
    _active = log if on else None
    return log


def jitter_source() -> random.Random:
    """The random source that jitter must use now."""
    return _RANDOM if _active is None else _active.random


async def backoff_sleep(seconds: float) -> None:
    """Wait ``seconds`` before the next attempt, or only record it in testing mode."""
    log = _active
    if log is not None:
        log.waits.append(seconds)
        if log.instant:
            seconds = 0
    await asyncio.sleep(seconds)


def waits_are_instant() -> bool:
    """Whether testing mode skips backoff waits now."""
    return _active is not None and _active.instant
