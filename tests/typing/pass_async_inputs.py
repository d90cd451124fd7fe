"""Async iterables as tasks and inputs, and resumable runs: calls that must type-check, with their types."""

from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, assert_type

from typing_extensions import override

from go_async import Args, Checkpoint, Hooks, Pool, RunProgress, SqliteCheckpoint, Task


async def numbers() -> AsyncIterator[int]:
    for n in range(3):
        yield n


async def to_text(n: int) -> str:
    return str(n)


async def record(args: Args[int]) -> None:
    pass


class InMemory:
    def __init__(self) -> None:
        self.saved: RunProgress | None = None

    def load(self) -> RunProgress | None:
        return self.saved

    def save(self, progress: RunProgress) -> None:
        self.saved = progress


async def main() -> None:
    pool = Pool(limit=4)
    assert_type(await pool.amap(to_text, numbers()), list[str])
    assert_type(await pool.amap(to_text, numbers(), return_exceptions=True), list[str | Exception])
    async with aclosing(pool.as_completed(to_text, numbers())) as texts:
        async for text in texts:
            assert_type(text, str)
    await pool.ago(Task(record).with_input(n) async for n in numbers())
    await pool.ago((Task(record).with_input(n) for n in range(3)), checkpoint="run.sqlite")
    await pool.ago((Task(record).with_input(n) for n in range(3)), checkpoint=Path("run.sqlite"), run_id="x")
    async with Pool(limit=2) as running:
        assert_type(await running.map(to_text, numbers()), list[str])
        assert_type(await running.amap(to_text, numbers(), return_exceptions=True), list[str | Exception])
    memory: Checkpoint = InMemory()
    await pool.ago((Task(record).with_input(n) for n in range(3)), checkpoint=memory)
    await pool.ago((Task(record).with_input(n) for n in range(3)), checkpoint=SqliteCheckpoint("r.sqlite"))


assert_type(Pool().map(to_text, numbers()), list[str])
assert_type(Pool().map(to_text, [1, 2]), list[str])


class RenamedProgress:
    """A checkpoint and hooks may name the arguments as they like: they come by position."""

    def load(self) -> RunProgress | None:
        return None

    def save(self, kept: RunProgress) -> None:
        pass


class RenamedHooks(Hooks):
    @override
    def limit_changed(self, before: int, after: int, why: str) -> None:
        pass

    @override
    def retry_refused(self, task: Args[Any], error: Exception, tries: int) -> None:
        pass


async def fan_out(args: Args[int]) -> list[str]:
    """A task's own pool (``args.pool``) takes async inputs too."""
    async with aclosing(args.pool.as_completed(to_text, numbers())) as texts:
        async for text in texts:
            assert_type(text, str)
    assert_type(await args.pool.map(to_text, numbers(), return_exceptions=True), list[str | Exception])
    return await args.pool.amap(to_text, numbers())


async def either_way(pool: Pool, flag: bool) -> None:
    """``return_exceptions`` given as a plain bool: the list may hold errors."""
    assert_type(await pool.amap(to_text, numbers(), return_exceptions=flag), list[str | Exception])
    assert_type(Pool().map(to_text, [1], return_exceptions=flag), list[str | Exception])
    async with Pool(limit=2) as running:
        assert_type(await running.map(to_text, numbers(), return_exceptions=flag), list[str | Exception])
    await pool.ago([Task(record).with_input(1)], checkpoint=RenamedProgress())
    Pool(hooks=[RenamedHooks()])
