"""go_async's pytest plugin: deterministic tests of go_async code in one step, opt-in per test.

pytest loads it from go_async's entry point, and it leaves alone every test that does not ask
for it. A test marked ``@pytest.mark.go_async`` (or requesting the ``go_async_testing``
fixture) runs with every pool at one task at a time in submission order (as ``STAGE=test``),
or, with ``explore=``, at its real limit in a seeded interleaving (as ``set_testing(explore=...)``),
with instant, recorded retry waits and seeded jitter (as ``set_testing``); as an ``async def``,
it runs in a fresh event loop, and it fails with an explanation instead of hanging when it
waits on real time while its ``ManualClock`` stands still.

Example::

    @pytest.mark.go_async(seed=7)
    async def test_nightly(go_async_testing: GoAsyncTesting, manual_clock: ManualClock) -> None:
        async with Pool(limit=10) as pool:
            pool.schedule(Task(report), every=60, times=2, clock=manual_clock)
            await manual_clock.advance(120)
        assert go_async_testing.log.waits == []
"""

from __future__ import annotations

import asyncio
import inspect
import os
import random
import time
from collections.abc import Coroutine, Generator, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from ._clock import ManualClock
from ._testing import WaitLog, set_testing

__all__ = ["GoAsyncTesting", "go_async_testing", "manual_clock"]

_MARKER = "go_async"
_HELP = (
    "go_async(seed=None, hang_timeout=None, explore=None): run the test as go_async's tests want: pools "
    "one task at a time in submission order (or, with `explore`, an int or True for `seed`, at their limit "
    "in the interleaving that seed draws), instant recorded retry waits with jitter from `seed`, async def "
    "run in a fresh event loop, a ManualClock hang failed after `hang_timeout` idle seconds."
)
_SESSION_SEED = pytest.StashKey[tuple[int, bool]]()  # the seed, and whether chosen at random
_TEST_SEED = pytest.StashKey[tuple[int, bool, int | None]]()  # the seed, whether the marker chose it, explore
_CLOCK_USED = pytest.StashKey[bool]()
# Tests that these plugins run: the go_async marker still sets the test up, they run it.
_OTHER_RUNNERS = ("asyncio", "anyio", "trio")


@dataclass(frozen=True, slots=True)
class GoAsyncTesting:
    """What the ``go_async_testing`` fixture gives a test: its ``seed`` and its retries' ``log``.

    ``log.waits`` lists each backoff wait that retries asked for, in seconds, in order; none
    was really waited. ``seed`` seeded their jitter (and schedules' jitter). ``explore`` is the seed
    of the interleaving explored (``@pytest.mark.go_async(explore=...)``), else None.

    Example::

        @pytest.mark.go_async(seed=3)
        def test_retries(go_async_testing: GoAsyncTesting) -> None:
            Pool().go([Task(flaky).with_retry(3, 0.5)])
            assert len(go_async_testing.log.waits) == 2
    """

    seed: int
    log: WaitLog
    explore: int | None = None


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("go_async", "go_async's tests (tests marked @pytest.mark.go_async)")
    group.addoption(
        "--go-async-seed",
        dest="go_async_seed",
        metavar="SEED",
        help="seed of retry and schedule jitter in go_async tests: an integer, or 'random' "
        "(default: the go_async_seed ini option, else 0); a test's marker seed wins",
    )
    parser.addini("go_async_seed", "seed of jitter in go_async tests: an integer or 'random'", default="0")
    parser.addini(
        "go_async_hang_timeout",
        "seconds an async go_async test using a ManualClock may sit with nothing to run before it "
        "fails as hung (0: never)",
        default="30",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _HELP)
    raw = str(config.getoption("go_async_seed") or config.getini("go_async_seed")).strip()
    if raw.casefold() == "random":
        config.stash[_SESSION_SEED] = (random.SystemRandom().randrange(1_000_000), True)
    else:
        where = "--go-async-seed (or the go_async_seed ini option)"
        if not raw.isdecimal():
            raise pytest.UsageError(f"{where} must be an integer >= 0 or 'random', got {raw!r}")
        config.stash[_SESSION_SEED] = (int(raw), False)


def pytest_report_header(config: pytest.Config) -> str | None:
    seed, chosen_at_random = config.stash[_SESSION_SEED]
    return f"go_async: seed {seed} (replay with --go-async-seed={seed})" if chosen_at_random else None


@pytest.fixture
def go_async_testing(request: pytest.FixtureRequest) -> Iterator[GoAsyncTesting]:
    """This test's go_async testing mode: in-order pools, instant recorded retries, seeded jitter.

    For the test, ``STAGE=test`` (restored after) runs every pool one task at a time in
    submission order, and ``set_testing(seed=...)`` makes retry waits instant and recorded.
    ``@pytest.mark.go_async`` sets it up without naming it; the marker's ``seed`` wins.

    Example::

        def test_order(go_async_testing: GoAsyncTesting) -> None:
            assert Pool(limit=10).map(fetch, urls) == pages  # one at a time, in order
    """
    seed, from_marker = _seed(request.node)
    explore = _options(request.node)[2]
    explore = seed if explore is True else explore  # STAGE=test gives way to it: see `effective_limit`
    request.node.stash[_TEST_SEED] = (seed, from_marker, explore)
    stage = os.environ.get("STAGE")
    os.environ["STAGE"] = "test"
    try:
        with set_testing(seed=seed, explore=explore) as log:
            yield GoAsyncTesting(seed, log, explore)
    finally:
        if stage is None:
            os.environ.pop("STAGE", None)
        else:
            os.environ["STAGE"] = stage


@pytest.fixture
def manual_clock(request: pytest.FixtureRequest) -> ManualClock:
    """A fresh ``ManualClock`` at 0 for this test; a hang of an async go_async test is then reported.

    Example::

        @pytest.mark.go_async
        async def test_hourly(manual_clock: ManualClock) -> None:
            async with Pool() as pool:
                pool.schedule(Task(sync), every=3600, times=2, clock=manual_clock)
                await manual_clock.advance(7200)
    """
    request.node.stash[_CLOCK_USED] = True
    return ManualClock()


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    # Here rather than at collection: plugins such as anyio replace items after collection.
    if isinstance(item, pytest.Function) and item.get_closest_marker(_MARKER) is not None:
        _options(item)  # a marker with bad arguments is an error before anything runs
        if "go_async_testing" not in item.fixturenames:
            item.fixturenames = [*item.fixturenames, "go_async_testing"]


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    test = pyfuncitem.obj
    if not inspect.iscoroutinefunction(test) or "go_async_testing" not in pyfuncitem.fixturenames:
        return None  # not ours: pytest, or another plugin, runs it
    if "anyio_backend" in pyfuncitem.fixturenames or any(
        pyfuncitem.get_closest_marker(name) for name in _OTHER_RUNNERS
    ):
        return None
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    timeout = _options(pyfuncitem)[1]
    with asyncio.Runner() as runner:
        watchdog = _Watchdog(runner.get_loop(), timeout, pyfuncitem.stash.get(_CLOCK_USED, False))
        try:
            runner.run(watchdog.watch(test(**kwargs)))
        except (Exception, asyncio.CancelledError):
            if watchdog.report is None:
                raise
    if watchdog.report is not None:
        pytest.fail(watchdog.report, pytrace=False)
    return True


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and _TEST_SEED in item.stash:
        seed, from_marker, explore = item.stash[_TEST_SEED]
        how = "set by the test's marker" if from_marker else f"replay with --go-async-seed={seed}"
        if explore is not None:
            how += f"; interleaving explored: replay with @pytest.mark.go_async(explore={explore})"
        report.sections.append(("go_async", f"go_async seed: {seed} ({how})"))
    return report


def _options(item: pytest.Item) -> tuple[int | None, float, int | bool | None]:
    """The marker's seed (None: not given), the hang timeout and ``explore``, checked."""
    marker = item.get_closest_marker(_MARKER)
    args: tuple[Any, ...] = () if marker is None else marker.args
    kwargs: Mapping[str, Any] = {} if marker is None else marker.kwargs
    unknown = sorted(set(kwargs) - {"seed", "hang_timeout", "explore"})
    if args or unknown:
        pytest.fail(
            f"@pytest.mark.go_async takes only the keywords seed=, hang_timeout= and explore=, "
            f"got {', '.join([*map(repr, args), *unknown])}",
            pytrace=False,
        )
    seed = kwargs.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        pytest.fail(f"@pytest.mark.go_async(seed=...) must be an int, got {seed!r}", pytrace=False)
    if (explore := kwargs.get("explore")) is not None and not isinstance(explore, int):  # True: the seed
        pytest.fail(f"@pytest.mark.go_async(explore=) must be an int or True, got {explore!r}", pytrace=False)
    where = "@pytest.mark.go_async(hang_timeout=...)"
    timeout = kwargs.get("hang_timeout")
    if timeout is None:
        where, timeout = "the go_async_hang_timeout ini option", item.config.getini("go_async_hang_timeout")
    return seed, _number(timeout, where), None if explore is False else explore  # False: not explored


def _number(value: object, where: str) -> float:
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = -1.0
    if isinstance(value, bool) or not 0 <= number < float("inf"):
        pytest.fail(f"{where} must be a number >= 0, got {value!r}", pytrace=False)
    return number


def _seed(item: pytest.Item) -> tuple[int, bool]:
    seed, _, explore = _options(item)
    if seed is None and explore is not None and explore is not True:
        return explore, True  # the explored seed seeds jitter too
    return (item.config.stash[_SESSION_SEED][0], False) if seed is None else (seed, True)


class _Watchdog:
    """Fails a test whose loop sat idle ``timeout`` real seconds while a ManualClock is in use.

    Idle: no callback was scheduled (each step of a task is one) and none ran long. The
    watchdog's own timer is neither, so it never keeps the loop busy. A loop whose callbacks
    cannot be counted so (one written in C, like uvloop's) is not watched at all.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, timeout: float, clock_used: bool) -> None:
        self.report: str | None = None
        self._loop = loop
        self._timeout = timeout
        self._clock_used = clock_used
        self._interval = min(1.0, max(0.01, timeout / 10))
        self._turns = self._seen = 0
        self._quiet_since = self._due = time.monotonic()
        self._main: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        call_soon = loop.call_soon

        def counted(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
            self._turns += 1
            return call_soon(callback, *args, context=context)

        try:
            setattr(loop, "call_soon", counted)  # noqa: B010 - an instance attribute: this loop only
        except AttributeError:
            self._timeout = 0.0

    async def watch(self, test: Coroutine[Any, Any, object]) -> object:
        self._main = asyncio.current_task()
        if self._timeout and self._turns:  # counted this task's first step: the count works
            self._schedule()
        try:
            return await test
        finally:
            if self._timer is not None:
                self._timer.cancel()

    def _schedule(self) -> None:
        self._due = time.monotonic() + self._interval
        self._timer = self._loop.call_later(self._interval, self._tick)

    def _tick(self) -> None:
        now = time.monotonic()
        busy = now - self._due > self._interval  # a callback kept the loop from waking on time
        if self._turns != self._seen or busy:
            self._seen, self._quiet_since = self._turns, now
        elif now - self._quiet_since >= self._timeout and self._main is not None and not self._main.done():
            tasks = asyncio.all_tasks(self._loop)
            if self._clock_used or any(_on_manual_clock(task) for task in tasks):
                self.report = self.report or self._explain(now - self._quiet_since, tasks)
                self._main.cancel()
                self._seen, self._quiet_since = self._turns, now  # cancelled again after another timeout
        self._schedule()

    def _explain(self, quiet: float, tasks: set[asyncio.Task[Any]]) -> str:
        waiting = sorted(tasks, key=lambda task: task is not self._main)
        return "\n".join(
            [
                f"go_async: this test hung: its event loop had nothing to run for {quiet:.1f} s of real "
                f"time (hang_timeout={self._timeout:g}), while the test uses a ManualClock.",
                "A ManualClock moves only when the test awaits clock.advance(...); real time never moves "
                "it. So a task that waits on real time (asyncio.sleep, a timeout, or a schedule, rate "
                "limit or breaker made without clock=) while the test waits on the ManualClock, or a "
                "wait on the ManualClock that nothing advances, never ends.",
                "Waiting now:",
                *(f"  {_describe(task, task is self._main)}" for task in waiting),
                "Fix:",
                "  - pass the test's clock to every schedule, rate limit and breaker: clock=manual_clock;",
                "  - in tasks, wait on that clock (await clock.sleep_until(clock.time() + seconds)), "
                "not with asyncio.sleep;",
                "  - advance the clock (await manual_clock.advance(seconds)) before awaiting what it wakes.",
                "If the test really waits this long on threads or I/O, raise "
                "@pytest.mark.go_async(hang_timeout=...) or the go_async_hang_timeout ini option "
                "(0 turns the check off).",
            ]
        )


def _awaiting(task: asyncio.Task[Any]) -> list[FrameType]:
    """The frames of the coroutines ``task`` is suspended in, outermost first."""
    frames: list[FrameType] = []
    awaited: Any = task.get_coro()
    while (frame := getattr(awaited, "cr_frame", None) or getattr(awaited, "gi_frame", None)) is not None:
        frames.append(frame)
        awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "gi_yieldfrom", None)
    return frames


def _on_manual_clock(task: asyncio.Task[Any]) -> bool:
    return any(frame.f_code is ManualClock.sleep_until.__code__ for frame in _awaiting(task))


def _describe(task: asyncio.Task[Any], main: bool) -> str:
    steps: list[str] = []
    for frame in _awaiting(task):
        code, local = frame.f_code, frame.f_locals
        if code is _Watchdog.watch.__code__:
            continue
        if code is ManualClock.sleep_until.__code__:
            steps.append(
                f"ManualClock.sleep_until({local['deadline']:g}), the clock at {local['self'].time():g}"
            )
        elif code is asyncio.sleep.__code__:
            steps.append(f"asyncio.sleep({round(local['delay'], 2):g}), in real time")
        else:
            steps.append(f"{code.co_name} ({Path(code.co_filename).name}:{frame.f_lineno})")
    return f"{task.get_name()}{' (the test)' if main else ''}: {' > '.join(steps) or 'not started'}"
