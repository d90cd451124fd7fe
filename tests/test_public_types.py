"""The public API is fully typed, as users install it: ``pyright --verifytypes`` scores 100%.

The check runs on a copy built from this checkout and installed, not editable,
into a fresh venv: pyright reads an editable install as having no ``py.typed``
and scores it 0%. pyright comes from the test's own environment and finds the
venv's ``python`` first on ``PATH``.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*command: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def _checked(result: subprocess.CompletedProcess[str]) -> None:
    command = " ".join(map(str, result.args))
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}{result.stderr}"


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with go_async built from this checkout and installed in it (not editable)."""
    where = tmp_path_factory.mktemp("installed")
    home = where / "venv"
    # PYTHONPATH could put the checkout's src/ before the installed copy.
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "PYTHONHOME"}}
    _checked(_run(sys.executable, "-m", "venv", home, cwd=where, env=env))
    # Offline (as in CI) every index that cannot be reached costs pip its retries, for each
    # package: it fails over to the configured local mirror at once instead.
    pip = {**env, "PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    _checked(_run(home / "bin" / "python", "-m", "pip", "install", "--quiet", ROOT, cwd=where, env=pip))
    return home


# The oldest versions of the runtime dependencies that pyproject.toml allows.
LOWEST = ("tenacity==8.3.0", "typing_extensions==4.12.0")
LOWEST_NAMES = tuple(pin.split("==")[0] for pin in LOWEST)

# What a user's script does at run time with the typed API: generic aliases with
# defaults evaluated unquoted, retries that choose, typed results, partial results.
SMOKE = """
import asyncio
from go_async import Args, Drain, Pool, Task, set_testing

async def fetch(args: Args[str, int]) -> None:
    args.drain.send(len(args.input))

async def flaky(args: Args[str]) -> str:
    if args.input == "bad":
        raise KeyError(args.input)
    return args.input.upper()

async def halve(x: int) -> int:
    if x % 2:
        raise ValueError(x)
    return x // 2

sizes: Drain[int] = Drain()
one: Task[str, int] = Task(fetch).drain_to(sizes)
Pool(limit=2).go(one.with_input(word) for word in ["ab", "abc"])
with set_testing():
    task = Task(flaky).with_retry(3, 0.1, on=ConnectionError, within=10).with_input("ok")
    assert asyncio.run(task.execute()) == "OK"
either = Pool().map(halve, [2, 3], return_exceptions=True)
print(sorted(sizes.drain()), either[0], type(either[1]).__name__)
"""


def test_the_lowest_dependencies_allowed_run_the_typed_api(installed: Path) -> None:
    """With tenacity 8.3 and typing_extensions 4.12, the oldest pyproject.toml allows, the API works."""
    python = installed / "bin" / "python"
    env = _in_venv(installed) | {"PIP_RETRIES": "0", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    try:
        _checked(_run(python, "-m", "pip", "install", "--quiet", *LOWEST, cwd=installed, env=env))
        result = _run(python, "-c", SMOKE, cwd=installed, env=env)
        _checked(result)
        assert result.stdout == "[2, 3] 1 ValueError\n"
    finally:
        # The venv is shared by the session: give it back its newest versions.
        _run(python, "-m", "pip", "install", "--quiet", "--upgrade", *LOWEST_NAMES, cwd=installed, env=env)


def _in_venv(home: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in {"PYTHONPATH", "PYTHONHOME"}}
    return env | {"VIRTUAL_ENV": str(home), "PATH": f"{home / 'bin'}{os.pathsep}{env.get('PATH', '')}"}


def test_the_installed_package_imports(installed: Path) -> None:
    """Installed from its metadata alone, the package imports: every runtime dependency is declared."""
    result = _run(
        installed / "bin" / "python", "-c", "import go_async", cwd=installed, env=_in_venv(installed)
    )
    _checked(result)


def test_every_public_symbol_of_the_installed_package_has_a_known_type(installed: Path) -> None:
    """pyright --verifytypes scores 100%: no public name's type is unknown or ambiguous."""
    verify = ("--verifytypes", "go_async", "--ignoreexternal", "--outputjson")
    result = _run(sys.executable, "-m", "pyright", *verify, cwd=installed.parent, env=_in_venv(installed))
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(
            f"pyright gave no JSON report (exit {result.returncode}):\n{result.stdout}{result.stderr}"
        )
    completeness = report["typeCompleteness"]
    assert Path(completeness["pyTypedPath"]).is_relative_to(installed), completeness["pyTypedPath"]
    # Each symbol whose type is unknown or ambiguous, with pyright's reason: first those
    # that lack a declaration, then those that are only partially unknown through them.
    reasons = sorted(
        (
            "partially unknown" in diagnostic["message"],
            symbol["name"],
            " ".join(diagnostic["message"].split()),
        )
        for symbol in completeness["symbols"]
        if not symbol["isTypeKnown"] or symbol["isTypeAmbiguous"]
        for diagnostic in symbol["diagnostics"]
        if diagnostic["severity"] == "error"
    )
    listed = "\n".join(f"{name}: {message}" for _, name, message in reasons)
    score = completeness["completenessScore"]
    assert score == 1.0, f"type completeness {score:.1%}; the symbols to type, causes first:\n{listed}"
