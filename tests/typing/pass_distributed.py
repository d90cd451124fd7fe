"""Named tasks keep their types across the wire: arguments, results, handles, stubs and flows."""

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from go_async import call, group, prepend, step
from go_async.distributed import (
    Call,
    DeadLetter,
    Named,
    Registry,
    Remote,
    RemoteHandle,
    Retry,
    Worker,
    WorkerStats,
)

registry = Registry()


@dataclass(frozen=True)
class Order:
    item: str
    count: int


@registry.task("total")
async def total(order: Order, price: float = 1.0) -> float:
    return order.count * price


@registry.task("label")
def label(order: Order) -> str:
    return f"{order.count} x {order.item}"


@registry.task("add")
async def add(*numbers: int) -> int:
    return sum(numbers)


@registry.task("count", retry=Retry(3, sleep=0.01, on=(ConnectionError, TimeoutError)))
async def count(text: str) -> int:
    return len(text)


async def main() -> None:
    named: Named[[Order, float], float] = total
    plain: Named[[Order], str] = label
    async with Remote(registry) as remote:
        handle: RemoteHandle[float] = await remote.send(named, Order("tea", 3), 2.0)
        cost: float = await handle
        text: str = await (await remote.send(plain, Order("tea", 1))).result(timeout=5)
        labels: list[str] = await remote.amap(label, [Order("a", 1)])
        one: Call[int] = remote.call(add, 1, 2)
        sums: list[int] = await remote.ago([one, remote.call(add)])
        chained: int = await call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5, 6)).arun(None)
        assert (cost, text, labels, sums, chained) == (6.0, "1 x tea", ["1 x a"], [3, 0], 13)
        retried: Named[[str], int] = count
        soon: Call[int] = remote.call(retried, "abc").after(timedelta(milliseconds=1))
        at: Call[int] = remote.call(add, 2).at(datetime.now(UTC))
        delayed: RemoteHandle[int] = await remote.submit(soon)
        length: int = await delayed
        attempts: int | None = delayed.attempts
        whole: RemoteHandle[list[int]] = await remote.start(
            group(step(remote.stub(count)), step(remote.stub(count))), "ab"
        )
        lengths: list[int] = await whole
        await remote.revoke(await remote.submit(at))
        letters: list[DeadLetter] = await remote.dead_letters()
        assert (length, attempts, lengths, letters) == (3, 1, [2, 2], [])
    assert remote.worker is not None
    stats: WorkerStats = remote.worker.stats()
    assert stats.succeeded == 10
    assert Worker(registry).concurrency == 10


asyncio.run(main())
