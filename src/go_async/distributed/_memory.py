"""The in-memory transport: the same messages, acknowledgements and redeliveries as on Redis, in one process.

``Remote`` without a URL runs an embedded worker on it. Its time is a
``Clock``: with a ``ManualClock``, a test moves past ``redeliver_after`` at
once.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .._clock import SYSTEM_CLOCK, Clock
from ._transport import Delivery


@dataclass(slots=True)
class _Pending:
    data: bytes
    consumer: str
    since: float
    deliveries: int


class MemoryTransport:
    """A queue in this process, with a consumer group's pending list and dead letters.

    Example::

        transport = MemoryTransport(redeliver_after=30.0, clock=ManualClock())
    """

    def __init__(self, *, redeliver_after: float, clock: Clock | None = None) -> None:
        self.reply_key = "memory"
        self.away: tuple[type[BaseException], ...] = ()  # memory is never away
        self.lost_replies = False
        self.clock: Clock = SYSTEM_CLOCK if clock is None else clock
        self.dead_letters: list[tuple[str, bytes, str]] = []
        self._redeliver_after = redeliver_after
        self._queue: deque[tuple[str, bytes]] = deque()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._on_reply: Callable[[bytes], object] | None = None
        self._arrived: asyncio.Event | None = None

    async def open_client(self, on_reply: Callable[[bytes], object]) -> None:
        self._on_reply = on_reply

    async def send(self, data: bytes) -> None:
        self._queue.append((str(next(self._ids)), data))
        if self._arrived is not None:
            self._arrived.set()

    async def close(self) -> None:
        self._on_reply = None

    async def open_worker(self) -> None:
        if self._arrived is None:
            self._arrived = asyncio.Event()

    async def take(self, consumer: str, count: int, wait: float) -> list[Delivery]:
        if not self._queue and self._arrived is not None:
            self._arrived.clear()
            try:
                async with asyncio.timeout(wait):
                    await self._arrived.wait()
            except TimeoutError:
                return []
        taken: list[Delivery] = []
        now = self.clock.time()
        while self._queue and len(taken) < count:
            message_id, data = self._queue.popleft()
            self._pending[message_id] = _Pending(data, consumer, now, 1)
            taken.append(Delivery(message_id, data))
        return taken

    def wake(self) -> None:
        """Cut short a ``take`` that waits: the worker is stopping."""
        if self._arrived is not None:
            self._arrived.set()

    async def recover(self, consumer: str, running: set[str]) -> list[Delivery]:
        return []  # memory loses no answer

    async def give_back(self, deliveries: list[Delivery]) -> None:
        for delivery in reversed(deliveries):
            self._pending.pop(delivery.message_id, None)
            self._queue.appendleft((delivery.message_id, delivery.data))

    async def reclaim(self, consumer: str, count: int) -> list[Delivery]:
        now = self.clock.time()
        found: list[Delivery] = []
        for message_id, pending in self._pending.items():
            if len(found) == count:
                break
            if now - pending.since >= self._redeliver_after:
                pending.consumer, pending.since = consumer, now
                pending.deliveries += 1
                found.append(Delivery(message_id, pending.data, pending.deliveries))
        return found

    async def touch(self, consumer: str, message_ids: list[str]) -> None:
        now = self.clock.time()
        for message_id in message_ids:
            pending = self._pending.get(message_id)
            if pending is not None and pending.consumer == consumer:
                pending.since = now

    def finish(self, message_id: str, reply_key: str | None, reply: bytes | None) -> None:
        self._pending.pop(message_id, None)
        if reply is not None and self._on_reply is not None:
            self._on_reply(reply)

    def bury(
        self, delivery: Delivery, reason: str, reply_key: str | None = None, reply: bytes | None = None
    ) -> None:
        self.dead_letters.append((delivery.message_id, delivery.data, reason))
        self.finish(delivery.message_id, reply_key, reply)

    async def settle(self) -> None:
        return None

    async def dead(self) -> list[tuple[str, bytes, str]]:
        """The dead letters: each one's message id, bytes and reason, oldest first."""
        return list(self.dead_letters)
