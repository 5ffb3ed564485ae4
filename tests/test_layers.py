"""The house keeps its shape: the layer contracts in ``.importlinter`` hold (issue 17).

import-linter reads every import, function-local ones included, and checks the contracts:
the domain is pure; entry points sit over services, services over the store, the
reference data, the chip, the clock and the domain; the core never imports the terminals
nor an entry point; terminals reach hosts only through ports; the capability packages of
``sbcard.services`` are layered one way; and no package or module imports in a circle.
"""

from __future__ import annotations

import ast
import configparser
from pathlib import Path

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"


def test_the_layer_contracts_hold(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    code = lint_imports(config_filename=str(CONFIG), no_cache=True, no_logo=True)
    out = capsys.readouterr().out
    assert code == 0, out


def test_every_capability_package_is_placed_in_the_layers() -> None:
    """A new package under sbcard/services cannot slip outside the one-way order."""
    config = configparser.ConfigParser()
    config.read(CONFIG)
    layers = config["importlinter:contract:capabilities"]["layers"]
    placed = {name.strip() for line in layers.splitlines() for name in line.split("|") if name.strip()}
    packages = {f"sbcard.services.{p.name}" for p in (ROOT / "sbcard" / "services").iterdir()
                if (p / "__init__.py").exists()}
    assert packages == placed


def test_every_top_level_package_is_placed_in_the_layers() -> None:
    config = configparser.ConfigParser()
    config.read(CONFIG)
    layers = config["importlinter:contract:layers"]["layers"]
    placed = {name.strip() for line in layers.splitlines() for name in line.split("|") if name.strip()}
    top = {f"sbcard.{p.stem if p.suffix else p.name}" for p in (ROOT / "sbcard").iterdir()
           if (p.suffix == ".py" and p.stem not in {"__init__", "__main__"}) or (p / "__init__.py").exists()}
    assert top == placed


def _function_local_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for fn in ast.walk(tree):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found += [(node.lineno, ast.unparse(node)) for node in ast.walk(fn)
                      if isinstance(node, (ast.Import, ast.ImportFrom))]
    return found


def _explained(lines: list[str], lineno: int) -> bool:
    """A comment on the import's line, or in the block of imports and comments just above it."""
    if "#" in lines[lineno - 1]:
        return True
    for line in reversed(lines[:lineno - 1]):
        text = line.strip()
        if not text.startswith(("#", "from ", "import ")):
            return False
        if "#" in text:
            return True
    return False


def test_imports_go_at_the_top_outside_the_cli() -> None:
    """A function-local import hides an arrow; outside the CLI (whose lazy-import rule is in
    sbcard/cli/__init__.py) one stays only with a comment, on its line or the line above, saying why."""
    unexplained = []
    for path in sorted([*(ROOT / "sbcard").rglob("*.py"), *(ROOT / "terminals").rglob("*.py")]):
        if (ROOT / "sbcard" / "cli") in path.parents:
            continue
        lines = path.read_text(encoding="utf-8").splitlines()
        for lineno, text in _function_local_imports(path):
            said = _explained(lines, lineno)
            if not said:
                unexplained.append(f"{path.relative_to(ROOT)}:{lineno}: {text}")
    assert not unexplained, "\n".join(unexplained)
