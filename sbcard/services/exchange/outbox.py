"""Messages between nodes: written with the change they report, delivered after commit.

A use case writes its own rows and its messages to other nodes (``enqueue``) in one
transaction of its own node, so a message exists exactly when the change does. Once that
transaction has committed, ``deliver_pending`` hands every pending message to its
receiver, oldest first per sending node; a crash in between leaves the message pending
and the next command delivers it.

The receiver applies a message in its own transaction and records its idempotency key
there (the hub in ``messages``, a region in ``inbox``) together with the result, so a
message delivered twice — a retry after a crash, two processes delivering at once — is
applied once. A message the receiver refuses by a rule (an ``SbcardError``) is recorded
with the refusal as its result and is not retried: retrying cannot change a rule's answer.

Kinds and payloads:

- ``card.status`` → hub: ``{card_number, card_id_code, citizen_id, issuing_region, status}``,
  the directory's entry for the card; ``card.status.batch`` → hub: ``{batch, cards: [...]}``,
  the entries of a production batch's cards (``services.cards.batch_production``);
- ``blacklist.add`` / ``blacklist.remove`` → hub: ``{card_number, reason}``, published as
  a new blacklist version;
- ``stock.used`` → the outlet's region: ``{outlet, chip_serial, card_number}``, the blank
  a card was made on leaves that outlet's stock (a card issued away from its issuer);
- ``concession.revoke`` → hub: ``{card_number, kind, reason}``, a transit concession
  locked on a card (moved to the holder's new card), published with the blacklist's
  versions (``services.exchange.concession_list``).

The transport: a receiver the world holds gets the message in process (``_apply_once``);
a world that holds one node hands the others' messages to its link
(``services.exchange.peers.NodeLink``: HTTP between the nodes' processes), whose receiver
applies them with ``receive``, the same idempotency. A receiver that cannot be reached
(``PeerUnavailable``), or that the world cannot reach at all, leaves the sender's messages
pending, in order, for a later delivery.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import sqlite_utils

from sbcard.domain.errors import SbcardError
from sbcard.services.exchange import concession_list, directory as hub_directory
from sbcard.services.exchange.peers import PeerUnavailable
from sbcard.services.outlets import stock
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, NODES, REGION_NODES, World

Handler = Callable[[sqlite_utils.Database, Mapping[str, Any], dt.datetime], dict[str, Any]]


def _card_status(hub_db: sqlite_utils.Database, p: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    changed = hub_directory.upsert_card(
        hub_db,
        card_number=p["card_number"],
        card_id_code=p["card_id_code"],
        citizen_id=p["citizen_id"],
        issuing_region=p["issuing_region"],
        status=p["status"],
        now=dt.datetime.fromisoformat(p["at"]) if p.get("at") else now,
    )
    return {"changed": changed}


def _card_status_batch(hub_db: sqlite_utils.Database, p: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """A production batch's cards (``batch_production``): their directory entries, in one message."""
    changed = sum(_card_status(hub_db, entry, now)["changed"] for entry in p["cards"])
    return {"batch": p["batch"], "changed": changed}


def _blacklist(action: str) -> Handler:
    def handle(hub_db: sqlite_utils.Database, p: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
        cards = {action + "s": [p["card_number"]]}
        version = hub_directory.publish_blacklist(hub_db, **cards, note=p.get("reason"), now=now)
        return {"version": version}

    return handle


def _stock_used(db: sqlite_utils.Database, p: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    stock.take_blank(db, outlet=p["outlet"], chip_serial=p["chip_serial"], card_number=p["card_number"], now=now)
    return {"taken": p["chip_serial"]}


def _concession_revoke(hub_db: sqlite_utils.Database, p: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    version = concession_list.publish_revocation(hub_db, card_number=p["card_number"], kind=p["kind"],
                                                 reason=p.get("reason"), now=now)
    return {"version": version}


HANDLERS: dict[str, tuple[str, Handler]] = {  # kind → (receiving side, handler)
    "card.status": (HUB, _card_status),
    "card.status.batch": (HUB, _card_status_batch),
    "blacklist.add": (HUB, _blacklist("add")),
    "blacklist.remove": (HUB, _blacklist("remove")),
    "stock.used": ("region", _stock_used),
    "concession.revoke": (HUB, _concession_revoke),
}


# Kinds the hub's process sends a region's (its clearing run: ``services.clearing.purse_records``),
# delivered by the run itself, not from an outbox, and applied with the same inbox, by the handler the
# clearing registers: (world, the region's open unit of work, the region, kind, payload, now) → result.
FromHub = Callable[[World, UnitOfWork, str, str, Mapping[str, Any], dt.datetime], dict[str, Any]]
FROM_HUB: dict[str, FromHub] = {}


def enqueue(
    db: sqlite_utils.Database, *, to_node: str, kind: str, key: str, payload: Mapping[str, Any], now: dt.datetime
) -> None:
    """Add a message to this node's outbox; call inside the use case's unit of work.

    ``key`` must be unique for the change it reports (e.g. ``card.status/<card>/<event id>``):
    it is what the receiver applies once.
    """
    if kind not in HANDLERS:
        raise ValueError(f"unknown message kind {kind!r} (known: {', '.join(HANDLERS)})")
    side = HANDLERS[kind][0]
    if (side == HUB) != (to_node == HUB) or to_node not in NODES:
        raise ValueError(f"a {kind!r} message goes to {'the hub' if side == HUB else 'a region'}, not {to_node!r}")
    db.execute(
        "INSERT INTO outbox (idempotency_key, to_node, kind, payload, created_at, delivered_at) "
        "VALUES (?, ?, ?, ?, ?, NULL)",
        [key, to_node, kind, json.dumps(dict(payload), ensure_ascii=False, sort_keys=True), now.isoformat()],
    )


def pending(db: sqlite_utils.Database) -> list[dict[str, Any]]:
    """This node's undelivered messages, oldest first."""
    return list(db.query("SELECT * FROM outbox WHERE delivered_at IS NULL ORDER BY id"))


# Fault injection (the simulator's ``--faults``, ``sbcard/sim/faults.py``): called with the
# sending node and each message about to be delivered, it answers "deliver"; "lose" (this
# delivery fails: the message stays pending, and so do the later ones of its node — the
# channel keeps their order — until a later call delivers them); or "twice" (the receiver
# applies it, then gets it again, as when the sender's mark is lost: its idempotency key
# makes the second a no-op). None outside a simulation.
DeliveryFault = Callable[[str, Mapping[str, Any]], str]
_delivery_fault: DeliveryFault | None = None


@contextmanager
def delivery_faults(fault: DeliveryFault | None) -> Iterator[None]:
    """Within the block, every ``deliver_pending`` asks ``fault`` about each message."""
    global _delivery_fault
    before, _delivery_fault = _delivery_fault, fault
    try:
        yield
    finally:
        _delivery_fault = before


def deliver_pending(world: World, now: dt.datetime) -> int:
    """Deliver the pending messages of every region the world holds; returns how many were delivered.

    An error other than a rule's refusal (the database busy past its timeout, say) stops
    the delivery and propagates; what was not delivered stays pending for the next call.
    A receiver out of reach (another node's process down, or no link to it) stops the
    delivery of its sender's messages, which stay pending, and is not an error.
    """
    delivered = 0
    for node in REGION_NODES:
        if not world.holds(node):
            continue
        db = world.region(node)
        for message in pending(db) if _delivery_fault is None else _oldest_first(db):
            verdict = _delivery_fault(node, message) if _delivery_fault is not None else "deliver"
            if verdict == "lose":
                break
            if not world.holds(message["to_node"]):
                if world.link is None:
                    break  # no way to that node from here: a process that reaches it delivers
                try:
                    world.link.deliver(node, _wire(message))
                except PeerUnavailable:
                    break  # kept pending, in order: delivered once the receiver answers again
            else:
                _apply_once(world, node, message, now)
                if verdict == "twice":
                    _apply_once(world, node, message, now)
            with UnitOfWork(db) as uow:
                uow.db.execute(
                    "UPDATE outbox SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                    [now.isoformat(), message["id"]],
                )
                uow.finish()
            delivered += 1
    return delivered


def _oldest_first(db: sqlite_utils.Database) -> Iterator[dict[str, Any]]:
    """The pending messages one at a time (a delivery that stops early reads no more of them)."""
    last = 0
    while True:
        rows = list(db.query("SELECT * FROM outbox WHERE delivered_at IS NULL AND id > ? ORDER BY id LIMIT 1", [last]))
        if not rows:
            return
        last = rows[0]["id"]
        yield rows[0]


WIRE_FIELDS = ("idempotency_key", "to_node", "kind", "payload", "created_at")


def _wire(message: Mapping[str, Any]) -> dict[str, Any]:
    """A message as it crosses to another node's process (its payload stays the JSON text the sender wrote)."""
    return {field: message[field] for field in WIRE_FIELDS}


def receive(world: World, from_node: str, message: Mapping[str, Any], now: dt.datetime) -> dict[str, Any]:
    """Apply a message another node's process sent (the receiving side of a link), once.

    ``message`` has ``WIRE_FIELDS``; the receiver (``to_node``) must be held by ``world``.
    Answers ``{"idempotency_key", "applied", "result"}``: ``applied`` false when it was
    applied before (the sender's mark was lost, or the message came twice).
    """
    missing = [field for field in WIRE_FIELDS if field not in message]
    kind = message.get("kind")
    to_node = message.get("to_node")
    if kind in FROM_HUB:
        if missing or from_node != HUB or to_node not in REGION_NODES:
            raise ValueError(f"a {kind!r} message goes from the hub to a region, not {from_node!r} to {to_node!r}")
    elif missing or kind not in HANDLERS or from_node not in REGION_NODES:
        raise ValueError(f"not a message: missing {missing}, kind {kind!r}, from {from_node!r}")
    side = HANDLERS[kind][0] if kind in HANDLERS else "region"
    if (side == HUB) != (to_node == HUB) or to_node not in NODES:
        raise ValueError(f"a {kind!r} message goes to {'the hub' if side == HUB else 'a region'}, not {to_node!r}")
    json.loads(message["payload"])  # a payload that is not JSON is refused before anything is written
    applied = _apply_once(world, from_node, message, now)
    receiver = world.hub() if to_node == HUB else world.region(to_node)
    log = "messages" if to_node == HUB else "inbox"
    row = receiver.execute(f"SELECT result FROM {log} WHERE idempotency_key = ?",
                           [message["idempotency_key"]]).fetchone()
    return {"idempotency_key": message["idempotency_key"], "applied": applied,
            "result": json.loads(row[0]) if row and row[0] else None}


def _apply_once(world: World, from_node: str, message: Mapping[str, Any], now: dt.datetime) -> bool:
    """Apply the message in its receiver's database unless its log has it; whether it was applied now."""
    to_node, kind, key = message["to_node"], message["kind"], message["idempotency_key"]
    receiver = world.hub() if to_node == HUB else world.region(to_node)
    log = "messages" if to_node == HUB else "inbox"
    payload = json.loads(message["payload"])
    with UnitOfWork(receiver) as uow:
        if uow.db.execute(f"SELECT 1 FROM {log} WHERE idempotency_key = ?", [key]).fetchone():
            return False  # applied before: the sender's mark was lost
        try:
            if kind in FROM_HUB:
                result = FROM_HUB[kind](world, uow, to_node, kind, payload, now)
            else:
                result = HANDLERS[kind][1](uow.db, payload, now)
        except SbcardError as refused:
            if kind in FROM_HUB:
                raise  # the hub's run did not happen here: nothing is recorded, its next run asks again
            uow.rollback()
            result = {"refused": refused.code, "message": refused.message}
        row = {
            "idempotency_key": key,
            "kind": kind,
            "from_node": from_node,
            "received_at": now.isoformat(),
            "payload": message["payload"],
            "result": json.dumps(result, ensure_ascii=False, sort_keys=True),
        }
        if to_node == HUB:
            row["to_node"] = HUB
        uow.db.execute(f"INSERT INTO {log} ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
                       list(row.values()))
        uow.finish()
    return True
