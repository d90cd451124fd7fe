"""The taskiq brokers and result backends go_async uses: in memory, and Redis streams.

Both speak JSON only: taskiq's Redis result backend defaults to pickle, so it
is always given taskiq's JSON serializer here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from taskiq import AckableMessage, InMemoryBroker
from taskiq.brokers.inmemory_broker import InmemoryResultBackend
from taskiq.message import BrokerMessage
from taskiq.result import TaskiqResult
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker
from taskiq_redis.exceptions import ResultIsMissingError

logger = logging.getLogger("go_async.distributed")

DEFAULT_QUEUE = "go_async"
# A result nobody collects expires after a day instead of staying in Redis forever.
RESULT_TTL_SECONDS = 24 * 3600


class MemoryResults(InmemoryResultBackend[Any]):
    """Results kept until their handle reads them once; a handle waits on an event, not a poll."""

    def __init__(self) -> None:
        super().__init__(max_stored_results=-1)
        self._waiters: dict[str, asyncio.Future[None]] = {}

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        await super().set_result(task_id, result)
        waiter = self._waiters.pop(task_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, task_id: str) -> TaskiqResult[Any]:
        if task_id not in self.results:
            waiter = self._waiters.setdefault(task_id, asyncio.get_running_loop().create_future())
            await asyncio.shield(waiter)  # a wait that times out leaves the result to a later wait
        return self.results.pop(task_id)


def memory_broker() -> InMemoryBroker:
    """taskiq's in-memory broker: a kick runs the task at once, in this process."""
    broker = InMemoryBroker(cast_types=False)
    broker.with_result_backend(MemoryResults())
    return broker


def redis_broker(url: str, queue: str, redeliver_after: float, fetch: int = 1) -> StreamBroker:
    """A Redis-streams broker and result backend on ``url``; a worker's reads take up to ``fetch``."""
    broker = StreamBroker(url, queue=queue, redeliver_after=redeliver_after, fetch=fetch)
    broker.with_result_backend(RedisResults(url))
    return broker


class RedisResults(RedisAsyncResultBackend[Any]):
    """taskiq-redis's result backend, in JSON, read once, with one client for all its calls.

    Upstream builds a new ``Redis`` client object for every call, which cost
    about a third of a sending process's time in the benchmark.
    """

    def __init__(self, url: str) -> None:
        super().__init__(
            url, keep_results=False, result_ex_time=RESULT_TTL_SECONDS, serializer=JSONSerializer()
        )
        self._redis = Redis(connection_pool=self.redis_pool)

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        value = self.serializer.dumpb(result.model_dump(mode="json"))
        await self._redis.set(task_id, value, ex=RESULT_TTL_SECONDS)

    async def is_result_ready(self, task_id: str) -> bool:
        return bool(await self._redis.exists(task_id))

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
        result = await self.take(task_id)
        if result is None:
            raise ResultIsMissingError
        return result

    async def take(self, task_id: str) -> TaskiqResult[Any] | None:
        """The result, removed from Redis; ``None`` while there is none."""
        stored: bytes | None = await self._redis.getdel(task_id)  # type: ignore[assignment]
        if stored is None:
            return None
        return TaskiqResult[Any].model_validate(self.serializer.loadb(stored))


class StreamBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, with the at-least-once guarantees made to hold.

    A message stays in the consumer group's pending list until the worker
    that runs it acknowledges it, after its result is saved. Three changes
    to the upstream ``listen``/ack:

    - Pending messages idle for ``redeliver_after`` seconds (their worker
      died) are reclaimed on a timer. Upstream only looks after a read that
      returned new messages, so on a quiet queue a dead worker's message
      waited for the next send (and its reclaim lock had no expiry:
      taskiq-redis issue #131). ``XAUTOCLAIM`` is atomic on its own.
    - A live worker touches its running messages every third of
      ``redeliver_after``, so a long task is not taken from a worker that is
      still on it.
    - An acknowledged message is deleted from the stream, so the stream
      holds only the messages not yet done.
    """

    def __init__(self, url: str, *, queue: str, redeliver_after: float, fetch: int) -> None:
        self._beat = redeliver_after / 3
        super().__init__(
            url,
            queue_name=queue,
            consumer_group_name=queue,
            consumer_name=f"{queue}-{uuid.uuid4().hex[:12]}",
            # "0" and not "$": messages sent before the group exists are kept for it.
            consumer_id="0",
            idle_timeout=int(redeliver_after * 1000),
            xread_block=max(1, int(self._beat * 1000)),
            # A read takes as many as the worker runs at once: one round trip per message
            # capped a worker near 1,500 a second; more would hold messages another could run.
            xread_count=fetch,
        )
        self._running: set[bytes] = set()
        self._heart: asyncio.Task[None] | None = None
        # One client object for every call: upstream makes one per call, at a cost (see RedisResults).
        self._redis = Redis(connection_pool=self.connection_pool)

    async def kick(self, message: BrokerMessage) -> None:
        await self._redis.xadd(self.queue_name, {b"data": message.message})

    async def startup(self) -> None:
        await super().startup()
        if self.is_worker_process and self._heart is None:
            self._heart = asyncio.create_task(self._keep_alive(), name="go_async worker heartbeat")

    async def shutdown(self) -> None:
        if self._heart is not None:
            self._heart.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._heart
            self._heart = None
        await super().shutdown()

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        loop = asyncio.get_running_loop()
        async with Redis(connection_pool=self.connection_pool) as redis:
            next_reclaim = 0.0
            cursor: Any = "0-0"  # where the next look through the pending list goes on from
            while True:
                if loop.time() >= next_reclaim:
                    next_reclaim = loop.time() + self._beat
                    reply: Any = await redis.xautoclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=self.idle_timeout,
                        start_id=cursor,
                        count=self.count,
                    )
                    cursor, claimed = reply[0], reply[1]
                    for message_id, fields in claimed:
                        if fields is None:  # deleted from the stream (Redis 6.2 still lists it)
                            await redis.xack(self.queue_name, self.consumer_group_name, message_id)
                            continue
                        logger.warning("go_async worker: redelivering abandoned message %s", message_id)
                        yield self._ackable(message_id, fields)
                fetched: Any = await redis.xreadgroup(
                    self.consumer_group_name,
                    self.consumer_name,
                    {self.queue_name: ">"},
                    block=self.block,
                    count=self.count,
                )
                for _stream, messages in fetched or ():
                    for message_id, fields in messages:
                        yield self._ackable(message_id, fields)

    def _ackable(self, message_id: bytes, fields: dict[bytes, bytes]) -> AckableMessage:
        self._running.add(message_id)
        # An entry with no data is still handed on, so that the worker rejects and removes it.
        return AckableMessage(data=fields.get(b"data", b""), ack=self._acker(message_id))

    def _acker(self, message_id: bytes) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            pipe = self._redis.pipeline(transaction=True)
            pipe.xack(self.queue_name, self.consumer_group_name, message_id)
            pipe.xdel(self.queue_name, message_id)
            await pipe.execute()
            self._running.discard(message_id)

        return ack

    async def _keep_alive(self) -> None:
        while True:
            await asyncio.sleep(self._beat)
            ids: list[Any] = list(self._running)
            if not ids:
                continue
            try:
                await self._redis.xclaim(
                    self.queue_name,
                    self.consumer_group_name,
                    self.consumer_name,
                    min_idle_time=0,
                    message_ids=ids,
                    justid=True,
                )
            except Exception:  # the next beat tries again; a missed one only risks a duplicate run
                logger.exception("go_async worker: heartbeat for %d running messages failed", len(ids))
