"""The house keeps its shape: the layer contracts in ``.importlinter`` hold (issue 17).

import-linter reads every import, function-local ones included, and checks the contracts:
the domain is pure; entry points sit over services, services over the store, the
reference data, the chip, the clock and the domain; the core never imports the terminals
nor an entry point; terminals reach hosts only through ports; the capability packages of
``sbcard.services`` are layered one way; and no package or module imports in a circle.
"""

from __future__ import annotations

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
