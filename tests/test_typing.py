"""The typing cases in tests/typing/ must pass mypy --strict and pyright strict, fail lines included.

Each line that must be rejected carries `# type: ignore[code]`; with
warn_unused_ignores (part of --strict) a line that stops failing, or fails with
another code, makes mypy report an error, so this one run checks both kinds of case.
pyright honours the same marks (enableTypeIgnoreComments, ignoring the code) and,
with reportUnnecessaryTypeIgnoreComment = "error", reports a mark on a line that
does not fail; both settings come from the project's [tool.pyright].
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
CASES = Path(__file__).parent / "typing"


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def _pyright(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, "--project", str(ROOT), *args],
        capture_output=True,
        text=True,
        check=False,
    )


def _unmarked_fail_cases(directory: Path) -> tuple[Path, set[int]]:
    """fail_api.py with its marks disabled, and the (1-based) numbers of the lines that carried one."""
    source = (CASES / "fail_api.py").read_text()
    marked = {n for n, line in enumerate(source.splitlines(), 1) if "# type: ignore[" in line}
    stripped = directory / "fail_api_unmarked.py"
    stripped.write_text(source.replace("  # type: ignore[", "  # was-ignore["))
    assert len(marked) >= 9
    return stripped, marked


def test_typing_cases_pass_mypy_strict() -> None:
    """Passing cases type-check, and every marked failing line fails with its code."""
    result = _mypy(*sorted(CASES.glob("*.py")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_case_really_fails_without_its_mark(tmp_path: Path) -> None:
    """The marks are load-bearing: stripped of them, every marked line is an error."""
    stripped, marked = _unmarked_fail_cases(tmp_path)
    result = _mypy(stripped)
    failing = {int(line.split(":")[1]) for line in result.stdout.splitlines() if ": error:" in line}
    assert failing == marked, result.stdout


def test_typing_cases_pass_pyright_strict() -> None:
    """Under pyright too, passing cases type-check and every marked line fails: a needless mark errs."""
    result = _pyright(*map(str, sorted(CASES.glob("*.py"))))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_case_really_fails_under_pyright_without_its_mark(tmp_path: Path) -> None:
    """Stripped of their marks, exactly the marked lines are pyright errors, and no other line is."""
    stripped, marked = _unmarked_fail_cases(tmp_path)
    result = _pyright("--outputjson", str(stripped))
    assert result.returncode == 1, result.stdout + result.stderr
    diagnostics = json.loads(result.stdout)["generalDiagnostics"]
    errors = [
        (d["range"]["start"]["line"] + 1, d["message"]) for d in diagnostics if d["severity"] == "error"
    ]
    failing = {line for line, _ in errors}
    stray = "\n".join(f"{line}: {message}" for line, message in errors if line not in marked)
    assert failing == marked, f"marked lines that pass: {sorted(marked - failing)}\nerrors unmarked:\n{stray}"


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("pass_*.py")))
def test_passing_cases_run(case: str) -> None:
    """The passing cases are real programs: they run, not only type-check."""
    result = subprocess.run([sys.executable, str(CASES / case)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
