"""The docs site: every Python block in docs/ runs and type-checks, and `mkdocs build --strict` passes.

A block fenced ```python is a whole script: it runs in a fresh process, and its assertions must
hold. A block with a file name for title (```python title="jobs.py") is that file of its page: the
page's other blocks can import it, and a ``test_*.py`` one runs under pytest, whose tests must
pass. A block that cannot run (a fragment) is marked, visibly in the Markdown source, by the line
`<!-- not run: why -->` right before its fence, or by the fence ```py; it is reported as skipped,
with its reason, and left out of the type checks.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pytest

from test_docs import mypy_passes, pyright_passes

ROOT = Path(__file__).parent.parent
DOCS = ROOT / "docs"
SITE = "https://go-async.github.io/go-async/"

# A fence opening at the start of a line (maybe indented, inside an admonition or a tab), its
# info string, its body, and the closing fence at the same indentation.
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<lang>python|py)\b(?P<info>[^\n]*)\n(?P<body>.*?)^(?P=indent)```[ \t]*$",
    flags=re.DOTALL | re.MULTILINE,
)
TITLE = re.compile(r"""\btitle=["'](?P<title>[^"']*)["']""")
FILE_NAME = re.compile(r"[A-Za-z_]\w*\.py")
NOT_RUN = re.compile(r"<!--\s*not run:?\s*(?P<why>.*?)\s*-->")


@dataclass(frozen=True)
class Block:
    """One Python block of a docs page."""

    page: str  # relative to docs/, with forward slashes
    line: int  # the line of its opening fence, from 1
    code: str
    skip: str | None  # why it does not run, if it does not
    title: str | None = None  # its title="...", if it has one

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    @property
    def file_name(self) -> str:
        """Its title if that is a file name (the page's other blocks import it by it), else one of its own."""
        if self.title is not None and FILE_NAME.fullmatch(self.title):
            return self.title
        return "docs_" + re.sub(r"\W", "_", self.page.removesuffix(".md")) + f"_{self.line}.py"

    @property
    def is_test_file(self) -> bool:
        return self.file_name.startswith("test_")


def _dedent(body: str, indent: str) -> str:
    return "".join(line.removeprefix(indent) for line in body.splitlines(keepends=True))


def _why_not_run(text: str, fence_start: int, lang: str) -> str | None:
    """The reason a block is not run: its marker on the last non-blank line before it, or ```py."""
    before = [line for line in text[:fence_start].splitlines() if line.strip()]
    marker = NOT_RUN.search(before[-1]) if before else None
    if marker is not None:
        return marker.group("why") or "marked <!-- not run -->"
    if lang == "py":
        return "a ```py fence: a fragment"
    return None


def collect_blocks(docs: Path = DOCS) -> list[Block]:
    """Every ```python and ```py block under ``docs``, in page and line order."""
    blocks: list[Block] = []
    for path in sorted(docs.rglob("*.md")):
        text = path.read_text(encoding="utf-8")
        page = path.relative_to(docs).as_posix()
        for fence in FENCE.finditer(text):
            title = TITLE.search(fence.group("info"))
            blocks.append(
                Block(
                    page=page,
                    line=text.count("\n", 0, fence.start()) + 1,
                    code=_dedent(fence.group("body"), fence.group("indent")),
                    skip=_why_not_run(text, fence.start(), fence.group("lang")),
                    title=title.group("title") if title else None,
                )
            )
    return blocks


BLOCKS = collect_blocks()
RUNNABLE = [block for block in BLOCKS if block.skip is None]


def _page_directory(base: Path, page: str) -> Path:
    return base / re.sub(r"\W", "_", page.removesuffix(".md"))


def _write_pages(base: Path, blocks: Iterable[Block]) -> dict[str, list[Path]]:
    """Each runnable block as a file of its page's own directory under ``base``: the files, by page."""
    files: dict[str, list[Path]] = {}
    for block in blocks:
        directory = _page_directory(base, block.page)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / block.file_name
        assert not path.exists(), f"{block.id}: a second {block.file_name} on {block.page}"
        path.write_text(block.code, encoding="utf-8")
        files.setdefault(block.page, []).append(path)
    return files


def test_the_docs_are_made_of_runnable_blocks() -> None:
    """The pages teach with whole scripts; a fragment is the exception, and says why."""
    assert len(RUNNABLE) >= 30
    assert all(block.skip for block in BLOCKS if block not in RUNNABLE)


@pytest.mark.parametrize("block", BLOCKS, ids=[block.id for block in BLOCKS])
def test_docs_block_runs(block: Block, tmp_path: Path) -> None:
    """Each block runs in a fresh process, beside its page's files; a test_*.py one under pytest."""
    if block.skip is not None:
        pytest.skip(f"not run ({block.id}): {block.skip}")
    _write_pages(tmp_path, (other for other in RUNNABLE if other.page == block.page))
    if block.is_test_file:
        command = ["-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", ".", block.file_name]
    else:
        command = [block.file_name]
    result = subprocess.run(
        [sys.executable, *command],
        capture_output=True,
        text=True,
        check=False,
        cwd=_page_directory(tmp_path, block.page),
    )
    assert result.returncode == 0, f"{block.id}\n{result.stdout}\n{result.stderr}"


def _mypy_batches(files: dict[str, list[Path]]) -> list[list[Path]]:
    """The pages' files in as few mypy runs as keep each module name to one file per run."""
    batches: list[tuple[set[str], list[Path]]] = []
    for paths in files.values():
        names = {path.name for path in paths}
        batch = next((batch for batch in batches if not names & batch[0]), None)
        if batch is None:
            batches.append((names, list(paths)))
        else:
            batch[0].update(names)
            batch[1].extend(paths)
    return [paths for _, paths in batches]


@pytest.mark.timeout(300)
def test_docs_blocks_pass_mypy_strict(tmp_path: Path) -> None:
    """Each block type-checks under mypy with the project's settings (--strict and more)."""
    for paths in _mypy_batches(_write_pages(tmp_path, RUNNABLE)):
        mypy_passes(paths, tmp_path)


@pytest.mark.timeout(300)
def test_docs_blocks_pass_pyright_strict(tmp_path: Path) -> None:
    """Each block type-checks under pyright in strict mode, against the installed package."""
    _write_pages(tmp_path, RUNNABLE)
    pyright_passes(tmp_path)


def _missing_docs_tools() -> list[str]:
    needed = {
        "mkdocs": "mkdocs",
        "material": "mkdocs-material",
        "mkdocstrings_handlers": "mkdocstrings-python",
    }
    return [package for module, package in needed.items() if importlib.util.find_spec(module) is None]


@pytest.mark.timeout(300)
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """The site builds with no warning: each page in the nav, each link and anchor found, the API rendered."""
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install -e '.[all]' --group docs")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=env,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNING" not in output, output
    assert (tmp_path / "site" / "reference" / "api" / "index.html").is_file()


def test_the_chart_in_the_docs_is_the_benchmarks_chart() -> None:
    """docs/ carries a copy of the benchmark's chart (a site holds only what is under docs/)."""
    copy = DOCS / "benchmarks" / "results.png"
    original = ROOT / "benchmarks" / "results.png"
    if not original.is_file():
        pytest.skip("no benchmarks/results.png here: an sdist leaves the benchmark's output out")
    assert copy.read_bytes() == original.read_bytes(), (
        "the chart changed: cp benchmarks/results.png docs/benchmarks/results.png, "
        "and update the figures in docs/benchmarks/index.md, docs/index.md and README.md"
    )


def _site_target(url: str) -> Path | None:
    """The file under docs/ that a URL of the site is built from, if there is one."""
    path = url.removeprefix(SITE).split("#", 1)[0].split("?", 1)[0]
    if Path(path).suffix:  # a file copied as it is: an image
        candidates = [DOCS / path]
    else:  # a page, with directory URLs: x/y/ comes from x/y.md or x/y/index.md
        stem = path.strip("/")
        candidates = [DOCS / "index.md"] if not stem else [DOCS / f"{stem}.md", DOCS / stem / "index.md"]
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def test_readme_links_into_the_site_reach_pages() -> None:
    """The README links to the site by absolute URLs (the package index follows no relative link)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    urls = sorted(set(re.findall(re.escape(SITE) + r"[^\s)>\]\"']*", readme)))
    assert len(urls) >= 5
    broken = [url for url in urls if _site_target(url) is None]
    assert broken == [], f"README links to pages the site does not have: {broken}"


def test_collect_blocks_reads_titles_marks_and_indentation(tmp_path: Path) -> None:
    """The collector's rules, on a page made for it: files, marked and ```py fragments, indented blocks."""
    page = tmp_path / "page.md"
    page.write_text(
        "# A page\n\n"
        '```python title="jobs.py"\nassert 1 + 1 == 2\n```\n\n'
        "<!-- not run: needs a Redis server -->\n```python\nconnect()\n```\n\n"
        "```py\nfragment()\n```\n\n"
        "!!! example\n\n    ```python\n    x = 1\n    assert x == 1\n    ```\n\n"
        "```sh\npip install go-async\n```\n"
    )
    blocks = collect_blocks(tmp_path)
    assert [(block.line, block.skip) for block in blocks] == [
        (3, None),
        (8, "needs a Redis server"),
        (12, "a ```py fence: a fragment"),
        (18, None),
    ]
    assert [block.file_name for block in blocks[::3]] == ["jobs.py", "docs_page_18.py"]
    assert blocks[0].code == "assert 1 + 1 == 2\n"
    assert blocks[3].code == "x = 1\nassert x == 1\n"
