"""The testing switch: instant, recorded backoff waits, reproducible jitter, explored interleavings.

Time and randomness are seams here, not globals reached from the retry code:
``_retry`` asks this module for its sleep and its random source.
"""

from __future__ import annotations

import asyncio
import random
from types import TracebackType
from typing import Self

from . import _explore

# Private, so that seeding it never disturbs (nor is disturbed by) the user's
# use of the `random` module.
_RANDOM = random.Random()
_active: WaitLog | None = None


class WaitLog:
    """Backoff waits recorded while testing mode is on; see :func:`set_testing`.

    ``waits`` lists every backoff wait, in seconds, in the order retries asked
    for them (jitter included). ``explore`` is the seed of the interleavings
    explored (``set_testing(explore=seed)``), else None.

    Example::

        with set_testing(seed=0) as log:
            await Task(flaky).with_retry(3, 0.5).execute()
        assert 0.5 <= log.waits[0] <= 0.75

        with set_testing(explore=7) as log:
            assert log.explore == 7
    """

    __slots__ = ("_explored", "_previous", "explore", "instant", "random", "waits")

    def __init__(
        self, *, seed: int, instant: bool, previous: WaitLog | None, explore: int | None = None
    ) -> None:
        self.instant: bool = instant
        self.random: random.Random = random.Random(seed)
        self.waits: list[float] = []
        self._previous = previous
        self.explore: int | None = explore
        """The seed of the interleavings explored (see ``set_testing``), or None."""
        self._explored = _explore.active  # what was explored before, restored on leaving

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
        if self.explore is not None and exc is not None:
            exc.add_note(_explore.Exploration(self.explore).note())  # the seed that failed, to replay
        _explore.active = self._explored

    def __repr__(self) -> str:
        explore = "" if self.explore is None else f", explore={self.explore}"
        return f"WaitLog(instant={self.instant}{explore}, waits={self.waits!r})"


def set_testing(
    on: bool = True, *, seed: int | None = None, instant: bool = True, explore: int | None = None
) -> WaitLog:
    """Make retries deterministic for tests, or explore interleavings: on at once, restored by ``with``.

    While on, every backoff wait is recorded in the returned log's ``waits``
    and, with ``instant=True`` (the default), skipped: the retrying task only
    yields to the event loop. Jitter comes from a random source seeded with
    ``seed``, so a test sees the same waits every time. ``set_testing(False)``
    turns it off. Used as a context manager, leaving the block restores what
    was in force before, so calls nest.

    ``explore=seed`` explores interleavings: pools keep their real limit, and
    every choice of order that go_async owns is drawn from ``seed`` (how often
    a task yields to the event loop before each try, which of the sleepers
    with equal deadlines a ``ManualClock`` wakes first, the order in which a
    topic delivers to its subscribers); ``STAGE=test`` is ignored meanwhile.
    Jitter then comes from ``seed`` too, unless ``seed=`` is given. One seed
    replays one interleaving; an error leaving the ``with`` block carries a
    note naming the seed. ``seed`` defaults to 0 otherwise.

    Example::

        with set_testing(seed=1) as log:
            pool.go(tasks)
        assert len(log.waits) == 2

        for each in range(200):  # 200 interleavings of the same tasks
            with set_testing(explore=each):
                pool.go(tasks)
    """
    global _active  # noqa: PLW0603 - testing mode is process-wide by design
    explore = _explore.checked_seed(explore)
    given: object = seed  # typed int, but untyped callers pass anything
    if given is not None and (not isinstance(given, int) or isinstance(given, bool)):
        msg = f"set_testing: seed must be an int or None, got {given!r} ({type(given).__name__})"
        raise TypeError(msg)
    jitter = seed if seed is not None else 0 if explore is None else explore
    log = WaitLog(seed=jitter, instant=instant, previous=_active, explore=explore if on else None)
    _active = log if on else None
    _explore.active = _explore.Exploration(explore) if on and explore is not None else None
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
