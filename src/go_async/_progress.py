"""Progress bars for go/map, drawn by tqdm or rich (optional extras, imported only when asked for)."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from ._task import Args

#: What ``progress=`` takes: ``True`` picks tqdm if it is installed, else rich.
ProgressChoice = bool | Literal["tqdm", "rich"]

_EXTRAS = {"tqdm": "go-async[tqdm]", "rich": "go-async[rich]"}


def progress_hooks(where: str, choice: object, total: int | None, description: str) -> object | None:
    """The hooks that draw the bar ``choice`` asks for, or ``None`` for no bar.

    A bar has methods named as ``Hooks``' events, for the ones it hears of.

    Raises at once (before anything runs) if ``choice`` is not one of
    ``ProgressChoice``, or if the library it needs is not installed.
    """
    if choice is False:
        return None
    if choice is True:
        for library in _EXTRAS:
            if _importable(library):
                return _bar(library, total, description)
        extras = f"pip install '{_EXTRAS['tqdm']}' (or '{_EXTRAS['rich']}')"
        msg = f"{where}: progress bars need tqdm or rich: {extras}"
        raise ImportError(msg)
    if choice not in _EXTRAS:
        msg = f"{where}: progress must be True, False, 'tqdm' or 'rich', got {choice!r}"
        raise (ValueError if isinstance(choice, str) else TypeError)(msg)
    library = str(choice)
    if not _importable(library):
        msg = f"{where}: progress={library!r} needs {library}: pip install '{_EXTRAS[library]}'"
        raise ImportError(msg)
    return _bar(library, total, description)


def _importable(library: str) -> bool:
    try:
        importlib.import_module(library)
    except ImportError:
        return False
    return True


def _bar(library: str, total: int | None, description: str) -> object:
    return _TqdmBar(total, description) if library == "tqdm" else _RichBar(total, description)


class _TqdmBar:
    """A tqdm bar: one step per task that ends, with the failures counted beside it."""

    def __init__(self, total: int | None, description: str) -> None:
        self._total = total
        self._description = description
        self._failed = 0
        self._bar: Any = None

    def pool_started(self, pool: object) -> None:
        from tqdm import tqdm  # noqa: PLC0415 - an optional extra

        self._bar = tqdm(total=self._total, desc=self._description, unit="task")

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        self._bar.update(1)

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self._failed += 1
        self._bar.set_postfix(failed=self._failed, refresh=False)
        self._bar.update(1)

    def task_cancelled(self, args: Args[Any]) -> None:
        self._bar.update(1)

    def skipped(self) -> None:
        """A resumed run skipped a task an earlier run finished: done too."""
        self._bar.update(1)

    def pool_closed(self, pool: object) -> None:
        self._bar.close()


class _RichBar:
    """A rich progress bar on stderr: done/total, the rate and the time left; failures in its description.

    On stderr, as tqdm's is, so that it never lands in a script's piped output.
    """

    def __init__(self, total: int | None, description: str) -> None:
        self._total = total
        self._description = description
        self._failed = 0
        self._progress: Any = None
        self._bar: Any = None

    def pool_started(self, pool: object) -> None:
        self._progress = _rich_progress()
        self._progress.start()
        self._bar = self._progress.add_task(self._description, total=self._total)

    def task_succeeded(self, args: Args[Any], seconds: float) -> None:
        self._progress.advance(self._bar)

    def task_failed(self, args: Args[Any], error: Exception, seconds: float) -> None:
        self._failed += 1
        description = f"{self._description} ({self._failed} failed)"
        self._progress.update(self._bar, advance=1, description=description)

    def task_cancelled(self, args: Args[Any]) -> None:
        self._progress.advance(self._bar)

    def skipped(self) -> None:
        """A resumed run skipped a task an earlier run finished: done too."""
        self._progress.advance(self._bar)

    def pool_closed(self, pool: object) -> None:
        self._progress.stop()


def _rich_progress() -> Any:
    # rich is an optional extra: imported when a bar is drawn, never before.
    from rich.console import Console  # noqa: PLC0415
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TaskProgressColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text  # noqa: PLC0415

    class Rate(ProgressColumn):
        """Tasks ended per second, over rich's recent window."""

        def render(self, task: Any) -> Text:
            speed = task.finished_speed or task.speed
            return Text(
                "? tasks/s" if speed is None else f"{speed:,.1f} tasks/s", style="progress.data.speed"
            )

    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        Rate(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True))
