"""The in-memory transport: the same messages, acknowledgements and redeliveries as on Redis, in one process.

``Remote`` without a URL runs an embedded worker on it. Its time is a
``Clock``: with a ``ManualClock``, a test moves past ``redeliver_after``,
a delay, a retry's wait or a kept result's expiry at once.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .._clock import SYSTEM_CLOCK, Clock
from ._transport import DeadLetter, Delivery, Finished


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
        self._dead: dict[str, DeadLetter] = {}
        self._redeliver_after = redeliver_after
        self._delayed: list[tuple[float, int, bytes]] = []  # by due time, then by arrival
        self._revoked: list[str] = []
        self._kept: dict[str, tuple[bytes, float]] = {}  # by task id: the reply, and when it expires
        self._saved: dict[str, asyncio.Event] = {}  # readers waiting for a result to be kept
        self._groups: dict[str, dict[int, bytes]] = {}
        self._changed = asyncio.Event()  # a delayed send or a revocation, for an idle worker to see
        self._queue: deque[tuple[str, bytes]] = deque()
        self._pending: dict[str, _Pending] = {}
        self._ids = itertools.count(1)
        self._on_reply: Callable[[bytes], object] | None = None
        self._arrived: asyncio.Event | None = None

    async def open_client(self, on_reply: Callable[[bytes], object]) -> None:
        self._on_reply = on_reply

    async def send(self, data: bytes, due: float | None = None) -> None:
        self._add(data, due)

    def _add(self, data: bytes, due: float | None) -> None:
        if due is not None:
            bisect.insort(self._delayed, (due, next(self._ids), data))
            self._changed.set()
            return
        self._queue.append((str(next(self._ids)), data))
        if self._arrived is not None:
            self._arrived.set()

    async def revoke(self, task_id: str) -> None:
        self._revoked.append(task_id)
        self._changed.set()

    async def kept(self, task_id: str, wait: float) -> bytes | None:
        found = self._kept_now(task_id)
        if found is None and wait > 0:
            saved = self._saved.setdefault(task_id, asyncio.Event())
            try:
                async with asyncio.timeout(wait):
                    await saved.wait()
            except TimeoutError:
                pass
            found = self._kept_now(task_id)
        return found

    def _kept_now(self, task_id: str) -> bytes | None:
        found = self._kept.get(task_id)
        if found is None or found[1] <= self.clock.time():
            self._kept.pop(task_id, None)  # expired
            return None
        return found[0]

    async def dead_letters(self) -> list[DeadLetter]:
        return list(self._dead.values())

    async def resend(self, entry: str, data: bytes) -> None:
        del self._dead[entry]
        self._add(data, None)

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

    def finish(self, finished: Finished) -> None:
        if self._pending.pop(finished.message_id, None) is None and finished.follow:
            return  # a redelivered copy finished first: what follows is queued once
        for data, due in finished.follow:
            self._add(data, due)
        if finished.joined is not None:
            self._groups.pop(finished.joined, None)
        if finished.reply is not None:
            if finished.keep is not None:
                task_id, seconds = finished.keep
                self._kept[task_id] = (finished.reply, self.clock.time() + seconds)
                saved = self._saved.pop(task_id, None)
                if saved is not None:
                    saved.set()
            if self._on_reply is not None:
                self._on_reply(finished.reply)

    def bury(
        self, delivery: Delivery, reason: str, reply_key: str | None = None, reply: bytes | None = None
    ) -> None:
        entry = str(next(self._ids))
        self._dead[entry] = DeadLetter.of(entry, delivery.data, reason, delivery.message_id)
        self.finish(Finished(delivery.message_id, reply_key, reply))

    async def settle(self) -> None:
        return None

    async def move_due(self) -> float | None:
        now = self.clock.wall().timestamp()
        while self._delayed and self._delayed[0][0] <= now:
            _, _, data = self._delayed.pop(0)
            self._add(data, None)
        return self._delayed[0][0] if self._delayed else None

    async def idle(self, until: float | None) -> None:
        """Wait until ``until`` on the clock, or until a delayed send or a revocation."""
        if self._changed.is_set():
            self._changed.clear()
            return
        changed = asyncio.ensure_future(self._changed.wait())
        waits = (
            {changed} if until is None else {changed, asyncio.ensure_future(self.clock.sleep_until(until))}
        )
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        self._changed.clear()

    async def revocations(self, cursor: int) -> tuple[list[str], int]:
        return self._revoked[cursor:], len(self._revoked)

    async def join(self, key: str, index: int, value: bytes, size: int) -> list[bytes] | None:
        members = self._groups.setdefault(key, {})
        members[index] = value
        if len(members) < size:
            return None
        return [members[place] for place in sorted(members)]
