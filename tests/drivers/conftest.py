"""Fixtures for the reader drivers: a fake card. The real PC/SC stack's fixtures
(``pcsc_stack``, ``served_card``) are in ``tests/conftest.py``: issuance uses them too."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

for _dir in (Path(__file__).resolve().parent, Path(__file__).resolve().parents[1]):
    if str(_dir) not in sys.path:  # tests/drivers for drivers_fakes, tests/ for pcsc_stack
        sys.path.insert(0, str(_dir))

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
