"""Mends from a user's trial of the running pool (``async with Pool(...) as pool``)."""

import asyncio
import contextvars
import logging

import pytest

from go_async import Args, Pool, Task


async def raises_cancelled(args: Args[None]) -> None:
    future = asyncio.get_running_loop().create_future()
    future.cancel()
    await future  # something else was cancelled; this task was not


async def boom(args: Args[int]) -> None:
    raise ValueError(f"boom {args.input}")


def test_a_task_that_raises_cancelled_error_on_its_own_fails_as_in_go() -> None:
    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(raises_cancelled))
            with pytest.raises(RuntimeError, match="though its run was not cancelled"):
                await handle
            assert not handle.cancelled()
            assert isinstance((await_error := handle.exception()), RuntimeError)
            assert isinstance(await_error.__cause__, asyncio.CancelledError)
            assert (pool.stats().failed, pool.stats().cancelled) == (1, 0)

    asyncio.run(main())


def test_failures_nobody_awaited_are_logged_when_the_block_raises(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="go_async")
    ended = asyncio.Event()

    async def fail_then_tell(args: Args[int]) -> None:
        try:
            await boom(args)
        finally:
            ended.set()

    async def main() -> None:
        async with Pool(limit=2) as pool:
            await pool.submit(Task(fail_then_tell).with_input(1))
            await ended.wait()
            raise KeyError("block error")

    with pytest.raises(KeyError) as caught:
        asyncio.run(main())
    assert caught.value.__notes__ == ["1 submitted task failed too, and nobody awaited their handles"]
    logged = [record for record in caplog.records if record.name == "go_async"]
    assert len(logged) == 1
    assert logged[0].levelno == logging.ERROR
    assert logged[0].exc_info is not None
    assert repr(logged[0].exc_info[1]) == "ValueError('boom 1')"


def test_failures_nobody_awaited_are_logged_when_the_block_is_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="go_async")
    failed = asyncio.Event()

    async def fail_then_tell(args: Args[int]) -> None:
        try:
            await boom(args)
        finally:
            failed.set()

    async def body() -> None:
        async with Pool() as pool:
            await pool.submit(Task(fail_then_tell).with_input(2))
            await asyncio.Event().wait()  # until cancelled

    async def main() -> None:
        block = asyncio.create_task(body())
        await failed.wait()
        block.cancel()
        with pytest.raises(asyncio.CancelledError):
            await block

    asyncio.run(main())
    logged = [record for record in caplog.records if record.name == "go_async"]
    assert [repr(record.exc_info[1]) for record in logged if record.exc_info] == ["ValueError('boom 2')"]


def test_handle_wait_names_its_timeout_parameter() -> None:
    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(boom).with_input(3))
            refused = r"Handle.wait: timeout must be finite and > 0 seconds \(or None for no timeout\)"
            with pytest.raises(ValueError, match=refused + ", got -1"):
                await handle.wait(timeout=-1)
            with pytest.raises(ValueError, match=refused + ", got 0"):
                await handle.wait(timeout=0)
            with pytest.raises(ValueError, match="boom 3"):
                await handle.wait(timeout=5)

    asyncio.run(main())


async def stopper(args: Args[None]) -> None:
    await args.pool.shutdown(timeout=5)


def test_a_task_cannot_shut_down_its_own_pool() -> None:
    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(stopper))
            with pytest.raises(RuntimeError, match=r"shutdown\(\): a task cannot wait for its own pool"):
                await handle
            assert pool.is_running  # the refused call changed nothing
            sub = pool.sub(limit=1)
            inner = await sub.submit(Task(stopper))  # a sub-pool's task shutting down its own sub-pool
            with pytest.raises(RuntimeError, match="cannot wait for its own pool"):
                await inner

    asyncio.run(main())


def test_a_task_run_in_its_own_context_cannot_shut_down_its_pool() -> None:
    var: contextvars.ContextVar[int] = contextvars.ContextVar("var")

    async def main() -> None:
        async with Pool() as pool:
            var.set(1)  # the submitter's context differs from the pool's: the task runs in its own
            handle = await pool.submit(Task(stopper))
            with pytest.raises(RuntimeError, match="cannot wait for its own pool"):
                await handle

    asyncio.run(main())


def test_a_task_may_shut_down_a_sub_pool_it_is_not_in() -> None:
    async def shut_sub(args: Args[None]) -> int:
        sub = args.pool.sub(limit=1)
        await sub.submit(Task(boom).with_input(4))
        return len(await sub.shutdown())

    async def main() -> None:
        async with Pool() as pool:
            handle = await pool.submit(Task(shut_sub))
            assert await handle == 0

    with pytest.raises(ExceptionGroup, match="1 of 2 tasks failed"):  # boom 4, which nobody awaited
        asyncio.run(main())


def test_submit_nowait_from_a_worker_thread_is_refused_at_the_call() -> None:
    async def child(args: Args[int]) -> None:
        pass

    def parent(args: Args[int]) -> None:  # a plain def: it runs in a worker thread
        args.pool.submit_nowait(Task(child).with_input(1))

    async def main() -> None:
        async with Pool(limit=4) as pool:
            handle = await pool.submit(Task(parent).with_input(0))
            with pytest.raises(RuntimeError, match=r"submit_nowait\(\) was called from another thread"):
                await handle
        assert pool.stats().completed == 0  # no child was queued

    asyncio.run(main())
