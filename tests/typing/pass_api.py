"""Calls that must type-check, with the types they must keep."""

import asyncio
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, assert_type

from go_async import (
    Adaptive,
    Args,
    CallNext,
    CatchErrors,
    CircuitBreaker,
    CircuitState,
    Drain,
    Flow,
    FlowError,
    Handle,
    Hooks,
    LogTasks,
    ManualClock,
    Middleware,
    Pool,
    PoolStats,
    RateLimit,
    RetryBudget,
    RunningPool,
    Schedule,
    Subscription,
    Task,
    Timing,
    Topic,
    WaitLog,
    call,
    group,
    prepend,
    set_testing,
    step,
)

R = TypeVar("R")


@dataclass(frozen=True)
class User:
    name: str


async def fetch(args: Args[User]) -> None:
    assert_type(args.input, User)
    assert_type(args.drain, Drain[User])
    assert_type(args.task, Task[User, User, Any])
    args.drain.send(User(args.input.name.title()))


def fetch_sync(args: Args[User]) -> None:
    args.drain.send(args.input)


out: Drain[User] = Drain()
assert_type(Task(fetch), Task[User])
assert_type(Task(fetch_sync), Task[User])
assert_type(Task(fetch).with_input(User("ada")), Task[User])
assert_type(Task(fetch).drain_to(out), Task[User])
assert_type(Task(fetch).with_retry(3, 0.2).with_input(User("a")).drain_to(out), Task[User])
assert_type(Task(fetch).with_timeout(1.5).with_name("fetch").with_tags("io", "api"), Task[User])
assert_type(Task(fetch).with_timeout(timedelta(seconds=2)).with_timeout(None), Task[User])
assert_type(Args(Task(fetch)).id, str)
assert_type(Args(Task(fetch)).name, str | None)
assert_type(Args(Task(fetch)).tags, tuple[str, ...])
assert_type(out.drain(), list[User])
assert_type(len(out), int)

pool = Pool(limit=8)
assert_type(Pool().with_limit(8).with_retry(3, 0.5, max_wait=2.0), Pool)
assert_type(Pool().with_timeout(2.0).with_timeout(None), Pool)
assert_type(pool.limit, int | None)
assert_type(pool.errors(), list[Exception])
pool.go([Task(fetch).with_input(User("a")).drain_to(out)])
pool.go(Task(fetch_sync).with_input(u).drain_to(out) for u in [User("b")])


async def name_length(user: User) -> int:
    return len(user.name)


assert_type(pool.map(name_length, [User("e")]), list[int])


async def main() -> None:
    assert_type(await pool.amap(name_length, (User(n) for n in "fg")), list[int])
    assert_type(pool.as_completed(name_length, [User("h")]), AsyncGenerator[int, None])
    async for length in pool.as_completed(name_length, [User("i")]):
        assert_type(length, int)
    await pool.ago([Task(fetch).with_input(User("c")).drain_to(out)])
    await Task(fetch).with_input(User("d")).drain_to(out).execute()
    async for user in out:
        assert_type(user, User)


async def serve() -> None:
    async with Pool(limit=2).with_queue_size(10) as running:
        assert_type(running, RunningPool)
        handle = await running.submit(Task(fetch).with_input(User("j")).drain_to(out).with_priority(3))
        assert_type(handle, Handle[None])
        assert_type(running.submit_nowait(Task(fetch).with_input(User("k")).drain_to(out)), Handle[None])
        await handle
        await handle.wait(timeout=1.0)
        assert_type(handle.done(), bool)
        assert_type(handle.id, str)
        assert_type(running.stats(), PoolStats)
        assert_type(running.stats().p95_duration, float | None)
        assert_type(running.sub(limit=1), RunningPool)
        assert_type(running.cancel(), list[Handle[Any]])
        assert_type(await running.shutdown(timeout=1.0), list[Handle[Any]])


async def timed(args: Args[Any], call_next: CallNext[R]) -> R:
    result = await call_next()
    assert_type(result, R)
    return result


class Named:
    """A middleware as a class, returning what call_next returned."""

    async def __call__(self, args: Args[Any], call_next: CallNext[R]) -> R:
        logging.info("%s %s", args.id, args.name)
        return await call_next()


class CountFailures(Hooks):
    def __init__(self) -> None:
        self.failed = 0

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self.failed += 1


middleware: list[Middleware] = [
    timed,
    Named(),
    LogTasks(),
    Timing(),
    CatchErrors(KeyError, fallback=lambda a, e: 0),
]
observed = Pool(limit=2, middleware=middleware, hooks=[CountFailures()]).with_middleware(timed)
observed = observed.with_hooks(CountFailures())
assert_type(observed, Pool)
assert_type(Task(fetch).with_middleware(timed, Named()), Task[User])
assert_type(observed.map(name_length, [User("l")], progress=True), list[int])
observed.go([Task(fetch).with_input(User("m")).drain_to(out)], progress="tqdm")
assert_type(Timing().mean, float | None)
assert_type(CatchErrors(ValueError).caught, int)

# Topics, schedules, rate limits and circuit breakers.
api = RateLimit(10, per=timedelta(seconds=1), clock=ManualClock())
payments = CircuitBreaker("payments", failures=3, cooldown=5)
guarded = Task(fetch).with_rate_limit(api).with_rate_limit(5, per=2).with_circuit_breaker(payments)
assert_type(guarded, Task[User])
assert_type(Pool().with_rate_limit(100).with_rate_limit(api).with_rate_limit(None), Pool)
budget = RetryBudget(0.2, 10, window=timedelta(seconds=10), clock=ManualClock())
assert_type(Pool().with_retry_budget(0.1, window=5).with_retry_budget(budget).with_retry_budget(None), Pool)
assert_type(budget.balance(), float)
assert_type(payments.state, CircuitState)


class WatchCircuits(Hooks):
    def circuit_changed(self, breaker: CircuitBreaker, state: CircuitState) -> None:
        logging.info("%s is %s", breaker.name, state.value)


async def talk() -> None:
    users: Topic[User] = Topic("users", buffer=10, when_full="drop_oldest")
    with users.subscribe() as subscription:
        assert_type(subscription, Subscription[User])
        await users.publish(User("n"))
        async for user in subscription:
            assert_type(user, User)
    async with Pool(hooks=[WatchCircuits()]) as pool:
        assert_type(pool.topic("prices", float), Topic[float])
        assert_type(pool.topic("anything"), Topic[Any])
        await pool.topic("prices", float).publish(1.5)
        every = pool.schedule(Task(fetch).with_input(User("o")), every=timedelta(minutes=1), overlap="queue")
        assert_type(every, Schedule)
        pool.schedule(Task(fetch).with_input(User("p")), cron="0 7 * * *", times=3, per_tick=2)
        await every


# Workflows: each step's result is the next one's input.
async def parse(text: str) -> int:
    return int(text)


async def scale(value: int, factor: float) -> float:
    return value * factor


async def describe(values: list[float]) -> str:
    return ", ".join(map(str, values))


async def alert(error: FlowError) -> None:
    logging.error("%s failed", error.step)


async def report(value: float) -> None:
    logging.info("%s", value)


chain = step(parse).then(prepend(scale, 1.5))
assert_type(chain, Flow[str, float])
fanned = step(parse).then(group(prepend(scale, 2.0), prepend(scale, 3.0))).then(step(describe))
assert_type(fanned, Flow[str, str])
immutable = step(parse).then(call(scale, 2, 0.5))
assert_type(immutable, Flow[str, float])
watched = chain.on_success(step(report)).on_error(step(alert))
assert_type(watched, Flow[str, float])
assert_type(step(parse).with_retry(3).with_timeout(5).with_name("parse").run("4", Pool(limit=2)), int)


# Input and output of their own types: a str in, Pages to the drain, or a Page returned.
@dataclass(frozen=True)
class Page:
    url: str


async def fetch_page(args: Args[str, Page]) -> None:
    assert_type(args.input, str)
    assert_type(args.drain, Drain[Page])
    args.drain.send(Page(args.input))


async def get_page(args: Args[str]) -> Page:
    return Page(args.input)


def get_page_sync(args: Args[str]) -> Page:
    return Page(args.input)


pages: Drain[Page] = Drain()
page_task: Task[str, Page] = Task(fetch_page).drain_to(pages)
assert_type(Task(fetch_page), Task[str, Page, None])
assert_type(Task(get_page), Task[str, str, Page])
assert_type(Task(get_page_sync).with_input("u").with_retry(2), Task[str, str, Page])
Pool(limit=2).go([page_task.with_input("a"), Task(get_page).with_input("b")])
assert_type(pages.drain(), list[Page])


async def flaky(url: str) -> Page:
    return Page(url)


def retry_only_lookups(error: Exception) -> bool:
    return isinstance(error, LookupError)


async def typed_results() -> None:
    assert_type(await Task(get_page).with_input("x").execute(), Page)
    assert_type(await page_task.with_input("x").execute(), None)
    async with Pool(limit=2) as running:
        handle = await running.submit(Task(get_page).with_input("u"))
        assert_type(handle, Handle[Page])
        assert_type(await handle, Page)
        assert_type(handle.result(), Page)
        assert_type(running.submit_nowait(Task(get_page_sync).with_input("v")), Handle[Page])
        assert_type(await running.map(flaky, ["a", "b"]), list[Page])
        assert_type(await running.amap(flaky, ["a"]), list[Page])
        assert_type(await running.map(flaky, ["a"], return_exceptions=True), list[Page | Exception])
        async for page in running.as_completed(flaky, ["c"]):
            assert_type(page, Page)
    assert_type(await Pool().amap(flaky, ["d"], return_exceptions=True), list[Page | Exception])


assert_type(Pool().map(flaky, ["e"], return_exceptions=True), list[Page | Exception])
assert_type(Pool().map(flaky, ["f"], return_exceptions=False), list[Page])
assert_type(Task(get_page).with_retry(3, 0.1, on=KeyError), Task[str, str, Page])
assert_type(
    Task(get_page).with_retry(3, on=(KeyError, OSError), within=timedelta(seconds=30)), Task[str, str, Page]
)
assert_type(Pool().with_retry(3, on=retry_only_lookups, max_wait=1.0, within=10), Pool)


with set_testing(seed=3) as log:
    assert_type(log, WaitLog)
    assert_type(log.waits, list[float])
    asyncio.run(main())
    asyncio.run(serve())
    asyncio.run(typed_results())


# An adaptive limit goes where a number does; its limit reads as an int.
adaptive = Adaptive(min=1, max=20, overload=(ConnectionError, TimeoutError), tolerance=1.5)
assert_type(Pool(limit=adaptive).with_limit(adaptive).limit, int | None)
assert_type(adaptive.limit, int)
