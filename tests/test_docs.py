"""The README's examples and the scripts in examples/ run, and say what they promise."""

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
