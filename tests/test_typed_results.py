"""Typed results: a task's value reaches its handle; map keeps each outcome; errors name their task."""

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Args, Drain, Flow, FlowError, Pool, RunningPool, Task, step


@dataclass(frozen=True)
class Page:
    url: str


async def fetch_page(args: Args[str, Page]) -> None:
    args.drain.send(Page(args.input))


async def get_page(args: Args[str]) -> Page:
    return Page(args.input)


def get_page_sync(args: Args[str]) -> Page:
    return Page(args.input)


def test_a_task_of_str_sends_pages_to_its_drain() -> None:
    """Input and output of their own types: str in, Page out."""
    pages: Drain[Page] = Drain()
    Pool(limit=2).go(Task(fetch_page).drain_to(pages).with_input(url) for url in ["a", "b"])
    assert sorted(pages.drain(), key=lambda page: page.url) == [Page("a"), Page("b")]


def test_a_handle_gives_what_the_function_returned() -> None:
    """await handle, handle.result() and execute() give the function's value, async or plain def."""

    async def main() -> list[Page]:
        async with Pool(limit=2) as pool:
            first = await pool.submit(Task(get_page).with_input("a"))
            second = pool.submit_nowait(Task(get_page_sync).with_input("b"))
            values = [await first, await second, second.result()]
        values.append(await Task(get_page).with_input("c").execute())
        return values

    assert asyncio.run(main()) == [Page("a"), Page("b"), Page("b"), Page("c")]


def test_result_of_a_failed_or_unfinished_handle_raises() -> None:
    """result() raises the final error, or InvalidStateError before the end."""

    async def fails(args: Args[str]) -> Page:
        raise KeyError(args.input)

    async def main() -> None:
        async with Pool(limit=1) as pool:
            handle = await pool.submit(Task(fails).with_input("x"))
            with pytest.raises(asyncio.InvalidStateError):
                handle.result()
            with pytest.raises(KeyError):
                await handle
            with pytest.raises(KeyError):
                handle.result()

    asyncio.run(main())


async def double_unless_marked(value: int) -> int:
    if value % 3 == 0:
        raise ValueError(value)
    return value * 2


def test_a_running_pools_map_gives_values_in_input_order() -> None:
    """map and amap of a running pool run each input as a task of it."""

    async def main() -> tuple[list[int], list[int], int]:
        async with Pool(limit=3) as pool:
            mapped = await pool.map(double_unless_marked, [5, 1, 4, 2])
            amapped = await pool.amap(double_unless_marked, [7, 8])
            return mapped, amapped, pool.stats().completed

    assert asyncio.run(main()) == ([10, 2, 8, 4], [14, 16], 6)


def test_a_running_pools_map_raises_the_failures_in_input_order() -> None:
    """Every call runs; the failures come together, and the pool does not raise them again."""

    async def main() -> None:
        async with Pool(limit=2) as pool:
            with pytest.raises(ExceptionGroup) as caught:
                await pool.map(double_unless_marked, [3, 1, 6, 2, 9])
            assert [error.args for error in caught.value.exceptions] == [(3,), (6,), (9,)]
            assert caught.value.message == "3 of 5 calls failed"
            assert pool.stats().completed == 2

    asyncio.run(main())


def test_a_running_pools_map_can_return_the_errors_in_place() -> None:
    """return_exceptions=True: each failed input's place holds its error."""

    async def main() -> list[int | Exception]:
        async with Pool(limit=2) as pool:
            return await pool.map(double_unless_marked, [1, 3, 2], return_exceptions=True)

    first, second, third = asyncio.run(main())
    assert (first, third) == (2, 4)
    assert isinstance(second, ValueError)
    assert second.args == (3,)


def test_a_running_pools_as_completed_yields_each_value_then_raises_the_failures() -> None:
    """Values as they end; the failures after them, in input order."""
    seen: list[int] = []

    async def read(pool: RunningPool) -> None:
        async for value in pool.as_completed(double_unless_marked, [1, 3, 2, 6]):
            seen.append(value)  # noqa: PERF401 - kept as they come: the loop ends in an error

    async def main() -> None:
        async with Pool(limit=2) as pool:
            with pytest.raises(ExceptionGroup) as caught:
                await read(pool)
            assert [error.args for error in caught.value.exceptions] == [(3,), (6,)]

    asyncio.run(main())
    assert sorted(seen) == [2, 4]


def test_leaving_a_running_pools_as_completed_early_cancels_the_rest() -> None:
    """The calls not yet ended are cancelled once the loop is left."""
    release = asyncio.Event()

    async def first_quick(value: int) -> int:
        if value:
            await release.wait()
        return value

    async def main() -> tuple[int, int]:
        async with Pool(limit=4) as pool:
            async for _ in pool.as_completed(first_quick, [0, 1, 2, 3]):
                break
            await pool.shutdown()
            return pool.stats().completed, pool.stats().cancelled

    assert asyncio.run(main()) == (1, 3)


def test_cancelling_a_running_pools_map_cancels_its_calls() -> None:
    """A caller cancelled while it waits leaves no call of its map running."""
    started = asyncio.Event()

    async def forever(value: int) -> int:
        started.set()
        await asyncio.Event().wait()
        return value

    async def main() -> int:
        async with Pool(limit=2) as pool:
            mapping = asyncio.ensure_future(pool.map(forever, [1, 2, 3]))
            await started.wait()
            mapping.cancel()
            with pytest.raises(asyncio.CancelledError):
                await mapping
            await pool.shutdown()
            return pool.stats().cancelled

    assert asyncio.run(main()) == 3


@settings(max_examples=50, deadline=None)
@given(plan=st.lists(st.booleans(), max_size=30), limit=st.integers(1, 5))
def test_partial_results_keep_input_order_and_run_each_call_once(plan: list[bool], limit: int) -> None:
    """For any plan of failures, each place holds its input's value or error, every call run once."""
    runs: list[int] = []

    async def planned(index: int) -> int:
        runs.append(index)
        await asyncio.sleep(0)
        if plan[index]:
            raise ValueError(index)
        return index * 10

    def check(results: list[int | Exception]) -> None:
        assert len(results) == len(plan)
        for index, (fails, result) in enumerate(zip(plan, results, strict=True)):
            if fails:
                assert isinstance(result, ValueError)
                assert result.args == (index,)
            else:
                assert result == index * 10
        assert sorted(runs) == list(range(len(plan)))
        runs.clear()

    pool = Pool(limit=limit)
    check(pool.map(planned, range(len(plan)), return_exceptions=True))
    assert len(pool.errors()) == sum(plan)

    async def running() -> list[int | Exception]:
        async with Pool(limit=limit) as open_pool:
            return await open_pool.map(planned, range(len(plan)), return_exceptions=True)

    check(asyncio.run(running()))


def test_pool_map_returns_the_errors_in_place_but_raises_a_broken_iterable() -> None:
    """return_exceptions covers the calls' failures, not the inputs iterable's own."""
    results = Pool(limit=2).map(double_unless_marked, [3, 4], return_exceptions=True)
    assert isinstance(results[0], ValueError)
    assert results[1] == 8

    def broken() -> Iterator[int]:
        yield 1
        raise OSError("disk")

    with pytest.raises(OSError, match="disk"):
        Pool().map(double_unless_marked, broken(), return_exceptions=True)


# --- every final error names its task ---------------------------------------------------------

NOTE = re.compile(r"in task (?P<name>\S+) \(id \d+\.\d+(?:, input (?P<input>.*))?\)")


async def fails_on(args: Args[object]) -> None:
    raise KeyError("missing")


def named(error: BaseException) -> list[re.Match[str]]:
    return [match for note in getattr(error, "__notes__", []) if (match := NOTE.fullmatch(note))]


def test_a_failure_in_go_names_its_task_and_input(waits: object) -> None:
    """Out of many inputs, the note says which one failed; retries add no second note."""

    async def fails_on_two(args: Args[int]) -> None:
        if args.input == 2:
            raise KeyError("x")

    tasks = [Task(fails_on_two).with_retry(3).with_name("lookup").with_input(n) for n in range(5)]
    with pytest.raises(ExceptionGroup) as caught:
        Pool(limit=2).go(tasks)
    [error] = caught.value.exceptions
    [match] = named(error)
    assert (match["name"], match["input"]) == ("lookup", "2")


def test_every_way_of_running_names_the_failed_task() -> None:
    """go's fast path, layered tasks, map, the running pool, execute and flows all name it."""
    errors: list[BaseException] = []
    bare = Task(fails_on).with_input("i")
    for task in (bare, bare.with_timeout(5), bare.with_middleware(lambda args, call_next: call_next())):
        with pytest.raises(ExceptionGroup) as group:
            Pool(limit=1).go([task])
        errors.extend(group.value.exceptions)
    with pytest.raises(KeyError) as caught:
        asyncio.run(bare.execute())
    errors.append(caught.value)

    async def running() -> None:
        async with Pool(limit=1) as pool:
            handle = await pool.submit(bare)
            try:
                await handle
            except KeyError as error:
                errors.append(error)

    asyncio.run(running())
    assert len(errors) == 5
    for error in errors:
        [match] = named(error)
        assert (match["name"], match["input"]) == ("fails_on", "'i'")


def test_a_note_holds_a_bounded_repr_of_a_huge_input() -> None:
    """A 5,000-character secret in the input never reaches a note whole."""
    huge: dict[str, object] = {"password": "s" * 5000, "rows": list(range(1000))}

    async def slow(args: Args[dict[str, object]]) -> None:
        await asyncio.Event().wait()

    task = Task(slow).with_input(huge).with_timeout(0.01)
    with pytest.raises(ExceptionGroup) as caught:
        Pool().go([task])
    [error] = caught.value.exceptions
    assert isinstance(error, TimeoutError)
    assert error.__notes__[0] == "timed out after 0.01s"
    assert all(len(note) < 200 for note in error.__notes__)
    assert "s" * 100 not in "".join(error.__notes__)
    assert len(repr(task)) < 200


def test_a_flow_runs_every_on_error_callback() -> None:
    """on_error(a).on_error(b) runs both, in order; on_success callbacks add up too."""
    heard: list[str] = []

    async def fails(value: int) -> int:
        raise ValueError(value)

    async def first(error: FlowError) -> None:
        heard.append("first")

    async def second(error: FlowError) -> None:
        heard.append("second")

    async def identity(value: int) -> int:
        return value

    async def noted(value: int) -> None:
        heard.append(f"ok {value}")

    flow: Flow[int, int] = step(fails).on_error(step(first)).on_error(step(second))
    with pytest.raises(FlowError):
        flow.run(1)
    assert heard == ["first", "second"]
    heard.clear()
    assert step(identity).on_success(step(noted)).on_success(step(noted)).run(4) == 4
    assert heard == ["ok 4", "ok 4"]
