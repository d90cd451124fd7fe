"""A griffe extension for the API reference: reST literal blocks in docstrings become fenced code.

go_async's docstrings introduce examples the reST way, a paragraph ending in ``::`` and an
indented block under it. Markdown would show the ``::`` and an unhighlighted block, so each
such paragraph loses one colon and its block becomes a fenced one (Python, or shell for a
command line). mkdocs.yml loads this file; it is not a page.
"""

from __future__ import annotations

from typing import Any

import griffe

SHELL_STARTS = ("python -m ", "pip ", "$ ", "go-async-worker ")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def fence_literal_blocks(text: str) -> str:
    """``text`` with every ``::`` paragraph's indented block as a fenced code block."""
    lines = text.splitlines()
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if not line.rstrip().endswith("::") or line.strip() == "::":
            continue
        lead = _indent(line)
        block_start = index
        while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > lead):
            index += 1
        while index > block_start and not lines[index - 1].strip():
            index -= 1  # trailing blank lines stay outside the block
        body = lines[block_start:index]
        while body and not body[0].strip():
            body.pop(0)
        if not body:
            continue
        depth = min(_indent(entry) for entry in body if entry.strip())
        code = [entry[depth:] for entry in body]
        language = "sh" if code[0].startswith(SHELL_STARTS) else "python"
        out[-1] = line.rstrip()[:-1]
        pad = " " * lead
        out += ["", f"{pad}```{language}", *(f"{pad}{entry}" if entry else "" for entry in code), f"{pad}```"]
    return "\n".join(out)


class LiteralBlocks(griffe.Extension):
    """Rewrites each object's docstring once the package is loaded."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Fence the literal blocks of ``obj``'s docstring."""
        if obj.docstring is not None:
            obj.docstring.value = fence_literal_blocks(obj.docstring.value)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Fence the literal blocks of the package's own docstring (``on_object`` skips the package)."""
        self.on_object(obj=pkg)
