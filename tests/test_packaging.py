"""What ships: the wheel and the sdist hold what they should and nothing else; the console script runs."""

import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

import test_public_types

ROOT = Path(__file__).resolve().parents[1]

# The fresh venv with go_async installed from this checkout, shared with test_public_types.
installed = test_public_types.installed


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel and the sdist built from this checkout, as a release would build them."""
    out = tmp_path_factory.mktemp("dist")
    result = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", out, ROOT],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    [wheel] = out.glob("*.whl")
    [sdist] = out.glob("*.tar.gz")
    return wheel, sdist


def test_the_wheel_holds_the_package_its_types_license_and_entry_points(built: tuple[Path, Path]) -> None:
    wheel, _ = built
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        info = next(name.split("/")[0] for name in names if name.endswith(".dist-info/METADATA"))
        metadata = archive.read(f"{info}/METADATA").decode()
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
    assert "go_async/py.typed" in names
    assert "go_async/pytest_plugin.py" in names
    assert "go_async/distributed/_worker.py" in names
    assert f"{info}/licenses/LICENSE" in names
    # Nothing but the package and its metadata.
    assert {name.split("/")[0] for name in names} == {"go_async", info}
    assert "go-async-worker = go_async.worker:main" in entry_points
    assert "go_async = go_async.pytest_plugin" in entry_points
    extras = sorted(
        line.split(": ", 1)[1] for line in metadata.splitlines() if line.startswith("Provides-Extra")
    )
    assert extras == ["all", "cron", "otel", "redis", "rich", "tqdm"]  # no dev tools among them
    assert "License-Expression: MIT" in metadata
    urls = [line for line in metadata.splitlines() if line.startswith("Project-URL")]
    assert {url.split(": ", 1)[1].split(",")[0] for url in urls} >= {
        "Documentation",
        "Repository",
        "Changelog",
    }


def test_the_sdist_holds_the_source_and_no_ci_scripts_or_benchmark_output(built: tuple[Path, Path]) -> None:
    _, sdist = built
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    for kept in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "src/go_async/__init__.py"):
        assert kept in names
    assert "tests/test_packaging.py" in names
    assert "benchmarks/run.py" in names
    assert not {name for name in names if name.startswith(".ci") or name == ".gitignore"}
    output = {name for name in names if name.startswith("benchmarks/") and not name.endswith(".py")}
    assert output == set()


def test_the_worker_console_script_runs_and_names_the_extra_it_needs(installed: Path) -> None:
    """Installed without the redis extra: --help works, and a run says which extra to install."""
    script = installed / "bin" / "go-async-worker"
    helped = subprocess.run([script, "--help"], capture_output=True, text=True, check=False)
    assert helped.returncode == 0, helped.stderr
    assert "module:attribute" in helped.stdout
    ran = subprocess.run([script, "tasks:registry"], capture_output=True, text=True, check=False)
    assert ran.returncode == 2
    needs = "go_async.distributed needs Redis's client and pydantic: pip install 'go-async[redis]'"
    assert ran.stderr == f"go-async-worker: {needs}\n"
