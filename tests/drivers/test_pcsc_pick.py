"""Which PC/SC reader a spec names, on a fake list of readers: never a guess when a clerk could write the wrong card."""

from __future__ import annotations

import pytest
from world_template import cli

from sbcard.chip.reader import NoCard, ReaderError
from sbcard.domain.errors import InvalidInput
from terminals.drivers import pcsc as pcsc_mod
from terminals.drivers.pcsc import _pick

ACS = "ACS ACR39U ICC Reader 00 00"
VPCD_0 = "Virtual PCD 00 00"
VPCD_1 = "Virtual PCD 00 01"
READERS = [ACS, VPCD_0, VPCD_1]


def _states(with_cards: set[str]):
    return lambda names: {n: (n in with_cards, b"\x3b" if n in with_cards else None) for n in names}


@pytest.mark.parametrize(("name", "cards", "picked"), [
    (None, {VPCD_1}, VPCD_1),  # the one reader with a card
    (ACS, {VPCD_0, VPCD_1}, ACS),  # an exact name, whatever else holds a card
    ("ACS", set(), ACS),  # a unique prefix
    (VPCD_0, {VPCD_0, VPCD_1}, VPCD_0),  # an exact name that is also a prefix of nothing else
])
def test_a_spec_picks_one_reader(name, cards, picked) -> None:
    assert _pick(name, READERS, _states(cards)) == picked


@pytest.mark.parametrize(("name", "cards", "code", "named"), [
    (None, {ACS, VPCD_1}, "reader.several_cards", [ACS, VPCD_1]),
    (None, set(READERS), "reader.several_cards", READERS),
    ("Virtual PCD", {VPCD_0}, "reader.ambiguous", [VPCD_0, VPCD_1]),
    ("Gemalto PC Twin", {VPCD_0}, "reader.unknown", READERS),
    ("", {ACS, VPCD_0}, "reader.several_cards", [ACS, VPCD_0]),  # ``pcsc:`` with nothing after it
])
def test_a_spec_that_could_mean_another_card_is_bad_input_naming_the_readers(name, cards, code, named) -> None:
    with pytest.raises(InvalidInput) as refused:
        _pick(name, READERS, _states(cards))
    assert (refused.value.code, refused.value.field, refused.value.exit_code) == (code, "reader", 2)
    assert all(f'"{n}"' in refused.value.message for n in named)


def test_no_card_anywhere_is_no_card_and_no_reader_is_a_reader_error() -> None:
    with pytest.raises(NoCard):
        _pick(None, READERS, _states(set()))
    with pytest.raises(ReaderError, match="no PC/SC reader connected"):
        _pick(None, [], _states(set()))


def test_the_command_line_refuses_two_cards_in_one_line_exit_2(monkeypatch, tmp_path) -> None:
    pytest.importorskip("smartcard")
    monkeypatch.setattr(pcsc_mod, "_reader_names", lambda: list(READERS))
    monkeypatch.setattr(pcsc_mod, "_states", _states({VPCD_0, VPCD_1}))
    code, out, err, _ = cli(tmp_path / "world", "reader", "read", "--reader", "pcsc:")
    assert code == 2 and out == ""
    assert err == (f'error: reader: cards are in 2 PC/SC readers: "{VPCD_0}", "{VPCD_1}"; say which with '
                   "--reader pcsc:NAME, or take out the other cards\n")
