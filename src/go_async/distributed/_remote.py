"""The client: send named tasks to workers and get typed results back, one or many at a time."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncGenerator, Callable, Coroutine, Generator, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, Generic, ParamSpec, Self, TypeVar, cast

from taskiq.abc.broker import AsyncBroker
from taskiq.kicker import AsyncKicker
from taskiq.result import TaskiqResult

from .._calls import refuse_to_block
from .._checks import label, positive_int, positive_seconds, timeout_seconds
from .._pool import Pool
from ._brokers import DEFAULT_QUEUE, MemoryResults, RedisResults, memory_broker, redis_broker
from ._errors import MessageRejected, RemoteError
from ._registry import Named, Registry
from ._worker import URL_VARIABLE, Worker

P = ParamSpec("P")
R = TypeVar("R")
X = TypeVar("X")

# A result in Redis is polled for: often at first, then every 50 ms at most.
_FIRST_POLL = 0.001
_LAST_POLL = 0.05


class Call(Generic[R]):
    """A named task with its arguments, checked and encoded as JSON when it is made.

    ``remote.call(task, *args)`` makes one; ``remote.go``/``ago`` run many.

    Example::

        results = remote.go([remote.call(add, 1, 2), remote.call(add, 3, 4)])  # [3, 7]
    """

    __slots__ = ("arguments", "task")

    def __init__(self, task: Named[..., R], arguments: dict[str, Any]) -> None:
        self.task: Named[..., R] = task
        self.arguments: dict[str, Any] = arguments

    def __repr__(self) -> str:
        return f"<Call {self.task.name!r} {self.arguments!r}>"


class RemoteHandle(Generic[R]):
    """A sent task: ``await handle`` (or ``handle.result(timeout)``) gives its typed result.

    A task that failed on its worker raises ``RemoteError`` there.

    Example::

        handle = await remote.send(add, 1, 2)
        assert await handle == 3
    """

    __slots__ = ("_broker", "_task", "task_id")

    def __init__(self, task: Named[..., R], task_id: str, broker: AsyncBroker) -> None:
        self._task = task
        self._broker = broker
        self.task_id: str = task_id

    @property
    def name(self) -> str:
        """The task's registered name."""
        return self._task.name

    def __repr__(self) -> str:
        return f"<RemoteHandle {self.name!r} {self.task_id}>"

    def __await__(self) -> Generator[Any, None, R]:
        return self.result().__await__()

    async def result(self, timeout: float | timedelta | None = None) -> R:  # noqa: ASYNC109 - the wait's own
        """Wait at most ``timeout`` seconds (``None``: as long as it takes) for the result."""
        seconds = timeout_seconds("RemoteHandle.result", timeout)
        async with asyncio.timeout(seconds):
            stored = await self._stored()
        return self._decode(stored)

    async def _stored(self) -> TaskiqResult[Any]:
        backend = self._broker.result_backend
        if isinstance(backend, MemoryResults):
            return await backend.wait(self.task_id)
        assert isinstance(backend, RedisResults)
        pause = _FIRST_POLL
        while (stored := await backend.take(self.task_id)) is None:
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LAST_POLL)
        return stored

    def _decode(self, stored: TaskiqResult[Any]) -> R:
        answer: object = stored.return_value
        if stored.is_err or not isinstance(answer, dict):
            raise RemoteError(self.name, self.task_id, "taskiq", repr(stored.error or answer))
        answer = cast("dict[str, Any]", answer)
        if "ok" in answer:
            return self._task.decode_result(answer["ok"])
        if "rejected" in answer:
            raise MessageRejected(self.name, self.task_id, "rejected", str(answer["rejected"]))
        if not isinstance(answer.get("error"), dict):
            raise RemoteError(self.name, self.task_id, "unknown", repr(answer))
        error = cast("dict[str, object]", answer["error"])
        raise RemoteError(
            self.name,
            self.task_id,
            str(error.get("type")),
            str(error.get("message")),
            str(error.get("traceback", "")),
        )


class Remote:
    """Sends a registry's named tasks to workers, through taskiq: in memory, or on Redis.

    With no ``url`` (and no ``GO_ASYNC_BROKER_URL``), a worker is embedded:
    tasks run in this process, through taskiq's in-memory broker and the
    same JSON path, at most ``concurrency`` at once (``remote.worker``),
    through ``pool``'s layers (see ``Worker``).
    With ``url="redis://..."``, they run on the workers listening on
    ``queue`` (``python -m go_async.worker module:registry``).

    ``async with remote:`` holds one connection for many calls; ``go``,
    ``map`` and their async twins ``ago``/``amap`` connect for the call when
    it is not held. They keep at most ``limit`` tasks in flight and follow
    ``Pool``'s rules: results in input order, and every failure raised
    together after all have ended.

    Example::

        remote = Remote(registry, url="redis://localhost:6379/0")
        assert remote.map(add_one, [1, 2, 3]) == [2, 3, 4]

        async with remote:
            handle = await remote.send(add, 1, 2)
            total = await handle
    """

    __slots__ = ("_starting", "_users", "limit", "queue", "redeliver_after", "registry", "url", "worker")

    def __init__(
        self,
        registry: Registry,
        *,
        url: str | None = None,
        queue: str = DEFAULT_QUEUE,
        limit: int = 100,
        concurrency: int = 10,
        redeliver_after: float | timedelta = 30.0,
        pool: Pool | None = None,
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
        embedded = Worker(registry, concurrency=concurrency, pool=pool) if self.url is None else None
        self.worker: Worker | None = embedded
        # The connection: started by its first user, stopped by its last.
        self._starting: asyncio.Future[AsyncBroker] | None = None
        self._users = 0

    async def __aenter__(self) -> Self:
        await self._connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._disconnect()

    @property
    def _broker(self) -> AsyncBroker | None:
        """The connection's broker, once it has started."""
        return None if self._starting is None else _started(self._starting)

    async def _connect(self) -> AsyncBroker:
        self._users += 1
        try:
            if self._starting is None:
                # One start for every user: flow groups call stubs side by side.
                self._starting = asyncio.ensure_future(self._start())
            return await asyncio.shield(self._starting)
        except BaseException:
            await self._disconnect()
            raise

    async def _start(self) -> AsyncBroker:
        if self.url is None:
            broker: AsyncBroker = memory_broker()
            assert self.worker is not None
            self.worker._attach(broker)
        else:
            broker = redis_broker(self.url, self.queue, self.redeliver_after)
        await broker.startup()
        return broker

    async def _disconnect(self) -> None:
        self._users -= 1
        if self._users > 0 or self._starting is None:
            return
        starting, self._starting = self._starting, None
        if not starting.done():
            starting.cancel()  # its last user left before it started
            return
        broker = _started(starting)
        if broker is not None:
            wait_all = getattr(broker, "wait_all", None)
            if wait_all is not None:  # the embedded worker's tasks end before it does
                await wait_all()
            await broker.shutdown()
            if self.worker is not None:
                self.worker._close()

    @contextlib.asynccontextmanager
    async def _session(self) -> AsyncGenerator[AsyncBroker]:
        broker = await self._connect()
        try:
            yield broker
        finally:
            await self._disconnect()

    def call(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """``task`` with these arguments, checked and encoded now, to run later with ``go``."""
        return Call(task, self._encode(task, args, kwargs))

    async def send(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> RemoteHandle[R]:
        """Send ``task(*args, **kwargs)`` to a worker; the handle gives its result.

        Needs a held connection (``async with remote:``), which the handle uses.
        """
        if self._broker is None:
            msg = "Remote.send needs a connection: call it inside `async with remote:`"
            raise RuntimeError(msg)
        return await self._send(self._broker, Call(task, self._encode(task, args, kwargs)))

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
                _check_call(one)
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
        async with self._session() as broker:
            handle = await self._send(broker, call)
            return await handle

    async def _send(self, broker: AsyncBroker, call: Call[R]) -> RemoteHandle[R]:
        _check_call(call)
        kicker: AsyncKicker[..., Any] = AsyncKicker(task_name=call.task.name, broker=broker, labels={})
        sent = await kicker.kiq(**call.arguments)
        return RemoteHandle(call.task, sent.task_id, broker)

    def _encode(self, task: Named[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        self._check(task, "Remote")
        return task.encode_arguments(args, kwargs)

    def _check(self, task: object, where: str) -> None:
        if task not in self.registry:
            msg = f"{where}: {task!r} is not a task of this remote's registry {self.registry!r}"
            raise (ValueError if isinstance(task, Named) else TypeError)(msg)


def _check_call(call: object) -> None:
    if not isinstance(call, Call):
        msg = f"Remote: expected a Call from remote.call(...), got {call!r} ({type(call).__name__})"
        raise TypeError(msg)


def _started(starting: asyncio.Future[AsyncBroker]) -> AsyncBroker | None:
    if not starting.done() or starting.cancelled() or starting.exception() is not None:
        return None
    return starting.result()
