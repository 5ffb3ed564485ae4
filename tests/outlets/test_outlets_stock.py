"""Blank stock: delivered as card files, taken only by issuance, refused in clear words."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.services.outlets import stock
from sbcard.services.outlets.operators import add_operator
from terminals.emulator.blank import create_blank

HEXI = "TJ-120103-01"


@pytest.fixture
def tj(world, clock):
    db = world.region("tj")
    add_operator(db, code="tj-op", name="王芳", role="counter", region="120103", now=clock.now())
    add_operator(db, code="tj-fin", name="李强", role="finance", region="120103", now=clock.now())
    return db


def receive(world, db, clock, outlet=HEXI, count=3, operator="tj-op", make_blank=create_blank):
    return stock.receive_stock(db, outlet=outlet, count=count, operator=operator, now=clock.now(),
                               cards_dir=world.paths.cards_dir, make_blank=make_blank)


def test_a_delivery_writes_blank_cards_and_records_them(world, tj, clock):
    result = receive(world, tj, clock)

    assert result["chip_serials"] == ["8612000000000001", "8612000000000002", "8612000000000003"]
    assert result["received"] == 3 and result["in_stock"] == 3
    for serial, path in zip(result["chip_serials"], result["paths"]):
        assert Path(path) == world.paths.cards_dir.absolute() / "stock" / HEXI / f"{serial}.card"
        assert Path(path).is_file()
    assert stock.stock_of(tj, HEXI) == {"outlet": HEXI, "in_stock": 3, "used": 0, "spoiled": 0, "low": True,
                                        "low_stock": 20}
    [entry] = [e for e in tj["audit_log"].rows if e["action"] == "stock.receive"]
    assert (entry["operator"], entry["outlet"]) == ("tj-op", HEXI)
    assert receive(world, tj, clock, count=1)["chip_serials"] == ["8612000000000004"]


def test_the_blank_file_carries_its_chip_serial(world, tj, clock):
    from terminals.emulator.card import VirtualCard

    [path] = receive(world, tj, clock, count=1)["paths"]
    assert VirtualCard.load(Path(path)).chip_serial.hex().upper() == "8612000000000001"


def test_stock_is_low_at_or_below_the_outlets_mark(world, tj, clock):
    receive(world, tj, clock, outlet="TJ-120103-03", count=5)  # self-service machine: low at 5
    assert stock.stock_of(tj, "TJ-120103-03")["low"] is True
    receive(world, tj, clock, outlet="TJ-120103-03", count=1)
    assert stock.stock_of(tj, "TJ-120103-03")["low"] is False


@pytest.mark.parametrize(
    ("kwargs", "error", "code", "field"),
    [
        ({"count": 0}, InvalidInput, "stock.count", "--count"),
        ({"count": 1001}, InvalidInput, "stock.count", "--count"),
        ({"outlet": "TJ-120103-99"}, NotFound, "outlet.unknown", "--outlet"),
        ({"outlet": "BJ-110105-01"}, RuleRefused, "stock.other_region", "--outlet"),
        ({"outlet": "TJ-12010"}, InvalidInput, "outlet.format", "--outlet"),
        ({"operator": "nobody"}, NotFound, "operator.unknown", "--operator"),
        ({"operator": "tj-fin"}, RuleRefused, "operator.role", "--operator"),
    ],
)
def test_a_bad_delivery_is_refused_and_leaves_nothing(world, tj, clock, kwargs, error, code, field):
    with pytest.raises(error) as exc:
        receive(world, tj, clock, **kwargs)
    assert (exc.value.code, exc.value.field) == (code, field)
    assert tj["blank_cards"].count == 0 and tj["sequences"].count == 0
    assert not list(world.paths.cards_dir.rglob("*.card"))


def test_a_card_file_that_cannot_be_written_undoes_the_whole_delivery(world, tj, clock):
    made = []

    def flaky(path, serial):
        if len(made) == 2:
            raise OSError(28, "No space left on device", str(path))
        made.append(create_blank(path, serial))

    with pytest.raises(OSError):
        receive(world, tj, clock, count=5, make_blank=flaky)
    assert len(made) == 2 and not any(p.exists() for p in made)
    assert tj["blank_cards"].count == 0 and tj["audit_log"].count == 2  # the two operators only
    assert receive(world, tj, clock, count=1)["chip_serials"] == ["8612000000000001"]  # no serial burnt


def test_taking_a_blank_for_a_card(world, tj, clock):
    serial = receive(world, tj, clock)["chip_serials"][0]
    row = stock.take_blank(tj, outlet=HEXI, chip_serial=serial.lower(), card_number="T00000018", now=clock.now())
    assert (row["status"], row["used_for"]) == ("used", "T00000018")
    assert stock.stock_of(tj, HEXI)["in_stock"] == 2 and stock.stock_of(tj, HEXI)["used"] == 1
    # Delivered twice (a retried message): nothing changes.
    assert stock.take_blank(tj, outlet=HEXI, chip_serial=serial, card_number="T00000018", now=clock.now()) == row


def test_blanks_are_refused_in_words_staff_understand(world, tj, clock):
    serial = receive(world, tj, clock)["chip_serials"][0]
    stock.take_blank(tj, outlet=HEXI, chip_serial=serial, card_number="T00000018", now=clock.now())
    cases = [
        (HEXI, serial, "stock.not_in_stock", "already used for card T00000018"),
        ("TJ-120103-02", "8612000000000002", "stock.other_outlet", "belongs to the stock of TJ-120103-01"),
        (HEXI, "AAAAAAAAAAAAAAAA", "stock.not_in_stock", "not in any outlet's stock"),
        ("BJ-110105-01", "8612000000000002", "stock.other_region", "belongs to Beijing; its stock is not kept"),
    ]
    for outlet, chip, code, words in cases:
        with pytest.raises(RuleRefused) as exc:
            stock.take_blank(tj, outlet=outlet, chip_serial=chip, card_number="T00000026", now=clock.now())
        assert exc.value.code == code and words in exc.value.message, (outlet, chip)
    assert stock.stock_of(tj, HEXI)["in_stock"] == 2


def test_check_blank_sees_the_whole_world(world, tj, clock):
    serial = receive(world, tj, clock, count=1)["chip_serials"][0]
    assert stock.check_blank(world, outlet=HEXI, chip_serial=serial)["status"] == "in_stock"
    assert stock.blank_owner(world, serial)[0] == "tj"
    assert stock.blank_owner(world, "0000000000000000") is None
    with pytest.raises(RuleRefused) as exc:
        stock.check_blank(world, outlet="BJ-110105-01", chip_serial=serial)
    assert exc.value.code == "stock.other_region"
    assert "belongs to the stock of TJ-120103-01 (Tianjin), not BJ-110105-01" in exc.value.message


def test_a_spoiled_blank_leaves_the_stock_with_a_reason(world, tj, clock):
    serial = receive(world, tj, clock, count=2)["chip_serials"][0]
    with pytest.raises(InvalidInput):
        stock.spoil_blank(tj, outlet=HEXI, chip_serial=serial, operator="tj-op", reason=" ", now=clock.now())
    stock.spoil_blank(tj, outlet=HEXI, chip_serial=serial, operator="tj-op", reason="chip cracked", now=clock.now())
    assert stock.stock_of(tj, HEXI)["spoiled"] == 1
    assert [b["status"] for b in stock.blanks(tj, HEXI)] == ["spoiled", "in_stock"]
    with pytest.raises(RuleRefused):
        stock.take_blank(tj, outlet=HEXI, chip_serial=serial, card_number="T00000018", now=clock.now())
