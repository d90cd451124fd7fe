"""go_async's pytest plugin, run on test files of its own (pytester): what opting in gives, and
that a test that does not opt in sees nothing of it."""

from __future__ import annotations

import asyncio
import importlib.util
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from go_async import Args, Task, set_testing

pytest_plugins = ["pytester"]

# The inner runs keep to this repository's rules: unknown markers and any warning are errors.
# (Without hypothesis's plugin, which would import hypothesis anew in each inner run.)
INI = """
[pytest]
addopts = --strict-markers -p no:cacheprovider -p no:hypothesispytest
filterwarnings = error
"""

TEN_TASKS = """
import asyncio
import os

import pytest

from go_async import Args, Pool, Task


def run_ten() -> tuple[list[int], int]:
    order: list[int] = []
    running = peak = 0

    async def work(args: Args[int]) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(30 - args.input):  # later tasks end sooner, if they run alongside
            await asyncio.sleep(0)
        order.append(args.input)
        running -= 1

    Pool(limit=10).go(Task(work).with_input(n) for n in range(10))
    return order, peak
"""


def _flaky() -> Task[None, None, int]:
    """Fails three times, then returns its number of tries: three backoff waits, of 10 s and more."""
    tries: list[int] = []

    async def flaky(args: Args[None]) -> int:
        tries.append(len(tries) + 1)
        if len(tries) < 4:
            raise ConnectionError("again")
        return len(tries)

    return Task(flaky).with_retry(4, 10.0)


def _waits(seed: int) -> list[float]:
    with set_testing(seed=seed) as log:
        assert asyncio.run(_flaky().execute()) == 4
    return log.waits


FLAKY = f"""
from __future__ import annotations

from go_async import Args, Task

{inspect.getsource(_flaky)}
"""


def _run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeini(INI)
    pytester.makepyfile(source)
    return pytester.runpytest(*args)


def test_the_marker_runs_pools_one_task_at_a_time_in_submission_order(pytester: pytest.Pytester) -> None:
    """A pool of limit 10 runs its tasks one by one, in order; without the marker, all ten at once."""
    result = _run(
        pytester,
        TEN_TASKS
        + """
@pytest.mark.go_async
def test_marked() -> None:
    assert os.environ["STAGE"] == "test"
    assert run_ten() == (list(range(10)), 1)


def test_unmarked() -> None:
    assert "STAGE" not in os.environ
    order, peak = run_ten()
    assert peak == 10
    assert sorted(order) == list(range(10))
    assert order != list(range(10))
""",
    )
    result.assert_outcomes(passed=2)


def test_the_fixture_alone_opts_in_and_the_stage_is_restored_after(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """STAGE is "test" during a test that requests go_async_testing, and what it was before after."""
    monkeypatch.setenv("STAGE", "prod")
    result = _run(
        pytester,
        TEN_TASKS
        + """
from go_async.pytest_plugin import GoAsyncTesting


def test_with_the_fixture(go_async_testing: GoAsyncTesting) -> None:
    assert os.environ["STAGE"] == "test"
    assert run_ten() == (list(range(10)), 1)


def test_after() -> None:
    assert os.environ["STAGE"] == "prod"
""",
    )
    result.assert_outcomes(passed=2)
    assert os.environ["STAGE"] == "prod"


@pytest.mark.parametrize("seed", [7, 8])
def test_retry_waits_are_instant_recorded_and_seeded(pytester: pytest.Pytester, seed: int) -> None:
    """70 s of backoff take no time; the log holds the waits that set_testing(seed=...) gives."""
    expected = _waits(seed)
    assert expected != _waits(seed + 1)  # the seed decides the jitter
    result = _run(
        pytester,
        FLAKY
        + f"""
import pytest

from go_async.pytest_plugin import GoAsyncTesting


@pytest.mark.go_async(seed={seed})
async def test_retries(go_async_testing: GoAsyncTesting) -> None:
    assert go_async_testing.seed == {seed}
    assert go_async_testing.log.instant
    assert await _flaky().execute() == 4
    assert go_async_testing.log.waits == {expected!r}
""",
        "-p",
        "timeout",
        "--timeout=30",
    )
    result.assert_outcomes(passed=1)


def test_the_seed_comes_from_the_marker_the_option_or_the_ini_file(pytester: pytest.Pytester) -> None:
    """The marker's seed wins over --go-async-seed, which wins over go_async_seed; 0 by default."""
    pytester.makepyfile(
        """
import pytest

from go_async.pytest_plugin import GoAsyncTesting


@pytest.mark.go_async(seed=3)
def test_marker(go_async_testing: GoAsyncTesting) -> None:
    print(f"<SEED {go_async_testing.seed}>")


def test_fixture(go_async_testing: GoAsyncTesting) -> None:
    print(f"<SEED {go_async_testing.seed}>")
"""
    )

    def seeds(*args: str) -> list[str]:
        result = pytester.runpytest("-s", *args)
        result.assert_outcomes(passed=2)
        return re.findall(r"<SEED (\d+)>", result.stdout.str())

    pytester.makeini(INI)
    assert seeds() == ["3", "0"]
    assert seeds("--go-async-seed=11") == ["3", "11"]
    pytester.makeini(INI + "go_async_seed = 5\n")
    assert seeds() == ["3", "5"]
    assert seeds("--go-async-seed=12") == ["3", "12"]
    result = pytester.runpytest("-s", "--go-async-seed=random")
    [chosen] = re.findall(
        r"^go_async: seed (\d+) \(replay with --go-async-seed=\1\)$", result.stdout.str(), re.M
    )
    assert re.findall(r"<SEED (\d+)>", result.stdout.str()) == ["3", chosen]


def test_a_failing_test_names_its_seed(pytester: pytest.Pytester) -> None:
    """The failure report of a go_async test has a section with its seed and how to replay it."""
    result = _run(
        pytester,
        """
import pytest


@pytest.mark.go_async(seed=1234)
def test_marked() -> None:
    assert 1 + 1 == 3


@pytest.mark.go_async
async def test_default_seed() -> None:
    assert 1 + 1 == 3


def test_unmarked() -> None:
    assert 1 + 1 == 3
""",
        "--go-async-seed=42",
    )
    result.assert_outcomes(failed=3)
    sections = [line for line in result.outlines if line.startswith("go_async seed:")]
    assert sections == [
        "go_async seed: 1234 (set by the test's marker)",
        "go_async seed: 42 (replay with --go-async-seed=42)",
    ]


def test_manual_clock_is_a_fresh_clock_for_each_test(pytester: pytest.Pytester) -> None:
    """Each test gets a ManualClock at 0 that drives a schedule; alone, it changes nothing else."""
    result = _run(
        pytester,
        """
import os

import pytest

from go_async import Args, ManualClock, Pool, Task


@pytest.mark.go_async
async def test_schedule(manual_clock: ManualClock) -> None:
    assert manual_clock.time() == 0
    runs: list[float] = []

    async def poll(args: Args[None]) -> None:
        runs.append(manual_clock.time())

    async with Pool() as pool:
        pool.schedule(Task(poll), every=60, times=3, clock=manual_clock)
        await manual_clock.advance(180)
    assert runs == [60, 120, 180]


def test_fresh(manual_clock: ManualClock) -> None:
    assert type(manual_clock) is ManualClock
    assert manual_clock.time() == 0
    assert "STAGE" not in os.environ
""",
    )
    result.assert_outcomes(passed=2)


def test_async_tests_that_opt_in_run_each_in_a_fresh_loop(pytester: pytest.Pytester) -> None:
    """Marked or requesting the fixture, an async test runs with its fixtures and parameters;
    a failure fails it; an async test that does not opt in is left to pytest, which refuses it."""
    result = _run(
        pytester,
        """
import asyncio
from pathlib import Path

import pytest

from go_async.pytest_plugin import GoAsyncTesting

loops: list[asyncio.AbstractEventLoop] = []


@pytest.mark.go_async
@pytest.mark.parametrize("n", [1, 2])
async def test_marked(n: int, tmp_path: Path) -> None:
    loops.append(asyncio.get_running_loop())
    await asyncio.sleep(0)
    assert tmp_path.is_dir()
    assert n in (1, 2)


async def test_fixture(go_async_testing: GoAsyncTesting) -> None:
    loops.append(asyncio.get_running_loop())
    assert len(set(map(id, loops))) == 3
    assert all(loop.is_closed() for loop in loops[:-1])


@pytest.mark.go_async
async def test_failing() -> None:
    assert await asyncio.sleep(0, result=1) == 2


async def test_not_opted_in() -> None:
    pass
""",
    )
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines(["*assert 1 == 2*", "*async def functions are not natively supported*"])


HANGS = """
import asyncio
import time

import pytest

from go_async import Args, ManualClock, Pool, Task


async def nothing(args: Args[None]) -> None:
    pass


async def slow(args: Args[None]) -> None:
    await asyncio.sleep(0.2)  # real time, in a job scheduled on a ManualClock (longer than advance takes)


@pytest.mark.go_async(hang_timeout=0.3)
async def test_schedule_on_the_system_clock(manual_clock: ManualClock) -> None:
    async with Pool() as pool:
        schedule = pool.schedule(Task(nothing), every=60, times=3)  # no clock=
        await manual_clock.advance(180)
        await schedule


@pytest.mark.go_async
async def test_real_sleep_in_a_job() -> None:
    clock = ManualClock()  # not the fixture's: found sleeping
    async with Pool() as pool:
        schedule = pool.schedule(Task(slow), every=60, times=3, clock=clock)
        await clock.advance(180)  # the first run still sleeps: the next two ticks are skipped
        await schedule  # the third tick never comes


@pytest.mark.go_async(hang_timeout=0.3)
async def test_busy(manual_clock: ManualClock) -> None:
    for _ in range(200):
        await asyncio.sleep(0.002)


@pytest.mark.go_async(hang_timeout=0.3)
async def test_blocked(manual_clock: ManualClock) -> None:
    time.sleep(0.5)  # blocks the loop: busy, not idle


@pytest.mark.go_async(hang_timeout=0.05)
async def test_idle_without_a_manual_clock() -> None:
    await asyncio.sleep(0.3)


@pytest.mark.go_async(hang_timeout=0)
async def test_idle_with_the_check_off(manual_clock: ManualClock) -> None:
    await asyncio.sleep(0.4)
"""


def test_a_test_waiting_on_real_time_while_its_manual_clock_stands_still_fails_with_the_cause(
    pytester: pytest.Pytester,
) -> None:
    """Hung tests fail after hang_timeout idle seconds, naming what waits and the fix; a busy or a
    blocking test passes, and so does an idle one without a ManualClock or with the check off."""
    pytester.makeini(INI + "go_async_hang_timeout = 0.3\n")
    pytester.makepyfile(HANGS)
    result = pytester.runpytest("-p", "timeout", "--timeout=30")
    result.assert_outcomes(passed=4, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*_ test_schedule_on_the_system_clock _*",
            "go_async: this test hung: its event loop had nothing to run for * s of real time "
            "(hang_timeout=0.3), while the test uses a ManualClock.",
            "A ManualClock moves only when the test awaits clock.advance(...); real time never moves it.*",
            "Waiting now:",
            "  Task-* (the test): test_schedule_on_the_system_clock (test_*.py:*)",
            "  go_async schedule nothing: * > sleep_until (_clock.py:*) > asyncio.sleep(*), in real time",
            "Fix:",
            "  - pass the test's clock to every schedule, rate limit and breaker: clock=manual_clock;",
            "  - in tasks, wait on that clock (await clock.sleep_until(clock.time() + seconds)), not *",
            "  - advance the clock (await manual_clock.advance(seconds)) before awaiting what it wakes.",
            "If the test really waits this long on threads or I/O, raise *hang_timeout=*",
            "*_ test_real_sleep_in_a_job _*",
            "go_async: this test hung:*",
            "  go_async schedule slow: * > ManualClock.sleep_until(240), the clock at 180",
        ]
    )


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("go_async(3)", "takes only the keywords seed=, hang_timeout= and explore=, got 3"),
        ("go_async(sead=3)", "takes only the keywords seed=, hang_timeout= and explore=, got sead"),
        ("go_async(seed='3')", "go_async(seed=...) must be an int, got '3'"),
        ("go_async(hang_timeout=-1)", "go_async(hang_timeout=...) must be a number >= 0, got -1"),
        ("go_async(explore='3')", "go_async(explore=) must be an int or True, got '3'"),
    ],
)
def test_a_marker_with_bad_arguments_is_an_error(
    pytester: pytest.Pytester, marker: str, message: str
) -> None:
    """The test errors in its setup, with a message that says what is wrong."""
    result = _run(pytester, f"import pytest\n\n\n@pytest.mark.{marker}\ndef test_it() -> None:\n    pass\n")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{message}*"])


def test_a_bad_seed_option_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    result = pytester.runpytest("--go-async-seed=often")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--go-async-seed*must be an integer >= 0 or 'random', got 'often'*"])


def test_tests_that_do_not_opt_in_see_nothing(pytester: pytest.Pytester) -> None:
    """No STAGE, retries that really wait, no header line; the marker is registered, with its help."""
    result = _run(
        pytester,
        """
import asyncio
import os
import time

from go_async import Args, Task


def test_plain() -> None:
    assert "STAGE" not in os.environ
    start = time.monotonic()
    tries: list[int] = []

    async def once_flaky(args: Args[None]) -> None:
        tries.append(1)
        if len(tries) == 1:
            raise ConnectionError("again")

    asyncio.run(Task(once_flaky).with_retry(2, 0.05).execute())
    assert time.monotonic() - start >= 0.04  # the backoff wait, really waited
""",
    )
    result.assert_outcomes(passed=1)
    assert not any(line.startswith("go_async") for line in result.outlines)  # no header line
    markers = pytester.runpytest("--markers")
    markers.stdout.fnmatch_lines(
        ["@pytest.mark.go_async(seed=None, hang_timeout=None, explore=None): run the test as*"]
    )


def test_anyio_runs_the_async_tests_it_is_asked_to(pytester: pytest.Pytester) -> None:
    """A test marked for anyio too is run by anyio, once, and still gets go_async's testing mode."""
    pytest.importorskip("anyio")
    result = _run(
        pytester,
        """
import asyncio
import os

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
@pytest.mark.go_async
async def test_both() -> None:
    assert os.environ["STAGE"] == "test"
    assert "call_soon" not in vars(asyncio.get_running_loop())  # not go_async's runner's loop
""",
    )
    result.assert_outcomes(passed=1)


def test_go_async_does_not_import_pytest_and_the_plugin_imports_nothing_more() -> None:
    """Importing go_async leaves pytest out; the plugin adds no module but itself to go_async and pytest."""
    code = (
        "import sys, go_async\n"
        "assert 'pytest' not in sys.modules\n"
        "import pytest\n"
        "before = set(sys.modules)\n"
        "import go_async.pytest_plugin\n"
        "print(sorted(set(sys.modules) - before))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout == "['go_async.pytest_plugin']\n"


# The how-to's pytest files are left out of the docs' own run (each block there runs alone):
# here, they run side by side with the module they test, as the page shows them.
HOW_TO = Path(__file__).parent.parent / "docs" / "how-to" / "testing.md"
FILE_BLOCK = re.compile(r'^```python title="(\w+)\.py"\n(.*?)^```', flags=re.DOTALL | re.MULTILINE)


def test_the_testing_how_to_is_a_project_whose_tests_pass(pytester: pytest.Pytester) -> None:
    """jobs.py and its test files, from docs/how-to/testing.md, pass; the pitfall fails as it says."""
    files = dict(FILE_BLOCK.findall(HOW_TO.read_text(encoding="utf-8")))
    assert sorted(files) == ["jobs", "test_jobs", "test_pitfall", "test_races", "test_with_anyio"]
    pytester.makeini(INI)
    pytester.makepyfile(**files)
    result = pytester.runpytest("-p", "timeout", "--timeout=30")
    if importlib.util.find_spec("anyio") is None:
        result.assert_outcomes(passed=5, xfailed=1, skipped=1)
    else:
        result.assert_outcomes(passed=6, xfailed=1)
