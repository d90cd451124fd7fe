"""Progress bars: off by default, drawn by tqdm or rich when asked, a clear error when neither is there."""

import asyncio
import sys
from pathlib import Path
from typing import Literal

import pytest

from go_async import Args, Drain, Pool, Task


async def send(args: Args[int]) -> None:
    if args.input < 0:
        raise ValueError(args.input)
    args.drain.send(args.input)


async def double(x: int) -> int:
    return 2 * x


def test_no_bar_unless_asked(capsys: pytest.CaptureFixture[str]) -> None:
    assert Pool().map(double, range(3)) == [0, 2, 4]
    assert capsys.readouterr() == ("", "")


def test_tqdm_counts_every_task_and_each_failure(capsys: pytest.CaptureFixture[str]) -> None:
    out: Drain[int] = Drain()
    tasks = [Task(send).drain_to(out).with_input(n) for n in (1, 2, -3, 4)]
    with pytest.raises(ExceptionGroup):
        Pool(limit=2).go(tasks, progress="tqdm")
    assert sorted(out.drain()) == [1, 2, 4]
    bar = capsys.readouterr().err
    assert "4/4" in bar
    assert "failed=1" in bar


def test_true_picks_tqdm_and_map_keeps_its_results(capsys: pytest.CaptureFixture[str]) -> None:
    assert Pool(limit=2).map(double, range(5), progress=True) == [0, 2, 4, 6, 8]
    bar = capsys.readouterr().err
    assert "double" in bar
    assert "5/5" in bar


def test_a_generator_gets_a_bar_without_a_total(capsys: pytest.CaptureFixture[str]) -> None:
    out: Drain[int] = Drain()
    Pool().go((Task(send).drain_to(out).with_input(n) for n in range(3)), progress="tqdm")
    assert sorted(out.drain()) == [0, 1, 2]
    assert "3task" in capsys.readouterr().err.replace(" ", "")


@pytest.mark.parametrize("library", ["tqdm", "rich"])
def test_a_resumed_run_counts_what_it_skipped_as_done(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, library: Literal["tqdm", "rich"]
) -> None:
    checkpoint = tmp_path / "run.sqlite"
    out: Drain[int] = Drain()
    with pytest.raises(ExceptionGroup):
        Pool(limit=2).go(
            [Task(send).drain_to(out).with_input(n) for n in (1, 2, -3, 4)], checkpoint=checkpoint
        )
    capsys.readouterr()
    Pool(limit=2).go(
        [Task(send).drain_to(out).with_input(n) for n in (1, 2, -3, 4)],
        checkpoint=checkpoint,
        progress=library,
    )
    assert "4/4" in capsys.readouterr().err
    assert Pool().map(double, range(5), checkpoint=tmp_path / "map.sqlite") == [0, 2, 4, 6, 8]
    assert Pool().map(double, range(5), checkpoint=tmp_path / "map.sqlite", progress=library) == [
        0,
        2,
        4,
        6,
        8,
    ]
    assert "5/5" in capsys.readouterr().err


def test_rich_draws_its_bar_on_stderr_with_done_total_and_rate(capsys: pytest.CaptureFixture[str]) -> None:
    """On stderr as tqdm's is, so a script's piped output holds its results only."""

    async def main() -> list[int]:
        return await Pool(limit=2).amap(double, range(4), progress="rich")

    assert asyncio.run(main()) == [0, 2, 4, 6]
    out, err = capsys.readouterr()
    assert out == ""
    assert "double" in err
    assert "4/4" in err
    assert "tasks/s" in err


def test_as_completed_draws_a_bar_too(capsys: pytest.CaptureFixture[str]) -> None:
    async def main() -> list[int]:
        return [value async for value in Pool(limit=2).as_completed(double, range(3), progress="tqdm")]

    assert sorted(asyncio.run(main())) == [0, 2, 4]
    bar = capsys.readouterr().err
    assert "double" in bar
    assert "3/3" in bar


def test_as_completed_refuses_a_bad_progress_at_the_call() -> None:
    with pytest.raises(
        ValueError, match=r"Pool.as_completed: progress must be True, False, 'tqdm' or 'rich'"
    ):
        Pool().as_completed(double, [1], progress="bar")  # type: ignore[arg-type]


def test_a_missing_library_names_the_extra_before_anything_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    out: Drain[int] = Drain()
    monkeypatch.setitem(sys.modules, "tqdm", None)
    with pytest.raises(ImportError, match=r"progress='tqdm' needs tqdm: pip install 'go-async\[tqdm\]'"):
        Pool().go([Task(send).drain_to(out).with_input(1)], progress="tqdm")
    monkeypatch.setitem(sys.modules, "rich", None)
    with pytest.raises(
        ImportError, match=r"need tqdm or rich: pip install 'go-async\[tqdm\]' \(or 'go-async\[rich\]'\)"
    ):
        Pool().map(double, [1], progress=True)
    assert out.drain() == []


def test_a_bad_choice_is_refused() -> None:
    with pytest.raises(
        ValueError, match=r"Pool.map: progress must be True, False, 'tqdm' or 'rich', got 'bar'"
    ):
        Pool().map(double, [1], progress="bar")  # type: ignore[call-overload]
    with pytest.raises(TypeError, match=r"Pool.go: progress must be True, False, 'tqdm' or 'rich', got 1"):
        Pool().go([], progress=1)  # type: ignore[arg-type]
