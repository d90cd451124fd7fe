"""Async iterables as the tasks of go/ago and the inputs of map/amap/as_completed (issue 20, part 1)."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import aclosing

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Args, Pool, Task


class Source:
    """An async generator of 0..n-1 that counts its pulls and records whether it was closed.

    With ``fail_at``, it raises ``ValueError`` instead of yielding that item.
    It refuses a second pull while one runs, as an async generator does.
    """

    def __init__(self, n: int, fail_at: int | None = None) -> None:
        self.n, self.fail_at = n, fail_at
        self.pulled = 0
        self.closed = False
        self.ended: set[int] = set()
        self.ahead = 0  # the most items pulled and not ended at any moment

    async def items(self) -> AsyncIterator[int]:
        try:
            for i in range(self.n):
                await asyncio.sleep(0)  # a pull that waits, as a cursor's does
                if i == self.fail_at:
                    raise ValueError(f"source failed at {i}")
                self.pulled += 1
                self.ahead = max(self.ahead, self.pulled - len(self.ended))
                yield i
        finally:
            self.closed = True

    async def work(self, x: int) -> int:
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        self.ended.add(x)
        return x * 10


def test_amap_keeps_input_order_and_pulls_each_item_once() -> None:
    source = Source(50)
    values = asyncio.run(Pool(limit=4).amap(source.work, source.items()))
    assert values == [i * 10 for i in range(50)]
    assert source.pulled == 50
    assert source.ended == set(range(50))
    assert source.ahead <= 4


def test_blocking_map_and_go_take_async_iterables() -> None:
    source = Source(20)
    assert Pool(limit=3).map(source.work, source.items()) == [i * 10 for i in range(20)]
    seen: list[int] = []

    async def record(args: Args[int]) -> None:
        seen.append(args.input)

    async def tasks() -> AsyncIterator[Task[int, int, None]]:
        for i in range(10):
            yield Task(record).with_input(i)

    Pool(limit=2).go(tasks())
    assert sorted(seen) == list(range(10))


def test_ago_takes_an_async_generator_expression() -> None:
    seen: list[int] = []

    async def record(args: Args[int]) -> None:
        seen.append(args.input)

    async def main() -> None:
        source = Source(30)
        await Pool(limit=5).ago(Task(record).with_input(i) async for i in source.items())

    asyncio.run(main())
    assert sorted(seen) == list(range(30))


def test_as_completed_takes_an_async_iterable() -> None:
    async def main() -> list[int]:
        source = Source(25)
        async with aclosing(Pool(limit=3).as_completed(source.work, source.items())) as values:
            return [value async for value in values]

    assert sorted(asyncio.run(main())) == [i * 10 for i in range(25)]


def test_the_iterables_error_is_raised_after_the_running_tasks_end_with_a_note() -> None:
    source = Source(20, fail_at=7)
    pool = Pool(limit=3)
    with pytest.raises(ValueError, match="source failed at 7") as raised:
        asyncio.run(pool.amap(source.work, source.items()))
    assert raised.value.__notes__ == ["raised by the inputs iterable after 7 inputs"]
    assert source.ended == set(range(7))  # every task pulled ran to its end
    assert source.closed


def test_cancelling_the_run_closes_the_async_generator() -> None:
    source = Source(1_000_000)

    async def slow(x: int) -> int:
        await asyncio.sleep(3600)
        return x

    async def main() -> None:
        run = asyncio.ensure_future(Pool(limit=4).amap(slow, source.items()))
        while source.pulled < 4:
            await asyncio.sleep(0)
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run

    asyncio.run(main())
    assert source.closed
    assert source.pulled == 4  # no more than the limit pulled ahead


def test_leaving_as_completed_early_closes_the_source() -> None:
    source = Source(1000)

    async def main() -> None:
        async with aclosing(Pool(limit=2).as_completed(source.work, source.items())) as values:
            async for _ in values:
                break

    asyncio.run(main())
    assert source.closed
    assert source.pulled < 1000


def test_pulls_are_serialized_for_a_source_that_refuses_concurrent_pulls() -> None:
    class OnePullAtATime:
        def __init__(self) -> None:
            self.pulling = False
            self.i = 0

        def __aiter__(self) -> "OnePullAtATime":
            return self

        async def __anext__(self) -> int:
            assert not self.pulling, "two pulls at once"
            self.pulling = True
            try:
                await asyncio.sleep(0)
                if self.i == 40:
                    raise StopAsyncIteration
                self.i += 1
                return self.i
            finally:
                self.pulling = False

    async def same(x: int) -> int:
        return x

    assert Pool(limit=8).map(same, OnePullAtATime()) == list(range(1, 41))


@pytest.mark.parametrize("value", [5, None, object()])
def test_neither_iterable_nor_async_iterable_is_refused(value: object) -> None:
    async def same(x: int) -> int:
        return x

    with pytest.raises(TypeError, match=r"inputs must be iterable, got .* \(async iterables work too\)"):
        Pool().map(same, value)  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"tasks must be an iterable of Task, got .*async iterable of Task"):
        Pool().go(value)  # type: ignore[arg-type]


def test_a_non_task_from_an_async_iterable_is_refused_by_position() -> None:
    async def tasks() -> AsyncIterator[object]:
        yield Task(noop).with_input(0)
        yield "not a task"

    with pytest.raises(TypeError, match=r"tasks\[1\] must be a Task"):
        Pool(limit=2).go(tasks())  # type: ignore[arg-type]


async def noop(args: Args[int]) -> None:
    pass


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(0, 40),
    limit=st.one_of(st.none(), st.integers(1, 6)),
    fail_at=st.one_of(st.none(), st.integers(0, 45)),
    failing_task=st.one_of(st.none(), st.integers(0, 40)),
)
def test_async_inputs_behave_as_sync_ones(
    n: int, limit: int | None, fail_at: int | None, failing_task: int | None
) -> None:
    """Same values, same errors, same notes as the same inputs from a list; never more than limit ahead."""
    source = Source(n, fail_at)

    async def work(x: int) -> int:
        await source.work(x)
        if x == failing_task:
            raise KeyError(x)
        return x * 10

    def sync_inputs() -> list[int]:
        return list(range(n))

    pool = Pool(limit=limit)
    pulled = fail_at if fail_at is not None and fail_at < n else n
    task_fails = failing_task is not None and failing_task < pulled
    if pulled < n:
        with pytest.raises(ValueError, match=f"source failed at {fail_at}") as raised:
            asyncio.run(pool.amap(work, source.items()))
        notes = [f"raised by the inputs iterable after {fail_at} input{'s' if fail_at != 1 else ''}"]
        if task_fails:
            notes.append("1 task failed too: see pool.errors()")
        assert raised.value.__notes__ == notes
        assert source.ended == set(range(pulled))
    elif task_fails:
        with pytest.raises(ExceptionGroup) as group:
            asyncio.run(pool.amap(work, source.items()))
        assert [type(e) for e in group.value.exceptions] == [KeyError]
        assert source.ended == set(range(n))
    else:
        assert asyncio.run(pool.amap(work, source.items())) == [x * 10 for x in sync_inputs()]
    assert source.closed
    if limit is not None:
        assert source.ahead <= limit


def test_a_running_pools_map_and_as_completed_take_async_iterables() -> None:
    async def main() -> tuple[list[int], list[int], bool]:
        source = Source(30)
        async with Pool(limit=4) as pool:
            mapped = await pool.map(source.work, source.items())
            streamed = [value async for value in pool.as_completed(source.work, Source(10).items())]
        return mapped, streamed, source.closed

    mapped, streamed, closed = asyncio.run(main())
    assert mapped == [i * 10 for i in range(30)]
    assert sorted(streamed) == [i * 10 for i in range(10)]
    assert closed


def test_without_a_limit_a_slow_source_does_not_pile_up_workers() -> None:
    """Workers are added while the source keeps up; while one waits on it, no more are added."""
    gate = asyncio.Event()

    async def slow_source() -> AsyncIterator[int]:
        yield 1
        await gate.wait()  # the source stalls: the run must not add workers meanwhile
        yield 2

    async def note(x: int) -> int:
        return x

    async def main() -> list[int]:
        run = asyncio.ensure_future(Pool().amap(note, slow_source()))
        for _ in range(200):  # many turns of the loop while the source stalls
            await asyncio.sleep(0)
        tasks_while_stalled = len(asyncio.all_tasks())
        gate.set()
        values = await run
        assert tasks_while_stalled <= 8, tasks_while_stalled
        return values

    assert asyncio.run(main()) == [1, 2]
