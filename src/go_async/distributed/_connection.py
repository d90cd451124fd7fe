"""A client's connection: one transport for all its users, and the replies it waits for.

The first user starts it (a Redis transport, or an in-memory one with an
embedded worker), the last one to leave stops it; sends in between share
it. Each sent task's reply is a future, by task id, until it arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable
from typing import Any

from .._clock import Clock
from ._memory import MemoryTransport
from ._redis import RedisTransport
from ._transport import Transport, decode, logger
from ._worker import Worker


class Connection:
    """A remote's connection, shared by its users; ``expect`` a reply before sending its task.

    Example::

        async with connection.session() as transport:
            reply = connection.expect(task_id)
            await transport.send(data)
            answer = await reply
    """

    __slots__ = ("_make", "_serving", "_starting", "_stop", "_users", "waiting", "worker")

    def __init__(self, make: Callable[[], Transport], worker: Worker | None) -> None:
        self._make = make
        self.worker = worker
        # The connection: started by its first user, stopped by its last.
        self._starting: asyncio.Future[Transport] | None = None
        self._users = 0
        # Each sent task's reply, by its id, until it arrives.
        self.waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._stop: asyncio.Event | None = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def transport(self) -> Transport | None:
        """The transport, once it has started."""
        starting = self._starting
        if (
            starting is None
            or not starting.done()
            or starting.cancelled()
            or starting.exception() is not None
        ):
            return None
        return starting.result()

    def expect(self, task_id: str) -> asyncio.Future[dict[str, Any]]:
        """The future that ``task_id``'s reply resolves (the same one if it is expected already)."""
        reply = self.waiting.get(task_id)
        if reply is None:
            reply = self.waiting[task_id] = asyncio.get_running_loop().create_future()
        return reply

    async def connect(self) -> Transport:
        """Start the connection, or join it; every ``connect`` is matched by a ``disconnect``."""
        self._users += 1
        try:
            if self._starting is None:
                # One start for every user: flow groups call stubs side by side.
                self._starting = asyncio.ensure_future(self.start())
            return await asyncio.shield(self._starting)
        except BaseException:
            await self.disconnect()
            raise

    async def start(self) -> Transport:
        """Open the transport: a client of Redis, or memory served by the embedded worker."""
        transport = self._make()
        await transport.open_client(self._on_reply)
        if self.worker is None:
            return transport
        self._stop = asyncio.Event()
        self._serving = asyncio.ensure_future(self.worker.serve(transport, self._stop))
        ready = asyncio.ensure_future(self.worker.ready.wait())
        await asyncio.wait((self._serving, ready), return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._serving.done():
            self._serving.result()  # it failed to start: say why
        return transport

    async def disconnect(self) -> None:
        """Leave; the last user to leave stops the transport (and the embedded worker)."""
        self._users -= 1
        if self._users > 0 or self._starting is None:
            return
        starting, self._starting = self._starting, None
        if not starting.done():
            starting.cancel()  # its last user left before it started
            return
        if starting.cancelled() or starting.exception() is not None:
            return
        transport = starting.result()
        if self._serving is not None and self._stop is not None:
            # The embedded worker's tasks end before it does.
            if self.waiting:
                await asyncio.wait(list(self.waiting.values()))
            self._stop.set()
            await self._serving
            self._serving = None
        await transport.close()

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncGenerator[Transport]:
        """The transport, held for the block."""
        transport = await self.connect()
        try:
            yield transport
        finally:
            await self.disconnect()

    def _on_reply(self, data: bytes) -> None:
        try:
            answer = decode(data)
            waiting = self.waiting.pop(answer["id"], None)
        except (ValueError, TypeError, KeyError) as error:
            logger.error("go_async client: a reply that is not one: %r (%s)", data[:200], error)
            return
        if waiting is None:
            logger.debug("go_async client: a reply for no task of this client: %r", answer.get("id"))
        elif not waiting.done():
            waiting.set_result(answer)


def transport_maker(
    url: str | None, queue: str, redeliver_after: float, maxlen: int | None, clock: Clock | None
) -> Callable[[], Transport]:
    """What makes a connection's transport: Redis at ``url``, or memory on ``clock``."""
    if url is not None:
        return lambda: RedisTransport(url, queue, redeliver_after=redeliver_after, maxlen=maxlen)
    return lambda: MemoryTransport(redeliver_after=redeliver_after, clock=clock)
