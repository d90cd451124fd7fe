"""The typing cases in tests/typing/ must pass mypy --strict, fail lines included.

Each line that must be rejected carries `# type: ignore[code]`; with
warn_unused_ignores (part of --strict) a line that stops failing, or fails with
another code, makes mypy report an error, so this one run checks both kinds of case.
"""

import subprocess
import sys
from pathlib import Path

import pytest

CASES = Path(__file__).parent / "typing"


def _mypy(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_typing_cases_pass_mypy_strict() -> None:
    """Passing cases type-check, and every marked failing line fails with its code."""
    result = _mypy(*sorted(CASES.glob("*.py")))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_failing_case_really_fails_without_its_mark(tmp_path: Path) -> None:
    """The marks are load-bearing: stripped of them, every marked line is an error."""
    source = (CASES / "fail_api.py").read_text()
    marked = [n for n, line in enumerate(source.splitlines(), 1) if "# type: ignore[" in line]
    stripped = tmp_path / "fail_api_unmarked.py"
    stripped.write_text(source.replace("  # type: ignore[", "  # was-ignore["))
    result = _mypy(stripped)
    failing = {int(line.split(":")[1]) for line in result.stdout.splitlines() if ": error:" in line}
    assert len(marked) >= 9
    assert failing == set(marked), result.stdout


@pytest.mark.parametrize("case", sorted(p.name for p in CASES.glob("pass_*.py")))
def test_passing_cases_run(case: str) -> None:
    """The passing cases are real programs: they run, not only type-check."""
    result = subprocess.run([sys.executable, str(CASES / case)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
