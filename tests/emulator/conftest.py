"""Fixtures for the emulated card: a personalised card made once and copied per test."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from emulator_helpers import BLANK_SERIAL, TEMPLATE_BALANCE

from sbcard.chip.keys import CardKeys
from terminals.emulator import testing
from terminals.emulator.blank import create_blank
from terminals.emulator.card import VirtualCard



@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A personalised card with ¥100.00 (one load), made through its commands once."""
    path = tmp_path_factory.mktemp("template") / "card.json"
    testing.personalised_card(path, balance_fen=TEMPLATE_BALANCE, rng=random.Random(0))
    return path


@pytest.fixture
def card_path(tmp_path: Path, template: Path) -> Path:
    return Path(shutil.copyfile(template, tmp_path / "card.json"))


@pytest.fixture
def card(card_path: Path) -> VirtualCard:
    card = VirtualCard.load(card_path, rng=random.Random(1))
    card.power_on()
    return card


@pytest.fixture
def keys() -> CardKeys:
    return testing.keys_of(testing.card_data())


@pytest.fixture
def blank_path(tmp_path: Path) -> Path:
    return create_blank(tmp_path / "blank.json", BLANK_SERIAL)


@pytest.fixture
def blank(blank_path: Path) -> VirtualCard:
    card = VirtualCard.load(blank_path, rng=random.Random(2))
    card.power_on()
    return card
