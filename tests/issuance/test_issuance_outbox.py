"""The outbox between nodes and the hub's directory and blacklist."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from issuance_world import NOW, ZHANG

from sbcard.services.exchange import outbox
from sbcard.services.exchange import directory as hub_directory
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import open_world

CARD = {"card_number": "T0000001X", "card_id_code": "120000D1560000050102030405060708", "citizen_id": ZHANG,
        "issuing_region": "120000"}


@pytest.fixture
def world(home):
    with open_world(home) as opened:
        yield opened


def send(world, node: str, *, to_node: str = "hub", kind: str = "card.status", key: str, payload: dict,
         now: dt.datetime = NOW) -> None:
    with UnitOfWork(world.region(node)) as uow:
        outbox.enqueue(uow.db, to_node=to_node, kind=kind, key=key, payload=payload, now=now)
        uow.commit()


def status(value: str, at: dt.datetime = NOW) -> dict:
    return {**CARD, "status": value, "at": at.isoformat()}


def test_a_message_exists_only_if_its_transaction_commits(world):
    with UnitOfWork(world.region("tj")) as uow:
        outbox.enqueue(uow.db, to_node="hub", kind="card.status", key="k1", payload=status("issued"), now=NOW)
    assert outbox.pending(world.region("tj")) == []
    assert outbox.deliver_pending(world, NOW) == 0


def test_the_directory_learns_a_card_once_however_often_it_is_delivered(world):
    send(world, "tj", key="card.status/T0000001X/1", payload=status("issued"))
    assert outbox.deliver_pending(world, NOW) == 1
    assert outbox.pending(world.region("tj")) == []
    entry = hub_directory.valid_card_of(world.hub(), ZHANG)
    assert (entry["card_number"], entry["status"], entry["issuing_region"]) == ("T0000001X", "issued", "120000")

    world.region("tj").execute("UPDATE outbox SET delivered_at = NULL")  # the sender's mark was lost
    assert outbox.deliver_pending(world, NOW) == 1
    assert world.hub()["messages"].count == 1


def test_an_older_status_never_overwrites_a_newer_one(world):
    later = NOW + dt.timedelta(hours=1)
    send(world, "tj", key="a", payload=status("active", later))
    send(world, "tj", key="b", payload=status("issued", NOW))
    outbox.deliver_pending(world, later)
    assert hub_directory.card_entry(world.hub(), "T0000001X")["status"] == "active"
    results = [json.loads(r["result"]) for r in world.hub()["messages"].rows_where(order_by="idempotency_key")]
    assert results == [{"changed": True}, {"changed": False}]


def test_lost_and_replaced_cards_are_still_or_no_longer_valid(world):
    send(world, "tj", key="1", payload=status("lost"))
    outbox.deliver_pending(world, NOW)
    assert hub_directory.valid_card_of(world.hub(), ZHANG)["card_number"] == "T0000001X"
    send(world, "tj", key="2", payload=status("replaced", NOW + dt.timedelta(seconds=1)))
    outbox.deliver_pending(world, NOW)
    assert hub_directory.valid_card_of(world.hub(), ZHANG) is None
    assert [c["status"] for c in hub_directory.cards_of(world.hub(), ZHANG)] == ["replaced"]


def test_the_blacklist_is_published_in_versions(world):
    hub = world.hub()
    assert hub_directory.blacklist_version(hub) == 0
    for key, kind, card in (("1", "blacklist.add", "T0000001X"), ("2", "blacklist.add", "B00000019"),
                            ("3", "blacklist.add", "T0000001X"), ("4", "blacklist.remove", "T0000001X")):
        send(world, "tj", kind=kind, key=key, payload={"card_number": card, "reason": "lost"})
    assert outbox.deliver_pending(world, NOW) == 4
    assert hub_directory.blacklist_version(hub) == 3  # adding a listed card publishes nothing
    assert not hub_directory.is_blacklisted(hub, "T0000001X")
    assert hub_directory.is_blacklisted(hub, "T0000001X", version=1)
    assert hub_directory.blacklisted_cards(hub) == {"B00000019"}
    assert hub_directory.blacklisted_cards(hub, version=2) == {"T0000001X", "B00000019"}
    with UnitOfWork(hub) as uow, pytest.raises(ValueError):
        hub_directory.publish_blacklist(uow.db, adds=["X"], removes=["X"], now=NOW)


def test_a_blank_used_elsewhere_leaves_its_outlets_stock(world, receive):
    [blank] = receive("BJ-110105-01")
    serial = blank.stem
    send(world, "tj", to_node="bj", kind="stock.used", key="s1",
         payload={"outlet": "BJ-110105-01", "chip_serial": serial, "card_number": "T0000001X"})
    send(world, "tj", to_node="bj", kind="stock.used", key="s2",
         payload={"outlet": "BJ-110105-01", "chip_serial": "8611FFFFFFFFFFFF", "card_number": "T00000028"})
    assert outbox.deliver_pending(world, NOW) == 2
    row = world.region("bj")["blank_cards"].get(serial)
    assert (row["status"], row["used_for"]) == ("used", "T0000001X")
    refused = json.loads(world.region("bj")["inbox"].get("s2")["result"])
    assert refused["refused"] == "stock.not_in_stock"  # recorded, not retried
    assert outbox.pending(world.region("tj")) == []


@pytest.mark.parametrize(
    "to_node, kind",
    [("hub", "card.lost"), ("bj", "card.status"), ("hub", "stock.used"), ("sh", "stock.used")],
)
def test_messages_go_only_where_their_kind_is_handled(world, to_node, kind):
    with UnitOfWork(world.region("tj")) as uow, pytest.raises(ValueError):
        outbox.enqueue(uow.db, to_node=to_node, kind=kind, key="k", payload={}, now=NOW)
