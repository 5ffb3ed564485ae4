"""Finding the node that holds an outlet, a person, a card or an operator."""

from __future__ import annotations

import pytest
from registry_helpers import citizen_id

from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.services.exchange.lookup import find_card, find_operator, find_person, get_outlet, node_of_outlet
from sbcard.services.outlets.operators import add_operator
from sbcard.services.people.registry import add_person


@pytest.mark.parametrize(
    ("code", "node"),
    [("TJ-120103-01", "tj"), ("bj-110105-02", "bj"), (" HE-130638-01 ", "he")],
)
def test_an_outlet_code_names_its_node(code, node):
    assert node_of_outlet(code) == node


@pytest.mark.parametrize(
    "code",
    ["", "TJ-120103", "TJ-120103-1", "SH-310101-01", "TJ-110105-01", "TJ_120103_01", "TJ-12O103-01"],
)
def test_a_malformed_outlet_code_names_the_outlet_field(code):
    with pytest.raises(InvalidInput) as exc:
        node_of_outlet(code)
    assert (exc.value.code, exc.value.field) == ("outlet.format", "--outlet")


def test_get_outlet_reads_the_owning_region(world):
    outlet = get_outlet(world, "tj-120103-02")
    assert outlet["code"] == "TJ-120103-02" and outlet["kind"] == "bank_branch" and outlet["node"] == "tj"
    with pytest.raises(NotFound) as exc:
        get_outlet(world, "TJ-120103-99")
    assert (exc.value.code, exc.value.field) == ("outlet.unknown", "--outlet")


def test_a_person_is_found_in_whichever_region_holds_them(world, clock):
    beijinger = citizen_id("110105", "19850615", 42)
    add_person(world.region("bj"), citizen_id=beijinger, name="李娜", region="110105", insurance="resident",
               now=clock.now())

    node, person = find_person(world, f" {beijinger.lower()} ")  # as typed: spaces, a small x
    assert node == "bj" and person["name"] == "李娜"
    assert find_person(world, citizen_id("120103", "19700101", 1)) is None


def insert_card(db, *, card_number, citizen, status="active"):
    at = "2025-03-01T09:30:00+08:00"
    db["applications"].insert({"id": f"A-{card_number}", "citizen_id": citizen, "outlet": "X", "outlet_region": "120103",
                               "channel": "instant", "kind": "first", "status": "issued", "operator": "op",
                               "card_number": card_number, "created_at": at, "updated_at": at})
    db["cards"].insert({"card_number": card_number, "card_id_code": card_number.ljust(32, "0"), "citizen_id": citizen,
                        "application_id": f"A-{card_number}", "chip_serial": card_number, "app_serial":
                        card_number.ljust(20, "0"), "status": status, "issue_date": "2025-03-01",
                        "expiry_date": "2035-03-01", "outlet": "X", "created_at": at, "updated_at": at})


def test_a_card_is_found_through_the_hub_directory_or_by_asking_the_regions(world, clock):
    tianjin = citizen_id("120103", "19900101", 123)
    add_person(world.region("tj"), citizen_id=tianjin, name="张三", region="120103", insurance="employee",
               now=clock.now())
    insert_card(world.region("tj"), card_number="T00000018", citizen=tianjin)

    node, card = find_card(world, "t0000 0018")  # not in the hub yet: found by asking the regions
    assert node == "tj" and card["citizen_id"] == tianjin

    world.hub()["card_directory"].insert({"card_number": "T00000018", "card_id_code": "T00000018".ljust(32, "0"),
                                          "citizen_id": tianjin, "issuing_region": "120000", "status": "active",
                                          "updated_at": "2025-03-01T09:30:00+08:00"})
    assert find_card(world, "T00000018")[0] == "tj"
    assert find_card(world, "B00000000") is None


def test_an_operator_is_found_in_their_region(world, clock):
    add_operator(world.region("he"), code="he-op", name="赵六", role="counter", region="130102", now=clock.now())
    assert find_operator(world, "he-op")[0] == "he"
    assert find_operator(world, "nobody") is None
