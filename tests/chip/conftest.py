"""Fixtures for the chip tests (values in ``chip_helpers``)."""

from __future__ import annotations

import pytest
from chip_helpers import keys_for, make_card_data

from sbcard.chip.keys import CardKeys
from sbcard.chip.personalisation import CardData


@pytest.fixture
def card_data() -> CardData:
    return make_card_data()


@pytest.fixture
def keys(card_data: CardData) -> CardKeys:
    return keys_for(card_data)
