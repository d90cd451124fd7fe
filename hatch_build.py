"""A build hook: the sdist ships without the ``.gitignore`` that hatchling always adds to it."""

from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class WithoutGitignore(BuildHookInterface):  # type: ignore[misc]  # hatchling ships no types
    """Drops ``.gitignore`` from what the sdist force-includes; everything else is as configured."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        included = build_data["force_include"]
        build_data["force_include"] = {path: name for path, name in included.items() if name != ".gitignore"}
