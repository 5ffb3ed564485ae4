"""Fixtures every test may use: an isolated world home, a CLI runner, the real PC/SC stack.

``pcsc_stack`` (session) makes sure a pcscd with vsmartcard-vpcd's readers runs —
reusing one that answers, else starting ``pcscd --foreground`` and stopping exactly that
process at the end. ``served_card(path)`` (function) serves a card file into
"Virtual PCD 00 00" through the vpcd bridge and takes it out again at teardown.
Without pcscd or vpcd the PC/SC tests are skipped, except under CI (env ``CI`` set),
where they fail: the README's test command installs both.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pcsc_stack as stacklib
import pytest


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
    from world_template import cli

    def run(*args: str, input: str | None = None):
        return cli(home, *args, input=input)

    return run


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PC/SC stack unavailable under CI: {reason}")
    pytest.skip(f"PC/SC stack unavailable: {reason}")


@pytest.fixture(scope="session")
def pcsc_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[stacklib.PcscStack]:
    try:
        stack = stacklib.PcscStack.start(tmp_path_factory.mktemp("pcscd"))
    except stacklib.StackUnavailable as e:
        _unavailable(str(e))
    try:
        yield stack
    finally:
        stack.stop()


@pytest.fixture
def served_card(
    pcsc_stack: stacklib.PcscStack, tmp_path: Path
) -> Iterator[Callable[..., stacklib.Bridge]]:
    """``served_card(path, *extra_args)`` → a running bridge; stopped at teardown."""
    bridges: list[stacklib.Bridge] = []

    def serve(card: Path, *extra_args: str) -> stacklib.Bridge:
        try:
            bridge = stacklib.Bridge.start(
                Path(card), tmp_path / "bridge-logs", reader=pcsc_stack.reader, port=pcsc_stack.port, extra_args=extra_args
            )
        except stacklib.StackUnavailable as e:
            pytest.fail(str(e))
        bridges.append(bridge)
        return bridge

    yield serve
    for bridge in reversed(bridges):
        bridge.stop()
