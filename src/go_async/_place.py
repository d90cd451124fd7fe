"""Place: one pool of a running pool's family, with its queue, limit and counts; and their stats."""

from __future__ import annotations

import asyncio
from collections import deque
from types import MappingProxyType
from typing import Any

from ._handle import Handle
from ._queue import TaskQueue
from ._stats import PoolStats

# How many of the latest durations stats() keeps for its mean and p95.
DURATIONS_KEPT = 10_000


class Place:
    """One pool of a family: its queue, its limit, what runs there, and its counts."""

    __slots__ = (
        "accepting",
        "busy",
        "cancelled",
        "children",
        "completed",
        "durations",
        "failed",
        "limit",
        "parent",
        "per_tag",
        "queue",
        "refused",
        "retried",
        "room_waiters",
        "running",
        "schedules",
    )

    def __init__(self, limit: int | None, parent: Place | None) -> None:
        self.limit = limit
        self.parent = parent
        self.children: list[Place] = []
        self.queue = TaskQueue()
        self.running: set[Handle[Any]] = set()
        self.busy = 0  # running here and in every sub-pool below
        self.accepting = parent is not None
        self.room_waiters: deque[asyncio.Future[None]] = deque()
        self.schedules: set[Any] = set()
        self.completed = self.failed = self.cancelled = self.retried = 0
        self.refused = 0  # retries refused by the pool's retry budget
        self.per_tag: dict[str, int] = {}
        self.durations: deque[float] = deque(maxlen=DURATIONS_KEPT)

    def has_room(self) -> bool:
        place: Place | None = self
        while place is not None:
            if place.limit is not None and place.busy >= place.limit:
                return False
            place = place.parent
        return True

    def tree(self) -> list[Place]:
        """This place and every place below it."""
        places: list[Place] = [self]
        for child in self.children:
            places.extend(child.tree())
        return places

    def wake_submitters(self, queue_size: int | None) -> None:
        while self.room_waiters and (
            queue_size is None or len(self.queue) < queue_size or not self.accepting
        ):
            waiter = self.room_waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)


def stats_of(places: list[Place], *, dropped: int, elapsed: float) -> PoolStats:
    """The stats of ``places`` together (a pool and its sub-pools)."""
    per_tag: dict[str, int] = {}
    durations: list[float] = []
    for place in places:
        for tag, count in place.per_tag.items():
            per_tag[tag] = per_tag.get(tag, 0) + count
        durations.extend(place.durations)
    completed = sum(place.completed for place in places)
    failed = sum(place.failed for place in places)
    ordered = sorted(durations)
    return PoolStats(
        running=sum(len(place.running) for place in places),
        queued=sum(len(place.queue) for place in places),
        completed=completed,
        failed=failed,
        retried=sum(place.retried for place in places),
        cancelled=sum(place.cancelled for place in places),
        throughput=(completed + failed) / max(elapsed, 1e-9),
        mean_duration=sum(ordered) / len(ordered) if ordered else None,
        p95_duration=ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))] if ordered else None,
        per_tag=MappingProxyType(per_tag),
        dropped_failures=dropped,
        retries_refused=sum(place.refused for place in places),
    )
