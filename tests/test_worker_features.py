"""Workers' own features in memory, on a manual clock: retries, delays, revocation, dead letters, flows.

No real waiting and no server: the embedded worker's transport runs on the
test's ``ManualClock``, so a retry's wait, a delay, ``redeliver_after`` and
a kept result's expiry pass when the test advances the clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from go_async import FlowError, ManualClock, call, group, prepend, step
from go_async.distributed import (
    Call,
    DeadLetter,
    Registry,
    Remote,
    RemoteError,
    RemoteHandle,
    Retry,
    TaskRevoked,
    Worker,
    WorkerStats,
)
from looping import in_loop


@pytest.fixture(autouse=True)
def _no_broker_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GO_ASYNC_BROKER_URL", raising=False)


class Flaky:
    """A registry whose task ``flaky`` fails ``failures[value]`` times for each value before it succeeds."""

    def __init__(self, retry: Retry | None, clock: ManualClock | None = None) -> None:
        self.registry = Registry()
        self.failures: Counter[int] = Counter()
        self.runs: list[int] = []
        self.times: list[float] = []  # on the clock, when given

        @self.registry.task("flaky", retry=retry)
        async def flaky(value: int) -> int:
            self.runs.append(value)
            if clock is not None:
                self.times.append(clock.time())
            if self.failures[value] > 0:
                self.failures[value] -= 1
                raise ValueError(f"not yet: {value}")
            return value * 10

        self.flaky = flaky


async def _advance_until(clock: ManualClock, handle: RemoteHandle[Any]) -> None:
    # Move the clock a second at a time until the reply is in (at most ten minutes of clock time).
    for _ in range(600):
        if handle._reply.done():
            return
        await clock.advance(1)
    pytest.fail("no reply in ten minutes of clock time")


# Retries on the worker


@in_loop
async def test_a_failing_task_is_tried_again_on_the_worker_after_its_backoff() -> None:
    clock = ManualClock()
    flaky = Flaky(Retry(4, sleep=10.0, max_wait=60.0), clock)
    flaky.failures[3] = 2
    remote = Remote(flaky.registry, clock=clock)
    async with remote:
        handle = await remote.send(flaky.flaky, 3)
        await _advance_until(clock, handle)
        assert (await handle, handle.attempts, len(flaky.runs)) == (30, 3, 3)
    # Each wait is sleep * 2 ** (n - 1) plus up to half that again; the clock moves a second at a time.
    times = flaky.times
    first, second = times[1] - times[0], times[2] - times[1]
    assert 10 - 1e-6 <= first <= 16, times
    assert 20 - 1e-6 <= second <= 31, times
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=3, succeeded=1, failed=0, retried=2)


@in_loop
async def test_a_task_out_of_tries_fails_with_its_last_error_and_the_count() -> None:
    clock = ManualClock()
    flaky = Flaky(Retry(2, sleep=1.0))
    flaky.failures[5] = 9
    remote = Remote(flaky.registry, clock=clock)
    async with remote:
        handle = await remote.send(flaky.flaky, 5)
        await _advance_until(clock, handle)
        with pytest.raises(RemoteError, match=r"after 2 tries: builtins\.ValueError: not yet: 5") as caught:
            await handle
    assert (caught.value.attempts, handle.attempts, flaky.runs) == (2, 2, [5, 5])
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=2, failed=1, retried=1)


@in_loop
async def test_only_the_errors_retry_names_are_tried_again() -> None:
    flaky = Flaky(Retry(3, sleep=1.0, on=KeyError))
    flaky.failures[1] = 1
    async with Remote(flaky.registry, clock=ManualClock()) as remote:
        with pytest.raises(RemoteError, match="not yet: 1") as caught:
            await (await remote.send(flaky.flaky, 1))
    assert (caught.value.attempts, flaky.runs) == (1, [1])


def test_bad_retries_are_refused_where_they_are_given() -> None:
    with pytest.raises(ValueError, match=r"Retry: attempts must be"):
        Retry(0)
    with pytest.raises(ValueError, match=r"Retry: sleep must be"):
        Retry(2, sleep=-1)
    with pytest.raises(TypeError, match=r"Retry: on must be an Exception subclass"):
        Retry(2, on="ValueError")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"Registry.task\('x'\): retry must be a Retry, got 3"):
        Registry().task("x", retry=3)  # type: ignore[call-overload]
    assert repr(Retry(3, 0.5)) == "Retry(3x0.5s)"


# Delays


@in_loop
async def test_a_delayed_task_runs_once_it_is_due_and_not_before() -> None:
    clock = ManualClock()
    flaky = Flaky(None)
    remote = Remote(flaky.registry, clock=clock)
    async with remote:
        later = await remote.submit(remote.call(flaky.flaky, 1).after(60))
        at = await remote.submit(remote.call(flaky.flaky, 2).at(clock.wall() + timedelta(seconds=30)))
        now = await remote.submit(remote.call(flaky.flaky, 3))
        assert await now == 30
        await clock.advance(29.9)
        assert flaky.runs == [3]
        await clock.advance(0.1)
        assert await at == 20
        await clock.advance(29.9)
        assert flaky.runs == [3, 2]
        await clock.advance(0.1)
        assert await later == 10
    assert flaky.runs == [3, 2, 1]


def test_bad_delays_are_refused_at_the_call() -> None:
    flaky = Flaky(None)
    remote = Remote(flaky.registry)
    made = remote.call(flaky.flaky, 1)
    with pytest.raises(ValueError, match=r"Call.after: delay must be"):
        made.after(-1)
    with pytest.raises(ValueError, match=r"Call.at\(when\): when must say its time zone"):
        made.at(datetime(2030, 1, 1))
    with pytest.raises(TypeError, match=r"Call.at\(when\): when must be a datetime, got 5"):
        made.at(5)  # type: ignore[arg-type]
    assert isinstance(made.after(timedelta(minutes=1)), Call)
    assert repr(made.after(2)) == "<Call 'flaky' {'value': 1} after 2.0s>"


# Revocation


@in_loop
async def test_revoking_drops_a_queued_task_and_cancels_a_running_one() -> None:
    registry = Registry()
    started: dict[int, asyncio.Event] = {1: asyncio.Event(), 2: asyncio.Event()}
    release = asyncio.Event()
    ran: list[int] = []
    cancelled: list[int] = []

    @registry.task("hold")
    async def hold(value: int) -> int:
        ran.append(value)
        started[value].set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            cancelled.append(value)
            raise
        return value

    remote = Remote(registry, concurrency=1)
    async with remote:
        running = await remote.send(hold, 1)
        queued = await remote.send(hold, 2)
        await started[1].wait()
        await remote.revoke(queued)  # behind the running one, on a worker with one slot
        await remote.revoke(running.task_id)  # by its id
        with pytest.raises(TaskRevoked, match=r"task 'hold' \(\w+\) was revoked"):
            await running
        with pytest.raises(TaskRevoked):
            await queued
    assert (ran, cancelled) == ([1], [1])
    assert remote.worker is not None
    assert remote.worker.stats() == WorkerStats(received=2, revoked=2)


@in_loop
async def test_a_revoked_delayed_task_never_runs_and_a_finished_one_keeps_its_result() -> None:
    clock = ManualClock()
    flaky = Flaky(None)
    remote = Remote(flaky.registry, clock=clock)
    async with remote:
        done = await remote.send(flaky.flaky, 1)
        assert await done == 10
        await remote.revoke(done)
        assert await done == 10
        later = await remote.submit(remote.call(flaky.flaky, 2).after(60))
        await remote.revoke(later)
        await _advance_until(clock, later)
        with pytest.raises(TaskRevoked):
            await later
        with pytest.raises(TypeError, match=r"Remote.revoke: expected a RemoteHandle or a task id, got 3"):
            await remote.revoke(3)  # type: ignore[arg-type]
    assert flaky.runs == [1]


# Dead letters


@in_loop
async def test_a_dead_letter_is_listed_and_sent_again() -> None:
    """A worker dies on a task with one delivery allowed; the next buries it; it is sent again and runs."""
    clock = ManualClock()
    registry = Registry()
    first_try = asyncio.Event()
    tries: list[int] = []

    @registry.task("once")
    async def once(value: int) -> int:
        tries.append(value)
        if len(tries) == 1:
            first_try.set()
            await asyncio.Event().wait()  # never ends: its worker is killed here
        return value + 1

    remote = Remote(registry, clock=clock, redeliver_after=30, max_deliveries=1)
    async with remote:
        handle = await remote.send(once, 41)
        await first_try.wait()
        await _kill_embedded_worker(remote)
        await _advance_until(clock, handle)
        [letter] = await remote.dead_letters()
        assert isinstance(letter, DeadLetter)
        assert (letter.task, letter.task_id) == ("once", handle.task_id)
        assert "handed out 1 times without an answer" in letter.reason
        again = await remote.resend(letter)
        assert again.task_id != handle.task_id
        assert await again == 42
        assert await remote.dead_letters() == []
        with pytest.raises(TypeError, match=r"Remote\.resend: expected a DeadLetter"):
            await remote.resend("letter")  # type: ignore[arg-type]
    assert tries == [41, 41]


async def _kill_embedded_worker(remote: Remote) -> Worker:
    """Cancel the embedded worker as a kill would (nothing acknowledged), and start a fresh one."""
    connection = remote._connection
    assert connection._serving is not None
    assert connection._stop is not None
    killed = connection._serving
    killed.cancel()
    await asyncio.gather(killed, return_exceptions=True)
    transport = connection.transport
    assert transport is not None
    fresh = Worker(
        remote.registry, redeliver_after=remote.redeliver_after, max_deliveries=remote.max_deliveries
    )
    connection._serving = asyncio.ensure_future(fresh.serve(transport, connection._stop))
    await fresh.ready.wait()
    return fresh


# Flows on workers


@in_loop
async def test_a_flow_sent_whole_runs_its_chain_groups_and_callbacks_on_workers() -> None:
    registry = Registry()
    seen: list[int] = []

    @registry.task("add")
    async def add(*numbers: int) -> int:
        return sum(numbers)

    @registry.task("double")
    async def double(value: int) -> int:
        return 2 * value

    @registry.task("total")
    async def total(values: list[int]) -> int:
        return sum(values)

    @registry.task("see")
    async def see(value: int) -> None:
        seen.append(value)

    remote = Remote(registry)
    chain = call(remote.stub(add), 1, 1).then(prepend(remote.stub(add), 5, 6)).then(step(remote.stub(double)))
    fan = group(step(remote.stub(double)), prepend(remote.stub(add), 100)).then(step(remote.stub(total)))
    noticed = step(remote.stub(double)).on_success(step(remote.stub(see)))
    async with remote:
        assert await (await remote.start(chain, None)) == 26
        assert await (await remote.start(fan, 4)) == 8 + 104
        assert await (await remote.start(noticed, 21)) == 42
        both = group(chain, fan)
        assert await (await remote.start(both, 4)) == [26, 112]
    assert seen == [42]


@in_loop
async def test_a_step_that_fails_on_a_worker_fails_its_flow_naming_the_step() -> None:
    flaky = Flaky(None)
    flaky.failures[20] = 1
    registry = flaky.registry
    remote = Remote(registry)
    flow = step(remote.stub(flaky.flaky)).then(step(remote.stub(flaky.flaky)))
    async with remote:
        with pytest.raises(FlowError, match=r"step 2 \(flaky\) of the flow failed") as caught:
            await (await remote.start(flow, 2))
    assert isinstance(caught.value.__cause__, RemoteError)
    assert (caught.value.position, caught.value.step) == ("2", "flaky")
    assert flaky.runs == [2, 20]


def test_a_flow_that_cannot_run_on_workers_is_refused_when_started() -> None:
    flaky = Flaky(None)
    remote = Remote(flaky.registry)

    async def local(value: int) -> int:
        return value

    async def on_error(error: FlowError) -> None: ...

    stub = remote.stub(flaky.flaky)
    cases: list[tuple[Any, str]] = [
        (step(local), r"step 1 \(.*local\) must call a stub from remote.stub"),
        (step(stub).then(step(local)), r"step 2 \(.*local\) must call a stub"),
        (step(stub).with_retry(3), r"step 1 \(flaky\) has a retry or timeout of its own"),
        (step(stub).on_error(step(on_error)), r"on_error callbacks take a FlowError"),
        ("flow", r"Remote.start: flow must be a Flow, got 'flow'"),
    ]

    async def start(flow: Any) -> None:
        async with remote:
            await remote.start(flow, 1)

    for flow, message in cases:
        with pytest.raises(TypeError, match=message):
            asyncio.run(start(flow))


# Kept results


@in_loop
async def test_a_kept_result_is_read_by_id_until_it_expires() -> None:
    clock = ManualClock()
    flaky = Flaky(None)
    async with Remote(flaky.registry, clock=clock, keep_results=60) as remote:
        handle = await remote.send(flaky.flaky, 7)
        assert await remote.result(flaky.flaky, handle.task_id, timeout=5) == 70
        await clock.advance(59)
        assert await remote.result(flaky.flaky, handle.task_id) == 70
        await clock.advance(1)
        with pytest.raises(LookupError, match=r"no result kept for 'flaky' \("):
            await remote.result(flaky.flaky, handle.task_id)
    async with Remote(flaky.registry, clock=clock) as forgetful:
        handle = await forgetful.send(flaky.flaky, 8)
        assert await handle == 80
        with pytest.raises(LookupError):
            await forgetful.result(flaky.flaky, handle.task_id)


@in_loop
async def test_reading_a_result_by_id_waits_for_it_to_be_saved() -> None:
    registry = Registry()
    release = asyncio.Event()

    @registry.task("gate")
    async def gate(value: int) -> int:
        await release.wait()
        return value

    async with Remote(registry, keep_results=60) as remote:
        handle = await remote.send(gate, 5)
        reader = asyncio.ensure_future(remote.result(gate, handle.task_id, timeout=30))
        await asyncio.sleep(0)
        assert not reader.done()
        release.set()
        assert (await reader, await handle) == (5, 5)


# Every task ends exactly once, whatever happens (hypothesis, in memory, on a manual clock)


@st.composite
def _plans(draw: st.DrawFn) -> tuple[list[tuple[int, int, bool]], int | None]:
    tasks = draw(
        st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.booleans()), min_size=1, max_size=8)
    )
    kill_at = draw(st.none() | st.integers(0, 6))
    return tasks, kill_at


@settings(max_examples=40, deadline=None)
@given(_plans())
def test_every_task_ends_once_and_runs_again_only_when_its_worker_died(
    plan: tuple[list[tuple[int, int, bool]], int | None],
) -> None:
    """Each task: a delay (0-3 s), failures before it succeeds (0-2, with three tries), revoked or not.

    Each try takes two seconds of clock time; the worker may be killed at one
    second. Every handle ends once: revoked ones with ``TaskRevoked``, the
    others with their value after exactly their tries, run more often only
    when the worker that ran them died.
    """
    tasks, kill_at = plan
    asyncio.run(_run_plan(tasks, kill_at))


async def _run_plan(tasks: list[tuple[int, int, bool]], kill_at: int | None) -> None:
    clock = ManualClock()
    registry = Registry()
    failures = Counter({index: fails for index, (_, fails, _) in enumerate(tasks)})
    runs: Counter[int] = Counter()
    interrupted: Counter[int] = Counter()

    @registry.task("job", retry=Retry(3, sleep=1.0, max_wait=2.0))
    async def job(index: int) -> int:
        runs[index] += 1
        try:
            await clock.sleep_until(clock.time() + 2)
        except asyncio.CancelledError:
            interrupted[index] += 1
            raise
        if failures[index] > 0:
            failures[index] -= 1
            raise ValueError(index)
        return index

    remote = Remote(registry, clock=clock, redeliver_after=10, concurrency=3)
    async with remote:
        handles = [
            await remote.submit(remote.call(job, index).after(delay))
            for index, (delay, _, _) in enumerate(tasks)
        ]
        for handle, (_, _, revoked) in zip(handles, tasks, strict=True):
            if revoked:
                await remote.revoke(handle)
        killed = False
        for second in range(300):
            if second == kill_at:
                await _kill_embedded_worker(remote)
                killed = True
            if all(handle._reply.done() for handle in handles):
                break
            await clock.advance(1)
        outcomes = await asyncio.gather(*(handle.result(None) for handle in handles), return_exceptions=True)
    for index, (outcome, (_, fails, revoked)) in enumerate(zip(outcomes, tasks, strict=True)):
        if revoked:
            assert isinstance(outcome, TaskRevoked), (index, outcome)
            assert runs[index] - interrupted[index] == 0  # it never ran to its end
            continue
        assert outcome == index
        assert handles[index].attempts == fails + 1
        extra = runs[index] - (fails + 1)
        assert extra == interrupted[index]  # a try runs again only where a kill cut it short
        assert extra == 0 or killed
