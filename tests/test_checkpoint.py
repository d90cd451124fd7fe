"""Resumable runs: go/ago with checkpoint= (issue 20, part 2)."""

import asyncio
import signal
import sqlite3
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import AsyncIterator, Coroutine, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from go_async import Args, Checkpoint, Hooks, Pool, RunProgress, SqliteCheckpoint, Task

SCRIPT = Path(__file__).parent / "checkpoint_run.py"


def ran(runs: Path) -> Counter[int]:
    return Counter(int(line) for line in runs.read_text().split())


def saved(path: Path) -> tuple[int, RunProgress]:
    """The checkpoint's rows, and the progress it holds."""
    with closing(sqlite3.connect(path)) as db:
        rows = db.execute("SELECT COUNT(*) FROM go_async_progress").fetchone()[0]
    with SqliteCheckpoint(path) as kept:
        progress = kept.load()
    assert progress is not None
    return rows, progress


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_killed_run_resumes_where_it_stood(tmp_path: Path, data: st.DataObject) -> None:
    """SIGKILLed at a point hypothesis picks, a rerun runs every task, and at most limit of them twice."""
    n = data.draw(st.integers(1, 300), label="n")
    limit = data.draw(st.integers(1, 6), label="limit")
    kill_at = data.draw(st.integers(0, n - 1), label="kill_at")
    case = tmp_path / f"{n}-{limit}-{kill_at}"
    case.mkdir()
    path, runs = case / "run.sqlite", case / "runs"
    argv = [sys.executable, str(SCRIPT), str(path), str(runs), str(n), str(limit)]
    with subprocess.Popen([*argv, str(kill_at)], stdout=subprocess.PIPE, text=True) as first:
        assert first.stdout is not None
        watchdog = threading.Timer(60, first.kill)  # never ready: end it, and fail below, not hang
        watchdog.start()
        try:
            assert first.stdout.readline() == "ready\n"  # its progress is saved, its workers all wait
        finally:
            watchdog.cancel()
        first.send_signal(signal.SIGKILL)
    assert first.returncode == -signal.SIGKILL
    subprocess.run([*argv, "-1"], check=True, timeout=60)
    counts = ran(runs)
    assert set(counts) == set(range(n))
    twice = [i for i, times in counts.items() if times > 1]
    assert len(twice) <= limit
    assert max(counts.values()) <= 2
    rows, progress = saved(path)
    assert rows == 1
    assert progress.started == n
    assert progress.unfinished == frozenset()


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_saves_its_progress_as_it_ends(tmp_path: Path, stop: signal.Signals) -> None:
    """Ctrl-C, or a SIGTERM the program turns into KeyboardInterrupt: only the tasks running run again.

    The signal comes as soon as the workers wait, before a timed save need have happened: what the
    second run skips was saved by the first as it ended.
    """
    n, limit, block_from = 200, 4, 150
    path, runs = tmp_path / "run.sqlite", tmp_path / "runs"
    argv = [sys.executable, str(SCRIPT), str(path), str(runs), str(n), str(limit)]
    with subprocess.Popen(
        [*argv, str(block_from), "--ready-on-wait"], stdout=subprocess.PIPE, text=True
    ) as first:
        assert first.stdout is not None
        watchdog = threading.Timer(60, first.kill)
        watchdog.start()
        try:
            assert first.stdout.readline() == "ready\n"
        finally:
            watchdog.cancel()
        first.send_signal(stop)
    assert first.returncode == -signal.SIGINT  # KeyboardInterrupt, whichever the signal
    subprocess.run([*argv, "-1"], check=True, timeout=60)
    counts = ran(runs)
    assert set(counts) == set(range(n))
    assert sorted(i for i, times in counts.items() if times > 1) == list(
        range(block_from, block_from + limit)
    )


async def cancel_once_waiting(run: Coroutine[Any, Any, object], waiting: set[int], count: int) -> None:
    """Start ``run``, cancel it once ``count`` of its tasks wait in ``waiting``, and see it end cancelled."""
    started = asyncio.ensure_future(run)
    while len(waiting) < count:
        await asyncio.sleep(0)
    started.cancel()
    with pytest.raises(asyncio.CancelledError):
        await started


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 200), limit=st.integers(1, 8), data=st.data())
def test_a_cancelled_run_resumes_and_its_checkpoint_stays_small(
    tmp_path: Path, n: int, limit: int, data: st.DataObject
) -> None:
    """Cancelled with limit tasks waiting, the rerun runs only those again; the saved state is O(limit)."""
    stop_at = data.draw(st.integers(0, n - 1), label="stop_at")
    path = tmp_path / f"{n}-{limit}-{stop_at}.sqlite"
    counts: Counter[int] = Counter()
    waiting: set[int] = set()
    block = True

    async def work(args: Args[int]) -> None:
        counts[args.input] += 1
        if block and args.input >= stop_at:
            waiting.add(args.input)
            await asyncio.Event().wait()

    def tasks() -> list[Task[int, int, None]]:
        return [Task(work).with_input(i) for i in range(n)]

    asyncio.run(
        cancel_once_waiting(
            Pool(limit=limit).ago(iter(tasks()), checkpoint=path), waiting, min(limit, n - stop_at)
        )
    )
    rows, progress = saved(path)
    assert rows == 1
    assert progress.unfinished == frozenset(waiting)
    assert len(progress.unfinished) <= limit
    block = False
    Pool(limit=limit).go(tasks(), checkpoint=path)
    assert set(counts) == set(range(n))
    assert {i for i, times in counts.items() if times == 2} == waiting
    assert saved(path) == (1, RunProgress(progress.run_id, n, frozenset()))


def test_the_state_does_not_grow_with_the_number_of_tasks(tmp_path: Path) -> None:
    """Many tasks or few, the file holds one row of a few bytes."""
    sizes: list[int] = []
    for n in (10, 20_000):
        path = tmp_path / f"{n}.sqlite"

        async def work(args: Args[int]) -> None:
            await asyncio.sleep(0)

        Pool(limit=4).go((Task(work).with_input(i) for i in range(n)), checkpoint=path)
        with closing(sqlite3.connect(path)) as db:
            sizes.append(db.execute("PRAGMA page_count").fetchone()[0])
        assert saved(path)[0] == 1
    assert sizes[0] == sizes[1]


async def fails_on_three(args: Args[int]) -> None:
    if args.input == 3:
        raise ValueError("three")


def test_a_failed_task_is_finished_and_reported_in_its_own_run_only(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    seen: list[int] = []

    async def work(args: Args[int]) -> None:
        seen.append(args.input)
        await fails_on_three(args)

    with pytest.raises(ExceptionGroup):
        Pool(limit=2).go((Task(work).with_input(i) for i in range(6)), checkpoint=path)
    Pool(limit=2).go((Task(work).with_input(i) for i in range(6)), checkpoint=path)  # nothing left to run
    assert sorted(seen) == list(range(6))
    # Two inputs more change the fingerprint of the first 16: a run_id names them instead.
    with pytest.raises(ValueError, match="holds the progress of other inputs"):
        Pool(limit=2).go([Task(work).with_input(i) for i in range(8)], checkpoint=path)
    named = tmp_path / "named.sqlite"
    with pytest.raises(ExceptionGroup):
        Pool(limit=2).go([Task(work).with_input(i) for i in range(6)], checkpoint=named, run_id="numbers")
    Pool(limit=2).go([Task(work).with_input(i) for i in range(8)], checkpoint=named, run_id="numbers")
    assert sorted(seen) == sorted([*range(6), *range(6), 6, 7])


def test_a_checkpoint_for_other_inputs_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    Pool().go((Task(fails_on_three).with_input(i) for i in range(3)), checkpoint=path)
    kept = saved(path)
    with pytest.raises(ValueError, match=r"Pool\.go: checkpoint '.*run\.sqlite' holds the progress of other"):
        Pool().go((Task(fails_on_three).with_input(i) for i in range(1, 4)), checkpoint=path)
    assert saved(path) == kept  # the refused run left the checkpoint as it was
    Pool().go([Task(fails_on_three).with_input(5)], checkpoint=tmp_path / "named.sqlite", run_id="batch-7")
    with pytest.raises(ValueError, match="'batch-7', not 'batch-8'"):
        Pool().go(
            [Task(fails_on_three).with_input(5)], checkpoint=tmp_path / "named.sqlite", run_id="batch-8"
        )


class HeardStarts(Hooks):
    def __init__(self) -> None:
        self.started = 0

    def pool_started(self, pool: Pool) -> None:
        self.started += 1


def test_a_refused_run_starts_nothing_and_closes_its_async_inputs(tmp_path: Path) -> None:
    path = tmp_path / "run.sqlite"
    Pool().go([Task(fails_on_three).with_input(0)], checkpoint=path)
    ran: list[int] = []
    closed: list[int] = []

    async def work(args: Args[int]) -> None:
        ran.append(args.input)

    async def inputs() -> AsyncIterator[Task[int, int, None]]:
        try:
            for i in range(1, 40):
                yield Task(work).with_input(i)
        finally:
            closed.append(1)

    hooks = HeardStarts()
    pool = Pool().with_hooks(hooks)
    with pytest.raises(ValueError, match="holds the progress of other inputs") as refused:
        asyncio.run(pool.ago(inputs(), checkpoint=path))
    assert getattr(refused.value, "__notes__", []) == []  # not taken for the iterable's own error
    assert (hooks.started, ran, closed) == (0, [], [1])


@pytest.mark.parametrize("source", ["sync", "async"])
def test_an_error_among_the_first_inputs_comes_after_the_tasks_before_it(tmp_path: Path, source: str) -> None:
    path = tmp_path / "run.sqlite"
    ran: list[int] = []

    async def work(args: Args[int]) -> None:
        ran.append(args.input)

    def inputs() -> Iterator[Task[int, int, None]]:
        yield from (Task(work).with_input(i) for i in range(3))
        raise LookupError("page 2 is gone")

    async def async_inputs() -> AsyncIterator[Task[int, int, None]]:
        for task in inputs():
            yield task

    with pytest.raises(LookupError, match="page 2 is gone") as raised:
        Pool(limit=2).go(inputs() if source == "sync" else async_inputs(), checkpoint=path)
    assert raised.value.__notes__ == ["raised by the tasks iterable after 3 tasks"]
    assert sorted(ran) == [0, 1, 2]
    assert saved(path)[1].started == 3
    assert saved(path)[1].unfinished == frozenset()


def test_a_corrupt_or_foreign_file_is_refused_by_name(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.sqlite"
    corrupt.write_bytes(b"this is not a database, not at all" * 100)
    with pytest.raises(ValueError, match=r"checkpoint '.*corrupt\.sqlite' is not a go_async checkpoint"):
        Pool().go([Task(fails_on_three).with_input(1)], checkpoint=corrupt)
    foreign = tmp_path / "foreign.sqlite"
    with closing(sqlite3.connect(foreign)) as db, db:
        db.execute("CREATE TABLE users (name TEXT)")
    with pytest.raises(
        ValueError, match=r"checkpoint '.*foreign\.sqlite' is another database: tables \['users'\]"
    ):
        Pool().go([Task(fails_on_three).with_input(1)], checkpoint=str(foreign))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(TypeError, match="checkpoint must be a file path or a Checkpoint"):
        Pool().go([], checkpoint=3)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="run_id names the inputs of a checkpoint: pass checkpoint= too"):
        Pool().go([], run_id="x")


def test_any_checkpoint_object_and_async_inputs(tmp_path: Path) -> None:
    class InMemory:
        def __init__(self) -> None:
            self.saves = 0
            self.progress: RunProgress | None = None

        def load(self) -> RunProgress | None:
            return self.progress

        def save(self, progress: RunProgress) -> None:
            self.saves += 1
            self.progress = progress

    memory = InMemory()
    assert isinstance(memory, Checkpoint)
    seen: list[int] = []

    async def work(args: Args[int]) -> None:
        seen.append(args.input)

    async def main() -> None:
        async def numbers(n: int) -> AsyncIterator[Task[int, int, None]]:
            for i in range(n):
                yield Task(work).with_input(i)

        await Pool(limit=3).ago(numbers(500), checkpoint=memory)
        await Pool(limit=3).ago(numbers(501), checkpoint=memory)

    asyncio.run(main())
    assert sorted(seen) == list(range(501))
    assert memory.saves <= 4  # a few writes in all, not one per task


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 120), limit=st.integers(1, 6), data=st.data())
def test_a_resumed_map_returns_every_value_in_order_and_reruns_only_what_did_not_end(
    tmp_path: Path, n: int, limit: int, data: st.DataObject
) -> None:
    """A map cancelled mid-run, then resumed: the whole list, each call run once but the cut ones."""
    stop_at = data.draw(st.integers(0, n - 1), label="stop_at")
    path = tmp_path / f"map-{n}-{limit}-{stop_at}.sqlite"
    counts: Counter[int] = Counter()
    waiting: set[int] = set()
    block = True

    async def square(x: int) -> int:
        counts[x] += 1
        if block and x >= stop_at:
            waiting.add(x)
            await asyncio.Event().wait()
        return x * x

    asyncio.run(
        cancel_once_waiting(
            Pool(limit=limit).amap(square, range(n), checkpoint=path), waiting, min(limit, n - stop_at)
        )
    )
    block = False
    assert Pool(limit=limit).map(square, range(n), checkpoint=path) == [x * x for x in range(n)]
    assert set(counts) == set(range(n))
    assert {x for x, times in counts.items() if times == 2} == waiting  # only the cut ones ran twice
    assert len(waiting) <= limit


def test_a_resumed_map_runs_its_failures_again(tmp_path: Path) -> None:
    path = tmp_path / "map.sqlite"
    broken = {3}
    counts: Counter[int] = Counter()

    async def halve(x: int) -> int:
        counts[x] += 1
        if x in broken:
            raise ValueError(x)
        return x // 2

    either = Pool(limit=2).map(halve, range(6), checkpoint=path, return_exceptions=True)
    assert isinstance(either[3], ValueError)
    assert [value for index, value in enumerate(either) if index != 3] == [0, 0, 1, 2, 2]
    broken.clear()  # fixed: the resumed map runs only the failed call again
    assert Pool(limit=2).map(halve, range(6), checkpoint=path) == [0, 0, 1, 1, 2, 2]
    assert counts == Counter({0: 1, 1: 1, 2: 1, 3: 2, 4: 1, 5: 1})


def test_a_resumable_map_needs_a_file_to_keep_its_values(tmp_path: Path) -> None:
    class InMemory:
        def load(self) -> RunProgress | None:
            return None

        def save(self, progress: RunProgress) -> None:
            pass

    with pytest.raises(TypeError, match=r"Pool.map: a resumable map keeps its values in a SQLite checkpoint"):
        Pool().map(asyncio.sleep, [0], checkpoint=InMemory())  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"Pool.map: run_id names the inputs of a checkpoint"):
        Pool().map(asyncio.sleep, [0], run_id="nightly")


class BrokenStore:
    """A checkpoint whose saves fail."""

    def load(self) -> RunProgress | None:
        return None

    def save(self, progress: RunProgress) -> None:
        raise OSError("disk full")


def test_a_failed_save_is_raised_and_never_hides_the_runs_own_error() -> None:
    async def fine(args: Args[int]) -> None:
        pass

    async def fails(args: Args[int]) -> None:
        raise ValueError(args.input)

    with pytest.raises(OSError, match="disk full"):  # the run went well: the save's error is the error
        Pool().go([Task(fine).with_input(1)], checkpoint=BrokenStore())
    with pytest.raises(ExceptionGroup) as caught:  # the run failed: its error, with the save's as a note
        Pool().go([Task(fails).with_input(1)], checkpoint=BrokenStore())
    assert caught.group_contains(ValueError)
    assert "go_async: saving the checkpoint failed too: OSError('disk full')" in (
        caught.value.__notes__ or []
    )
