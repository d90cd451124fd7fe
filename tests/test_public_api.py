"""The public surface: what __all__ exports, and that each export documents itself."""

import inspect
from pathlib import Path

import pytest

import go_async
import go_async.distributed


def test_all_is_sorted_and_matches_the_public_attributes() -> None:
    """Everything public is in __all__, and nothing else (the optional go_async.otel is a module)."""
    public = {
        name
        for name, value in vars(go_async).items()
        if not name.startswith("_") and not inspect.ismodule(value)
    }
    assert go_async.__all__ == sorted(go_async.__all__)
    assert set(go_async.__all__) == public


@pytest.mark.parametrize("name", go_async.__all__)
def test_each_export_has_a_docstring_with_an_example(name: str) -> None:
    """Concise docs with a short example on each public object."""
    doc = inspect.getdoc(getattr(go_async, name)) or ""
    assert "Example::" in doc, name


def test_the_package_ships_its_types_marker() -> None:
    """py.typed is present so users' checkers read our annotations."""
    assert (Path(inspect.getfile(go_async)).parent / "py.typed").is_file()


@pytest.mark.parametrize("name", go_async.distributed.__all__)
def test_each_distributed_export_has_a_docstring_with_an_example(name: str) -> None:
    """The optional go_async.distributed package follows the same rules."""
    assert go_async.distributed.__all__ == sorted(go_async.distributed.__all__)
    doc = inspect.getdoc(getattr(go_async.distributed, name)) or ""
    assert "Example::" in doc, name
