"""Properties over random plans of tasks, failures and limits: nothing lost, nothing doubled."""

import asyncio
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import Args, Drain, Pool, Task, set_testing


@dataclass(frozen=True)
class Plan:
    """One task: how often it fails before succeeding, its retry, and how often it yields."""

    failures: int
    attempts: int | None
    yields: int


plans = st.lists(
    st.builds(
        Plan,
        failures=st.integers(0, 4),
        attempts=st.none() | st.integers(1, 4),
        yields=st.integers(0, 3),
    ),
    max_size=30,
)
limits = st.none() | st.integers(1, 6)


class Runner:
    """Runs a plan through a pool and records what each task saw."""

    def __init__(self, plan: list[Plan]) -> None:
        self.plan = plan
        self.calls = [0] * len(plan)
        self.running = 0
        self.peak = 0
        self.out: Drain[int] = Drain()

    async def step(self, args: Args[int]) -> None:
        index = args.input
        self.calls[index] += 1
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            for _ in range(self.plan[index].yields):
                await asyncio.sleep(0)
            if self.calls[index] <= self.plan[index].failures:
                raise ValueError(index)
            args.drain.send(index)
        finally:
            self.running -= 1

    def tasks(self) -> list[Task[int]]:
        base = Task(self.step).drain_to(self.out)
        return [
            base.with_input(i) if p.attempts is None else base.with_input(i).with_retry(p.attempts, 0.1)
            for i, p in enumerate(self.plan)
        ]

    def succeeded(self) -> list[int]:
        """The tasks whose retries outlast their failures, in submission order."""
        return [i for i, p in enumerate(self.plan) if p.failures < (p.attempts or 1)]

    def go(self, pool: Pool) -> list[int]:
        """Run the plan and return the indexes reported as failed, in the reported order."""
        with set_testing():
            try:
                pool.go(iter(self.tasks()))
            except ExceptionGroup as group:
                reported = [error.args[0] for error in group.exceptions]
                assert reported == [error.args[0] for error in pool.errors()]
                return reported
        assert pool.errors() == []
        return []


@settings(max_examples=150, deadline=None)
@given(plan=plans, limit=limits)
def test_every_attempt_value_and_failure_is_accounted_for(plan: list[Plan], limit: int | None) -> None:
    """Attempts match the retry policy; successes are drained once; failures reported once, in order."""
    runner = Runner(plan)
    failed = runner.go(Pool(limit=limit))

    expected_calls = [min(p.failures + 1, p.attempts or 1) for p in plan]
    succeeded = runner.succeeded()
    assert runner.calls == expected_calls
    assert sorted(runner.out.drain()) == succeeded
    assert failed == [i for i in range(len(plan)) if i not in succeeded]
    if limit is not None:
        assert runner.peak <= limit


@settings(max_examples=100, deadline=None)
@given(plan=plans, limit=limits)
def test_stage_test_drains_in_submission_order(plan: list[Plan], limit: int | None) -> None:
    """Under STAGE=test the drain fills in submission order, whatever the limit and the yields."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("STAGE", "test")
        runner = Runner(plan)
        runner.go(Pool(limit=limit))
    assert runner.peak <= 1
    assert runner.out.drain() == runner.succeeded()


@settings(max_examples=100, deadline=None)
@given(plan=plans, limit=st.integers(1, 6))
def test_the_default_retry_counts_like_a_task_retry(plan: list[Plan], limit: int) -> None:
    """A pool retry gives tasks without their own exactly the attempts it names."""
    runner = Runner([Plan(p.failures, None, p.yields) for p in plan])
    runner.go(Pool(limit=limit).with_retry(3, 0.1))
    assert runner.calls == [min(p.failures + 1, 3) for p in plan]


@settings(max_examples=100, deadline=None)
@given(values=st.lists(st.integers()), readers=st.integers(1, 3))
def test_every_reader_sees_every_value_in_send_order(values: list[int], readers: int) -> None:
    """Readers that start before the run each read the whole stream, in order."""
    out: Drain[int] = Drain()

    async def send(args: Args[int]) -> None:
        args.drain.send(args.input)

    async def main() -> list[list[int]]:
        async def read() -> list[int]:
            return [value async for value in out]

        tasks = [asyncio.create_task(read()) for _ in range(readers)]
        await asyncio.sleep(0)
        await Pool(limit=1).ago(Task(send).with_input(v).drain_to(out) for v in values)
        if not values:
            out.close()  # no task had the drain, so no run fed it: readers wait for close()
        return await asyncio.gather(*tasks)

    assert asyncio.run(main()) == [values] * readers
    assert out.drain() == values
