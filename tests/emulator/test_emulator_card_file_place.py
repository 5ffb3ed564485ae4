"""``CardFile.at``: a card file continued at a known bank and sequence writes what a scanning one writes.

A simulator keeps a card's image between taps; it can keep the card file object too and
pass its ``place`` on, so the next session's first save needs no scan of the banks. The
file must come out byte for byte as if the save had scanned.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import attrs
import pytest

from terminals.emulator import card_file, image, testing
from terminals.emulator.card import VirtualCard


def _poorer(state: image.CardState) -> image.CardState:
    state.purse = attrs.evolve(state.purse, balance=state.purse.balance - 1)
    return state


def test_a_vouched_place_writes_what_a_scan_writes(card_path: Path, tmp_path: Path) -> None:
    twin = Path(shutil.copyfile(card_path, tmp_path / "twin.card"))
    f, state = card_file.CardFile.open(card_path)
    place = f.place
    assert place is not None and place[0] == card_file.BANK_SIZE
    f.close()
    assert f.place == place  # kept after close
    for _ in range(3):  # a save, then the next session's, each continuing where the last left
        vouched = card_file.CardFile.at(card_path, place)
        assert vouched.place == place and vouched.closed
        vouched.save(_poorer(state))
        place = vouched.place
        vouched.close()
        card_file.save(state, twin)  # scans
    assert card_path.read_bytes() == twin.read_bytes()
    again, loaded = card_file.CardFile.open(card_path)
    assert again.place == place and loaded == state
    again.close()


def test_a_card_given_a_vouched_file_saves_as_usual(card_path: Path, tmp_path: Path) -> None:
    twin = Path(shutil.copyfile(card_path, tmp_path / "twin.card"))
    f, state = card_file.CardFile.open(card_path)
    f.close()
    card = VirtualCard(card_path, state, rng=random.Random(5), file=card_file.CardFile.at(card_path, f.place))
    testing.purchase(card, 250)
    card.close()
    plain = VirtualCard.load(twin, rng=random.Random(5))
    testing.purchase(plain, 250)
    plain.close()
    assert card_path.read_bytes() == twin.read_bytes()


def test_after_close_a_save_scans_again(card_path: Path) -> None:
    f, state = card_file.CardFile.open(card_path)
    f.close()
    stale = card_file.CardFile.at(card_path, f.place)
    card_file.save(_poorer(state), card_path)  # someone else writes the file
    stale.close()  # closing withdraws the vouching: the next save reads the banks
    stale.save(_poorer(state))
    assert card_file.load(card_path) == state
    assert stale.place == (card_file.BANK_SIZE, f.place[1], f.place[2] + 2)


def test_an_impossible_place_is_refused(card_path: Path) -> None:
    assert card_file.CardFile(card_path).place is None
    for place in [(100, 0, 1), (card_file.BANK_SIZE, 2, 1), (card_file.BANK_SIZE, 0, -1)]:
        with pytest.raises(ValueError):
            card_file.CardFile.at(card_path, place)
