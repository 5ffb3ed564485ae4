"""Fixtures for the reader drivers: a fake card, and the real PC/SC stack.

``pcsc_stack`` (session) makes sure a pcscd with vsmartcard-vpcd's readers runs —
reusing one that answers, else starting ``pcscd --foreground`` and stopping exactly that
process at the end. ``served_card(path)`` (function) serves a card file into
"Virtual PCD 00 00" through the vpcd bridge and takes it out again at teardown.

Without pcscd or vpcd the PC/SC tests are skipped, except under CI (env ``CI`` set),
where they fail: the README's test command installs both.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]):
    if str(_dir) not in sys.path:  # tests/drivers for drivers_fakes, tests/ for pcsc_stack
        sys.path.insert(0, str(_dir))

import pcsc_stack as stacklib  # noqa: E402
from drivers_fakes import FakeCard  # noqa: E402


@pytest.fixture
def fake_loader() -> Callable[..., FakeCard]:
    """A loader for ``EmulatorReader``/``serve``: records the cards it made in ``.cards``."""

    cards: list[FakeCard] = []

    def load(path: Path, faults: object = None) -> FakeCard:
        if not Path(path).exists():
            raise FileNotFoundError(path)
        card = FakeCard(path, faults, tear_on=load.tear_on)  # type: ignore[attr-defined]
        cards.append(card)
        return card

    load.cards = cards  # type: ignore[attr-defined]
    load.tear_on = None  # type: ignore[attr-defined]
    return load


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
