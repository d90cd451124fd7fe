"""What a checkpoint knows its inputs by, and the checkpoints and files a run refuses."""

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import pytest

from go_async import Args, Drain, Pool, RunProgress, SqliteCheckpoint, Task
from go_async._calls import calls as calls_of

PREFIX = "s3://exports/customers/region-eu-west/a-long-enough-prefix-to-be-cut/"


async def export(args: Args[str]) -> None:
    pass


async def total(numbers: list[int]) -> int:
    return sum(numbers)


def scaled_by(factor: int, calls: list[int]) -> Callable[[int], Awaitable[int]]:
    async def scale(factor: int, value: int) -> int:
        calls.append(value)
        return factor * value

    return partial(scale, factor)


@dataclass(frozen=True)
class Scaler:
    """A callable object whose repr shows its state, the same in every process."""

    factor: int

    async def __call__(self, value: int) -> int:
        return self.factor * value

    async def scale(self, value: int) -> int:
        return self.factor * value


class Opaque:
    """A callable object with the default repr: its address, another in each process."""

    async def __call__(self, value: int) -> int:
        return value


def saved(path: Path) -> RunProgress | None:
    with SqliteCheckpoint(path) as kept:
        return kept.load()


def test_inputs_that_differ_only_past_what_a_repr_shows_are_other_inputs(tmp_path: Path) -> None:
    path = tmp_path / "exports.sqlite"
    Pool(limit=2).go(
        (Task(export).with_input(f"{PREFIX}2026-11-29/part-{n}") for n in range(20)), checkpoint=path
    )
    kept = saved(path)
    with pytest.raises(ValueError, match="holds the progress of other inputs"):
        Pool(limit=2).go(
            (Task(export).with_input(f"{PREFIX}2026-11-30/part-{n}") for n in range(20)), checkpoint=path
        )
    assert saved(path) == kept
    batches = tmp_path / "batches.sqlite"
    assert Pool().map(total, [list(range(10))] * 3, checkpoint=batches) == [45, 45, 45]
    with pytest.raises(ValueError, match="holds the progress of other inputs"):
        Pool().map(total, [[*range(6), 100, 200, 300, 400]] * 3, checkpoint=batches)


def test_a_tasks_drain_and_a_functions_address_are_not_part_of_its_inputs(tmp_path: Path) -> None:
    out = Drain[int]()
    broken = [True]

    async def keep(args: Args[int]) -> None:
        args.drain.send(args.input)

    def tasks() -> Iterator[Task[int, int, None]]:
        for n in range(30):
            if n == 20 and broken:
                raise ConnectionError("the cursor died")
            yield Task(keep).with_input(n).drain_to(out)

    path = tmp_path / "drained.sqlite"
    with pytest.raises(ConnectionError):
        Pool(limit=3).go(tasks(), checkpoint=path)
    broken.clear()  # the cursor works now; the drain holds 20 values, so its repr changed
    Pool(limit=3).go(tasks(), checkpoint=path)
    assert sorted(out.drain()) == list(range(30))  # each once: the 20 were not run again

    calls: list[int] = []
    first, second = scaled_by(3, calls), scaled_by(3, calls)  # one function at two addresses, as in two runs
    assert repr(first) != repr(second)
    scaled = tmp_path / "scaled.sqlite"
    assert Pool().map(first, range(4), checkpoint=scaled) == [0, 3, 6, 9]
    assert Pool().map(second, range(4), checkpoint=scaled) == [0, 3, 6, 9]
    assert sorted(calls) == [0, 1, 2, 3]  # the second found it all done
    with pytest.raises(ValueError, match="other inputs"):
        Pool().map(scaled_by(4, calls), range(4), checkpoint=scaled)
    objects = tmp_path / "objects.sqlite"
    assert Pool().map(Scaler(2), range(3), checkpoint=objects) == [0, 2, 4]
    assert Pool().map(Scaler(2), range(3), checkpoint=objects) == [0, 2, 4]


def test_what_a_callable_holds_is_part_of_its_inputs(tmp_path: Path) -> None:
    """Calls that compute other things are other inputs: refused, never answered from the file."""
    path = tmp_path / "run.sqlite"
    assert Pool().map(Scaler(2), range(3), checkpoint=path) == [0, 2, 4]
    with pytest.raises(ValueError, match="other inputs"):
        Pool().map(Scaler(5), range(3), checkpoint=path)
    methods = tmp_path / "methods.sqlite"
    assert Pool().map(Scaler(2).scale, range(3), checkpoint=methods) == [0, 2, 4]
    assert Pool().map(Scaler(2).scale, range(3), checkpoint=methods) == [0, 2, 4]
    with pytest.raises(ValueError, match="other inputs"):
        Pool().map(Scaler(5).scale, range(3), checkpoint=methods)
    opaque = tmp_path / "opaque.sqlite"
    first, second = Opaque(), Opaque()  # as in two processes: another address, so refused
    assert Pool().map(first, range(3), checkpoint=opaque) == [0, 1, 2]
    with pytest.raises(ValueError, match="other inputs"):
        Pool().map(second, range(3), checkpoint=opaque)
    lambdas = tmp_path / "lambdas.sqlite"
    assert Pool().map(lambda x: asyncio.sleep(0, 2 * x), range(3), checkpoint=lambdas) == [0, 2, 4]
    with pytest.raises(ValueError, match="other inputs"):
        Pool().map(lambda x: asyncio.sleep(0, 3 * x), range(3), checkpoint=lambdas)


def test_a_map_and_a_go_refuse_each_others_progress(tmp_path: Path) -> None:
    path = tmp_path / "nightly.sqlite"
    Pool().go([Task(export).with_input(str(n)) for n in range(5)], checkpoint=path, run_id="nightly")
    kept = saved(path)

    async def double(value: int) -> int:
        return 2 * value

    refused = r"Pool\.map: checkpoint '.*nightly\.sqlite' holds the progress of other inputs"
    with pytest.raises(ValueError, match=refused + r" \('nightly', not 'map:nightly'\)"):
        Pool().map(double, range(5), checkpoint=path, run_id="nightly")
    assert saved(path) == kept  # refused: left as it was
    # And the other way: a go over a map's progress, made of the same calls.
    mapped = tmp_path / "mapped.sqlite"
    assert Pool().map(double, range(3), checkpoint=mapped) == [0, 2, 4]
    with pytest.raises(ValueError, match="other inputs"):
        Pool().go(calls_of(double, range(3)), checkpoint=mapped)


def test_a_file_that_cannot_be_a_checkpoint_is_refused_by_name(tmp_path: Path) -> None:
    tasks = [Task(export).with_input("a")]
    with pytest.raises(ValueError, match=f"checkpoint {str(tmp_path)!r} cannot be opened"):
        Pool().go(tasks, checkpoint=tmp_path)
    with pytest.raises(ValueError, match="cannot be opened"):
        Pool().go(tasks, checkpoint=tmp_path / "missing" / "run.sqlite")
    with pytest.raises(ValueError, match=r"Pool\.go: checkpoint must name a file, got ''"):
        Pool().go(tasks, checkpoint="")


def test_a_checkpoint_object_of_the_wrong_shape_is_refused_at_the_call() -> None:
    class AsyncStore:
        async def load(self) -> RunProgress | None:
            return None

        async def save(self, progress: RunProgress) -> None:
            pass

    class DictStore:
        def load(self) -> object:
            return {"run_id": "x", "started": 0}

        def save(self, progress: RunProgress) -> None:
            pass

    tasks = [Task(export).with_input("a")]
    with pytest.raises(TypeError, match=r"Pool\.go: a checkpoint.s load and save are plain methods"):
        Pool().go(tasks, checkpoint=AsyncStore())  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"Pool\.go: .*DictStore.*\.load\(\) must return a RunProgress or None"
    ):
        Pool().go(tasks, checkpoint=DictStore())  # type: ignore[arg-type]


def test_a_value_a_resumable_map_cannot_pickle_says_so(tmp_path: Path) -> None:
    async def make_lock(value: int) -> object:
        return threading.Lock()

    either = Pool().map(make_lock, [1], checkpoint=tmp_path / "locks.sqlite", return_exceptions=True)
    assert isinstance(either[0], TypeError)
    assert "go_async: a resumable map pickles each value: input 0's cannot be" in either[0].__notes__


def test_async_inputs_are_closed_when_the_run_is_cancelled_before_its_first_pull(tmp_path: Path) -> None:
    closed: list[bool] = []
    never = asyncio.Event()

    async def work(args: Args[int]) -> None:
        await never.wait()

    async def source() -> AsyncIterator[Task[int, int, None]]:
        try:
            for n in range(20):
                yield Task(work).with_input(n)
        finally:
            closed.append(True)

    async def main() -> None:
        held = source()  # held here, so only the run can close it (not the garbage collector)
        run = asyncio.ensure_future(Pool(limit=1).ago(held, checkpoint=tmp_path / "run.sqlite"))
        await asyncio.sleep(0)  # the run read its first inputs and made its workers; none has pulled
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert closed == [True]

    asyncio.run(main())
