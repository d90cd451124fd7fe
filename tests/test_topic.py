"""Topic[T]: every subscriber gets what is published after it subscribed, in order; nothing lost silently."""

import asyncio
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import Args, ManualClock, Pool, Subscription, Task, Topic

settle = ManualClock().advance  # advance(0): let the loop run until everything waits


async def read(subscription: Subscription[int]) -> list[int]:
    return [message async for message in subscription]


def test_each_subscriber_gets_what_was_published_after_it_subscribed_in_order() -> None:
    async def main() -> tuple[list[int], list[int]]:
        topic: Topic[int] = Topic("numbers")
        early = topic.subscribe()
        await topic.publish(1)
        await topic.publish(2)
        late = topic.subscribe()
        await topic.publish(3)
        assert topic.subscribers == 2
        topic.close()
        return await read(early), await read(late)

    assert asyncio.run(main()) == ([1, 2, 3], [3])


@given(plan=st.lists(st.one_of(st.just("subscribe"), st.integers(0, 99)), max_size=30))
def test_no_message_is_lost_or_reordered_for_any_subscriber(plan: list[str | int]) -> None:
    """A slow reader with a small buffer only slows the publisher down (when_full="wait")."""

    async def main() -> None:
        topic: Topic[int] = Topic("numbers", buffer=2)
        readers: list[asyncio.Task[list[int]]] = []
        expected: list[list[int]] = []
        for step in plan:
            if step == "subscribe":
                readers.append(asyncio.create_task(read(topic.subscribe())))
                expected.append([])
            else:
                assert isinstance(step, int)
                await topic.publish(step)
                for messages in expected:
                    messages.append(step)
        topic.close()
        assert [await reader for reader in readers] == expected

    asyncio.run(main())


def test_a_full_buffer_makes_the_publisher_wait_for_the_reader() -> None:
    async def main() -> None:
        topic: Topic[int] = Topic("numbers", buffer=2)
        subscription = topic.subscribe()
        await topic.publish(1)
        await topic.publish(2)
        third = asyncio.create_task(topic.publish(3))
        await settle(0)
        assert not third.done()
        assert subscription.pending == 2
        assert await anext(subscription) == 1
        await third
        assert subscription.pending == 2
        topic.close()
        assert await read(subscription) == [2, 3]

    asyncio.run(main())


@given(count=st.integers(0, 20), buffer=st.integers(1, 5))
@pytest.mark.parametrize("when_full", ["drop_oldest", "drop_newest"])
def test_a_dropping_topic_never_waits_and_counts_what_it_drops(
    when_full: Literal["drop_oldest", "drop_newest"], count: int, buffer: int
) -> None:
    async def main() -> None:
        topic: Topic[int] = Topic("numbers", buffer=buffer, when_full=when_full)
        slow, idle = topic.subscribe(), topic.subscribe()
        for message in range(count):
            await topic.publish(message)
        topic.close()
        kept = list(range(count))[-buffer:] if when_full == "drop_oldest" else list(range(count))[:buffer]
        assert await read(slow) == kept
        lost = max(0, count - buffer)
        assert (slow.dropped, idle.dropped, topic.dropped) == (lost, lost, 2 * lost)

    asyncio.run(main())


def test_closing_ends_subscriptions_after_their_buffered_messages_and_refuses_more() -> None:
    async def main() -> None:
        topic: Topic[str] = Topic("news")
        subscription = topic.subscribe()
        waiting = asyncio.create_task(anext(subscription))
        await settle(0)
        await topic.publish("a")
        assert await waiting == "a"
        await topic.publish("b")
        topic.close()
        assert [message async for message in subscription] == ["b"]
        assert topic.closed
        with pytest.raises(RuntimeError, match=r"Topic.publish\(\): the topic 'news' is closed"):
            await topic.publish("c")
        with pytest.raises(RuntimeError, match=r"Topic.subscribe\(\): the topic 'news' is closed"):
            topic.subscribe()

    asyncio.run(main())


def test_leaving_a_subscription_stops_its_messages_and_wakes_a_publisher_waiting_on_it() -> None:
    async def main() -> None:
        topic: Topic[int] = Topic("numbers", buffer=1)
        other = topic.subscribe()
        with topic.subscribe() as leaving:
            await topic.publish(1)
            blocked = asyncio.create_task(topic.publish(2))
            await settle(0)
            assert not blocked.done()
            assert await anext(other) == 1
        await blocked  # it no longer waits for the subscription that left
        assert topic.subscribers == 1
        assert await read(leaving) == [1]
        assert await anext(other) == 2

    asyncio.run(main())


def test_a_publisher_waiting_when_the_topic_closes_is_told() -> None:
    async def main() -> None:
        topic: Topic[int] = Topic("numbers", buffer=1)
        topic.subscribe()
        await topic.publish(1)
        blocked = asyncio.create_task(topic.publish(2))
        await settle(0)
        topic.close()
        with pytest.raises(RuntimeError, match=r"closed while the message waited for room"):
            await blocked

    asyncio.run(main())


def test_tasks_of_a_running_pool_talk_through_its_topics_which_close_with_it() -> None:
    received: dict[str, list[float]] = {}

    async def watch(args: Args[None]) -> None:
        with args.pool.topic("prices", float).subscribe() as prices:
            received[args.id] = [price async for price in prices]

    async def quote(args: Args[float]) -> None:
        await args.pool.topic("prices", float).publish(args.input)

    async def main() -> None:
        async with Pool() as pool:
            watchers = [await pool.submit(Task(watch).with_input(None)) for _ in range(2)]
            await settle(0)
            assert pool.topic("prices", float).subscribers == 2
            for price in [1.5, 2.5, 3.5]:
                await pool.submit(Task(quote).with_input(price))
        # The block ended, the quotes were published, and the watchers, left
        # alone waiting, saw their subscriptions end.
        assert all(watcher.done() and not watcher.cancelled() for watcher in watchers)

    asyncio.run(main())
    assert list(received.values()) == [[1.5, 2.5, 3.5], [1.5, 2.5, 3.5]]


async def listen(args: Args[list[int]]) -> None:
    """A task of a running pool that keeps, in its input, what the pool's topic "news" carries."""
    with args.pool.topic("news", int).subscribe() as news:
        args.input.extend([message async for message in news])


def test_a_pool_topic_waits_for_a_task_that_will_still_publish() -> None:
    received: list[int] = []

    async def main() -> None:
        release = asyncio.Event()

        async def late(args: Args[int]) -> None:
            await release.wait()
            await args.pool.topic("news", int).publish(args.input)

        async with Pool() as pool:
            await pool.submit(Task(listen).with_input(received))
            await pool.submit(Task(late).with_input(7))
            await settle(0)
            closing = asyncio.create_task(pool.shutdown())
            await settle(0)
            assert not closing.done()  # `late` still runs: the topic stays open for it
            release.set()
            assert await closing == []

    asyncio.run(main())
    assert received == [7]


def test_shutting_down_a_sub_pool_leaves_the_pools_topics_open() -> None:
    received: list[int] = []

    async def main() -> None:
        async with Pool() as pool:
            await pool.submit(Task(listen).with_input(received))
            listeners = pool.sub()
            sub_listener = await listeners.submit(Task(listen).with_input(received))
            await settle(0)
            # The sub-pool's listener would wait forever: its shutdown cancels it.
            assert await listeners.shutdown(timeout=0) == [sub_listener]
            assert not pool.topic("news", int).closed
            await pool.topic("news", int).publish(1)

    asyncio.run(main())
    assert received == [1]


def test_a_plain_def_task_publishes_from_its_thread() -> None:
    received: list[int] = []
    counts: Topic[int] = Topic("counts")

    async def listen(args: Args[None]) -> None:
        with counts.subscribe() as subscription:
            received.extend([count async for count in subscription])

    def count(args: Args[int]) -> None:  # runs in a worker thread
        counts.publish_from_thread(args.input)

    async def main() -> None:
        counts.publish_from_thread(-1)  # nobody subscribed yet: it reaches nobody
        async with Pool() as pool:
            await pool.submit(Task(listen).with_input(None))
            await settle(0)
            with pytest.raises(RuntimeError, match=r"called on the event loop; use `await topic.publish"):
                counts.publish_from_thread(9)
            await asyncio.gather(*[await pool.submit(Task(count).with_input(n)) for n in range(3)])
            counts.close()

    asyncio.run(main())
    assert sorted(received) == [0, 1, 2]


def test_a_pool_topic_is_found_by_name_and_its_settings_must_match() -> None:
    async def main() -> None:
        async with Pool() as pool:
            topic = pool.topic("events", str, buffer=5, when_full="drop_newest")
            assert pool.sub(limit=1).topic("events", str, buffer=5, when_full="drop_newest") is topic
            with pytest.raises(ValueError, match=r"the topic exists with buffer=5, when_full='drop_newest'"):
                pool.topic("events", str)
        with pytest.raises(RuntimeError, match=r"RunningPool.topic\(\): the pool is not running"):
            pool.topic("other")
        assert topic.closed

    asyncio.run(main())


def test_bad_topics_are_refused_naming_the_parameter() -> None:
    with pytest.raises(ValueError, match=r"Topic: buffer must be an int >= 1, got 0"):
        Topic("t", buffer=0)
    with pytest.raises(ValueError, match=r"when_full must be one of 'wait', 'drop_oldest', 'drop_newest'"):
        Topic("t", when_full="drop")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Topic: name must be a str, got 3"):
        Topic(3)  # type: ignore[arg-type]
