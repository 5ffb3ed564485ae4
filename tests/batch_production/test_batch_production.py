"""Batch production (批量制卡): cards made at the factory, handed over and started at an outlet."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch_world import CLERK, NOW, OPERATORS, OUTLET, PEOPLE, STRANGER, ZHANG, produce, request
from world_template import receive_blanks

from sbcard.services.exchange import outbox
from sbcard.services.cards import batch_production
from sbcard.services.cards.activation import ActivationDesk
from sbcard.services.cards.issuance import IssuanceDesk, apply
from sbcard.store.world import open_world
from terminals.apps import counter
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.card import VirtualCard
from terminals.emulator.card_file import read_state


def test_a_batch_card_is_the_card_a_counter_makes(home: Path, tmp_path: Path) -> None:
    """Same data, same keys, same chip serial: the factory's image is the counter's, byte for byte."""
    import shutil

    twin = tmp_path / "twin"
    shutil.copytree(home, twin)
    [made] = produce(home, [request("mother", "147258")]).cards

    [blank] = receive_blanks(twin, OPERATORS, OUTLET, 1, NOW)
    with open_world(twin) as world:
        application = apply(world, citizen_id=PEOPLE["mother"]["citizen_id"], outlet=OUTLET, operator=CLERK, now=NOW)
        reader = EmulatorReader(blank)
        issued = counter.issue(reader, IssuanceDesk(world, application["application_id"], operator=CLERK, now=NOW))
        counter.activate(reader, ActivationDesk(world, issued.record["card_number"], operator=CLERK, now=NOW),
                         "147258")
        reader.close()

    assert issued.record["card_number"] == made.card_number
    assert read_state(made.path) == read_state(blank)


def test_the_batch_records_each_card_active_with_its_account_and_history(home: Path) -> None:
    result = produce(home, [request("zhang"), request("old"), request("child", guardian=ZHANG)])
    assert result.batch_id == "TJ-B-20250301-0001" and not result.refused
    with open_world(home) as world:
        db = world.region("tj")
        for made in result.cards:
            card = db["cards"].get(made.card_number)
            assert (card["status"], card["chip_serial"], card["virtual_path"]) == (
                "active", made.chip_serial, f"cards/batch/{result.batch_id}/{made.chip_serial}.card")
            assert Path(home, card["virtual_path"]) == Path(made.path).absolute()
            application = db["applications"].get(card["application_id"])
            assert (application["status"], application["channel"]) == ("delivered", "online")
            events = [e["event"] for e in db.query("SELECT event FROM card_events WHERE card_number = ? ORDER BY id",
                                                   [made.card_number])]
            assert events == ["issued", "activated"]
            [account] = db.query("SELECT * FROM accounts WHERE card_number = ?", [made.card_number])
            assert (account["account_no"], account["status"]) == (made.account_no, "active")
            directory = world.hub()["card_directory"].get(made.card_number)
            assert (directory["status"], directory["citizen_id"]) == ("active", made.citizen_id)


def test_the_holder_starts_the_card_with_their_own_pin(home: Path) -> None:
    [made] = produce(home, [request("zhang", "862413")]).cards
    reader = EmulatorReader(made.path)
    try:
        counter.change_pin(reader, "862413", "791035")  # only the holder's PIN opens it
    finally:
        reader.close()
    assert VirtualCard.load(made.path).state.pin is not None


@pytest.mark.parametrize("bad, code", [
    (batch_production.Request(STRANGER, "147258"), "person.unknown"),
    (request("child"), "application.guardian_required"),
    (request("mother", "111111"), "pin.trivial"),
    (request("zhang"), "application.open"),  # a second request in the same batch
])
def test_a_refused_request_is_reported_and_the_rest_of_the_batch_is_made(home: Path, bad: batch_production.Request,
                                                                          code: str) -> None:
    result = produce(home, [request("zhang"), bad])
    assert [c.citizen_id for c in result.cards] == [ZHANG]
    assert [r.code for r in result.refused] == [code]
    assert "*" in json.dumps(result.refused[0].to_json())  # the citizen ID masked


def test_a_card_already_held_is_refused_in_a_later_batch(home: Path) -> None:
    produce(home, [request("zhang")])
    result = produce(home, [request("zhang")])
    assert not result.cards and [r.code for r in result.refused] == ["application.card_held"]


def test_a_failing_chip_leaves_no_row_and_no_card_file(home: Path) -> None:
    from terminals.apps.factory import produce_card

    def third_fails(path, serial, card, keys, pin):  # noqa: ANN001, ANN202
        if card.citizen_id == PEOPLE["old"]["citizen_id"]:
            raise OSError("the personalisation machine jammed")
        return produce_card(path, serial, card, keys, pin)

    with open_world(home) as world:
        before = {t: world.region("tj")[t].count for t in ("cards", "applications", "accounts", "card_events")}
    with pytest.raises(OSError, match="jammed"):
        produce(home, [request("zhang"), request("mother"), request("old")], produce_card=third_fails)
    with open_world(home) as world:
        after = {t: world.region("tj")[t].count for t in before}
        assert after == before and not outbox.pending(world.region("tj"))
    assert not list((home / "cards").rglob("*.card"))


def test_a_batch_is_one_to_five_thousand_cards(home: Path) -> None:
    from sbcard.domain.errors import InvalidInput

    with pytest.raises(InvalidInput, match="1 to 5000"):
        produce(home, [])


def test_a_failed_batch_never_gives_its_card_numbers_to_later_cards(home: Path) -> None:
    """Its chips may have been made before the failure (a crash is the same): their numbers stay theirs."""
    from terminals.apps.factory import produce_card

    tried: list[tuple[str, str]] = []

    def third_fails(path, serial, card, keys, pin):  # noqa: ANN001, ANN202
        tried.append((card.card_number, card.app_serial))
        if card.citizen_id == PEOPLE["old"]["citizen_id"]:
            raise OSError("the personalisation machine jammed")
        return produce_card(path, serial, card, keys, pin)

    with pytest.raises(OSError, match="jammed"):
        produce(home, [request("zhang"), request("mother"), request("old")], produce_card=third_fails)
    later = produce(home, [request("zhang"), request("mother")])
    assert later.batch_id != "TJ-B-20250301-0001"  # the failed batch's id is not reused either
    with open_world(home) as world:
        serials = {world.region("tj")["cards"].get(made.card_number)["app_serial"] for made in later.cards}
    assert not {made.card_number for made in later.cards} & {number for number, _ in tried}
    assert not serials & {serial for _, serial in tried}
