import asyncio
import threading
from typing import TypeVar

import pytest

from go_async import Args, Drain, Pool, Task

T = TypeVar("T")


async def send_input(args: Args[int]) -> None:
    args.drain.send(args.input)


async def read_all(drain: Drain[T]) -> list[T]:
    """Every value an `async for` over the drain yields, until it ends."""
    return [value async for value in drain]


def test_drain_keeps_send_order_and_returns_copies() -> None:
    """drain() is every value so far, in order; mutating it changes nothing."""
    out: Drain[str] = Drain()
    for word in ["b", "a", "c"]:
        out.send(word)
    first = out.drain()
    first.clear()
    assert out.drain() == ["b", "a", "c"]
    assert len(out) == 3
    assert repr(out) == "<Drain of 3 values>"


def test_send_is_safe_from_many_threads() -> None:
    """No value is lost when threads send at once."""
    out: Drain[int] = Drain()

    def send_range(start: int) -> None:
        for n in range(start, start + 5_000):
            out.send(n)

    threads = [threading.Thread(target=send_range, args=(k * 5_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(out.drain()) == list(range(20_000))


def test_async_for_reads_values_while_the_run_goes_on() -> None:
    """Each task waits until the reader saw its value: only streaming lets the run finish."""
    out: Drain[int] = Drain()
    seen = {n: asyncio.Event() for n in range(5)}

    async def send_and_wait(args: Args[int]) -> None:
        args.drain.send(args.input)
        await seen[args.input].wait()

    async def main() -> list[int]:
        read: list[int] = []
        async with asyncio.timeout(10), asyncio.TaskGroup() as group:
            group.create_task(
                Pool(limit=1).ago(Task(send_and_wait).with_input(n).drain_to(out) for n in range(5))
            )
            async for value in out:
                read.append(value)
                seen[value].set()
        return read

    assert asyncio.run(main()) == [0, 1, 2, 3, 4]


def test_async_for_started_before_the_run_waits_for_it() -> None:
    """A reader that starts first neither ends early nor misses values."""
    out: Drain[int] = Drain()

    async def main() -> list[int]:
        reader = asyncio.create_task(read_all(out))
        await asyncio.sleep(0)  # let the reader reach its wait before any run exists
        assert not reader.done()
        await Pool(limit=2).ago(Task(send_input).with_input(n).drain_to(out) for n in range(4))
        return await reader

    assert sorted(asyncio.run(main())) == [0, 1, 2, 3]


def test_async_for_after_the_run_yields_everything_then_stops() -> None:
    """A late reader still gets every value and then ends."""
    out: Drain[int] = Drain()
    Pool().go(Task(send_input).with_input(n).drain_to(out) for n in range(3))

    assert sorted(asyncio.run(read_all(out))) == [0, 1, 2]


def test_async_for_wakes_on_sends_from_worker_threads() -> None:
    """Values sent by sync tasks in threads reach an async reader."""
    out: Drain[int] = Drain()

    def send_sync(args: Args[int]) -> None:
        args.drain.send(args.input)

    async def main() -> list[int]:
        reader = asyncio.create_task(read_all(out))
        await Pool(limit=3).ago(Task(send_sync).with_input(n).drain_to(out) for n in range(30))
        return await reader

    assert sorted(asyncio.run(main())) == list(range(30))


def test_a_cancelled_reader_leaves_no_waiter_behind() -> None:
    """Cancelling a waiting reader unregisters it, so sends stay on the fast path."""
    out: Drain[int] = Drain()

    async def main() -> None:
        reader = asyncio.create_task(read_all(out))
        await asyncio.sleep(0)
        assert out._waiters
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
        assert out._waiters == []

    asyncio.run(main())


def test_close_ends_readers_of_a_drain_no_run_feeds() -> None:
    """A drain filled by hand (or through a closure) ends its readers with close()."""
    out: Drain[str] = Drain()

    async def main() -> list[str]:
        reader = asyncio.create_task(read_all(out))
        out.send("a")
        await asyncio.sleep(0)
        out.send("b")
        out.close()
        return await reader

    assert asyncio.run(main()) == ["a", "b"]
    assert out.closed
    assert repr(out) == "<Drain of 2 values, closed>"


def test_a_closed_drain_refuses_sends() -> None:
    """Sending after close is a bug, reported with the value and the drain."""
    out: Drain[int] = Drain()
    out.close()
    with pytest.raises(RuntimeError, match=r"Drain\.send\(3\): <Drain of 0 values, closed> is closed"):
        out.send(3)
    assert out.drain() == []
