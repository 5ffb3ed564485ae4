"""Batch production (批量制卡): a region's cards made many at a time at the card factory.

Most third-generation cards are not made at a counter. Employers and communities collect
their people's applications (单位、社区批量申领), with the photo the ID-card registry holds;
the region's production centre sends the card factory a production batch (制卡批次); the
factory personalises the chips; the cards go to the outlet the batch names, where each
holder collects theirs, sets a PIN and starts it (启用). A simulation's population holds
cards made this way when the run begins (``sbcard.sim.setup``).

``produce`` runs one batch for one outlet of the issuing region:

1. each request is checked by the rules of an application (``sbcard.domain.eligibility``:
   insured here, no valid card anywhere nor an open application, a recorded guardian for
   a minor) and the holder's PIN by the PIN rule; a refused request is reported, not
   raised, and the rest of the batch goes on;
2. the data preparation, as a counter's issuance makes it (``issuance.prepare_card``):
   card numbers, application serials and 卡识别码 from the region's sequences and masters,
   the data from the registry, the keys diversified per card. Every number the batch
   needs (its id, card numbers, application serials, chip serials, accounts) is reserved
   and committed first, in a transaction of its own: a chip personalised before a crash
   never shares its number with a later card (a torn batch leaves a gap, as a torn
   issuance at a counter does);
3. the chips, through the ``produce_card`` port the composition root supplies (the
   factory machine, ``terminals.apps.factory``), each on a new blank whose chip serial
   comes from the region's chip-serial sequence (as outlet stock does), written to
   ``<cards>/batch/<batch id>/<chip serial>.card``;
4. in one transaction of the region: each application (channel ``online``: made centrally,
   then delivered), each card ``active`` with its events (issued, activated), the holder's
   financial account, an audit entry for the batch, and one ``card.status.batch`` message
   giving the hub's directory every card of the batch.

All or nothing beyond the refusals: a chip or a database write that fails removes the
batch's card files and keeps no row.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs
import sqlite_utils

from sbcard.chip.keys import CardKeys
from sbcard.chip.personalisation import CardData
from sbcard.domain import allocation
from sbcard.domain.bank_account import BankAccount
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.eligibility import ApplicationFacts, check_application
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.pin import check_new_pin
from sbcard.services.exchange import lookup, outbox, peers
from sbcard.services.outlets import audit, operators, stock
from sbcard.services.exchange import directory as hub_directory
from sbcard.services.cards import issuance, keys
from sbcard.services.accounts import ledger
from sbcard.services.people import registry
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import reserve
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, World

ProduceCard = Callable[[Path, bytes, CardData, CardKeys, str], Any]  # (path, chip serial, data, keys, PIN)
MAX_BATCH = 5000
SEQ_BATCH = "production_batch"


@attrs.frozen
class Request:
    """One person's card in a batch: who, the PIN they set when they collect it, their guardian if a minor."""

    citizen_id: str
    pin: str = attrs.field(repr=False)
    guardian_id: str | None = None


@attrs.frozen
class Refusal:
    citizen_id: str
    code: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"citizen_id": mask_citizen_id(self.citizen_id), "code": self.code, "message": self.message}


@attrs.frozen
class Produced:
    citizen_id: str
    card_number: str
    chip_serial: str
    path: str
    account_no: str


@attrs.frozen
class BatchResult:
    batch_id: str
    outlet: str
    cards: tuple[Produced, ...]
    refused: tuple[Refusal, ...]


def produce(
    world: World,
    *,
    outlet: str,
    requests: Sequence[Request],
    operator: str,
    now: dt.datetime,
    cards_dir: Path,
    produce_card: ProduceCard,
) -> BatchResult:
    """Make, hand over and start the cards of ``requests`` at ``outlet``; see the module docstring."""
    if not 1 <= len(requests) <= MAX_BATCH:
        raise InvalidInput("batch.size", f"a production batch is 1 to {MAX_BATCH} cards, got {len(requests)}",
                           "requests")
    place = lookup.get_outlet(world, outlet)
    node = place["node"]
    db = world.region(node)
    clerk = operators.require_operator(db, operator, roles=issuance.COUNTER_ROLES)["code"]
    outbox.deliver_pending(world, now)
    held = _valid_cards(world, db, [request.citizen_id for request in requests])
    open_applications = {row[0]: row[1] for row in db.execute(
        f"SELECT citizen_id, id FROM applications WHERE status IN ({_marks(issuance.OPEN_STATUSES)})",
        list(issuance.OPEN_STATUSES))}
    accepted: list[tuple[Request, dict[str, Any], str]] = []
    refused: list[Refusal] = []
    for request in requests:
        try:
            person, kind = _check(db, request, now.date(), held, open_applications)
        except SbcardError as refusal:
            refused.append(Refusal(request.citizen_id, refusal.code, refusal.message))
            continue
        open_applications[person["citizen_id"]] = "in this batch"  # a second request for them is refused
        accepted.append((request, person, kind))
    if not accepted:
        return BatchResult("", place["code"], (), tuple(refused))
    # The numbers first, committed before any chip is made (as a counter's issuance takes them): a batch torn
    # by a crash after its chips were personalised leaves a gap in the numbers, never a number given to two
    # chips. A failed batch's numbers are not used again.
    with UnitOfWork(db) as uow:
        batch_id = _batch_id(uow.db, node, now.date())
        first = {name: reserve(uow.db, name, len(accepted)) for name in (
            allocation.SEQ_APPLICATION, stock.SEQUENCE, ledger.ACCOUNT_SEQUENCE, allocation.SEQ_CARD_NUMBER,
            allocation.SEQ_APP_SERIAL)}
        uow.finish()
    made: list[Path] = []
    try:
        with UnitOfWork(db) as uow:
            folder = Path(cards_dir).absolute() / "batch" / batch_id
            folder.mkdir(parents=True, exist_ok=True)
            masters = keys.issuer_masters(uow.db)
            rows = _Rows(node, place, clerk, batch_id, now, world.paths.record)
            cards: list[Produced] = []
            for i, (request, person, kind) in enumerate(accepted):
                numbers = (first[allocation.SEQ_CARD_NUMBER] + i, first[allocation.SEQ_APP_SERIAL] + i)
                card, card_keys = issuance.prepare_card(uow.db, node, person, now, masters, numbers=numbers)
                serial = f"{stock.SERIAL_PREFIX[node]}{first[stock.SEQUENCE] + i:012X}"
                path = folder / f"{serial}.card"
                made.append(path)
                produce_card(path, bytes.fromhex(serial), card, card_keys, request.pin)
                account_no = BankAccount.make(
                    ledger.BINS[node], f"{first[ledger.ACCOUNT_SEQUENCE] + i:0{ledger.BODY_DIGITS}d}").value
                application_id = allocation.application_id(node, now.date(), first[allocation.SEQ_APPLICATION] + i)
                rows.add(request, kind, card, application_id, serial, path, account_no)
                cards.append(Produced(card.citizen_id, card.card_number, serial, str(path), account_no))
            rows.write(uow.db)
            audit.record(uow.db, at=now, operator=clerk, outlet=place["code"], action="card.batch_produce",
                         subject=batch_id, details={
                             "count": len(cards), "first": cards[0].card_number, "last": cards[-1].card_number,
                             "refused": len(refused)})
            outbox.enqueue(uow.db, to_node=HUB, kind="card.status.batch", key=f"card.status.batch/{batch_id}",
                           payload={"batch": batch_id, "cards": rows.directory}, now=now)
            uow.commit()
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise
    outbox.deliver_pending(world, now)
    return BatchResult(batch_id, place["code"], tuple(cards), tuple(refused))


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _valid_cards(world: World, db: sqlite_utils.Database, asked: Sequence[str]) -> dict[str, str]:
    """Citizen ID → valid card: the hub's directory, and this region's cards its messages have not reached yet.

    A process that does not hold the hub asks it (``directory.valid_cards_of``) for the valid
    cards of the batch's persons (``asked``, as written: one that is not a citizen ID is refused
    by its own check).
    """
    statuses = list(hub_directory.VALID_STATUSES)
    if world.holds(HUB):
        held = {row[0]: row[1] for row in world.hub().execute(
            f"SELECT citizen_id, card_number FROM card_directory WHERE status IN ({_marks(statuses)})", statuses)}
    else:
        held = peers.ask(world, HUB, "directory.valid_cards_of", citizen_ids=sorted(_citizen_ids(asked)))
    for citizen_id, number in db.execute(
            f"SELECT citizen_id, card_number FROM cards WHERE status IN ({_marks(statuses)})", statuses):
        held.setdefault(citizen_id, number)
    return held


def _citizen_ids(asked: Sequence[str]) -> set[str]:
    found = set()
    for text in asked:
        try:
            found.add(CitizenId.parse(text).value)
        except InvalidInput:
            continue  # refused by its row's own check
    return found


def _check(db: sqlite_utils.Database, request: Request, today: dt.date, held: dict[str, str],
           open_applications: dict[str, str]) -> tuple[dict[str, Any], str]:
    cid = issuance.parse_citizen_id(request.citizen_id, "citizen_id")
    person = registry.get_person(db, cid.value)
    if person is None:
        raise SbcardError("person.unknown", f"{cid.masked()} is not in this region's registry")
    guardian = issuance.parse_citizen_id(request.guardian_id, "guardian_id") if request.guardian_id else None
    kind = check_application(ApplicationFacts(
        citizen_id=cid,
        today=today,
        online=True,
        enrolled=person.get("insured_region") is not None,
        photo_on_file=True,  # the batch brings the ID-card registry's photo
        open_application=open_applications.get(cid.value),
        valid_card=held.get(cid.value),
        guardian_id=guardian,
        guardian_recorded=guardian is not None and any(
            g["citizen_id"] == guardian.value for g in person.get("guardians", ())),
    ))
    check_new_pin(request.pin, birth_date=CitizenId(cid.value).birth_date, field="pin")
    return person, kind


def _batch_id(db: sqlite_utils.Database, node: str, day: dt.date) -> str:
    """``BJ-B-20250302-0007``: the region, the day, the region's count of batches."""
    return f"{node.upper()}-B-{day:%Y%m%d}-{reserve(db, SEQ_BATCH, 1):04d}"


class _Rows:
    """The batch's rows, gathered while the chips are made and written together."""

    def __init__(self, node: str, place: dict[str, Any], clerk: str, batch_id: str, now: dt.datetime,
                 record_path: Callable[[Path], str]) -> None:
        self.node, self.place, self.clerk, self.batch_id, self.now = node, place, clerk, batch_id, now
        self.record_path = record_path  # a card file as the world records it (relative to its home)
        self.at = timestamp(now)
        self.applications: list[dict[str, Any]] = []
        self.cards: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.accounts: list[dict[str, Any]] = []
        self.directory: list[dict[str, Any]] = []

    def add(self, request: Request, kind: str, card: CardData, application_id: str, chip_serial: str, path: Path,
            account_no: str) -> None:
        at, outlet = self.at, self.place["code"]
        self.applications.append({
            "id": application_id, "citizen_id": card.citizen_id, "outlet": outlet,
            "outlet_region": self.place["region"], "channel": "online", "kind": kind,
            "delivery_address": f"{outlet} (production batch {self.batch_id})",
            "guardian_id": CitizenId.parse(request.guardian_id).value if request.guardian_id else None,
            "status": "delivered", "operator": self.clerk, "card_number": card.card_number,
            "created_at": at, "updated_at": at,
        })
        row = {
            "card_number": card.card_number, "card_id_code": card.card_id_code, "citizen_id": card.citizen_id,
            "application_id": application_id, "chip_serial": chip_serial, "app_serial": card.app_serial,
            "status": "active", "loss_kind": None, "loss_expires_at": None,
            "issue_date": card.issue_date.isoformat(), "expiry_date": card.expiry_date.isoformat(),
            "outlet": outlet, "replaces": None, "virtual_path": self.record_path(path), "created_at": at, "updated_at": at,
        }
        self.cards.append(row)
        issued = {"application_id": application_id, "batch": self.batch_id, "chip_serial": chip_serial,
                  "region": card.region_code, "resumed": False}
        for event, details in (("issued", issued), ("activated", {"account_no": BankAccount(account_no).masked()})):
            self.events.append({"card_number": card.card_number, "at": at, "event": event, "operator": self.clerk,
                                "outlet": outlet, "reason": None,
                                "details": json.dumps(details, ensure_ascii=False, sort_keys=True)})
        self.accounts.append({"account_no": account_no, "kind": "holder", "citizen_id": card.citizen_id,
                              "card_number": card.card_number, "status": "active", "opened_at": at,
                              "closed_at": None})
        self.directory.append(hub_directory.card_status_message(row, "active", self.now))

    def write(self, db: sqlite_utils.Database) -> None:
        for table, rows in (("applications", self.applications), ("cards", self.cards),
                            ("card_events", self.events), ("accounts", self.accounts)):
            columns = list(rows[0])
            db.conn.executemany(
                f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({_marks(columns)})",
                [[r[c] for c in columns] for r in rows])
