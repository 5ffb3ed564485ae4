"""The same seeded world gives the same cards; the issuer alone knows the initial PIN."""

from __future__ import annotations

from pathlib import Path

from issuance_world import NOW, OPERATORS, PEOPLE

from sbcard.chip.commands import PinTriesLeft, Verify
from sbcard.clock import FixedClock, SystemClock
from sbcard.services.cards import issuance, keys
from sbcard.services.outlets import operators, stock
from sbcard.services.people import registry
from sbcard.services.cards.issuance import IssuanceDesk
from sbcard.store.world import init_world, open_world
from terminals.apps import counter
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator.blank import create_blank


def issue_in_new_world(home: Path, seed: int) -> tuple[dict, Path]:
    now = SystemClock().now()  # NOW: time is frozen, as the command line would see it
    init_world(home, FixedClock(NOW), rng_seed=seed)
    with open_world(home) as world:
        name, role, region, node = OPERATORS["HE-C1"]
        operators.add_operator(world.region(node), code="HE-C1", name=name, role=role, region=region, now=now)
        registry.add_person(world.region("he"), now=now, **PEOPLE["wang"].fields)
        [blank] = stock.receive_stock(world.region("he"), outlet="HE-130102-01", count=1, operator="HE-C1", now=now,
                                      cards_dir=world.paths.cards_dir, make_blank=create_blank)["paths"]
        application = issuance.apply(world, citizen_id=PEOPLE["wang"].citizen_id, outlet="HE-130102-01",
                                     operator="HE-C1", now=now)
        desk = IssuanceDesk(world, application["application_id"], operator="HE-C1", now=now)
        with EmulatorReader(blank) as reader:
            issued = counter.issue(reader, desk).record
    return issued, Path(blank)


def test_two_runs_of_a_seeded_world_issue_the_same_card_and_another_seed_another(tmp_path):
    first, first_card = issue_in_new_world(tmp_path / "a", seed=42)
    again, again_card = issue_in_new_world(tmp_path / "b", seed=42)
    other, _ = issue_in_new_world(tmp_path / "c", seed=43)
    drop_path = lambda d: {k: v for k, v in d.items() if k != "virtual_path"}  # noqa: E731
    assert drop_path(first) == drop_path(again)
    assert first_card.read_bytes() == again_card.read_bytes()
    assert other["card_number"] == first["card_number"]  # the same sequence …
    assert other["card_id_code"] != first["card_id_code"]  # … but other keys, other card-unique bytes


def test_the_initial_pin_is_derived_again_by_the_issuer_and_stored_nowhere(tmp_path):
    issued, card = issue_in_new_world(tmp_path / "w", seed=42)
    with open_world(tmp_path / "w") as world:
        masters = keys.issuer_masters(world.region("he"))
        dump = "\n".join(world.region("he").conn.iterdump())
    pin = keys.initial_pin(masters, issued["card_number"])
    with EmulatorReader(card) as reader:
        Verify(pin).send(reader)
        assert PinTriesLeft().send(reader) == 3
    assert f"'{pin}'" not in dump
