"""The queue of a running pool: highest priority first, then submission order."""

from __future__ import annotations

import heapq
from collections import deque
from typing import Any

from ._handle import Handle


class TaskQueue:
    """Queued handles by priority, then by submission number.

    Most tasks keep the default priority 0: those wait in a plain FIFO, and
    only the others in a heap, so the common case costs a deque append and
    pop rather than heap operations (workers read ``plain`` directly when
    ``ranked`` is empty).
    """

    __slots__ = ("plain", "ranked")

    def __init__(self) -> None:
        self.plain: deque[Handle[Any]] = deque()
        self.ranked: list[tuple[int, int, Handle[Any]]] = []

    def __len__(self) -> int:
        return len(self.plain) + len(self.ranked)

    def push(self, handle: Handle[Any]) -> None:
        priority = handle._spec.priority
        if priority:
            heapq.heappush(self.ranked, (-priority, handle._seq, handle))
        else:
            self.plain.append(handle)

    def head(self) -> tuple[int, int]:
        """The (negated priority, number) of the handle ``pop`` would give; the queue must not be empty."""
        ranked, plain = self.ranked, self.plain
        if ranked and (not plain or ranked[0][:2] < (0, plain[0]._seq)):
            return ranked[0][0], ranked[0][1]
        return 0, plain[0]._seq

    def pop(self) -> Handle[Any]:
        """The next handle to start; the queue must not be empty."""
        ranked, plain = self.ranked, self.plain
        if ranked and (not plain or ranked[0][:2] < (0, plain[0]._seq)):
            return heapq.heappop(ranked)[2]
        return plain.popleft()

    def remove(self, handle: Handle[Any]) -> None:
        if handle._spec.priority:
            self.ranked = [entry for entry in self.ranked if entry[2] is not handle]
            heapq.heapify(self.ranked)
        else:
            self.plain.remove(handle)

    def clear(self) -> list[Handle[Any]]:
        """Empty the queue; the handles it held, in no particular order."""
        handles = [*self.plain, *(entry[2] for entry in self.ranked)]
        self.plain.clear()
        self.ranked.clear()
        return handles
