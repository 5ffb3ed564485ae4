"""Fixtures every test may use: an isolated world home and a CLI runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's own world."""
    monkeypatch.delenv("SBCARD_HOME", raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "world"


@pytest.fixture
def sbcard(home: Path):
    """Run ``sbcard --home HOME …`` in-process; returns (exit_code, stdout, stderr, parsed JSON or None)."""
    from sbcard.cli.main import cli

    runner = CliRunner()

    def run(*args: str, input: str | None = None):
        result = runner.invoke(cli, ["--home", str(home), *args], input=input, catch_exceptions=False)
        parsed = None
        if "--json" in args and result.stdout.strip():
            try:
                parsed = json.loads(result.stdout)
            except json.JSONDecodeError:
                parsed = None
        return result.exit_code, result.stdout, result.stderr, parsed

    return run
