"""Transit concessions granted at a counter: the host record and what the card's EF 0017 must say.

The issuing region keeps the record (``concessions`` table, region migration 3); the card
carries it in the T-Union application's EF 0017, written by the counter terminal under
the card maintenance key (``terminals.apps.counter.write_concession``). As with PIN
reset, the card is written *inside* the service's transaction: ``enable`` opens an order
holding the 64 bytes to write and the card's keys; the CLI checks the card in the reader,
writes EF 0017, and only then ``order.record()`` writes the rows and commits. A card
refused or pulled out leaves nothing recorded.

- ``enable``: the rules are ``sbcard.domain.concessions.grant`` over the policy of
  ``fixtures/transit/concessions.csv`` (``--kind elderly`` is the elderly concession the
  card's region carries: Beijing's free bus from the 60th birthday for a holder whose
  registry residence is Beijing 户籍 or 居住证, Tianjin's free ride from one month before
  the 65th birthday on Tianjin-issued cards; a student ticket with an end date). Only staff
  of the card's issuing region grant it (so a Beijing concession at a Beijing outlet).
  Enabling an elderly concession on a card locks it on the holder's other card in the same
  transaction (one card per person): that card's record becomes ``locked``, both cards get
  an event, and the hub learns the revocation (outbox ``concession.revoke``: a new
  blacklist version listing it in ``concession_revocations``, under the hub's kind
  ``elderly_free_ride`` for either elderly concession: ``C.hub_kind``), so terminals charge
  the old card the full fare even though its chip still says "enabled".
- ``sync_card``: when a card is next at a counter, its EF 0017 is brought in line with
  the host record (a locked free ride written as locked on the old card's chip).
- ``show``: the records, what EF 0017 should hold, and the hub's revocations.

A card carries one concession at a time (EF 0017 has room for one): enabling another kind
while one is enabled is refused. Enabling the same kind again rewrites the card (an
elderly free ride unchanged; a student ticket renewed with its new end date).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from typing import Any

import attrs
import sqlite_utils

from sbcard.chip.keys import CardKeys
from sbcard.chip.reading import CardSnapshot
from sbcard.domain import concessions
from sbcard.domain import lifecycle as lifecycle_rules
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.regions import NODE_NAMES
from sbcard.domain.sources import ILLUSTRATIVE_ONLY
from sbcard.reference.transit import load_concession_policy
from sbcard.services.exchange import lookup, outbox
from sbcard.services.outlets import audit
from sbcard.services.exchange import peers
from sbcard.services.cards import keys, lifecycle
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, World

USABLE = {lifecycle_rules.Status.ISSUED, lifecycle_rules.Status.ACTIVE}


@attrs.define
class ConcessionOrder:
    """EF 0017 to write on one card, held open until ``record`` (nothing kept without it)."""

    card_number: str
    card_id_code: str
    virtual_path: str | None
    keys: CardKeys  # the maintenance key opens UPDATE BINARY
    data0017: bytes
    _record: Callable[[bytes | None], dict[str, Any]]
    recorded: bool = False

    def check_card(self, snapshot: CardSnapshot) -> None:
        """The card in the reader must be the card named."""
        if (snapshot.card_number, snapshot.card_id_code) != (self.card_number, self.card_id_code):
            raise RuleRefused("card.wrong_card", f"the card in the reader is "
                              f"{snapshot.card_number or 'not a personalised card'}, not {self.card_number}",
                              "--reader")

    def needs_write(self, on_card: bytes) -> bool:
        """Whether the card's EF 0017 (as read) differs from what it must hold."""
        return bytes(on_card) != self.data0017

    def record(self, written_over: bytes | None = None) -> dict[str, Any]:
        """The card holds ``data0017`` now: record it (and commit). ``written_over``: what it held before."""
        done = self._record(written_over)
        self.recorded = True
        return done


# ----------------------------------------------------------------------------- enable


@contextmanager
def enable(
    world: World,
    *,
    card_number: str,
    kind: str,
    until: date | None = None,
    operator: str,
    outlet: str | None = None,
    now: datetime,
) -> Iterator[ConcessionOrder]:
    """Grant ``kind`` (``elderly``/``student`` or the stored names) on the card; see the module doc."""
    kind = concessions.card_kind(kind)
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    actor = _staff_of(world, node, operator, outlet)
    today = now.date()
    policy = load_concession_policy()
    with UnitOfWork(world.region(node)) as uow:
        db = uow.db
        card = _usable_card(db, number, now)
        citizen = CitizenId(card["citizen_id"])
        person = db.execute("SELECT residence, household_region FROM persons WHERE citizen_id = ?",
                            [citizen.value]).fetchone()
        granted = concessions.grant(kind, citizen_id=citizen, card_region=card["card_id_code"][:6], today=today, until=until,
                          policy=policy, residence=person[0] if person else None,
                          household_region=person[1] if person else None)
        kind = granted.kind
        mine = _enabled_rows(db, card_number=number)
        other = [r for r in mine if r["kind"] != kind]
        if other:
            raise RuleRefused("concession.other_kind", f"card {number} carries an enabled {other[0]['kind']} "
                              "concession; a card holds one at a time", "--kind")
        same = mine[0] if mine else None
        if same is not None and kind in concessions.ELDERLY_KINDS:
            granted = _from_row(same, card["card_id_code"][:6])  # unchanged: its start stays
        to_lock = ([r for r in _enabled_rows(db, citizen_id=citizen.value, kind=kind) if r["card_number"] != number]
                   if kind in concessions.ELDERLY_KINDS else [])
        changed = same is None or (kind == concessions.STUDENT and same["end_date"] != _iso(granted.end))

        def record(written_over: bytes | None) -> dict[str, Any]:
            at = timestamp(now)
            for old in to_lock:
                db["concessions"].update(old["id"], {"status": concessions.LOCKED, "at": at})
                lifecycle.record_event(db, old["card_number"], event="concession_locked", actor=actor, now=now,
                                       details={"kind": kind, "moved_to": number})
                outbox.enqueue(db, to_node=HUB, kind="concession.revoke",
                               key=f"concession.revoke/{old['card_number']}/{concessions.hub_kind(kind)}",
                               payload={"card_number": old["card_number"], "kind": concessions.hub_kind(kind),
                                        "reason": f"moved to card {number}"}, now=now)
            if same is None:  # after the lock: one enabled elderly free ride per person, at every statement
                db["concessions"].insert({"citizen_id": citizen.value, "card_number": number, "kind": kind,
                                          "start_date": granted.start.isoformat(), "end_date": _iso(granted.end),
                                          "status": concessions.ENABLED, "at": at})
            elif changed:
                db["concessions"].update(same["id"], {"end_date": _iso(granted.end), "at": at})
            details = {"kind": kind, "start": granted.start.isoformat(), "end": _iso(granted.end),
                       "region": granted.region, "changed": changed,
                       "locked": [r["card_number"] for r in to_lock]}
            lifecycle.record_event(db, number, event="concession_enabled", actor=actor, now=now, details=details)
            audit.record(db, at=now, operator=actor.operator, outlet=actor.outlet, action="transit.concession_enabled",
                         subject=number, details=details)
            uow.commit()
            return {"card_number": number, **granted.to_json(), "changed": changed,
                    "locked_cards": [r["card_number"] for r in to_lock], "operator": actor.operator,
                    "outlet": actor.outlet, "at": now.isoformat(),
                    **provenance_of(granted.kind, card["card_id_code"][:6], today)}

        order = ConcessionOrder(number, card["card_id_code"], world.paths.resolve(card["virtual_path"]), keys.keys_for_card(db, card),
                                concessions.encode_0017(granted), record)
        yield order
    if order.recorded:
        outbox.deliver_pending(world, now)


# ----------------------------------------------------------------------------- the card at a counter


@contextmanager
def sync_card(world: World, *, card_number: str, operator: str, outlet: str | None = None,
              now: datetime) -> Iterator[ConcessionOrder]:
    """Bring the card's EF 0017 in line with the host record (a locked free ride written as locked).

    Any card the region issued, whatever its status: the old card of a replacement is the
    one that most needs it. ``record`` writes an event only when the card was written.
    """
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    actor = _staff_of(world, node, operator, outlet)
    with UnitOfWork(world.region(node)) as uow:
        db = uow.db
        card = lifecycle.card_row(db, number)
        expected = expected_0017(db, card)

        def record(written_over: bytes | None) -> dict[str, Any]:
            if written_over is not None:
                before = _decode_or_none(written_over)
                details = {"before": before.to_json() if before else None,
                           "after": expected.to_json() if expected else None}
                lifecycle.record_event(db, number, event="concession_card_updated", actor=actor, now=now,
                                       details=details)
                audit.record(db, at=now, operator=actor.operator, outlet=actor.outlet,
                             action="transit.concession_card_updated", subject=number, details=details)
                uow.commit()
            return {"card_number": number, "written": written_over is not None,
                    "card_0017": expected.to_json() if expected else None, "operator": actor.operator,
                    "outlet": actor.outlet, "at": now.isoformat(),
                    **provenance_of(expected.kind if expected else None, card["card_id_code"][:6], now.date())}

        order = ConcessionOrder(number, card["card_id_code"], world.paths.resolve(card["virtual_path"]), keys.keys_for_card(db, card),
                                concessions.encode_0017(expected), record)
        yield order


# ----------------------------------------------------------------------------- show


def show(world: World, *, card_number: str, now: datetime, on_card: bytes | None = None) -> dict[str, Any]:
    """The card's concessions: host records, what EF 0017 should hold, the hub's revocations.

    With ``on_card`` (EF 0017 as read from the chip) the answer says what the chip holds
    and whether it agrees with the host.
    """
    number = lifecycle.parse_card_number(card_number)
    node, _ = lifecycle.locate_card(world, number)
    db = world.region(node)
    card = lifecycle.card_row(db, number)
    rows = list(db.query("SELECT * FROM concessions WHERE card_number = ? ORDER BY id", [number]))
    expected = expected_0017(db, card)
    citizen = CitizenId(card["citizen_id"])
    today = now.date()
    out: dict[str, Any] = {
        "card_number": number,
        "node": node,
        "citizen_id": mask_citizen_id(citizen.value),
        "age": citizen.age_on(today) if citizen.birth_date <= today else None,
        "elderly_free_ride_from": _elderly_from(citizen, card["card_id_code"][:6], today),
        "concessions": [{"kind": r["kind"], "status": r["status"], "start": r["start_date"], "end": r["end_date"],
                         "at": r["at"]} for r in rows],
        "expected_0017": expected.to_json() if expected else None,
        "revocations": peers.ask(world, HUB, "concessions.revocations", card_number=number),
        **provenance_of(expected.kind if expected else None, card["card_id_code"][:6], today),
    }
    if on_card is not None:
        held = _decode_or_none(on_card)
        out["card_0017"] = held.to_json() if held else None
        out["card_0017_hex"] = bytes(on_card[: concessions.LAYOUT_END]).hex().upper()
        out["in_sync"] = bytes(on_card) == concessions.encode_0017(expected)
    return out


def provenance_of(kind: str | None, card_region: str, today: date) -> dict[str, Any]:
    """``"source"``, ``"confidence"``, ``"illustrative"`` of the rule behind a card's concession: the
    elderly rule of its kind (or, with none, of the card's region); a student ticket's terms (at most a
    year, renewed each school year) are the project's own, so illustrative."""
    if kind == concessions.STUDENT:
        return ILLUSTRATIVE_ONLY.to_json()
    rules = [r for r in load_concession_policy().rules
             if (r.card_kind == kind if kind in concessions.ELDERLY_KINDS else r.carried_by(card_region))]
    rule = next((r for r in rules if r.in_force(today)), rules[0] if rules else None)
    return (rule.provenance if rule else ILLUSTRATIVE_ONLY).to_json()


def _elderly_from(citizen: CitizenId, card_region: str, today: date) -> str | None:
    """The first day the elderly concession of the card's region may be enabled (None: its cards carry none)."""
    rules = [r for r in load_concession_policy().rules if r.carried_by(card_region)]
    rule = next((r for r in rules if r.in_force(today)), rules[0] if rules else None)
    return rule.first_day(citizen.birth_date).isoformat() if rule else None


def expected_0017(db: sqlite_utils.Database, card: dict[str, Any]) -> concessions.CardConcession | None:
    """What the card's EF 0017 must hold: its enabled concession, else its latest locked one, else none."""
    rows = list(db.query("SELECT * FROM concessions WHERE card_number = ? ORDER BY status = 'enabled' DESC, id DESC "
                         "LIMIT 1", [card["card_number"]]))
    return _from_row(rows[0], card["card_id_code"][:6]) if rows else None


# ----------------------------------------------------------------------------- helpers


def _from_row(row: dict[str, Any], card_region: str) -> concessions.CardConcession:
    region = concessions.KIND_REGIONS.get(row["kind"], card_region[:2] + "0000")
    return concessions.CardConcession(row["kind"], region, date.fromisoformat(row["start_date"]),
                            date.fromisoformat(row["end_date"]) if row["end_date"] else None, row["status"])


def _decode_or_none(data: bytes) -> concessions.CardConcession | None:
    try:
        return concessions.decode_0017(bytes(data))
    except InvalidInput:
        return None


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _enabled_rows(db: sqlite_utils.Database, *, card_number: str | None = None, citizen_id: str | None = None,
                  kind: str | None = None) -> list[dict[str, Any]]:
    where, params = ["status = 'enabled'"], []
    for column, value in (("card_number", card_number), ("citizen_id", citizen_id), ("kind", kind)):
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    return list(db.query(f"SELECT * FROM concessions WHERE {' AND '.join(where)} ORDER BY id", params))


def _usable_card(db: sqlite_utils.Database, number: str, now: datetime) -> dict[str, Any]:
    card = lifecycle.card_row(db, number)
    state = lifecycle_rules.CardState.from_row(card).effective(now)
    if state.status not in USABLE:
        raise RuleRefused(f"card.{state.status.value}", f"card {number} is {state.describe()}; a concession goes "
                          "on an issued or active card", lifecycle_rules.FIELD)
    return card


def _staff_of(world: World, node: str, operator: str, outlet: str | None) -> lifecycle.Actor:
    """A counter or supervisor of the card's issuing region: it grants the concession and holds the keys."""
    actor = lifecycle.authorise(world, operator, outlet, None, card_node=node)
    home = lookup.node_of_outlet(actor.outlet) if actor.outlet else lookup.require_operator_anywhere(world, operator)[0]
    if home != node:
        raise RuleRefused("concession.region", f"concessions on a {NODE_NAMES[node]} card are granted by "
                          f"{NODE_NAMES[node]}'s staff and outlets", "--operator" if outlet is None else "--outlet")
    return actor
