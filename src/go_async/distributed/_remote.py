"""The client: send named tasks to workers and get typed results back, one or many at a time."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Coroutine, Iterable
from datetime import timedelta
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

from .._calls import refuse_to_block
from .._checks import label, positive_int, positive_seconds
from .._clock import Clock
from .._flow import Flow
from .._pool import Pool
from ._connection import Connection, transport_maker
from ._plan import STUBS, begin, compile_flow, to_json
from ._registry import Named, Registry
from ._sent import Call, RemoteHandle, check_call
from ._transport import DEFAULT_MAX_DELIVERIES, DEFAULT_QUEUE, DeadLetter, Transport, decode, encode
from ._worker import URL_VARIABLE, Worker

P = ParamSpec("P")
R = TypeVar("R")
X = TypeVar("X")
B = TypeVar("B")

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
    module:registry``); ``maxlen`` caps the queue's stream.

    ``async with remote:`` holds one connection for many calls; ``go``,
    ``map`` and their async twins ``ago``/``amap`` connect for the call when
    it is not held. They keep at most ``limit`` tasks in flight and follow
    ``Pool``'s rules: results in input order, and every failure raised
    together after all have ended. Each waits at most ``timeout`` seconds
    (300 by default) for a result, then fails with ``TimeoutError``; while
    Redis cannot be reached, sends wait for it within that time.

    Inside ``async with remote:``, ``send``/``submit`` send one task (a
    ``Call`` may be delayed), ``start`` a whole flow that runs on workers
    with no client needed, ``revoke`` stops a sent task, and
    ``dead_letters``/``resend`` show and retry what no worker could run.
    With ``keep_results`` (seconds), results are also kept under their task
    id for that long, for ``result`` to read from any client.

    Example::

        remote = Remote(registry, url="redis://localhost:6379/0")
        assert remote.map(add_one, [1, 2, 3]) == [2, 3, 4]

        async with remote:
            handle = await remote.send(add, 1, 2)
            total = await handle
    """

    __slots__ = (
        "_connection",
        "keep_results",
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
        keep_results: float | timedelta | None = None,
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
        self.keep_results: float | None = (
            None if keep_results is None else positive_seconds("Remote", "keep_results", keep_results)
        )
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
        make = transport_maker(self.url, self.queue, self.redeliver_after, self.maxlen, clock)
        self._connection = Connection(make, embedded)

    async def __aenter__(self) -> Self:
        await self._connection.connect()
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self._connection.disconnect()

    @property
    def _transport(self) -> Transport | None:
        """The connection's transport, once it has started."""
        return self._connection.transport

    def _held(self, where: str) -> Transport:
        transport = self._connection.transport
        if transport is None:
            msg = f"{where} needs a connection: call it inside `async with remote:`"
            raise RuntimeError(msg)
        return transport

    def call(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Call[R]:
        """``task`` with these arguments, checked and encoded now, to run later with ``go``."""
        return Call(task, self._encode(task, args, kwargs))

    async def send(self, task: Named[P, R], /, *args: P.args, **kwargs: P.kwargs) -> RemoteHandle[R]:
        """Send ``task(*args, **kwargs)`` to a worker; the handle gives its result.

        Needs a held connection (``async with remote:``), which the handle uses.
        """
        transport = self._held("Remote.send")
        return await self._send(transport, Call(task, self._encode(task, args, kwargs)))

    async def submit(self, call: Call[R], /) -> RemoteHandle[R]:
        """Send a ``Call`` (delayed, if it says so) to a worker; the handle gives its result."""
        check_call(call)
        self._check(call.task, "Remote.submit")
        return await self._send(self._held("Remote.submit"), call)

    async def start(self, flow: Flow[X, B], value: X, /) -> RemoteHandle[B]:
        """Send ``flow`` to run on ``value`` on workers, step after step, with no client needed.

        Each step must call a stub (``remote.stub(task)``). A worker that
        ends a step queues the next one before it acknowledges its own, so
        the flow goes on if this client goes away; the handle gives the
        last step's result, or raises ``FlowError`` naming the step that failed.
        """
        plan, decode_value = compile_flow(flow)
        transport = self._held("Remote.start")
        task_id = uuid.uuid4().hex
        reply = self._connection.expect(task_id)
        base = self._message(task_id, "", transport)
        first = begin(plan, to_json(value, "the flow's input"), base)
        await asyncio.gather(*(transport.send(data) for data in first))  # one batch
        return RemoteHandle(repr(flow), task_id, reply, self.timeout, decode_value)

    async def revoke(self, task: RemoteHandle[Any] | str, /) -> None:
        """Revoke a sent task (a handle, or its id): dropped if it has not started, cancelled if it runs.

        Its handle then raises ``TaskRevoked``; a task that had already ended
        keeps its result. A delayed task is dropped once it is due.
        """
        task_id = task.task_id if isinstance(task, RemoteHandle) else task
        if not isinstance(task_id, str):
            msg = f"Remote.revoke: expected a RemoteHandle or a task id, got {task!r} ({type(task).__name__})"
            raise TypeError(msg)
        await self._held("Remote.revoke").revoke(task_id)

    async def dead_letters(self) -> list[DeadLetter]:
        """The messages no worker could run (refused, or out of deliveries), oldest first, with why."""
        return await self._held("Remote.dead_letters").dead_letters()

    async def resend(self, letter: DeadLetter, /) -> RemoteHandle[Any]:
        """Send a dead letter's task again, as a new task whose result comes to this client."""
        if not isinstance(letter, DeadLetter):
            msg = f"Remote.resend: expected a DeadLetter, got {letter!r} ({type(letter).__name__})"
            raise TypeError(msg)
        named = self.registry.get(letter.task)
        if named is None:
            msg = f"Remote.resend: dead letter {letter.entry} names no task of this registry: {letter.task!r}"
            raise ValueError(msg)
        transport = self._held("Remote.resend")
        message = decode(letter.data)
        message.pop("attempt", None)
        task_id = uuid.uuid4().hex
        reply = self._connection.expect(task_id)
        fresh = self._message(task_id, named.name, transport)
        del fresh["args"]  # the letter's own stay
        message |= fresh
        await transport.resend(letter.entry, encode(message))
        return RemoteHandle(named.name, task_id, reply, self.timeout, named.decode_result)

    async def result(self, task: Named[..., R], task_id: str, /, timeout: float | timedelta = 0.0) -> R:  # noqa: ASYNC109 - the wait's own
        """The result of ``task`` sent as ``task_id`` by any client with ``keep_results``.

        Waits at most ``timeout`` seconds for it to be saved; ``LookupError``
        if there is none by then (never kept, expired, or not done yet).
        """
        self._check(task, "Remote.result")
        seconds = positive_seconds("Remote.result", "timeout", timeout) if timeout else 0.0
        data = await self._held("Remote.result").kept(task_id, seconds)
        if data is None:
            msg = f"Remote.result: no result kept for {task.name!r} ({task_id})"
            raise LookupError(msg)
        reply: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        reply.set_result(decode(data))
        return await RemoteHandle(task.name, task_id, reply, self.timeout, task.decode_result)

    def stub(self, task: Named[P, R], /) -> Callable[P, Coroutine[Any, Any, R]]:
        """An async function with ``task``'s signature that runs it on a worker.

        Use it as a step of a flow, so that chains and callbacks run on
        workers: ``call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5))``.
        """
        self._check(task, "Remote.stub")

        async def on_worker(*args: P.args, **kwargs: P.kwargs) -> R:
            return await self._run(Call(task, self._encode(task, args, kwargs)))

        on_worker.__name__ = on_worker.__qualname__ = task.name
        STUBS[on_worker] = task  # so that `start` can send a flow of stubs as data
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
        async with self._connection.session():
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

        async with self._connection.session():
            return await self._pool().amap(one, inputs)

    def _pool(self) -> Pool:
        return Pool(limit=self.limit)

    async def _run(self, call: Call[R]) -> R:
        held = self._transport
        if held is not None:  # inside a map or `async with remote:`, which keep it open meanwhile
            return await (await self._send(held, call))
        async with self._connection.session() as transport:
            handle = await self._send(transport, call)
            return await handle

    async def _send(self, transport: Transport, call: Call[R]) -> RemoteHandle[R]:
        check_call(call)
        task_id = uuid.uuid4().hex
        reply = self._connection.expect(task_id)
        message = self._message(task_id, call.task.name, transport)
        message["args"] = call.arguments
        due, timeout = None, self.timeout
        if call.delay is not None or call.when is not None:  # reading the wall clock costs microseconds
            now = transport.clock.wall()
            due = call.due(now)
            assert due is not None
            timeout += max(0.0, due - now.timestamp())  # the time limit runs from when it is due
        await transport.send(encode(message), due)
        return RemoteHandle(call.task.name, task_id, reply, timeout, call.task.decode_result)

    def _message(self, task_id: str, name: str, transport: Transport) -> dict[str, Any]:
        message: dict[str, Any] = {"id": task_id, "task": name, "args": {}, "reply": transport.reply_key}
        if self.keep_results is not None:
            message["keep"] = self.keep_results
        return message

    def _encode(self, task: Named[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        self._check(task, "Remote")
        return task.encode_arguments(args, kwargs)

    def _check(self, task: object, where: str) -> None:
        if task not in self.registry:
            msg = f"{where}: {task!r} is not a task of this remote's registry {self.registry!r}"
            raise (ValueError if isinstance(task, Named) else TypeError)(msg)
