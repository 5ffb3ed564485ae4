"""Issuance (即时制卡): the application, the data preparation, the record of an issued card.

1. ``apply`` — kept by the person's issuing region (the region they are insured with),
   whatever outlet they stand at (跨省通办: the outlet only executes). The rules are
   ``sbcard.domain.eligibility``'s; the hub's directory answers "a valid card anywhere?".
2. ``IssuanceDesk`` — the issuing region's side of ``card issue``, the host port the
   counter terminal (``terminals/apps/counter.py``) calls. For the blank in the reader it
   checks that the blank is in the executing outlet's stock, then opens one transaction
   on the issuing region, allocates the card number, 卡识别码 and application serial from
   the region's sequences, prepares the card data and the keys diversified from the
   region's masters, and holds the transaction while the counter writes the card. Only
   when the card has been read back and checked does it record, in that transaction:
   the card, the application issued, the card's first event, an audit entry and the
   messages for the hub's directory and — when the outlet is in another region — for
   that region's stock. The card number and application serial are taken from the
   sequences, and committed, before the first APDU of the personalisation: a number once
   sent to a chip is never given to another (a card torn at SET STATUS's commit is a
   complete chip with its number, unrecorded). A card torn or refused on the way records
   nothing else: the application stays open, the blank stays in stock; a blank torn
   mid-way is written again from ERASE, one torn complete (personalised) is refused as
   not blank (``card.not_blank``) and is spoiled (``outlet stock spoil``), never
   personalised a second time.
3. Online applications (``--online``) follow applied → in_production → (the card is
   issued by the production outlet) → mailed → delivered (``set_application_status``).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import attrs
import sqlite_utils

from sbcard.chip import profile
from sbcard.chip.commands import ChipInfo
from sbcard.chip.keys import CardKeys, IssuerMasterKeys
from sbcard.chip.personalisation import CardData, CardNotBlank, PersonalisationResult
from sbcard.domain import allocation
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.eligibility import ApplicationFacts, check_application
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.masking import mask_citizen_id
from sbcard.domain.regions import NODE_NAMES, province_code_of
from sbcard.reference import medical as medical_reference
from sbcard.services.exchange import lookup, outbox, peers
from sbcard.services.outlets import audit, operators, stock
from sbcard.services.exchange import directory as hub_directory
from sbcard.services.cards import keys
from sbcard.services.people import registry
from sbcard.services.outlets.views import columns
from sbcard.store import rows
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World

COUNTER_ROLES = {"counter", "supervisor"}
OPEN_STATUSES = ("applied", "in_production", "mailed")
VALID_CARD_STATUSES = hub_directory.VALID_STATUSES
MAX_ADDRESS = 100
# An online application's road after the application: each status and the ones it may go to.
ONLINE_STEPS = {
    "applied": ("in_production", "withdrawn"),
    "in_production": ("mailed", "withdrawn"),
    "mailed": ("delivered",),
}
SETTABLE_STATUSES = ("in_production", "mailed", "delivered", "withdrawn")

# Called inside the issuance's transaction just before the new card's row is written, with
# the database and that row: a replacement ends the old card there (see IssuanceDesk).
BeforeRecord = Callable[[sqlite_utils.Database, dict[str, Any]], None]


def _as_field(error: SbcardError, field: str) -> SbcardError:
    return type(error)(error.code, error.message, field)


def parse_citizen_id(text: str, field: str = "--citizen-id") -> CitizenId:
    try:
        return CitizenId.parse(text)
    except InvalidInput as e:
        raise _as_field(e, field) from None


# ----------------------------------------------------------------------------- application


def apply(
    world: World,
    *,
    citizen_id: str,
    outlet: str,
    operator: str,
    now: dt.datetime,
    online_address: str | None = None,
    guardian_id: str | None = None,
    replaces: str | None = None,
) -> dict[str, Any]:
    """申领: record an application at ``outlet``, or online with a delivery address.

    Refuses, writing nothing: an invalid ID, an unknown outlet or operator, an instant
    application at an outlet with no blank in stock, and whatever the eligibility rules
    refuse. ``replaces`` names the holder's valid card a replacement application ends.
    """
    cid = _born_by(parse_citizen_id(citizen_id), now.date(), "--citizen-id")
    guardian = None
    if guardian_id:
        guardian = _born_by(parse_citizen_id(guardian_id, "--guardian-id"), now.date(), "--guardian-id")
    address = _delivery_address(online_address)
    place = lookup.get_outlet(world, outlet)
    clerk = operators.require_operator(world.region(place["node"]), operator, roles=COUNTER_ROLES)["code"]
    outbox.deliver_pending(world, now)
    found = lookup.find_person(world, cid.value)
    if found is None:
        raise NotFound(
            "person.unknown",
            f"{cid.masked()} is not in the registry of Beijing, Tianjin or Hebei (register with `sbcard person add`)",
            "--citizen-id",
        )
    node, person = found
    if address is None and stock.stock_of(world.region(place["node"]), place["code"])["in_stock"] == 0:
        raise RuleRefused(
            "stock.empty",
            f"outlet {place['code']} has no blank cards in stock: apply online or at another outlet",
            "--outlet",
        )
    db = world.region(node)
    with UnitOfWork(db) as uow:
        kind = check_application(
            ApplicationFacts(
                citizen_id=cid,
                today=now.date(),
                online=address is not None,
                enrolled=person.get("insured_region") is not None,
                photo_on_file=bool(person.get("photo_ref")),
                open_application=_open_application(uow.db, cid.value),
                valid_card=_valid_card(world, uow.db, cid.value),
                replaces=replaces,
                guardian_id=guardian,
                guardian_recorded=guardian is not None
                and any(g["citizen_id"] == guardian.value for g in person.get("guardians", ())),
            )
        )
        number = next_value(uow.db, allocation.SEQ_APPLICATION)
        row = {
            "id": allocation.application_id(node, now.date(), number),
            "citizen_id": cid.value,
            "outlet": place["code"],
            "outlet_region": place["region"],
            "channel": "online" if address is not None else "instant",
            "kind": kind,
            "delivery_address": address,
            "guardian_id": guardian.value if guardian else None,
            "status": "applied",
            "operator": clerk,
            "card_number": None,
            "created_at": timestamp(now),
            "updated_at": timestamp(now),
        }
        rows.insert(uow.db, "applications", row)
        audit.record(
            uow.db, at=now, operator=row["operator"], outlet=row["outlet"], action="card.apply", subject=row["id"],
            details={
                "citizen_id": cid.masked(),
                "kind": kind,
                "channel": row["channel"],
                "replaces": replaces,
                "photo": _photo(person, kind),
            },
        )
        uow.finish()
    return application_view(row, issuing_region=_issuing_region(db, person["insured_region"]))


def _offline_limit(person: dict[str, Any]) -> int:
    """DF04/EF06's offline settlement limit: the insured region's policy for the holder's kind of insurance."""
    return medical_reference.policy(province_code_of(person["insured_region"]), person["insurance"],
                                    bool(person["retired"])).offline_limit_fen


def _born_by(cid: CitizenId, today: dt.date, field: str) -> CitizenId:
    try:
        cid.check_not_future(today)
    except InvalidInput as e:
        raise _as_field(e, field) from None
    return cid


def _photo(person: dict[str, Any], kind: str) -> str:
    """Where the card's photo comes from: an outlet photographs the applicant at the counter
    (an online application has one on file), a newborn's card is made without one."""
    if person.get("photo_ref"):
        return "on file"
    return "none" if kind == "newborn" else "taken at the counter"


def _delivery_address(text: str | None) -> str | None:
    if text is None:
        return None
    address = " ".join(text.split())
    if not address:
        raise InvalidInput("application.address", "an online application needs a delivery address", "--address")
    if len(address) > MAX_ADDRESS:
        raise InvalidInput("application.address", f"a delivery address has at most {MAX_ADDRESS} characters",
                           "--address")
    return address


# The statuses written into the SQL, as the partial index ``one_open_application_per_person`` names
# them: with bound parameters SQLite cannot prove the index covers the query and scans the table.
OPEN_APPLICATION_SQL = ("SELECT id FROM applications WHERE citizen_id = ? AND status IN ("
                        + ", ".join(f"'{status}'" for status in OPEN_STATUSES) + ")")


def _open_application(db: sqlite_utils.Database, citizen_id: str) -> str | None:
    row = db.execute(OPEN_APPLICATION_SQL, [citizen_id]).fetchone()
    return row[0] if row else None


def _valid_card(world: World, db: sqlite_utils.Database, citizen_id: str) -> str | None:
    """The person's valid card: the hub's directory first, this region's own record second
    (a card whose directory message is still on its way)."""
    entry = peers.ask(world, HUB, "directory.valid_card_of", citizen_id=citizen_id)
    if entry is not None:
        return entry["card_number"]
    marks = ", ".join("?" for _ in VALID_CARD_STATUSES)
    row = db.execute(
        f"SELECT card_number FROM cards WHERE citizen_id = ? AND status IN ({marks})",
        [citizen_id, *VALID_CARD_STATUSES],
    ).fetchone()
    return row[0] if row else None


def _issuing_region(db: sqlite_utils.Database, insured_region: str) -> str:
    """The municipality, or the Hebei prefecture-level city, the insured region lies in."""
    prefecture, code = None, insured_region
    while code is not None:
        row = db.execute("SELECT level, parent FROM regions WHERE code = ?", [code]).fetchone()
        if row is None:
            break
        if row[0] == "prefecture":
            prefecture = code
        code = row[1]
    return allocation.issuing_region(province_code_of(insured_region), prefecture)


# ----------------------------------------------------------------------------- applications


def application_view(row: dict[str, Any], *, issuing_region: str | None = None) -> dict[str, Any]:
    """An application for ``--json`` (stable keys); the citizen ID masked."""
    return {
        "application_id": row["id"],
        **columns(row, "status", "kind", "channel"),
        "citizen_id": mask_citizen_id(row["citizen_id"]),
        "issuing_node": allocation.node_of_application(row["id"]),
        "issuing_region": issuing_region,
        **columns(row, "outlet", "outlet_region", "delivery_address"),
        "guardian_id": mask_citizen_id(row["guardian_id"]) if row["guardian_id"] else None,
        **columns(row, "card_number", "operator", "created_at", "updated_at"),
    }


def get_application(world: World, application_id: str) -> tuple[str, dict[str, Any]]:
    """(node, row) of the application; NotFound naming the argument."""
    node = allocation.node_of_application(application_id)
    key = application_id.strip().upper()
    row = rows.get(world.region(node), "applications", "id", key)
    if row is None:
        raise NotFound("application.unknown", f"no application {key}", allocation.APPLICATION_FIELD)
    return node, row


def show_application(world: World, application_id: str) -> dict[str, Any]:
    node, row = get_application(world, application_id)
    return application_view(row, issuing_region=_region_of_application(world.region(node), row))


def list_applications(world: World, *, status: str | None = None) -> list[dict[str, Any]]:
    """Every region's applications, oldest first, optionally of one status."""
    out = []
    for node in REGION_NODES:
        db = world.region(node)
        where, args = ("status = ?", [status]) if status else ("1", [])
        for row in db.query(f"SELECT * FROM applications WHERE {where} ORDER BY created_at, id", args):
            out.append(application_view(row, issuing_region=_region_of_application(db, row)))
    return out


def _region_of_application(db: sqlite_utils.Database, row: dict[str, Any]) -> str | None:
    enrolment = db.execute("SELECT insured_region FROM enrolments WHERE citizen_id = ?", [row["citizen_id"]]).fetchone()
    return _issuing_region(db, enrolment[0]) if enrolment else None


def set_application_status(
    world: World, application_id: str, status: str, *, operator: str, now: dt.datetime
) -> dict[str, Any]:
    """Move an online application along its road (or withdraw an application with no card)."""
    if status not in SETTABLE_STATUSES:
        raise InvalidInput("application.status", f"{status!r} is not one of {', '.join(SETTABLE_STATUSES)}", "--set")
    node, row = get_application(world, application_id)
    outlet_db = world.region(lookup.node_of_outlet(row["outlet"]))
    clerk = operators.require_operator(outlet_db, operator, roles=COUNTER_ROLES)["code"]
    db = world.region(node)
    with UnitOfWork(db) as uow:
        row = uow.db["applications"].get(row["id"])  # again, under the write lock
        _check_step(row, status)
        uow.db["applications"].update(row["id"], {"status": status, "updated_at": timestamp(now)})
        audit.record(uow.db, at=now, operator=clerk, outlet=row["outlet"], action="application.status",
                     subject=row["id"], details={"from": row["status"], "to": status})
        if row["card_number"]:
            uow.db["card_events"].insert({
                "card_number": row["card_number"], "at": timestamp(now), "event": status, "operator": clerk,
                "outlet": row["outlet"], "reason": None,
                "details": json.dumps({"application_id": row["id"], "delivery_address": row["delivery_address"]},
                                      ensure_ascii=False),
            })
        uow.commit()
        row = uow.db["applications"].get(row["id"])
    return application_view(row, issuing_region=_region_of_application(db, row))


def _check_step(row: dict[str, Any], status: str) -> None:
    current = row["status"]
    if status == "withdrawn":
        if current in ("applied", "in_production") and not row["card_number"]:
            return
        raise RuleRefused("application.status", f"application {row['id']} is {current}: only an application "
                          "whose card is not made yet can be withdrawn", "--set")
    if row["channel"] != "online":
        raise RuleRefused("application.instant", f"application {row['id']} is instant: it is issued at the "
                          "counter, not produced and mailed", "--set")
    if status not in ONLINE_STEPS.get(current, ()):
        raise RuleRefused("application.status", f"application {row['id']} is {current}; it cannot become {status}",
                          "--set")
    if status == "mailed" and not row["card_number"]:
        raise RuleRefused("application.no_card", f"application {row['id']} has no card yet: issue it first "
                          f"(`sbcard card issue {row['id']} --reader …`)", "--set")


def reserve_numbers(db: sqlite_utils.Database) -> tuple[int, int]:
    """The next card number and application serial of the region's sequences (in the caller's transaction)."""
    return next_value(db, allocation.SEQ_CARD_NUMBER), next_value(db, allocation.SEQ_APP_SERIAL)


def prepare_card(db: sqlite_utils.Database, node: str, person: dict[str, Any], now: dt.datetime,
                 masters: IssuerMasterKeys | None = None,
                 numbers: tuple[int, int] | None = None) -> tuple[CardData, CardKeys]:
    """Data preparation (数据准备): numbers from the sequences, data from the registry, keys from the masters.

    Inside the issuing region's transaction; a counter's issuance and a production batch
    (``batch_production``) prepare their cards alike. ``numbers``: the sequences' values
    reserved (``reserve_numbers``) and committed already, else taken here.
    """
    region = _issuing_region(db, person["insured_region"])
    number_value, serial_value = numbers if numbers is not None else reserve_numbers(db)
    number = allocation.card_number(node, number_value).value
    serial = allocation.app_serial(region, serial_value)
    masters = masters if masters is not None else keys.issuer_masters(db)
    id_code = allocation.card_id_code(region, keys.card_unique_bytes(masters, number)).value
    card = CardData(
        card_number=number,
        card_id_code=id_code,
        region_code=region,
        citizen_id=person["citizen_id"],
        name=person["name"],
        ethnicity=person["ethnicity"],
        birth_place=CitizenId(person["citizen_id"]).region_code,
        issue_date=now.date(),
        app_serial=serial,
        insured_region=person["insured_region"],
        insurance_type=person["insurance"],
        retired=bool(person["retired"]),
        initial_pin=keys.initial_pin(masters, number),
        offline_limit_fen=_offline_limit(person),
    )
    return card, keys.keys_of_card(masters, id_code, serial)


# ----------------------------------------------------------------------------- issuance


@attrs.define
class IssuanceOrder:
    """The data and keys for one blank, held open until ``record`` (``counter.IssuanceOrder``)."""

    card: CardData
    keys: CardKeys
    _record: Callable[[PersonalisationResult], dict[str, Any]]

    def record(self, result: PersonalisationResult) -> dict[str, Any]:
        return self._record(result)


class IssuanceDesk:
    """The issuing region's side of issuing one application (``counter.IssuingHost``).

    Made before the reader is touched, so a wrong application, operator or status is
    refused first. ``replaces`` and ``before_record`` serve a replacement (补换卡): the old
    card must end, in the same transaction, before the new one is written (at most one
    valid card per person is a constraint of the schema too).
    """

    def __init__(
        self,
        world: World,
        application_id: str,
        *,
        operator: str,
        now: dt.datetime,
        replaces: str | None = None,
        before_record: BeforeRecord | None = None,
    ) -> None:
        self.world, self.now, self.replaces, self.before_record = world, now, replaces, before_record
        self.node, application = get_application(world, application_id)
        self.application_id = application["id"]
        self.outlet = application["outlet"]
        self.outlet_node = lookup.node_of_outlet(self.outlet)
        self.operator = operators.require_operator(
            world.region(self.outlet_node), operator, roles=COUNTER_ROLES
        )["code"]
        _check_issuable(application)
        if (application["kind"] == "replacement") != (replaces is not None):
            how = "`card replace`" if replaces is None else "`card issue`"
            raise RuleRefused("application.kind", f"application {self.application_id} is a {application['kind']} "
                              f"application: it is issued by {how}", allocation.APPLICATION_FIELD)
        self.issued: dict[str, Any] | None = None

    @contextmanager
    def issuance(self, chip: ChipInfo) -> Iterator[IssuanceOrder]:
        """Prepare the card for this blank; record it when ``record`` is called, else nothing."""
        outbox.deliver_pending(self.world, self.now)
        blank = self._blank_in_stock(chip)
        if chip.life_state is profile.LifeState.PERSONALISED:  # torn at its last write, or written elsewhere
            raise CardNotBlank(f"the card in the reader (chip {blank['chip_serial']}) is already personalised "
                               f"but was never issued: spoil it (`sbcard outlet stock spoil`)")
        with UnitOfWork(self.world.region(self.node)) as uow:  # the numbers, committed before any APDU
            self._issuable(uow.db)
            numbers = reserve_numbers(uow.db)
            uow.finish()
        with UnitOfWork(self.world.region(self.node)) as uow:
            application = self._issuable(uow.db)  # again, under the lock
            card, card_keys = self._prepare(uow.db, application, numbers)

            def record(result: PersonalisationResult) -> dict[str, Any]:
                self.issued = self._record(uow, application, blank, card, result)
                return self.issued

            yield IssuanceOrder(card, card_keys, record)
        if self.issued is not None:
            outbox.deliver_pending(self.world, self.now)

    # --- the steps ---------------------------------------------------------------------

    def _blank_in_stock(self, chip: ChipInfo) -> dict[str, Any]:
        """The blank's stock row, if the card in the reader is a blank this outlet may use."""
        serial = chip.chip_serial.hex().upper()
        owner = stock.blank_owner(self.world, serial)
        if owner is None:
            if chip.life_state is profile.LifeState.PERSONALISED:
                raise CardNotBlank(f"the card in the reader (chip {serial}) is already personalised")
            raise RuleRefused("stock.unknown_blank",
                              f"the card in the reader (chip {serial}) is in no outlet's stock", "--reader")
        node, blank = owner
        if blank["status"] == "used":
            raise CardNotBlank(f"the card in the reader (chip {serial}) was issued as card {blank['used_for']}")
        if blank["outlet"] != self.outlet:
            code = "stock.other_region" if node != self.outlet_node else "stock.other_outlet"
            raise RuleRefused(code, f"the card in the reader (chip {serial}) belongs to the stock of "
                              f"{blank['outlet']} ({NODE_NAMES[node]}), not of {self.outlet}", "--reader")
        if blank["status"] != "in_stock":
            raise RuleRefused("stock.not_in_stock",
                              f"the card in the reader (chip {serial}) is {blank['status']}", "--reader")
        return blank

    def _issuable(self, db: sqlite_utils.Database) -> dict[str, Any]:
        """The application's row, if it may be issued now (and the person holds no other valid card)."""
        application = rows.get(db, "applications", "id", self.application_id)
        if application is None:
            raise NotFound("application.unknown", f"no application {self.application_id}",
                           allocation.APPLICATION_FIELD)
        _check_issuable(application)
        valid = _valid_card(self.world, db, application["citizen_id"])
        if valid is not None and valid != self.replaces:
            raise RuleRefused("application.card_held", f"the person already holds valid card {valid}",
                              allocation.APPLICATION_FIELD)
        return application

    def _prepare(self, db: sqlite_utils.Database, application: dict[str, Any],
                 numbers: tuple[int, int]) -> tuple[CardData, CardKeys]:
        person = registry.get_person(db, application["citizen_id"])
        if person is None or person.get("insured_region") is None:
            raise RuleRefused("application.not_insured", "the applicant is no longer enrolled here",
                              allocation.APPLICATION_FIELD)
        return prepare_card(db, self.node, person, self.now, numbers=numbers)

    def _record(
        self,
        uow: UnitOfWork,
        application: dict[str, Any],
        blank: dict[str, Any],
        card: CardData,
        result: PersonalisationResult,
    ) -> dict[str, Any]:
        db, now, at = uow.db, self.now, timestamp(self.now)
        chip_serial = result.chip_serial.hex().upper()
        if chip_serial != blank["chip_serial"] or result.snapshot.card_number != card.card_number:
            raise SbcardError("issuance.wrong_card", "the card written is not the blank the issuance was prepared for")
        row = {
            "card_number": card.card_number,
            "card_id_code": card.card_id_code,
            "citizen_id": card.citizen_id,
            "application_id": application["id"],
            "chip_serial": chip_serial,
            "app_serial": card.app_serial,
            "status": "issued",
            "loss_kind": None,
            "loss_expires_at": None,
            "issue_date": card.issue_date.isoformat(),
            "expiry_date": card.expiry_date.isoformat(),
            "outlet": self.outlet,
            "replaces": self.replaces,
            "virtual_path": blank["path"],
            "created_at": at,
            "updated_at": at,
        }
        if self.before_record is not None:
            self.before_record(db, row)
        rows.insert(db, "cards", row)
        status = "issued" if application["channel"] == "instant" else application["status"]
        rows.update(db, "applications", "id", application["id"],
                    {"status": status, "card_number": card.card_number, "updated_at": at})
        details = {"application_id": application["id"], "chip_serial": chip_serial, "region": card.region_code,
                   "resumed": result.resumed}
        event_id = rows.insert(db, "card_events", {
            "card_number": card.card_number, "at": at, "event": "issued", "operator": self.operator,
            "outlet": self.outlet, "reason": None, "details": json.dumps(details, sort_keys=True),
        })
        audit.record(db, at=now, operator=self.operator, outlet=self.outlet, action="card.issue",
                     subject=card.card_number, details=details)
        outbox.enqueue(db, to_node=HUB, kind="card.status", key=f"card.status/{card.card_number}/{event_id}",
                       payload=hub_directory.card_status_message(row, row["status"], now), now=now)
        if self.outlet_node == self.node:
            stock.take_blank(db, outlet=self.outlet, chip_serial=chip_serial, card_number=card.card_number, now=now)
        else:
            outbox.enqueue(db, to_node=self.outlet_node, kind="stock.used",
                           key=f"stock.used/{chip_serial}/{card.card_number}",
                           payload={"outlet": self.outlet, "chip_serial": chip_serial,
                                    "card_number": card.card_number}, now=now)
        uow.finish()
        return issued_view(row, issuing_node=self.node, resumed=result.resumed)


def _check_issuable(application: dict[str, Any]) -> None:
    """An instant application is issued from ``applied``, an online one once in production."""
    ready = "applied" if application["channel"] == "instant" else "in_production"
    if application["status"] == ready and not application["card_number"]:
        return
    if application["card_number"]:
        raise RuleRefused("application.issued", f"application {application['id']} is already issued "
                          f"(card {application['card_number']})", allocation.APPLICATION_FIELD)
    hint = " (set it in_production first)" if ready == "in_production" and application["status"] == "applied" else ""
    raise RuleRefused("application.status", f"application {application['id']} is {application['status']}{hint}",
                      allocation.APPLICATION_FIELD)


def issued_view(row: dict[str, Any], *, issuing_node: str, resumed: bool) -> dict[str, Any]:
    """``card issue --json``: the issued card (no personal data)."""
    return {
        **columns(row, "card_number", "card_id_code", "status"),
        "region": row["card_id_code"][:6],
        "issuing_node": issuing_node,
        **columns(row, "application_id", "chip_serial", "app_serial", "issue_date", "expiry_date", "outlet",
                  "virtual_path"),
        "resumed": resumed,
    }
