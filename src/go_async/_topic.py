"""Topic[T]: typed publish/subscribe between running tasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from types import TracebackType
from typing import Generic, Literal, Protocol, Self, TypeVar, get_args

from . import _explore
from ._checks import label, positive_int

T = TypeVar("T")

WhenFull = Literal["wait", "drop_oldest", "drop_newest"]
"""What publishing does when a subscriber's buffer is full (see ``Topic``)."""

_WHEN_FULL: tuple[str, ...] = get_args(WhenFull)


class _Owner(Protocol):
    """The running pool whose topic this is: it counts its tasks that wait on a subscription."""

    def _listening(self, change: int) -> bool: ...


class Topic(Generic[T]):
    """A named channel: each subscriber gets every message published after it subscribed, in order.

    Every subscriber has a buffer of ``buffer`` messages. When a slow
    subscriber's buffer is full, ``when_full`` decides, for every publisher:

    - ``"wait"`` (the default): ``publish`` waits until that subscriber has
      room (backpressure); publishes are then delivered one at a time, in order.
    - ``"drop_oldest"``: the subscriber loses its oldest unread message.
    - ``"drop_newest"``: the subscriber does not get the new message.

    Dropped messages are counted on the subscription and on the topic
    (``dropped``), never lost silently. Each message reaches the subscribers
    in the order they subscribed, or, while interleavings are explored
    (``set_testing(explore=seed)``), in an order drawn from the seed. A plain
    ``def`` task publishes with ``publish_from_thread``. ``close()`` ends every subscription once its
    buffered messages are read. A running pool's topics
    (``pool.topic(name, kind)``) close when the pool does.

    Example::

        prices: Topic[float] = Topic("prices", buffer=10, when_full="drop_oldest")

        with prices.subscribe() as updates:
            await prices.publish(101.5)
            async for price in updates:
                ...
    """

    __slots__ = (
        "_buffer",
        "_closed",
        "_delivering",
        "_loop",
        "_owner",
        "_subscribers",
        "_when_full",
        "dropped",
        "name",
    )

    def __init__(self, name: str, *, buffer: int = 100, when_full: WhenFull = "wait") -> None:
        self.name: str = label("Topic", "name", name)
        self._buffer = positive_int("Topic", "buffer", buffer)
        if when_full not in _WHEN_FULL:
            msg = f"Topic: when_full must be one of {', '.join(map(repr, _WHEN_FULL))}, got {when_full!r}"
            raise ValueError(msg)
        self._when_full: WhenFull = when_full
        self._subscribers: list[Subscription[T]] = []
        self._closed = False
        # Publishers that wait for room deliver one at a time, so that every
        # subscriber sees the same order.
        self._delivering = asyncio.Lock()
        self._owner: _Owner | None = None
        # The event loop of the subscribers, for publishers in threads.
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped: int = 0
        """Messages dropped by every subscriber so far."""

    @property
    def buffer(self) -> int:
        """How many unread messages each subscriber holds at most."""
        return self._buffer

    @property
    def when_full(self) -> WhenFull:
        """What publishing does when a subscriber's buffer is full."""
        return self._when_full

    @property
    def closed(self) -> bool:
        """Whether the topic was closed: no more publishing or subscribing."""
        return self._closed

    @property
    def subscribers(self) -> int:
        """How many subscriptions are open."""
        return len(self._subscribers)

    def subscribe(self) -> Subscription[T]:
        """A subscription to every message published from now on; ``with`` ends it."""
        if self._closed:
            msg = f"Topic.subscribe(): the topic {self.name!r} is closed"
            raise RuntimeError(msg)
        subscription = Subscription(self)
        self._subscribers.append(subscription)
        if self._loop is None:
            # Subscribed outside a loop: its first wait for a message tells.
            with contextlib.suppress(RuntimeError):
                self._loop = asyncio.get_running_loop()
        return subscription

    async def publish(self, message: T) -> None:
        """Send ``message`` to every subscriber; with ``when_full="wait"``, wait for room."""
        self._check_open()
        if self._when_full != "wait":
            subscribers = self._subscribers
            if _explore.active is not None:  # exploring: the order of delivery is drawn from the seed
                subscribers = _explore.active.order(subscribers)
            for subscription in subscribers:
                subscription._offer(message)
            return
        async with self._delivering:
            self._check_open()
            subscribers = list(self._subscribers)
            if _explore.active is not None:  # exploring: the order of delivery is drawn from the seed
                subscribers = _explore.active.order(subscribers)
            for subscription in subscribers:
                await subscription._put(message)
            if self._closed:
                msg = f"Topic.publish(): the topic {self.name!r} closed while the message waited for room"
                raise RuntimeError(msg)

    def publish_from_thread(self, message: T) -> None:
        """``publish`` for a plain ``def`` task, which runs in a worker thread: blocks until delivered.

        It hands the message to the subscribers' event loop and waits there
        as ``publish`` would. Called on that loop's own thread it would block
        the loop: use ``await topic.publish(message)`` there.
        """
        self._check_open()
        loop = self._loop
        if loop is None:
            return  # nobody ever subscribed: a message published now reaches nobody
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            msg = "Topic.publish_from_thread(): called on the event loop; use `await topic.publish(...)`"
            raise RuntimeError(msg)
        asyncio.run_coroutine_threadsafe(self.publish(message), loop).result()

    def close(self) -> None:
        """End the topic: subscriptions end once their buffered messages are read."""
        self._closed = True
        for subscription in self._subscribers:
            subscription._end()
        self._subscribers.clear()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._subscribers)} subscribers"
        return f"<Topic {self.name!r} buffer={self._buffer} when_full={self._when_full!r}: {state}>"

    def _check_open(self) -> None:
        if self._closed:
            msg = f"Topic.publish(): the topic {self.name!r} is closed"
            raise RuntimeError(msg)


class Subscription(Generic[T]):
    """Messages of a topic, read with ``async for``; from ``Topic.subscribe()``.

    Iteration ends once the subscription is closed (by ``close()``, leaving
    its ``with`` block, or the topic closing) and its buffered messages are
    read. ``dropped`` counts the messages it lost to a full buffer.

    Example::

        with topic.subscribe() as events:
            async for event in events:
                handle(event)
    """

    __slots__ = ("_ended", "_messages", "_reader", "_room", "_topic", "dropped")

    def __init__(self, topic: Topic[T]) -> None:
        self._topic = topic
        self._messages: deque[T] = deque()
        self._ended = False
        self._reader: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self.dropped: int = 0
        """Messages this subscription lost to a full buffer."""

    @property
    def pending(self) -> int:
        """Messages received and not read yet."""
        return len(self._messages)

    def close(self) -> None:
        """Stop receiving; iteration ends once the buffered messages are read."""
        if self in self._topic._subscribers:
            self._topic._subscribers.remove(self)
        self._end()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> T:
        while not self._messages:
            if self._ended:
                raise StopAsyncIteration
            loop = asyncio.get_running_loop()
            reader: asyncio.Future[None] = loop.create_future()
            self._reader = reader
            if self._topic._loop is None:
                self._topic._loop = loop
            owner = self._topic._owner
            listening = owner is not None and owner._listening(+1)
            try:
                await reader
            finally:
                self._reader = None
                if listening and owner is not None:
                    owner._listening(-1)
        message = self._messages.popleft()
        _wake(self._room)
        return message

    def __repr__(self) -> str:
        pending = len(self._messages)
        return f"<Subscription to {self._topic.name!r}: {pending} pending, {self.dropped} dropped>"

    def _offer(self, message: T) -> None:
        # Deliver without waiting, dropping by the topic's policy if full.
        if self._ended:
            return
        if len(self._messages) >= self._topic._buffer:
            self.dropped += 1
            self._topic.dropped += 1
            if self._topic._when_full == "drop_newest":
                return
            self._messages.popleft()
        self._messages.append(message)
        _wake(self._reader)

    async def _put(self, message: T) -> None:
        # Deliver, waiting for room while the buffer is full.
        while len(self._messages) >= self._topic._buffer and not self._ended:
            room: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._room = room
            try:
                await room
            finally:
                self._room = None
        if not self._ended:
            self._messages.append(message)
            _wake(self._reader)

    def _end(self) -> None:
        self._ended = True
        _wake(self._reader)
        _wake(self._room)


def _wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)
