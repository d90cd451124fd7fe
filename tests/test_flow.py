"""Workflows: chains pass results on, groups fan out and in, callbacks run in the pool, errors name steps."""

import asyncio
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import Args, Flow, FlowError, Hooks, Pool, WaitLog, call, group, prepend, step


async def add(*numbers: int) -> int:
    return sum(numbers)


async def multiply(a: int, b: int) -> int:
    return a * b


async def double(n: int) -> int:
    return 2 * n


async def length(text: str) -> int:
    return len(text)


async def total(numbers: list[int]) -> int:
    return sum(numbers)


async def fail(n: int) -> int:
    raise ValueError(f"no {n}")


def test_machinerys_chain_prepends_each_result_to_the_next_steps_arguments() -> None:
    flow = call(add, 1, 1).then(prepend(add, 5, 6)).then(prepend(multiply, 4))
    assert flow.run(None) == 52  # (1 + 1 + 5 + 6) * 4
    assert repr(flow) == "Flow(add -> add -> multiply)"


def test_each_steps_result_is_the_next_steps_input() -> None:
    async def shout(n: int) -> str:
        return "!" * n

    assert step(length).then(step(shout)).then(step(length)).run("abc") == 3
    assert step(double).then(call(add, 10, 20)).run(1) == 30  # an immutable step ignores what came before


@given(factors=st.lists(st.integers(-3, 3), min_size=1, max_size=8), start=st.integers(-100, 100))
def test_a_chain_computes_the_composition_of_its_steps(factors: list[int], start: int) -> None:
    flow: Flow[int, int] = prepend(multiply, factors[0])
    for factor in factors[1:]:
        flow = flow.then(prepend(multiply, factor))
    expected = start
    for factor in factors:
        expected *= factor
    assert flow.run(start, Pool(limit=2)) == expected


def test_a_group_fans_out_under_the_pools_limit_and_fans_in_in_order() -> None:
    running, most = 0, 0
    release = asyncio.Event()

    async def slow(n: int) -> int:
        nonlocal running, most
        running += 1
        most = max(most, running)
        if running == 2:
            release.set()
        await release.wait()
        running -= 1
        return n + 1

    members = [prepend(multiply, k).then(step(slow)) for k in (1, 2, 3, 4)]
    flow = group(*members).then(step(total))
    assert flow.run(10, Pool(limit=2)) == 11 + 21 + 31 + 41
    assert most == 2
    assert group(step(double), step(double).then(step(double))).run(3) == [6, 12]


@given(
    factors=st.lists(st.integers(-5, 5), min_size=1, max_size=12),
    limit=st.sampled_from([None, 1, 3]),
    start=st.integers(-50, 50),
)
def test_a_group_keeps_every_result_in_the_order_of_its_members(
    factors: list[int], limit: int | None, start: int
) -> None:
    async def yielding(value: int, factor: int) -> int:
        for _ in range(abs(factor)):  # members end in an order unlike theirs
            await asyncio.sleep(0)
        return value * factor

    flow = group(*(prepend(yielding, factor) for factor in factors))
    assert flow.run(start, Pool(limit=limit)) == [start * factor for factor in factors]


def test_stage_test_runs_a_group_one_step_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    order: list[int] = []

    async def note(n: int) -> int:
        order.append(n)
        await asyncio.sleep(0)
        order.append(-n)
        return n

    monkeypatch.setenv("STAGE", "test")
    assert group(*(call(note, n) for n in (1, 2, 3))).run(None) == [1, 2, 3]
    assert order == [1, -1, 2, -2, 3, -3]


def test_a_failing_step_stops_its_flow_and_the_error_names_it() -> None:
    after: list[int] = []

    async def later(n: int) -> int:
        after.append(n)
        return n

    flow = step(double).then(step(fail).with_name("charge")).then(step(later))
    with pytest.raises(
        FlowError, match=r"step 2 \(charge\) of the flow failed: ValueError\('no 4'\)"
    ) as info:
        flow.run(2)
    assert (info.value.position, info.value.step) == ("2", "charge")
    assert isinstance(info.value.__cause__, ValueError)
    assert after == []


def test_a_failing_group_member_lets_the_others_finish_and_reports_the_first() -> None:
    finished: list[int] = []

    async def keep(n: int) -> int:
        finished.append(n)
        return n

    flow = step(double).then(group(step(keep), step(double).then(step(fail)), step(fail), step(keep)))
    with pytest.raises(FlowError, match=r"step 2\.2\.2 \(fail\)") as info:
        flow.run(1)
    assert finished == [2, 2]
    assert info.value.__notes__ == ["1 other member of the group failed too"]


def test_callbacks_run_in_the_pool_on_success_and_on_error() -> None:
    seen: list[Any] = []

    async def record(value: Any) -> None:
        seen.append(value)

    class Started(Hooks):
        def __init__(self) -> None:
            self.names: list[str] = []

        def task_started(self, args: Args[Any]) -> None:
            self.names.append(args.task._spec.title)

    hooks = Started()
    pool = Pool(hooks=[hooks])
    flow = step(double).on_success(step(record).with_name("report"))
    assert flow.run(4, pool) == 8
    assert seen == [8]
    assert hooks.names == ["double", "report"]

    failing = step(fail).on_error(step(record))
    with pytest.raises(FlowError) as info:
        failing.run(3, pool)
    assert seen[1] is info.value  # the callback got the flow's error, and the flow still raised it


def test_a_failing_callback_fails_the_flow_or_is_noted_on_its_error() -> None:
    with pytest.raises(FlowError, match=r"step on_success\.1 \(fail\)"):
        step(double).on_success(step(fail)).run(1)
    with pytest.raises(FlowError, match=r"step 1 \(fail\)") as info:
        step(fail).on_error(prepend(fail)).run(1)  # type: ignore[arg-type]
    assert "its on_error callback failed too: step on_error.1 (fail)" in info.value.__notes__[0]


def test_a_flow_with_callbacks_keeps_them_inside_a_longer_chain() -> None:
    seen: list[int] = []

    async def record(value: int) -> None:
        seen.append(value)

    flow = step(double).on_success(step(record)).then(step(double))
    assert flow.run(1) == 4
    assert seen == [2]


def test_steps_retry_and_time_out_as_tasks_do(waits: WaitLog) -> None:
    tries: list[int] = []

    async def flaky(n: int) -> int:
        tries.append(n)
        if len(tries) < 3:
            raise ConnectionError
        return n

    assert step(flaky).with_retry(3, 0.5).run(7) == 7
    assert tries == [7, 7, 7]
    assert len(waits.waits) == 2
    tries.clear()
    assert step(flaky).run(8, Pool().with_retry(3)) == 8  # the pool's retry applies to steps too

    async def never(n: int) -> int:
        await asyncio.Event().wait()
        return n

    with pytest.raises(FlowError, match=r"step 1 \(.*never\)") as info:
        step(never).with_timeout(0.01).run(1)
    assert isinstance(info.value.__cause__, TimeoutError)


def test_in_a_running_pool_steps_are_submitted_to_it() -> None:
    started: list[str] = []

    async def note(value: int) -> int:
        started.append(f"step {value}")
        return value + 1

    async def main() -> tuple[int, int]:
        async with Pool(limit=1) as pool:
            flow = step(note).then(group(step(note), step(note))).then(step(total))
            result = await flow.arun(1, pool)
            with pytest.raises(FlowError, match=r"step 2 \(fail\)") as info:
                await step(note).then(step(fail)).arun(5, pool)
            assert isinstance(info.value.__cause__, ValueError)
            return result, pool.stats().completed

    assert asyncio.run(main()) == (6, 5)  # 1 -> 2 -> [3, 3] -> 6; then note(5) completed, fail(6) failed
    assert started == ["step 1", "step 2", "step 2", "step 5"]


def test_async_twin_and_a_running_loop() -> None:
    async def main() -> int:
        with pytest.raises(RuntimeError, match=r"await flow.arun\(value, pool\)"):
            step(double).run(1)
        return await step(double).arun(21)

    assert asyncio.run(main()) == 42


def test_bad_flows_are_refused_naming_the_parameter() -> None:
    with pytest.raises(TypeError, match=r"step\(fn\): fn must be an async function, got 3"):
        step(3)  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"Flow.then\(next_flow\): next_flow must be a Flow, got <function double"
    ):
        step(double).then(double)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"group\(\*flows\): give at least one flow"):
        group()
    with pytest.raises(TypeError, match=r"group: flows\[1\] must be a Flow"):
        group(step(double), double)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pool must be a Pool or a RunningPool, got 3"):
        step(double).run(1, 3)  # type: ignore[arg-type]
