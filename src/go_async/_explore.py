"""Explored interleavings: every choice of what runs next that the library owns, drawn from a seed.

``STAGE=test`` runs one task at a time, so a test never sees a race. Exploring
(``set_testing(explore=seed)``) keeps the real limit and instead draws, from
the seed, each choice the library makes about order: how many times a task
yields to the event loop before each of its tries (so which ready task runs
first, and where tasks interleave), which of the sleepers with equal deadlines
a ``ManualClock`` wakes first, and in which order a topic delivers a message
to its subscribers. The same seed replays the same choices, so the same
interleaving; another seed gives another.

Nothing here runs while no exploration is on: the runner decides once per run
(``Runner.bare`` is false while exploring, so that tasks go through the plan,
where ``paused`` adds the yields), and the clock and topics read ``active``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

# The most times a task yields to the event loop before a try.
MOST_PAUSES = 4


class Exploration:
    """The seeded choices of one exploration; each kind of choice draws from a stream of its own.

    Separate streams keep, say, a topic's delivery order the same when a test
    adds a task: only the choices of one kind move together.

    Example::

        exploration = Exploration(7)
        assert exploration.pauses() == Exploration(7).pauses()
    """

    __slots__ = ("_clock", "_tasks", "_topics", "seed")

    def __init__(self, seed: int) -> None:
        self.seed: int = seed
        # String seeds are hashed with SHA-512, not `hash()`: the same on every run.
        self._tasks = random.Random(f"go_async tasks {seed}")
        self._clock = random.Random(f"go_async clock {seed}")
        self._topics = random.Random(f"go_async topics {seed}")

    def pauses(self) -> int:
        """How many times the next try yields to the event loop before it starts."""
        return self._tasks.randint(0, MOST_PAUSES)

    def tie(self, order: int) -> int:
        """The wake-up rank of a ``ManualClock`` sleeper that came ``order``-th: a seeded shuffle."""
        return (self._clock.getrandbits(31) << 32) | (order & 0xFFFFFFFF)

    def order(self, items: Sequence[T]) -> list[T]:
        """``items`` in a seeded order: which subscriber of a topic gets a message first."""
        shuffled = list(items)
        self._topics.shuffle(shuffled)
        return shuffled

    def note(self) -> str:
        """The note that an error raised while exploring carries: how to replay it."""
        return (
            f"go_async explored interleaving seed {self.seed}: replay with set_testing(explore={self.seed})"
        )

    def __repr__(self) -> str:
        return f"Exploration(seed={self.seed})"


active: Exploration | None = None
"""The exploration in force, if any (set by ``set_testing``)."""


def checked_seed(explore: object) -> int | None:
    """``explore`` as a seed, checked: an int, or None for no exploration."""
    if explore is not None and (not isinstance(explore, int) or isinstance(explore, bool)):
        msg = f"set_testing(explore=...): the seed must be an int or None, got {explore!r}"
        raise TypeError(msg)
    return explore


def paused(
    call: Callable[[Any], Awaitable[Any]], exploration: Exploration
) -> Callable[[Any], Awaitable[Any]]:
    """``call`` preceded, on each try, by the number of yields to the event loop that the seed says.

    Each yield lets every other ready task take a step first, so tasks that
    await interleave differently under each seed.
    """
    pauses = exploration.pauses
    sleep = asyncio.sleep

    async def explored(args: Any) -> Any:
        for _ in range(pauses()):
            await sleep(0)
        return await call(args)

    return explored


def exploring() -> Exploration | None:
    """The exploration in force now, if any: a runner asks once, when its run starts."""
    return active
