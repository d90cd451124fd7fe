"""What a run does when the iterable of its tasks or inputs itself raises CancelledError or an interrupt."""

import asyncio
import gc
import logging
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine, Iterable, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

import pytest

from go_async import Args, Pool, Task

NOT_CANCELLED = "the inputs iterable raised CancelledError, though its run was not cancelled"


def sync_then_cancelled(n: int) -> Iterator[int]:
    """0..n-1, then a CancelledError: a sync source that cannot have been cancelled."""
    yield from range(n)
    raise asyncio.CancelledError


async def async_then_cancelled(n: int) -> AsyncIterator[int]:
    """0..n-1, then the CancelledError of awaiting a future cancelled elsewhere (a cursor's connection)."""
    for i in range(n):
        yield i
    cancelled_elsewhere = asyncio.get_running_loop().create_future()
    cancelled_elsewhere.cancel()
    await cancelled_elsewhere


def source(kind: str, n: int) -> Iterable[int] | AsyncIterable[int]:
    return sync_then_cancelled(n) if kind == "sync" else async_then_cancelled(n)


class Work:
    """An async function of one input that records the inputs whose calls ran to their end."""

    def __init__(self) -> None:
        self.ended: set[int] = set()

    async def __call__(self, x: int) -> int:
        await asyncio.sleep(0)
        self.ended.add(x)
        return x * 10

    async def task(self, args: Args[int]) -> None:
        await self(args.input)


async def ago(work: Work, inputs: Iterable[int] | AsyncIterable[int]) -> object:
    if isinstance(inputs, AsyncIterable):
        await Pool(limit=2).ago(Task(work.task).with_input(i) async for i in inputs)
    else:
        await Pool(limit=2).ago(Task(work.task).with_input(i) for i in inputs)
    return None


async def as_completed(work: Work, inputs: Iterable[int] | AsyncIterable[int]) -> object:
    async with aclosing(Pool(limit=2).as_completed(work, inputs)) as values:
        return [value async for value in values]


# Each run of a function over inputs, given the function, the inputs and a checkpoint's path.
RUNS: dict[str, Callable[[Work, Any, Path], Coroutine[Any, Any, object]]] = {
    "amap": lambda work, inputs, _: Pool(limit=2).amap(work, inputs),
    "amap, resumable": lambda work, inputs, path: Pool(limit=2).amap(work, inputs, checkpoint=path),
    "as_completed": lambda work, inputs, _: as_completed(work, inputs),
}


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("call", sorted(RUNS))
@pytest.mark.parametrize("n", [2, 20])  # among the inputs a checkpoint reads first (16), and after
def test_a_cancellederror_from_the_inputs_fails_the_run_after_the_running_calls(
    kind: str, call: str, n: int, tmp_path: Path
) -> None:
    """Not taken for the end of the inputs: a RuntimeError, caused by it, noted as the iterable's error."""
    work = Work()

    async def main() -> int:
        with pytest.raises(RuntimeError) as raised:
            await RUNS[call](work, source(kind, n), tmp_path / "run.sqlite")
        assert str(raised.value) == NOT_CANCELLED
        assert isinstance(raised.value.__cause__, asyncio.CancelledError)
        assert raised.value.__notes__ == [f"raised by the inputs iterable after {n} inputs"]
        me = asyncio.current_task()
        assert me is not None
        return me.cancelling()

    assert asyncio.run(main()) == 0  # the caller was never cancelled
    assert work.ended == set(range(n))  # every call pulled ran to its end


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_cancellederror_from_the_tasks_of_go_fails_the_run_with_a_note_naming_tasks(kind: str) -> None:
    work = Work()
    with pytest.raises(RuntimeError) as raised:
        asyncio.run(ago(work, source(kind, 3)))
    assert str(raised.value) == NOT_CANCELLED.replace("inputs", "tasks")
    assert raised.value.__notes__ == ["raised by the tasks iterable after 3 tasks"]
    assert work.ended == {0, 1, 2}


def test_blocking_map_raises_a_cancellederror_from_the_inputs_as_their_error() -> None:
    work = Work()
    with pytest.raises(RuntimeError, match=NOT_CANCELLED) as raised:
        Pool(limit=2).map(work, async_then_cancelled(2))
    assert raised.value.__notes__ == ["raised by the inputs iterable after 2 inputs"]


@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("call", ["map", "as_completed"])
def test_a_running_pools_map_raises_a_cancellederror_from_the_inputs_as_their_error(
    kind: str, call: str
) -> None:
    work = Work()

    async def read_all(values: AsyncIterator[int]) -> list[int]:
        return [value async for value in values]

    async def main() -> None:
        async with Pool(limit=2) as pool:
            mapped = (
                pool.map(work, source(kind, 2))
                if call == "map"
                else read_all(pool.as_completed(work, source(kind, 2)))
            )
            with pytest.raises(RuntimeError, match=NOT_CANCELLED) as raised:
                await mapped
            assert isinstance(raised.value.__cause__, asyncio.CancelledError)

    asyncio.run(main())


@pytest.mark.parametrize("running", [False, True])
def test_cancelling_a_run_whose_inputs_are_waiting_still_cancels_it(running: bool) -> None:
    """A CancelledError that reaches the inputs from a real cancellation is the run's, not their error."""
    waiting = asyncio.Event()
    closed: list[bool] = []

    async def inputs() -> AsyncIterator[int]:
        try:
            yield 0
            waiting.set()
            await asyncio.Event().wait()  # a page that never comes
            yield 1
        finally:
            closed.append(True)

    async def main() -> None:
        async with Pool(limit=2) as pool:
            mapped = pool.map(Work(), inputs()) if running else Pool(limit=2).amap(Work(), inputs())
            run = asyncio.ensure_future(mapped)
            await waiting.wait()
            run.cancel()
            with pytest.raises(asyncio.CancelledError):
                await run

    asyncio.run(main())
    assert closed == [True]


async def unwinds(ended: list[int], x: int) -> int:
    """Wait until cancelled, recording ``x`` in ``ended`` as it unwinds."""
    try:
        await asyncio.Event().wait()
    finally:
        ended.append(x)
    return x


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.parametrize("kind", ["sync", "async"])
@pytest.mark.parametrize("call", ["map", "go"])
def test_an_interrupt_from_the_inputs_unwinds_the_run_then_is_raised_and_nothing_is_logged(
    interrupt: type[BaseException], kind: str, call: str, caplog: pytest.LogCaptureFixture
) -> None:
    """As a task's interrupt: the running calls unwind, and asyncio reports no exception unretrieved."""
    caplog.set_level(logging.WARNING, logger="asyncio")  # "Task exception was never retrieved" is an ERROR
    ended: list[int] = []

    def sync_inputs() -> Iterator[int]:
        yield from range(3)
        raise interrupt

    async def async_inputs() -> AsyncIterator[int]:
        for i in sync_inputs():
            yield i

    async def work(x: int) -> int:
        return await unwinds(ended, x)

    async def task(args: Args[int]) -> None:
        await unwinds(ended, args.input)

    escaped: BaseException | None = None
    try:
        if call == "map":
            Pool(limit=4).map(work, sync_inputs() if kind == "sync" else async_inputs())
        elif kind == "sync":
            Pool(limit=4).go(Task(task).with_input(i) for i in sync_inputs())
        else:
            Pool(limit=4).go(Task(task).with_input(i) async for i in async_inputs())
    except (KeyboardInterrupt, SystemExit) as error:  # never let an interrupt stop the test session
        escaped = error
    gc.collect()  # asyncio reports a task that died unretrieved when collected: now, not in a later test
    assert type(escaped) is interrupt
    assert sorted(ended) == [0, 1, 2]
    assert [record.getMessage() for record in caplog.records if record.name == "asyncio"] == []


def test_the_note_counts_one_input_as_one() -> None:
    def inputs() -> Iterator[int]:
        yield 1
        raise OSError("the cursor died")

    async def same(value: int) -> int:
        return value

    with pytest.raises(OSError, match="the cursor died") as raised:
        Pool().map(same, inputs())
    assert raised.value.__notes__ == ["raised by the inputs iterable after 1 input"]


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_a_running_pools_map_notes_its_inputs_error(kind: str) -> None:
    """As in Pool.map: the error of the inputs says after how many it came (raised at once here)."""

    def inputs() -> Iterator[int]:
        yield 1
        yield 2
        raise OSError("the cursor died")

    async def async_inputs() -> AsyncIterator[int]:
        for value in inputs():
            yield value

    async def same(value: int) -> int:
        return value

    async def main() -> None:
        async with Pool(limit=2) as pool:
            source = inputs() if kind == "sync" else async_inputs()
            with pytest.raises(OSError, match="the cursor died") as raised:
                await pool.map(same, source)
            assert raised.value.__notes__ == ["raised by the inputs iterable after 2 inputs"]
            assert await pool.map(same, [3]) == [3]  # the pool goes on

    asyncio.run(main())
