"""The README's examples and the scripts in examples/ run, say what they promise, and type-check."""

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text()
BLOCKS = re.findall(r"^```python\n(.*?)^```", README, flags=re.DOTALL | re.MULTILINE)


def _run(*args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, check=False, cwd=ROOT, env=env
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_readme_starts_with_the_two_commands() -> None:
    """The demo command and the test command come first, as CI runs them."""
    first_block = README.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
    assert first_block[0].endswith(".venv/bin/python examples/quickstart.py")
    assert first_block[1].endswith(".venv/bin/python -m pytest")


def test_readme_has_examples() -> None:
    """The tour is made of runnable blocks."""
    assert len(BLOCKS) >= 5


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index: int) -> None:
    """Each README example runs on its own and its assertions hold."""
    _run("-c", BLOCKS[index])


def _write_blocks(directory: Path) -> list[Path]:
    """Each README block as a module of its own, named by its index as in test_readme_example_runs."""
    paths = [directory / f"readme_{index:02d}.py" for index in range(len(BLOCKS))]
    for path, block in zip(paths, BLOCKS, strict=True):
        path.write_text(block)
    return paths


def mypy_passes(paths: list[Path], cwd: Path) -> None:
    """mypy, with the project's settings (--strict and more), finds nothing in ``paths``."""
    config = f"--config-file={ROOT / 'pyproject.toml'}"
    result = subprocess.run(
        [sys.executable, "-m", "mypy", config, "--no-incremental", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# The project's [tool.pyright] checking rules, without the exceptions it makes for the package's own code.
PYRIGHT_CONFIG = {
    "typeCheckingMode": "strict",
    "pythonVersion": "3.11",
    "enableTypeIgnoreComments": True,
    "reportUnnecessaryTypeIgnoreComment": "error",
}


def pyright_passes(project: Path) -> None:
    """pyright, strict, finds nothing in the files of ``project``, against the installed package."""
    (project / "pyrightconfig.json").write_text(json.dumps(PYRIGHT_CONFIG))
    result = subprocess.run(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, "--project", str(project)],
        capture_output=True,
        text=True,
        check=False,
        cwd=project,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Each README example type-checks under mypy with the project's settings (--strict and more)."""
    mypy_passes(_write_blocks(tmp_path), tmp_path)


def test_readme_examples_pass_pyright_strict(tmp_path: Path) -> None:
    """Each README example type-checks under pyright in strict mode, against the installed package."""
    _write_blocks(tmp_path)
    pyright_passes(tmp_path)


def test_quickstart_example() -> None:
    """The demo prints the title-cased names."""
    assert _run("examples/quickstart.py") == "['Ada Lovelace', 'Alan Turing', 'Grace Hopper']\n"


def test_orders_example_runs_on_an_embedded_worker() -> None:
    """Named tasks one by one, a chain of three, and a failure that comes back as data."""
    assert _run("examples/orders.py").splitlines() == ORDERS_OUTPUT


ORDERS_OUTPUT = [
    "prices: [8.0, 14.0]",
    "receipt: total 18.00",
    """failed: ["builtins.LookupError: no price for 'coffee'"]""",
]


@pytest.mark.parametrize("stage", ["", "test"])
def test_fetch_many_example(stage: str) -> None:
    """The fetch script gets every page, retries the failures, and keeps to its limit."""
    env = {**os.environ, "STAGE": stage}
    lines = _run("examples/fetch_many.py", env=env).splitlines()
    peak = 1 if stage else 5
    assert lines == [
        f"fetched 40 pages, 107000 bytes, at most {peak} at once",
        "pages that needed 2 tries: 31, 3 tries: 9",
    ]
