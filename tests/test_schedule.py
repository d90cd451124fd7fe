"""Schedules: every interval (jitter, a count, N per tick), cron and overlap policies, on a manual clock."""

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from go_async import Args, ManualClock, Pool, Schedule, Task, WaitLog


class Recorder:
    """A task function that notes when each run starts; runs wait for `release` if it is given."""

    def __init__(self, clock: ManualClock, release: asyncio.Event | None = None) -> None:
        self.clock = clock
        self.release = release
        self.starts: list[float] = []
        self.running = 0
        self.most_running = 0

    async def __call__(self, args: Args[Any]) -> None:
        self.starts.append(self.clock.time())
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.release is not None:
                await self.release.wait()
        finally:
            self.running -= 1


def test_a_schedule_runs_every_interval_for_its_count_and_the_block_waits_for_it() -> None:
    clock = ManualClock()
    runs = Recorder(clock)

    async def main() -> Schedule:
        async with Pool() as pool:
            schedule = pool.schedule(Task(runs), every=timedelta(seconds=10), times=3, clock=clock)
            await clock.advance(25)
            assert runs.starts == [10, 20]
            ending = asyncio.create_task(clock.advance(100))
        await ending
        return schedule

    schedule = asyncio.run(main())
    assert runs.starts == [10, 20, 30]
    assert (schedule.started, schedule.skipped, schedule.done()) == (3, 0, True)


@given(
    every=st.sampled_from([0.5, 1.0, 7.0]),
    times=st.integers(1, 6),
    per_tick=st.integers(1, 3),
    limit=st.sampled_from([None, 1, 2]),
)
def test_every_tick_runs_its_executions_on_time_and_none_is_lost(
    every: float, times: int, per_tick: int, limit: int | None
) -> None:
    clock = ManualClock()
    runs = Recorder(clock)

    async def main() -> Schedule:
        async with Pool(limit=limit) as pool:
            schedule = pool.schedule(Task(runs), every=every, times=times, per_tick=per_tick, clock=clock)
            await clock.advance(every * (times + 2))
        return schedule

    schedule = asyncio.run(main())
    assert runs.starts == [every * tick for tick in range(1, times + 1) for _ in range(per_tick)]
    assert (schedule.started, schedule.skipped) == (times, 0)


def test_each_tick_runs_n_executions_under_the_pool_limit() -> None:
    clock = ManualClock()
    runs = Recorder(clock)

    async def main() -> None:
        async with Pool(limit=2) as pool:
            pool.schedule(Task(runs), every=5, times=2, per_tick=3, clock=clock)
            await clock.advance(10)

    asyncio.run(main())
    assert runs.starts == [5, 5, 5, 10, 10, 10]


def test_jitter_delays_each_tick_by_up_to_its_amount_without_drifting(waits: WaitLog) -> None:
    clock = ManualClock()
    runs = Recorder(clock)

    async def main() -> None:
        async with Pool() as pool:
            pool.schedule(Task(runs), every=10, jitter=2, times=5, clock=clock)
            await clock.advance(60)

    asyncio.run(main())
    assert len(runs.starts) == 5
    for tick, start in enumerate(runs.starts, 1):
        assert 10 * tick <= start <= 10 * tick + 2
    assert len({start % 10 for start in runs.starts}) > 1  # the jitter is drawn afresh each tick


@pytest.mark.parametrize(
    ("overlap", "starts_before_release", "starts_after", "skipped", "most_running"),
    [
        ("skip", [10], [10, 50], 3, 1),  # ticks at 20, 30 and 40 are skipped; 50 runs
        ("queue", [10], [10, 45, 45, 45, 50], 0, 1),  # 20, 30 and 40 wait, then run one after another
        ("allow", [10, 20, 30, 40], [10, 20, 30, 40, 50], 0, 4),
    ],
)
def test_a_tick_due_while_the_previous_run_goes_on_follows_the_overlap_policy(
    overlap: Any,
    starts_before_release: list[float],
    starts_after: list[float],
    skipped: int,
    most_running: int,
) -> None:
    clock = ManualClock()
    release = asyncio.Event()
    runs = Recorder(clock, release)

    async def main() -> Schedule:
        async with Pool() as pool:
            schedule = pool.schedule(Task(runs), every=10, times=5 - skipped, overlap=overlap, clock=clock)
            await clock.advance(45)
            assert runs.starts == starts_before_release
            release.set()
            await clock.advance(5)
        return schedule

    schedule = asyncio.run(main())
    assert runs.starts == starts_after
    assert schedule.skipped == skipped
    assert runs.most_running == most_running


def test_cancelling_a_schedule_stops_its_ticks_and_its_runs_finish() -> None:
    clock = ManualClock()
    release = asyncio.Event()
    runs = Recorder(clock, release)

    async def main() -> None:
        async with Pool() as pool:
            schedule = pool.schedule(Task(runs), every=10, clock=clock)
            await clock.advance(10)
            assert schedule.cancel()
            await clock.advance(100)
            assert not schedule.done()  # its run still goes on
            release.set()
            await schedule
            assert not schedule.cancel()

    asyncio.run(main())
    assert runs.starts == [10]


def test_a_schedule_cancelled_before_its_first_step_ends_at_once() -> None:
    clock = ManualClock()

    async def main() -> Schedule:
        async with Pool() as pool:
            schedule = pool.schedule(Task(Recorder(clock)).with_name("poll"), every=1, clock=clock)
            assert repr(schedule) == "<Schedule poll skip: 0 ticks, 0 skipped>"
            schedule.cancel()
        return schedule

    schedule = asyncio.run(main())
    assert schedule.done()
    assert schedule.started == 0


@pytest.mark.parametrize("stop", ["shutdown", "cancel"])
def test_shutting_down_or_cancelling_the_pool_stops_a_schedule_without_a_count(stop: str) -> None:
    clock = ManualClock()
    runs = Recorder(clock)

    async def main() -> Schedule:
        async with Pool() as pool:
            schedule = pool.schedule(Task(runs), every=1, clock=clock)
            await clock.advance(3)
            if stop == "shutdown":
                assert await pool.shutdown() == []
            else:
                pool.cancel()
        return schedule

    schedule = asyncio.run(main())
    assert runs.starts == [1, 2, 3]
    assert schedule.done()


def test_the_failures_of_scheduled_runs_are_raised_when_the_pool_closes() -> None:
    clock = ManualClock()

    async def fails(args: Args[None]) -> None:
        raise ValueError(clock.time())

    async def main() -> None:
        async with Pool() as pool:
            pool.schedule(Task(fails).with_input(None), every=1, times=2, clock=clock)
            await clock.advance(2)

    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(main())
    assert [error.args for error in info.value.exceptions] == [(1,), (2,)]


def test_a_broken_clock_stops_the_schedule_and_is_reported_not_swallowed() -> None:
    class BrokenClock(ManualClock):
        async def sleep_until(self, deadline: float) -> None:
            raise OSError("no time")

    async def main() -> None:
        async with Pool() as pool:
            schedule = pool.schedule(Task(Recorder(ManualClock())), every=1, clock=BrokenClock())
            with pytest.raises(OSError, match="no time") as info:
                await schedule
            assert "raised by the schedule of" in info.value.__notes__[0]
            pool.schedule(Task(Recorder(ManualClock())), every=1, clock=BrokenClock())

    with pytest.raises(ExceptionGroup) as info:
        asyncio.run(main())
    assert [str(error) for error in info.value.exceptions] == ["no time"]


def test_a_cron_schedule_runs_at_the_times_of_its_expression() -> None:
    clock = ManualClock(datetime(2026, 3, 2, 6, 58, tzinfo=UTC))  # a Monday
    runs = Recorder(clock)

    async def main() -> None:
        async with Pool() as pool:
            pool.schedule(Task(runs), cron="*/5 7 * * mon-fri", times=3, clock=clock)
            await clock.advance(timedelta(hours=1))

    asyncio.run(main())
    assert runs.starts == [120, 420, 720]  # 07:00, 07:05 and 07:10


def test_a_cron_schedule_needs_its_extra_and_a_valid_expression(monkeypatch: pytest.MonkeyPatch) -> None:
    async def main() -> None:
        async with Pool() as pool:
            with pytest.raises(ValueError, match=r"cron 'every day' is not a valid cron expression"):
                pool.schedule(Task(Recorder(ManualClock())), cron="every day")
            monkeypatch.setitem(sys.modules, "cronsim", None)
            with pytest.raises(ImportError, match=r"pip install 'go-async\[cron\]'"):
                pool.schedule(Task(Recorder(ManualClock())), cron="* * * * *")

    asyncio.run(main())


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        ({}, ValueError, r"give exactly one of every= or cron=, got every=None, cron=None"),
        ({"every": 1, "cron": "* * * * *"}, ValueError, r"give exactly one of every= or cron="),
        ({"every": 0}, ValueError, r"every must be finite and > 0 seconds, got 0"),
        ({"every": "1s"}, TypeError, r"every must be seconds as a float or a timedelta, got '1s'"),
        ({"every": 1, "times": 0}, ValueError, r"times must be an int >= 1, got 0"),
        ({"every": 1, "per_tick": 0}, ValueError, r"per_tick must be an int >= 1, got 0"),
        ({"every": 1, "jitter": -1}, ValueError, r"jitter must be finite and >= 0 seconds, got -1"),
        ({"every": 1, "overlap": "wait"}, ValueError, r"overlap must be one of 'skip', 'queue', 'allow'"),
        ({"cron": 5}, TypeError, r"cron must be a str, got 5"),
    ],
)
def test_bad_schedules_are_refused_naming_the_parameter(
    arguments: dict[str, Any], error: type[Exception], message: str
) -> None:
    async def main() -> None:
        async with Pool() as pool:
            with pytest.raises(error, match=rf"RunningPool.schedule: {message}"):
                pool.schedule(Task(Recorder(ManualClock())), **arguments)
            with pytest.raises(TypeError, match=r"RunningPool.schedule: task must be a Task, got 'task'"):
                pool.schedule("task", every=1)  # type: ignore[arg-type]

    asyncio.run(main())


def test_a_closed_pool_takes_no_schedule() -> None:
    async def main() -> None:
        async with Pool() as pool:
            pass
        with pytest.raises(RuntimeError, match=r"RunningPool.schedule\(\): the pool is not running"):
            pool.schedule(Task(Recorder(ManualClock())), every=1)

    asyncio.run(main())
