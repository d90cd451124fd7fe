"""The client: send named tasks to workers and get typed results back, one or many at a time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Coroutine, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from .._calls import refuse_to_block
from .._checks import label, positive_int, positive_seconds
from .._clock import Clock
from .._pool import Pool
from ._memory import MemoryTransport
from ._redis import RedisTransport
from ._registry import Named, Registry
from ._sent import Call, RemoteHandle, check_call
from ._transport import DEFAULT_MAX_DELIVERIES, DEFAULT_QUEUE, Transport, decode, encode, logger
from ._worker import URL_VARIABLE, Worker

P = ParamSpec("P")
R = TypeVar("R")
X = TypeVar("X")

# How long go/map/amap, a flow step and `await handle` wait for a result at most, by default.
DEFAULT_TIMEOUT = 300.0


class Remote:
    """Sends a registry's named tasks to workers: on Redis, or to a worker in this process.

    With no ``url`` (and no ``GO_ASYNC_BROKER_URL``), a worker is embedded:
    tasks run in this process, through an in-memory queue and the same JSON
    path, at most ``concurrency`` at once (``remote.worker``), through
    ``pool``'s layers (see ``Worker``); ``clock`` (a ``ManualClock`` in
    tests) times its redeliveries. With ``url="redis://..."``, they run on
    the workers listening on ``queue`` (``python -m go_async.worker
    module:registry``); ``maxlen`` caps the queue's stream, approximately.

    ``async with remote:`` holds one connection for many calls; ``go``,
    ``map`` and their async twins ``ago``/``amap`` connect for the call when
    it is not held. They keep at most ``limit`` tasks in flight and follow
    ``Pool``'s rules: results in input order, and every failure raised
    together after all have ended. Each waits at most ``timeout`` seconds
    (300 by default) for a result, then fails with ``TimeoutError``; while
    Redis cannot be reached, sends wait for it within that time.

    Example::

        remote = Remote(registry, url="redis://localhost:6379/0")
        assert remote.map(add_one, [1, 2, 3]) == [2, 3, 4]

        async with remote:
            handle = await remote.send(add, 1, 2)
            total = await handle
    """

    __slots__ = (
        "_clock",
        "_serving",
        "_starting",
        "_stop",
        "_users",
        "_waiting",
        "limit",
        "max_deliveries",
        "maxlen",
        "queue",
        "redeliver_after",
        "registry",
        "timeout",
        "url",
        "worker",
    )

    def __init__(
        self,
        registry: Registry,
        *,
        url: str | None = None,
        queue: str = DEFAULT_QUEUE,
        limit: int = 100,
        concurrency: int = 10,
        redeliver_after: float | timedelta = 30.0,
        max_deliveries: int = DEFAULT_MAX_DELIVERIES,
        timeout: float | timedelta = DEFAULT_TIMEOUT,
        maxlen: int | None = None,
        pool: Pool | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(registry, Registry):
            msg = f"Remote: registry must be a Registry, got {registry!r} ({type(registry).__name__})"
            raise TypeError(msg)
        self.registry: Registry = registry
        self.url: str | None = url if url is not None else os.environ.get(URL_VARIABLE)
        if self.url is not None:
            label("Remote", "url", self.url)
        self.queue: str = label("Remote", "queue", queue)
        self.limit: int = positive_int("Remote", "limit", limit)
        self.redeliver_after: float = positive_seconds("Remote", "redeliver_after", redeliver_after)
        self.max_deliveries: int = positive_int("Remote", "max_deliveries", max_deliveries)
        self.timeout: float = positive_seconds("Remote", "timeout", timeout)
        self.maxlen: int | None = None if maxlen is None else positive_int("Remote", "maxlen", maxlen)
        embedded = None
        if self.url is None:
            embedded = Worker(
                registry,
                concurrency=concurrency,
                redeliver_after=self.redeliver_after,
                max_deliveries=self.max_deliveries,
                pool=pool,
            )
        self.worker: Worker | None = embedded
        self._clock = clock
        # The connection: started by its first user, stopped by its last.
        self._starting: asyncio.Future[Transport] | None = None
        self._users = 0
        # Each sent task's reply, by its id, until it arrives.
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._stop: asyncio.Event | None = None
        self._serving: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._disconnect()

    @property
    def _transport(self) -> Transport | None:
        """The connection's transport, once it has started."""
        return None if self._starting is None else _started(self._starting)

    async def _connect(self) -> Transport:
        self._users += 1
        try:
            if self._starting is None:
                # One start for every user: flow groups call stubs side by side.
                self._starting = asyncio.ensure_future(self._start())
            return await asyncio.shield(self._starting)
        except BaseException:
            await self._disconnect()
            raise

    async def _start(self) -> Transport:
        if self.url is not None:
            transport: Transport = RedisTransport(
                self.url, self.queue, redeliver_after=self.redeliver_after, maxlen=self.maxlen
            )
            await transport.open_client(self._on_reply)
            return transport
        assert self.worker is not None
        transport = MemoryTransport(redeliver_after=self.redeliver_after, clock=self._clock)
        await transport.open_client(self._on_reply)
        self._stop = asyncio.Event()
        self._serving = asyncio.ensure_future(self.worker.serve(transport, self._stop))
        ready = asyncio.ensure_future(self.worker.ready.wait())
        await asyncio.wait((self._serving, ready), return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if self._serving.done():
            self._serving.result()  # it failed to start: say why
        return transport

    async def _disconnect(self) -> None:
        self._users -= 1
        if self._users > 0 or self._starting is None:
            return
        starting, self._starting = self._starting, None
        if not starting.done():
            starting.cancel()  # its last user left before it started
            return
        transport = _started(starting)
        if transport is None:
            return
        if self._serving is not None and self._stop is not None:
            # The embedded worker's tasks end before it does.
            if self._waiting:
                await asyncio.wait(list(self._waiting.values()))
            self._stop.set()
            await self._serving
            self._serving = None
        await transport.close()

    def _on_reply(self, data: bytes) -> None:
        try:
            answer = decode(data)
            waiting = self._waiting.pop(answer["id"], None)
        except (ValueError, TypeError, KeyError) as error:
            logger.error("go_async client: a reply that is not one: %r (%s)", data[:200], error)
            return
        if waiting is None:
            logger.debug("go_async client: a reply for no task of this client: %r", answer.get("id"))
        elif not waiting.done():
            waiting.set_result(answer)

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncGenerator[Transport]:
        transport = await self._connect()
        try:
            yield transport
        finally:
            await self._disconnect()

    def call(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """``task`` with these arguments, checked and encoded now, to run later with ``go``."""
        return Call(task, self._encode(task, args, kwargs))

    async def send(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> RemoteHandle[R]:
        """Send ``task(*args, **kwargs)`` to a worker; the handle gives its result.

        Needs a held connection (``async with remote:``), which the handle uses.
        """
        if self._transport is None:
            msg = "Remote.send needs a connection: call it inside `async with remote:`"
            raise RuntimeError(msg)
        return await self._send(self._transport, Call(task, self._encode(task, args, kwargs)))

    def stub(self, task: Named[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]:
        """An async function with ``task``'s signature that runs it on a worker.

        Use it as a step of a flow, so that chains and callbacks run on
        workers: ``call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5))``.
        """
        self._check(task, "Remote.stub")

        async def on_worker(*args: P.args, **kwargs: P.kwargs) -> R:
            return await self._run(Call(task, self._encode(task, args, kwargs)))

        on_worker.__name__ = on_worker.__qualname__ = task.name
        return on_worker

    def go(self, calls: Iterable[Call[R]]) -> list[R]:
        """Run the calls on workers and return their results in order (blocks; see ``ago``)."""
        refuse_to_block("Remote.go", "await remote.ago(...)")
        return asyncio.run(self.ago(calls))

    async def ago(self, calls: Iterable[Call[R]]) -> list[R]:
        """Run the calls on workers, ``limit`` at a time; results in order, failures raised together.

        A list or tuple is checked before anything is sent; other iterables as they are consumed.
        """
        if isinstance(calls, list | tuple):
            for one in calls:
                check_call(one)
        async with self._session():
            return await self._pool().amap(self._run, calls)

    def map(self, task: Named[[X], R], inputs: Iterable[X]) -> list[R]:
        """``task(x)`` on workers for every input; results in input order (blocks; see ``amap``)."""
        refuse_to_block("Remote.map", "await remote.amap(...)")
        return asyncio.run(self.amap(task, inputs))

    async def amap(self, task: Named[[X], R], inputs: Iterable[X]) -> list[R]:
        """``task(x)`` on workers for every input, ``limit`` at a time; results in input order."""
        self._check(task, "Remote.amap")

        async def one(value: X) -> R:
            return await self._run(Call(task, self._encode(task, (value,), {})))

        async with self._session():
            return await self._pool().amap(one, inputs)

    def _pool(self) -> Pool:
        return Pool(limit=self.limit)

    async def _run(self, call: Call[R]) -> R:
        held = self._transport
        if held is not None:  # inside a map or `async with remote:`, which keep it open meanwhile
            return await (await self._send(held, call))
        async with self._session() as transport:
            handle = await self._send(transport, call)
            return await handle

    async def _send(self, transport: Transport, call: Call[R]) -> RemoteHandle[R]:
        check_call(call)
        task_id = uuid.uuid4().hex
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[task_id] = reply
        message = {
            "id": task_id,
            "task": call.task.name,
            "args": call.arguments,
            "reply": transport.reply_key,
        }
        await transport.send(encode(message))
        return RemoteHandle(call.task, task_id, reply, self.timeout)

    def _encode(self, task: Named[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        self._check(task, "Remote")
        return task.encode_arguments(args, kwargs)

    def _check(self, task: object, where: str) -> None:
        if task not in self.registry:
            msg = f"{where}: {task!r} is not a task of this remote's registry {self.registry!r}"
            raise (ValueError if isinstance(task, Named) else TypeError)(msg)


def _started(starting: asyncio.Future[Transport]) -> Transport | None:
    if not starting.done() or starting.cancelled() or starting.exception() is not None:
        return None
    return starting.result()
