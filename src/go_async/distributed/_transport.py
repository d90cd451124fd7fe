"""What a client and its workers exchange, whatever carries it: messages, replies, batches, backoff.

A message is one JSON object: the task's ``id``, its registered name
(``task``), its arguments by name (``args``) and the ``reply`` key its
result goes to; optionally its ``attempt`` (worker-side retries), ``keep``
(seconds to keep its result under its id) and ``frames`` (what remains of
a flow, see ``_plan``). A reply is ``{"id": ..., "ok": value}``, ``{"id":
..., "error": {...}}``, ``{"id": ..., "rejected": reason}`` or ``{"id":
..., "revoked": true}``, with ``attempts`` when the task was tried more
than once. Both transports (``_redis``, ``_memory``) carry these bytes
unchanged.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from .._clock import Clock

logger = logging.getLogger("go_async.distributed")

T = TypeVar("T")

DEFAULT_QUEUE = "go_async"
# A reply nobody collects expires after a day instead of staying in Redis forever.
RESULT_TTL_SECONDS = 24 * 3600
# A message handed out this many times without an answer (its workers died) goes to the dead letters.
DEFAULT_MAX_DELIVERIES = 5
# Workers remember this many revocations (the newest); older ones are forgotten.
REVOCATIONS_KEPT = 10_000
# While the server cannot be reached: the first wait, the longest one.
_FIRST_BACKOFF = 0.05
_LAST_BACKOFF = 2.0


def encode(data: object) -> bytes:
    """``data`` as compact JSON; inf and nan are refused (``ValueError``), never sent as ``null``."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).encode()


def decode(data: bytes) -> Any:
    """JSON ``data``; ``ValueError`` if it is not JSON."""
    return json.loads(data)


@dataclass(slots=True)
class Delivery:
    """A message handed to a worker: its id on the transport, its bytes, and how often it was handed out."""

    message_id: str
    data: bytes
    deliveries: int = 1


# A message to queue: its bytes, and the wall-clock time (epoch seconds) it is due, or None for now.
Follow = tuple[bytes, float | None]


@dataclass(slots=True)
class Finished:
    """What a worker leaves behind when it is done with a message, saved in one batch before the ack.

    ``reply`` goes to ``reply_key``; ``follow`` are queued (a flow's next
    steps, a retry's next attempt); ``keep`` stores the reply under the
    task's id for that many seconds; ``joined`` is a group's fan-in key,
    deleted once the step after the group is queued.
    """

    message_id: str
    reply_key: str | None = None
    reply: bytes | None = None
    follow: tuple[Follow, ...] = ()
    keep: tuple[str, float] | None = None
    joined: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A message no worker could run, kept with the reason: list them, and send them again.

    ``entry`` is its place among the dead letters; ``task`` and ``task_id``
    come from the message when it names them (a malformed one leaves them
    empty); ``data`` is the message as it was.

    Example::

        for letter in await remote.dead_letters():
            log.warning("%s (%s): %s", letter.task, letter.task_id, letter.reason)
    """

    entry: str
    task: str
    task_id: str
    reason: str
    data: bytes

    @classmethod
    def of(cls, entry: str, data: bytes, reason: str, message_id: str) -> DeadLetter:
        """The dead letter of ``data``: its task and id read from it, or ``message_id`` if it is malformed."""
        try:
            message = decode(data)
            task, task_id = str(message["task"]), str(message["id"])
        except (ValueError, TypeError, KeyError):  # a malformed message is kept as it came
            task, task_id = "", message_id
        return cls(entry, task, task_id, reason, data)


class Transport(Protocol):
    """What ``Remote`` and ``Worker`` ask of a transport: Redis streams, or memory."""

    # The client's side.
    reply_key: str
    # What the transport raises while its server cannot be reached.
    away: tuple[type[BaseException], ...]
    # What times its redeliveries: the system's, or a test's manual clock.
    clock: Clock

    async def open_client(self, on_reply: Callable[[bytes], object]) -> None: ...
    async def send(self, data: bytes, due: float | None = None) -> None: ...
    async def close(self) -> None: ...
    # Mark a task revoked, for every worker to see.
    async def revoke(self, task_id: str) -> None: ...
    # A kept result, waiting at most `wait` seconds for it.
    async def kept(self, task_id: str, wait: float) -> bytes | None: ...
    async def dead_letters(self) -> list[DeadLetter]: ...
    async def resend(self, entry: str, data: bytes) -> None: ...

    # The worker's side.
    async def open_worker(self) -> None: ...
    async def take(self, consumer: str, count: int, wait: float) -> list[Delivery]: ...
    async def give_back(self, deliveries: list[Delivery]) -> None: ...

    # Whether a read may have handed this worker messages that it never received.
    lost_replies: bool

    async def recover(self, consumer: str, running: set[str]) -> list[Delivery]: ...
    def wake(self) -> None: ...
    async def reclaim(self, consumer: str, count: int) -> list[Delivery]: ...
    async def touch(self, consumer: str, message_ids: list[str]) -> None: ...
    def finish(self, finished: Finished) -> None: ...
    def bury(
        self, delivery: Delivery, reason: str, reply_key: str | None = None, reply: bytes | None = None
    ) -> None: ...
    async def settle(self) -> None: ...
    # Queue the delayed messages now due; the wall-clock time the next one is due, if any.
    async def move_due(self) -> float | None: ...
    # Task ids revoked after `cursor`, and the cursor to ask from next time.
    async def revocations(self, cursor: int) -> tuple[list[str], int]: ...
    # A group's fan-in: record member `index`'s result; all of them, in order, once `size` are in.
    async def join(self, key: str, index: int, value: bytes, size: int) -> list[bytes] | None: ...
    # Wait until the clock reaches `until` (if given), or a delayed send or a revocation needs a look.
    async def idle(self, until: float | None) -> None: ...


class Batcher(Generic[T]):
    """Items added while a flush is under way, flushed together by the next one.

    The first ``add`` of an idle batcher starts a flush on the next turn of
    the event loop, so everything added until then goes in one batch: one
    pipeline, one round trip, however many tasks sent or finished. ``add``
    returns a future that the batch's flush resolves (or fails).
    """

    __slots__ = ("_done", "_flush", "_items", "_running")

    def __init__(self, flush: Callable[[list[T]], Awaitable[None]]) -> None:
        self._flush = flush
        self._items: list[T] = []
        self._done: asyncio.Future[None] | None = None
        self._running: asyncio.Task[None] | None = None

    def add(self, item: T) -> asyncio.Future[None]:
        self._items.append(item)
        loop = asyncio.get_running_loop()
        if self._done is None:
            self._done = loop.create_future()
        if self._running is None:
            self._running = loop.create_task(self._run())
        return self._done

    async def _run(self) -> None:
        try:
            while self._items:
                items, self._items = self._items, []
                done, self._done = self._done, None
                assert done is not None
                try:
                    await self._flush(items)
                except Exception as error:  # not the server being away: that is waited out
                    done.set_exception(error)
                    done.exception()  # retrieved here: only the senders that wait on it see it
                else:
                    done.set_result(None)
        finally:
            self._running = None

    async def settle(self) -> None:
        """Wait until every item added so far is flushed."""
        while self._running is not None:
            await asyncio.shield(self._running)


async def outlast(what: str, call: Callable[[], Awaitable[T]], errors: tuple[type[BaseException], ...]) -> T:
    """``await call()``, tried again while it fails with ``errors`` (the server is away), backing off.

    Waits 0.05 s after the first failure, doubling up to 2 s, and logs the
    outage once, then its end.
    """
    pause = _FIRST_BACKOFF
    failed = False
    while True:
        try:
            result = await call()
        except errors as error:
            # A client library may turn the cancellation of a call into a connection error.
            me = asyncio.current_task()
            if me is not None and me.cancelling():
                raise asyncio.CancelledError from error
            if not failed:
                logger.warning("go_async: %s failed (%r); trying again until the server is back", what, error)
                failed = True
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_BACKOFF)
            continue
        if failed:
            logger.warning("go_async: %s works again", what)
        return result
