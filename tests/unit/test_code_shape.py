"""The layout's promises, read from the source (DESIGN.md "The next shape", issue 14):

- nothing below the presentation (engine, accounts, providers, store) imports discord;
- nothing in bot/discord/ or bot/interactions/ imports bot.app, not even for type hints
  (what they need is handed to them once, in setup_hook);
- no function in bot/ or cogs/ is longer than 60 lines.

Each check names the offending places, so a failure says where to look.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BELOW_PRESENTATION = ("bot/engine", "bot/accounts", "bot/providers", "bot/store")
NO_APP_IMPORT = ("bot/discord", "bot/interactions")
MAX_FUNCTION_LINES = 60


def modules(*folders: str) -> Iterator[Path]:
    for folder in folders:
        yield from sorted((ROOT / folder).rglob("*.py"))


def imported(path: Path) -> set[str]:
    """Every module an `import` or `from … import` names in `path`, anywhere in it."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_nothing_below_the_presentation_imports_discord() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(*BELOW_PRESENTATION)
        for name in sorted(imported(path))
        if name == "discord" or name.startswith("discord.")
    ]
    assert found == [], found


def test_no_interaction_or_presentation_module_imports_the_app() -> None:
    found = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in modules(*NO_APP_IMPORT)
        for name in sorted(imported(path))
        if name == "bot.app" or name.startswith("bot.app.")
    ]
    assert found == [], found


def test_no_function_is_longer_than_sixty_lines() -> None:
    long = []
    for path in modules("bot", "cogs"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                assert node.end_lineno is not None
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length})")
    assert long == [], long


def test_the_checks_see_what_they_look_for(tmp_path: Path) -> None:
    """Calibration: the readers find an import under TYPE_CHECKING and a long function."""
    source = tmp_path / "sample.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from bot.app import MidjourneyBot\n"
        "import discord.ui\n"
        f"def long():\n{body}\n",
        encoding="utf-8",
    )
    names = imported(source)
    assert "bot.app" in names and "discord.ui" in names
    function = next(
        n for n in ast.walk(ast.parse(source.read_text())) if isinstance(n, ast.FunctionDef)
    )
    assert function.end_lineno is not None
    assert function.end_lineno - function.lineno + 1 > MAX_FUNCTION_LINES
