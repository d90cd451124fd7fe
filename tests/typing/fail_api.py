"""Calls that must be rejected: each marked line carries the error it must raise.

mypy runs with warn_unused_ignores, so a marked line that stops failing is an error.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, TypeVar

from go_async import (
    Args,
    CallNext,
    CircuitBreaker,
    Drain,
    FlowError,
    Hooks,
    Pool,
    RateLimit,
    RetryBudget,
    RunProgress,
    Task,
    Topic,
    call,
    group,
    prepend,
    step,
)
from go_async.distributed import Registry, Remote

R = TypeVar("R")


@dataclass(frozen=True)
class User:
    name: str


async def fetch(args: Args[User]) -> None:
    args.drain.send(User(args.input.name))


async def takes_an_int(value: int) -> None:
    pass


async def fetch_user_name(user: User) -> int:
    return len(user.name)


users: Drain[User] = Drain()
numbers: Drain[int] = Drain()

# A drain of another type.
Task(fetch).drain_to(numbers)  # type: ignore[arg-type]

# An input of another type.
Task(fetch).with_input("ada")  # type: ignore[arg-type]

# Sending a value of the wrong type.
users.send(42)  # type: ignore[arg-type]

# A function that does not take Args[T].
Task(takes_an_int)  # type: ignore[arg-type]


# Input and output types: a Task[str, Page] sends Pages, takes a Drain[Page] and a str input.
@dataclass(frozen=True)
class Page:
    url: str


async def fetch_page(args: Args[str, Page]) -> None:
    args.drain.send(args.input)  # type: ignore[arg-type]


Task(fetch_page).drain_to(Drain[str]())  # type: ignore[arg-type]
Task(fetch_page).with_input(Page("x"))  # type: ignore[arg-type]
page_task: Task[str, Page] = Task(fetch)  # type: ignore[arg-type]


# A handle gives what its task's function returns, typed.
async def get_page(args: Args[str]) -> Page:
    return Page(args.input)


async def wrong_result() -> None:
    async with Pool() as running:
        handle = await running.submit(Task(get_page).with_input("u"))
        text: str = await handle  # type: ignore[assignment]
        texts: list[str] = await running.map(fetch_user_name, [User("a")])  # type: ignore[arg-type]
        either: list[int] = await running.map(fetch_user_name, [User("a")], return_exceptions=True)  # type: ignore[assignment]
    either_too: list[int] = Pool().map(fetch_user_name, [User("a")], return_exceptions=True)  # type: ignore[assignment]
    value: str = await Task(get_page).with_input("u").execute()  # type: ignore[assignment]
    print(text, texts, either, either_too, value)


# Retries choose exceptions: a type that is not an exception is refused.
Task(fetch).with_retry(3, on=int)  # type: ignore[arg-type]
Task(fetch).with_retry(3, on=(ValueError, str))  # type: ignore[arg-type]
Pool().with_retry(3, within="30")  # type: ignore[arg-type]

# A bare function is not a task.
Pool().go([fetch])  # type: ignore[list-item]

# A single task is not an iterable of tasks.
Pool().go(Task(fetch))  # type: ignore[arg-type]

# The limit is an int.
Pool(limit="8")  # type: ignore[arg-type]

# The drain's values are typed.
name: str = users.drain()[0]  # type: ignore[assignment]

# A timeout is seconds, a name a str, tags strs.
Task(fetch).with_timeout("1")  # type: ignore[arg-type]
Task(fetch).with_name(1)  # type: ignore[arg-type]
Task(fetch).with_tags("io", 2)  # type: ignore[arg-type]

# map takes an async function of one input, and inputs of its type.
Pool().map(len, ["a"])  # type: ignore[arg-type]
Pool().map(fetch_user_name, [1, 2])  # type: ignore[arg-type]
result: list[str] = Pool().map(fetch_user_name, [User("a")])  # type: ignore[arg-type]


async def misuse() -> None:
    # Only an open pool takes work, and it takes tasks, not functions.
    await Pool().submit(Task(fetch))  # type: ignore[attr-defined]
    async with Pool() as running:
        await running.submit(fetch)  # type: ignore[arg-type]
        Task(fetch).with_priority("high")  # type: ignore[arg-type]


# A middleware must hand on the task's result: one that returns None would drop it.
async def drops_results(args: Args[Any], call_next: CallNext[R]) -> None:
    await call_next()


Pool(middleware=[drops_results])  # type: ignore[list-item]
Task(fetch).with_middleware(drops_results)  # type: ignore[arg-type]

# Progress is True, False, "tqdm" or "rich".
Pool().go([], progress="bar")  # type: ignore[arg-type]


# A hook keeps the signature of the event it overrides.
class WrongHook(Hooks):
    def task_failed(self, args: Args[Any]) -> None:  # type: ignore[override]
        pass


# A topic carries one type of message.
async def talks_wrong() -> None:
    numbers: Topic[int] = Topic("numbers")
    await numbers.publish("one")  # type: ignore[arg-type]
    Topic("numbers", when_full="block")  # type: ignore[arg-type]
    async with Pool() as running:
        await running.topic("prices", float).publish("high")  # type: ignore[arg-type]
        running.schedule(Task(fetch), every=1, overlap="sometimes")  # type: ignore[arg-type]


# A rate limit is a RateLimit or a count; a breaker is a CircuitBreaker.
Task(fetch).with_rate_limit("10/s")  # type: ignore[call-overload]
Task(fetch).with_rate_limit(RateLimit(1), per=2)  # type: ignore[call-overload]
Task(fetch).with_circuit_breaker("payments")  # type: ignore[arg-type]
# A retry budget is a RetryBudget, or its ratio with the rest of its arguments.
Pool().with_retry_budget(RetryBudget(), 5)  # type: ignore[call-overload]
Pool().with_retry_budget("20%")  # type: ignore[call-overload]


class WrongCircuitHook(Hooks):
    def circuit_changed(self, breaker: CircuitBreaker) -> None:  # type: ignore[override]
        pass


# A chain's types must meet: (A -> B) then (C -> D) is refused.
async def to_text(value: int) -> str:
    return str(value)


async def halve(value: int) -> float:
    return value / 2


async def on_failure(error: FlowError) -> None:
    pass


step(to_text).then(step(halve))  # type: ignore[arg-type]
step(halve).then(prepend(to_text))  # type: ignore[arg-type]
prepend(halve, "extra")  # type: ignore[arg-type]
call(halve, "one")  # type: ignore[arg-type]
group(step(to_text), step(halve)).then(step(to_text))  # type: ignore[arg-type]
step(to_text).on_success(step(halve))  # type: ignore[arg-type]
step(to_text).on_error(step(halve))  # type: ignore[arg-type]
step(to_text).run("1")  # type: ignore[arg-type]
step(halve).on_error(step(on_failure)).run(1).upper()  # type: ignore[attr-defined]


# Named tasks: arguments and results keep their types across the wire.
remote_tasks = Registry()


@remote_tasks.task("shout")
async def shout(text: str, times: int = 1) -> str:
    return text.upper() * times


async def send_badly(remote: Remote) -> None:
    await remote.send(shout, 3)  # type: ignore[arg-type]
    await remote.send(shout, "a", times="2")  # type: ignore[arg-type]
    remote.call(shout)  # type: ignore[call-arg]
    await takes_an_int(await (await remote.send(shout, "a")))  # type: ignore[arg-type]
    await remote.amap(shout, [1, 2])  # type: ignore[arg-type]
    await remote.stub(shout)(b"bytes")  # type: ignore[arg-type]
    await remote.send(to_text, 1)  # type: ignore[arg-type]
    await takes_an_int(await (await remote.submit(remote.call(shout, "a").after(1))))  # type: ignore[arg-type]
    await remote.start(step(remote.stub(shout)), 3)  # type: ignore[misc]
    remote.call(shout, "a").after("soon")  # type: ignore[arg-type]
    await takes_an_int(await remote.result(shout, "id"))  # type: ignore[arg-type]
    remote_tasks.task("late", retry=3)  # type: ignore[call-overload]


async def async_inputs_badly() -> None:
    async def numbers() -> AsyncIterator[int]:
        yield 1

    async def needs_text(text: str) -> str:
        return text

    await Pool().amap(needs_text, numbers())  # type: ignore[arg-type]
    await takes_an_int((await Pool().amap(to_text, numbers()))[0])  # type: ignore[arg-type]
    await Pool().ago(numbers())  # type: ignore[arg-type]
    await Pool().ago([], checkpoint=3)  # type: ignore[arg-type]


class InMemoryProgress:
    def load(self) -> RunProgress | None:
        return None

    def save(self, progress: RunProgress) -> None:
        pass


async def a_map_keeps_its_values_in_a_file() -> None:
    await Pool().amap(to_text, [1], checkpoint=InMemoryProgress())  # type: ignore[call-overload]
