"""The Redis transport: a stream per queue, a consumer group of workers, a reply list per client.

Every path batches its commands into pipelines (``Batcher``): the sends a
client makes on one turn of its event loop are one ``XADD`` pipeline; the
results a worker has on one turn are one pipeline that pushes each reply
(``RPUSH`` to its client's list) and then acknowledges and deletes its
message (``XACK``, ``XDEL``), so a message is acknowledged only after its
result is saved. A client reads its replies from its own list (``LRANGE``,
then ``LTRIM`` once handed on), woken by the server (``BLMOVE``) rather
than polling. A client or a worker holds at
most a handful of connections, however many tasks are in flight.

A message whose worker died stays pending; once idle ``redeliver_after``
seconds, another worker claims it, and after ``max_deliveries`` hand-outs
it goes to the dead letters (the stream ``<queue>:dead``) instead. While
the server cannot be reached, every path waits for it, backing off.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from .._clock import SYSTEM_CLOCK, Clock
from ._redis_keys import Keys, push_replies, text
from ._transport import (
    RESULT_TTL_SECONDS,
    Batcher,
    DeadLetter,
    Delivery,
    Finished,
    Follow,
    logger,
    outlast,
)

# What "the server is away" looks like, from redis-py (loading after a restart included).
AWAY: tuple[type[BaseException], ...] = (RedisConnectionError, RedisTimeoutError, OSError)
# Blocking reads hold one connection each; sends, results and the timers share the others.
_CONNECTIONS = 4
# The longest a client's reader waits for a reply before it looks whether it should stop.
_REPLY_WAIT = 0.25
# The most replies a client reads in one round trip.
_REPLIES_READ = 1000
# How often a worker looks for delayed messages now due and for revocations.
_LOOK_EVERY = 0.2


class RedisTransport:
    """A queue on a Redis server: the client's sends and replies, the workers' reads and results.

    Example::

        transport = RedisTransport("redis://localhost:6379/0", "orders", redeliver_after=30.0)
    """

    def __init__(
        self,
        url: str,
        queue: str,
        *,
        redeliver_after: float,
        maxlen: int | None = None,
    ) -> None:
        self.queue = queue
        self.reply_key = f"{queue}:reply:{uuid.uuid4().hex}"
        self._redeliver_ms = max(1, int(redeliver_after * 1000))
        self._maxlen = maxlen
        pool: BlockingConnectionPool = BlockingConnectionPool.from_url(url, max_connections=_CONNECTIONS)  # pyright: ignore[reportUnknownMemberType]  # redis-py types **kwargs loosely
        self._redis = Redis(connection_pool=pool)
        self._keys = Keys(self._redis, queue, maxlen)
        self._sends: Batcher[Follow] = Batcher(self._flush_sends)
        self._finishes: Batcher[Finished] = Batcher(self._flush_finishes)
        self._burials: Batcher[tuple[Delivery, str]] = Batcher(self._flush_burials)
        self._replies: Batcher[tuple[str, bytes]] = Batcher(self._flush_replies)
        self.away: tuple[type[BaseException], ...] = AWAY
        self.clock: Clock = SYSTEM_CLOCK
        self.lost_replies = False
        # Messages finished or refused whose acknowledgement is not on the server yet.
        self._unsettled: set[str] = set()
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    # --- the client's side ------------------------------------------------------------

    async def open_client(self, on_reply: Callable[[bytes], object]) -> None:
        """Check the server answers (an unreachable one is an error here), then read replies."""
        await self._redis.ping()  # pyright: ignore[reportUnknownMemberType]  # redis-py types **kwargs loosely
        self._reader = asyncio.get_running_loop().create_task(self._read_replies(on_reply))

    async def send(self, data: bytes, due: float | None = None) -> None:
        """Queue ``data`` (at wall-clock time ``due``, if given), with the other sends of this turn."""
        await self._sends.add((data, due))

    async def _flush_sends(self, messages: list[Follow]) -> None:
        once = uuid.uuid4().hex  # the same for every try of this batch: it is queued once

        async def xadd_all() -> None:
            pipe = self._redis.pipeline(transaction=False)
            self._keys.add(pipe, once, messages)
            await pipe.execute()

        await outlast(f"sending {len(messages)} tasks to {self.queue!r}", xadd_all, AWAY)

    async def _read_replies(self, on_reply: Callable[[bytes], object]) -> None:
        # Replies are read, handed on, and only then trimmed from the list: a
        # connection lost in between loses none (a reply read twice is ignored).
        key = self.reply_key

        async def next_replies() -> list[bytes]:
            replies: Any = await self._redis.lrange(key, 0, _REPLIES_READ - 1)
            if not replies:
                # Wait for one without taking it (moved from the head to the head).
                # Short waits: redis-py cannot always be cancelled in a blocking
                # read, so the reader stops by seeing `_closing` between waits.
                await self._redis.blmove(key, key, _REPLY_WAIT, "LEFT", "LEFT")  # type: ignore[arg-type]  # Redis takes a float
            return list(replies)

        while not self._closing:
            try:
                replies = await outlast("reading replies", next_replies, AWAY)
                if replies:
                    for reply in replies:
                        on_reply(reply)
                    await outlast("reading replies", partial(self._redis.ltrim, key, len(replies), -1), AWAY)
            except Exception:  # anything but the server being away: logged, and the reader goes on
                logger.exception("go_async client: reading replies failed; trying again in a second")
                await asyncio.sleep(1)

    async def revoke(self, task_id: str) -> None:
        """Mark ``task_id`` revoked: a worker drops it when it arrives, or cancels it if it runs."""
        await outlast(f"revoking {task_id}", partial(self._keys.revoke, task_id), AWAY)

    async def kept(self, task_id: str, wait: float) -> bytes | None:
        """The result kept under ``task_id``, waiting at most ``wait`` seconds for it to be saved."""
        return await self._keys.kept(task_id, wait, AWAY)

    async def dead_letters(self) -> list[DeadLetter]:
        """The dead letters, oldest first."""
        return await outlast("reading the dead letters", self._keys.dead_letters, AWAY)

    async def resend(self, entry: str, data: bytes) -> None:
        """Queue ``data`` in the place of the dead letter ``entry``, which is removed."""

        async def move() -> None:
            pipe = self._redis.pipeline(transaction=True)
            self._keys.add(pipe, entry, [(data, None)])
            pipe.xdel(self._keys.dead, entry)
            await pipe.execute()

        await outlast(f"sending the dead letter {entry} again", move, AWAY)

    async def close(self) -> None:
        """Flush what is pending, stop reading replies, drop the connections."""
        await self.settle()
        self._closing = True
        if self._reader is not None:
            await self._reader
            self._reader = None
        with contextlib.suppress(*AWAY):  # a server that is away keeps the list a day at most
            await self._redis.delete(self.reply_key)
        await self._redis.aclose(close_connection_pool=True)

    # --- the worker's side -------------------------------------------------------------

    async def open_worker(self) -> None:
        """Make the consumer group if it is not there (a server restarted empty loses it too)."""
        await outlast(f"creating the group of {self.queue!r}", self._make_group, AWAY)

    async def _make_group(self) -> None:
        try:
            # From "0", not "$": messages sent before the group existed are run too.
            await self._redis.xgroup_create(self.queue, self.queue, id="0", mkstream=True)
        except ResponseError as error:
            if "BUSYGROUP" not in str(error):
                raise

    async def take(self, consumer: str, count: int, wait: float) -> list[Delivery]:
        """Up to ``count`` new messages for ``consumer``, waiting at most ``wait`` seconds for one."""
        try:
            fetched: Any = await self._redis.xreadgroup(
                self.queue, consumer, {self.queue: ">"}, count=count, block=max(1, int(wait * 1000))
            )
        except AWAY:
            self.lost_replies = True  # the server may have handed over messages all the same
            raise
        except ResponseError as error:
            if "NOGROUP" not in str(error):
                raise
            await self.open_worker()
            return []
        return [
            Delivery(text(message_id), fields.get(b"data", b""))
            for _stream, messages in fetched or ()
            for message_id, fields in messages
        ]

    def wake(self) -> None:
        """A ``take`` that waits ends within its ``wait`` anyway: redis-py's blocking reads are not cut."""

    async def recover(self, consumer: str, running: set[str]) -> list[Delivery]:
        """The messages the group gave ``consumer`` that it neither runs nor has finished."""
        mine: Any = await self._redis.xreadgroup(self.queue, consumer, {self.queue: "0"})
        self.lost_replies = False
        skip = running | self._unsettled
        return [
            Delivery(text(message_id), fields.get(b"data", b""))
            for _stream, messages in mine or ()
            for message_id, fields in messages
            if fields and text(message_id) not in skip
        ]

    async def give_back(self, deliveries: list[Delivery]) -> None:
        """Put messages taken but not started back on the queue at once, for another worker."""
        if not deliveries:
            return

        once = uuid.uuid4().hex

        async def requeue() -> None:
            pipe = self._redis.pipeline(transaction=True)
            self._keys.add(pipe, once, [(delivery.data, None) for delivery in deliveries])
            ids = [delivery.message_id for delivery in deliveries]
            self._done_with(pipe, ids)
            await pipe.execute()

        await outlast(f"giving back {len(deliveries)} messages", requeue, AWAY)

    async def reclaim(self, consumer: str, count: int) -> list[Delivery]:
        """Up to ``count`` messages idle ``redeliver_after`` seconds (their worker died), now its."""
        pending: Any = await self._redis.xpending_range(
            self.queue, self.queue, min="-", max="+", count=count, idle=self._redeliver_ms
        )
        if not pending:
            return []
        times = {text(entry["message_id"]): int(entry["times_delivered"]) for entry in pending}
        claimed: Any = await self._redis.xclaim(
            self.queue, self.queue, consumer, min_idle_time=self._redeliver_ms, message_ids=list(times)
        )
        found: list[Delivery] = []
        for message_id, fields in claimed:
            claimed_id = text(message_id)
            if fields is None:  # deleted from the stream meanwhile (Redis 6.2 still lists it)
                self.finish(Finished(claimed_id))
                continue
            # XCLAIM counted this hand-out too.
            found.append(Delivery(claimed_id, fields.get(b"data", b""), times.get(claimed_id, 0) + 1))
        return found

    async def touch(self, consumer: str, message_ids: list[str]) -> None:
        """Tell the group ``consumer`` still runs these, so that nobody reclaims them."""
        if message_ids:
            await self._redis.xclaim(
                self.queue,
                self.queue,
                consumer,
                min_idle_time=0,
                message_ids=list[Any](message_ids),
                justid=True,
            )

    def finish(self, finished: Finished) -> None:
        """Save the reply, queue what follows, then acknowledge the message: batched."""
        self._unsettled.add(finished.message_id)
        self._finishes.add(finished)

    async def _flush_finishes(self, batch: list[Finished]) -> None:
        async def answer_and_ack() -> None:
            pipe = self._redis.pipeline(transaction=False)
            push_replies(
                pipe, [(done.reply_key, done.reply) for done in batch if done.reply_key and done.reply]
            )
            for done in batch:
                self._keys.leave(pipe, done)
            self._done_with(pipe, [done.message_id for done in batch])
            await pipe.execute()

        await outlast(f"saving {len(batch)} results", answer_and_ack, AWAY)
        self._unsettled.difference_update(done.message_id for done in batch)

    def bury(
        self, delivery: Delivery, reason: str, reply_key: str | None = None, reply: bytes | None = None
    ) -> None:
        """Move the message to the dead letters with ``reason`` (telling its sender, if given): batched."""
        self._unsettled.add(delivery.message_id)
        self._burials.add((delivery, reason))
        if reply_key is not None and reply is not None:
            self._replies.add((reply_key, reply))

    async def _flush_burials(self, buried: list[tuple[Delivery, str]]) -> None:
        async def move() -> None:
            pipe = self._redis.pipeline(transaction=False)
            for delivery, reason in buried:
                fields = {b"data": delivery.data, b"reason": reason.encode(), b"id": delivery.message_id}
                pipe.xadd(self._keys.dead, fields)  # type: ignore[arg-type]
            ids = [delivery.message_id for delivery, _ in buried]
            self._done_with(pipe, ids)
            await pipe.execute()

        await outlast(f"moving {len(buried)} messages to the dead letters", move, AWAY)
        self._unsettled.difference_update(delivery.message_id for delivery, _ in buried)

    async def _flush_replies(self, replies: list[tuple[str, bytes]]) -> None:
        async def push() -> None:
            pipe = self._redis.pipeline(transaction=False)
            push_replies(pipe, replies)
            await pipe.execute()

        await outlast(f"answering {len(replies)} refused messages", push, AWAY)

    def _done_with(self, pipe: Any, message_ids: list[str]) -> None:
        # Acknowledged, and deleted: the stream holds only the messages not yet done.
        pipe.xack(self.queue, self.queue, *message_ids)
        pipe.xdel(self.queue, *message_ids)

    async def settle(self) -> None:
        """Wait until every send, result and burial so far is on the server."""
        for batcher in (self._sends, self._finishes, self._burials, self._replies):
            await batcher.settle()

    async def move_due(self) -> float | None:
        """Queue the delayed messages now due; when the next one is due, if any."""
        return await self._keys.move_due(self.clock.wall().timestamp())

    async def idle(self, until: float | None) -> None:
        """Sleep until ``until`` on the clock, or the next look for due messages and revocations."""
        look = self.clock.time() + _LOOK_EVERY
        await self.clock.sleep_until(look if until is None else min(until, look))

    async def revocations(self, cursor: int) -> tuple[list[str], int]:
        """The task ids revoked after ``cursor``, and the cursor to ask from next."""
        return await self._keys.revocations(cursor)

    async def join(self, key: str, index: int, value: bytes, size: int) -> list[bytes] | None:
        """Record a group member's result; all of them, in order, once ``size`` are in."""
        return await self._keys.join(key, index, value, size, RESULT_TTL_SECONDS * 1000)
