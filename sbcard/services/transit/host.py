"""The operator's host: offline purchase records uploaded by terminals, cleared with the cards' issuers.

Note for the validator (terminals/apps/transit.py, terminals/apps/terminal_state.py): an
upload takes the terminal's log records as ``OfflineRecord`` values —
``OfflineRecord.from_log(record)`` reads the dicts of ``TerminalState.records()``
(``app_serial``, ``txn_type``, ``counter``, ``terminal_no``, ``terminal_serial``,
``amount_fen``, ``balance_before_fen``, ``date_time`` (14 digits, the BCD sent to the
card), ``tac`` (8 hex), ``issuer_id`` / ``issuer_node``, ``card_number``,
``blacklist_version`` (the terminal's at the tap), ``terminal``, ``operator``, ``at``,
``kind``, ``status`` and the rest as details).

``upload(world, terminal_id, records, now=…, mac=…)`` takes one terminal's log (``sbcard transit
upload``), ``ingest(world, node, records, now=…, macs=…)`` the logs of many of a region's terminals
at once (a station or line centre's file: the issuers then see each card's records of the
batch together). First the batch's MAC (docs/protections/upload-provenance.md): each
terminal's records, in the batch's order, must carry its PSAM's BATCH MAC under its upload
key (``check_batch_mac``), or the whole batch is refused (``RuleRefused``, recorded in
``transit_upload_refusals``). A record's operator, terminal and region are the uploading
terminal's registration: a record naming another is rejected, and so is one whose card
number is not the card of its application serial in the issuer's ``cards``. Then three steps:

1. **Duplicates.** The operator's region (the terminal's node) keeps every record once in
   ``transit_records``, keyed by the card's purse, the type, the counter and the terminal's
   number and serial: a record sent again (a retried or repeated upload) counts as a
   duplicate and changes nothing.
2. **The issuer's check, through the hub.** New records go to each card's issuing region
   in chunks (sorted by card and counter). Each chunk is one exchange recorded in the hub's
   ``messages`` under an idempotency key derived from the chunk's content, with the
   issuer's answer as its result: a retried upload finds the answer there and the issuer
   does not process the chunk again (and the issuer's ``purse_purchases`` keeps each record
   once besides). The issuer (``clear_purchases``) checks every TAC with the card's DTK
   (diversified from its DTK master) — a bad or missing TAC, or an unknown card, is
   *rejected* (set aside with the reason, never cleared; so is, at the operator, a record
   under another terminal's number than the uploading terminal's) — and flags:
   - ``counter_back``: the card's offline counter went back — the same counter on another
     terminal or serial, or counters and times that disagree (the card's image was put
     back to an earlier state and spent again);
   - ``balance_altered``: the balance before the purchase does not fit the issuer's
     records (``purse_shadow``: its confirmed loads less its cleared purchases) — above
     what the loads allow, or, when every earlier purchase is known, not exactly what they
     leave (the purse was edited behind the card's back);
   - ``mac2_failed``: the terminal could not verify the card's MAC2.
3. **The blacklist window**, at the operator (the hub's list): a card on the list as of
   the tap — a version published before it — is accepted but flagged ``blacklisted`` with
   the window: the version that added it and its publication time, the version the
   terminal held, the tap time and the seconds in between.

Flagged records are cleared (accepted) and listed for review; ``sent = accepted +
duplicates + rejected + awaiting`` and ``flagged`` ⊆ ``accepted``. Money moves at clearing
(``sbcard.services.clearing.purse_records``), not here: this step decides which records the issuers owe
the operators for.

**An issuer out of reach.** Records whose card's issuer the hub cannot reach (its link
down, ``sbcard.services.exchange.links``; or the operator's own link, for another region's card)
are not sent: they are kept at the operator in ``transit_awaiting`` and counted
``awaiting``. ``route_awaiting`` sends them once the links are up again — at the start of
every upload of that region and in ``clearing run`` — and files them in
``transit_records`` with the issuer's verdict, under their original upload batch.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs
import sqlite_utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from sbcard.chip import upload_batch
from sbcard.chip.crypto import Algorithm, _algo, diversify, tac_key
from sbcard.chip.codec import to_bcd
from sbcard.clock import BEIJING
from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.domain.money import format_fen
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.cards import keys
from sbcard.services.exchange import links
from sbcard.services.transit import purse_integrity
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World, node_of_db

CHUNK = 50_000  # records per exchange with an issuer
MESSAGE_KIND = "transit.clear"
UPLOAD_SEQUENCE = "transit_upload"
_PARAMS = 900  # host parameters per IN (...) list, under SQLite's historical 999
PURCHASE_TYPES = (0x06, 0x09)
_HEX2 = [f"{i:02X}" for i in range(256)]
_BYTE = [bytes((i,)) for i in range(256)]
_PAD9 = b"\x80" + bytes(9)  # ISO 9797-1 method 2 after the 22 bytes of a purchase TAC's data
_ECB = modes.ECB()


# ----------------------------------------------------------------------------- the record


@attrs.frozen(slots=True)
class OfflineRecord:
    """One purchase from a terminal's offline log, as the operator's host receives it."""

    app_serial: str  # 20 digits
    txn_type: int  # 0x06 EP purchase, 0x09 compound (capp) purchase
    counter: int  # the card's offline counter for this purchase (INITIALIZE's)
    terminal_no: str  # 12 hex digits
    terminal_serial: int
    amount_fen: int
    balance_before_fen: int
    date_time: str  # 14 digits YYYYMMDDhhmmss: the BCD date-time sent to the card
    tac: str | None  # 8 hex digits; None if the terminal never got one
    issuer_id: str | None = None  # 16 hex digits: BCD region code ‖ 0000000000 (EF 0015)
    issuer_node: str | None = None
    card_number: str | None = None
    terminal: str | None = None
    operator: str | None = None
    blacklist_version: int | None = None  # the terminal's list at the tap
    status: str = "ok"  # the terminal's: ok | mac2_failed
    details: Mapping[str, Any] | None = None  # station, entry, fare rule…
    key: tuple[str, str, int, str, int] = attrs.field(init=False, eq=False, repr=False)
    """(app serial, type as 2 hex digits, counter, terminal no, terminal serial): the record's identity."""

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.txn_type <= 0xFF:
            raise ValueError(f"transaction type {self.txn_type!r} is not one byte")
        object.__setattr__(self, "key", (self.app_serial, _HEX2[self.txn_type], self.counter, self.terminal_no,
                                         self.terminal_serial))

    @classmethod
    def from_log(cls, record: Mapping[str, Any]) -> OfflineRecord:
        """From a record of the terminal's log (``TerminalState.records()``)."""
        known = upload_batch.NOT_DETAILS
        details = {k: v for k, v in record.items() if k not in known and v is not None}
        tac = record.get("tac")
        return cls(
            app_serial=str(record["app_serial"]),
            txn_type=int(record["txn_type"], 16) if isinstance(record["txn_type"], str) else int(record["txn_type"]),
            counter=int(record["counter"]),
            terminal_no=str(record["terminal_no"]).upper(),
            terminal_serial=int(record["terminal_serial"]),
            amount_fen=int(record["amount_fen"]),
            balance_before_fen=int(record["balance_before_fen"]),
            date_time=str(record["date_time"]),
            tac=str(tac).upper() if tac else None,
            issuer_id=record.get("issuer_id"),
            issuer_node=record.get("issuer_node"),
            card_number=record.get("card_number"),
            terminal=record.get("terminal"),
            operator=record.get("operator"),
            blacklist_version=None if record.get("blacklist_version") is None else int(record["blacklist_version"]),
            status=record.get("status") or "ok",
            details=details or None,
        )


    def batch_line(self) -> str:
        """The record's canonical line in an upload batch's digest (``sbcard.chip.upload_batch``)."""
        return upload_batch.record_line(
            (self.app_serial, self.txn_type, self.counter, self.terminal_no, self.terminal_serial, self.amount_fen,
             self.balance_before_fen, self.date_time, self.tac, self.issuer_id, self.issuer_node, self.card_number,
             self.terminal, self.operator, self.blacklist_version, self.status), self.details)


@attrs.frozen
class UploadResult:
    terminal: str
    batch: str
    node: str
    sent: int
    accepted: int  # flagged included
    duplicates: int
    rejected: int
    flagged: int
    records: list[dict[str, Any]]  # the rejected and flagged ones, with reasons
    awaiting: int = 0  # kept at the operator: the card's issuer is out of reach

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def issuer_node_of(record: OfflineRecord) -> str | None:
    """The node that issued the card: from the record, else from the issuer id's region code."""
    if record.issuer_node in REGION_NODES:
        return record.issuer_node
    if record.issuer_id and len(record.issuer_id) >= 6:
        try:
            return node_of(record.issuer_id[:6])
        except SbcardError:
            return None
    return None


# ----------------------------------------------------------------------------- operator side


def terminal_row(world: World, terminal_id: str) -> tuple[str, dict[str, Any]]:
    """(node, row) of a registered terminal; NotFound "terminal.unknown"."""
    prefix = terminal_id.split("-", 1)[0].lower()
    nodes = [prefix, *(n for n in REGION_NODES if n != prefix)] if prefix in REGION_NODES else list(REGION_NODES)
    for node in nodes:
        rows = list(world.region(node).query("SELECT * FROM terminals WHERE id = ?", [terminal_id]))
        if rows:
            return node, rows[0]
    raise NotFound("terminal.unknown", f"no terminal {terminal_id!r} in any region", "--terminal")


def upload(world: World, terminal_id: str, records: Iterable[OfflineRecord], *, now: dt.datetime,
           mac: str | None) -> UploadResult:
    """Take one terminal's records into its operator's region (``sbcard transit upload``); see the module doc.

    ``mac`` is the batch's MAC from the terminal's PSAM (``TerminalState.sign_batch``) over
    ``records`` in this order: a batch whose MAC does not verify under the terminal's upload
    key is refused whole (``RuleRefused`` "upload.bad_mac", recorded in
    ``transit_upload_refusals``) and nothing of it is taken.
    """
    node, terminal = terminal_row(world, terminal_id)
    records = list(records)
    check_batch_mac(world, node, terminal, records, mac, now=now)
    return _ingest(world, node, {terminal_id: terminal}, records, label=terminal_id, default=terminal_id,
                   now=now)


def ingest(world: World, node: str, records: Iterable[OfflineRecord], *, now: dt.datetime,
           macs: Mapping[str, str | None], label: str = "station") -> UploadResult:
    """Take the records of many of ``node``'s terminals at once (a station or line computer's batch).

    Each record names its terminal (``OfflineRecord.terminal``), which must be registered in
    ``node``. The same checks as ``upload``; the issuers see the whole batch sorted by card,
    so each card's records of the batch are checked together. ``macs`` holds each terminal's
    PSAM MAC over its own records of the batch, in the batch's order: if any does not
    verify, the whole batch is refused.
    """
    records = list(records)
    ids = sorted({r.terminal for r in records if r.terminal})
    if len(ids) != len({r.terminal for r in records}):
        raise NotFound("terminal.missing", "every record of a batch must name its terminal", "terminal")
    terminals = {row["id"]: row for row in _select_in_rows(world.region(node), "SELECT * FROM terminals WHERE id IN ({})",
                                                           ids)}
    unknown = [t for t in ids if t not in terminals]
    if unknown:
        raise NotFound("terminal.unknown", f"no terminal {unknown[0]!r} in {NODE_NAMES[node]}", "terminal")
    by_terminal: dict[str, list[OfflineRecord]] = defaultdict(list)
    for r in records:
        by_terminal[r.terminal or ""].append(r)
    for terminal_id in ids:
        check_batch_mac(world, node, terminals[terminal_id], by_terminal[terminal_id], macs.get(terminal_id),
                        now=now)
    return _ingest(world, node, terminals, records, label=label, default=None, now=now)


# ----------------------------------------------------------------------------- the batch's MAC


def batch_digest(records: Sequence[OfflineRecord]) -> bytes:
    """The digest a terminal's PSAM MACs for these records, in this order (``upload_batch.batch_digest``)."""
    return upload_batch.batch_digest(r.batch_line() for r in records)


def expected_batch_mac(db: sqlite_utils.Database, terminal_no: str, records: Sequence[OfflineRecord]) -> bytes:
    """The MAC the terminal numbered ``terminal_no`` of this region gives these records as one batch."""
    alg, master = keys.upload_master(db)
    number = bytes.fromhex(terminal_no)
    data = upload_batch.batch_mac_input(number, len(records), batch_digest(records))
    return upload_batch.batch_mac(alg, upload_batch.upload_key(alg, master, number), data)


def check_batch_mac(world: World, node: str, terminal: Mapping[str, Any], records: Sequence[OfflineRecord],
                    mac: str | None, *, now: dt.datetime) -> None:
    """Refuse (``RuleRefused``, recorded) a batch whose MAC is not the terminal's PSAM's over these records."""
    db = world.region(node)
    expected = expected_batch_mac(db, terminal["terminal_no"], records)
    text = (mac or "").strip()
    try:
        given = bytes.fromhex(text)
    except ValueError:
        given = b""
    if hmac.compare_digest(given, expected):
        return
    n = len(records)
    if not text:
        code, reason = "upload.unauthenticated", (
            f"the batch of {n} records from terminal {terminal['id']} carries no MAC from its PSAM: refused whole, "
            "nothing taken")
    elif len(given) != upload_batch.MAC_LEN:
        code, reason = "upload.bad_mac", (
            f"the batch's MAC {text!r} is not {upload_batch.MAC_LEN * 2} hex digits: refused whole, nothing taken")
    else:
        code, reason = "upload.bad_mac", (
            f"the batch's MAC {text.upper()} does not verify under terminal {terminal['id']}'s upload key: its "
            f"{n} records were changed after the terminal's PSAM MACed them, or were not MACed by this terminal's "
            "PSAM; refused whole, nothing taken")
    with UnitOfWork(db) as uow:
        uow.db["transit_upload_refusals"].insert({"terminal": terminal["id"], "sent": n, "code": code,
                                                  "reason": reason, "mac": text[:64] or None,
                                                  "refused_at": timestamp(now)})
        uow.commit()
    raise RuleRefused(code, reason, "batch")


_AWAITING = {"status": "awaiting"}


def _ingest(world: World, node: str, terminals: Mapping[str, Mapping[str, Any]], incoming: list[OfflineRecord], *,
            label: str, default: str | None, now: dt.datetime) -> UploadResult:
    route_awaiting(world, node, now=now)  # what waited for its issuer goes first, if it can now
    db = world.region(node)
    unique: dict[tuple, OfflineRecord] = {}
    for r in incoming:
        unique.setdefault(r.key, r)
    duplicates = len(incoming) - len(unique)
    seen = _existing_keys(db, unique.values())
    duplicates += len(seen)
    fresh = [r for k, r in unique.items() if k not in seen]
    issuer_of = {id(r): issuer_node_of(r) for r in fresh}
    fresh.sort(key=lambda r: (issuer_of[id(r)] or "", r.app_serial, r.counter, r.terminal_no, r.terminal_serial))

    verdicts: dict[int, dict[str, Any]] = {}
    card_numbers: dict[str, str] = {}
    by_issuer: dict[str | None, list[OfflineRecord]] = defaultdict(list)
    for r in fresh:
        terminal = terminals[default or r.terminal]  # an upload's records are its terminal's, whatever they say
        reason = _registration_problem(r, terminal)
        if reason is not None:
            verdicts[id(r)] = {"status": "rejected", "reason": reason, "flags": ()}
            continue
        by_issuer[issuer_of[id(r)]].append(r)
    operators = {t["terminal_no"].upper(): t["operator"] for t in terminals.values()}
    for issuer, group in by_issuer.items():
        if issuer is None:
            for r in group:
                verdicts[id(r)] = {"status": "rejected", "reason": "the card's issuer is outside Beijing, Tianjin "
                                   "and Hebei: no issuer to clear it with", "flags": ()}
            continue
        if not reachable(world, node, issuer):
            for r in group:
                verdicts[id(r)] = _AWAITING
            continue
        _send(world, node, issuer, group, verdicts, card_numbers, operators, now)

    window = BlacklistWindow(world.hub(), {r.card_number or card_numbers.get(r.app_serial) for r in fresh} - {None})
    rows, listed, waiting = [], [], []
    counts = {"accepted": 0, "rejected": 0, "flagged": 0, "awaiting": 0}
    uploaded_at = timestamp(now)
    with UnitOfWork(db) as uow:
        batch = f"{node.upper()}-UP-{next_value(uow.db, UPLOAD_SEQUENCE):010d}"
        for r in fresh:
            v = verdicts[id(r)]
            terminal_id = default or r.terminal
            operator = terminals[terminal_id]["operator"]  # the registration's, never the record's
            if v is _AWAITING:
                counts["awaiting"] += 1
                waiting.append(_awaiting_row(r, terminal_id, issuer_of[id(r)], operator, batch, uploaded_at))
                continue
            row, entry = _record_row(r, v, card_numbers, window, issuer_of[id(r)], operator, terminal_id, batch,
                                     uploaded_at)
            rows.append(row)
            counts["rejected" if entry and entry["status"] == "rejected" else "accepted"] += 1
            if entry:
                counts["flagged"] += entry["status"] == "flagged"
                listed.append(entry)
        _insert_records(uow.db, rows)
        if waiting:
            waiting.sort(key=lambda row: (row[3], row[4]))
            uow.db.conn.executemany(
                f"INSERT INTO transit_awaiting ({', '.join(_AWAITING_COLUMNS)}, upload_batch, uploaded_at) "
                f"VALUES ({', '.join('?' * (len(_AWAITING_COLUMNS) + 2))})", waiting)
        result = UploadResult(terminal=label, batch=batch, node=node, sent=len(incoming), duplicates=duplicates,
                              records=listed, **counts)
        uow.db["transit_uploads"].insert({
            "batch": batch, "terminal": label, "sent": result.sent, "accepted": result.accepted,
            "duplicates": result.duplicates, "rejected": result.rejected, "flagged": result.flagged,
            "uploaded_at": uploaded_at, "awaiting": result.awaiting})
        uow.commit()
    return result


def _registration_problem(r: OfflineRecord, terminal: Mapping[str, Any]) -> str | None:
    """Why a record disagrees with the uploading terminal's registration (its number, id and operator), or None.

    The number carries the operator's region (its region code ‖ sequence), and the upload
    goes to the registration's region: a record is believed as that terminal's, or not at all.
    """
    if r.terminal_no != terminal["terminal_no"].upper():
        return f"terminal number {r.terminal_no} is not terminal {terminal['id']}'s ({terminal['terminal_no']})"
    if r.terminal is not None and r.terminal != terminal["id"]:
        return (f"the record names terminal {r.terminal}, but terminal {terminal['id']} uploaded it: its log was "
                "edited or is another terminal's")
    if r.operator is not None and r.operator != terminal["operator"]:
        return (f"the record names operator {r.operator}, but terminal {terminal['id']} is registered to "
                f"{terminal['operator']}: never paid to another operator")
    return None


def reachable(world: World, operator_node: str, issuer: str) -> bool:
    """Whether the hub can take a record from ``operator_node`` to the card's ``issuer`` now.

    The issuer's link must be up; so must the operator's own, unless the card is its own
    region's (its host is at hand).
    """
    hub = world.hub()
    return links.is_up(hub, issuer) and (issuer == operator_node or links.is_up(hub, operator_node))


def _send(world: World, node: str, issuer: str, group: Sequence[OfflineRecord], verdicts: dict[int, dict[str, Any]],
          card_numbers: dict[str, str], operators: Mapping[str, str], now: dt.datetime) -> None:
    """``group`` (sorted by card and counter) to the issuer in chunks; their verdicts into ``verdicts``."""
    cleared = {"status": "cleared", "reason": None, "flags": ()}
    group = _same_card(world, issuer, group, verdicts)
    for start in range(0, len(group), CHUNK):
        chunk = group[start:start + CHUNK]
        answer = exchange(world, from_node=node, to_node=issuer, records=chunk, now=now, operators=operators)
        card_numbers.update(answer.get("cards", {}))
        given = answer["verdicts"]
        for i, r in enumerate(chunk):
            verdicts[id(r)] = given.get(str(i), cleared)


def _same_card(world: World, issuer: str, group: Sequence[OfflineRecord],
               verdicts: dict[int, dict[str, Any]]) -> list[OfflineRecord]:
    """The records whose card number, if they give one, is the card of their application serial in the
    issuer's directory (its ``cards``); the others are rejected, never booked to another card."""
    named = sorted({r.app_serial for r in group if r.card_number})
    if not named:
        return list(group)
    numbers = dict(_select_in(world.region(issuer), "SELECT app_serial, card_number FROM cards "
                                                    "WHERE app_serial IN ({})", named))
    kept = []
    for r in group:
        number = numbers.get(r.app_serial)
        if r.card_number and number is not None and r.card_number != number:
            verdicts[id(r)] = {"status": "rejected", "reason": f"card number {r.card_number} is not the card of "
                               f"application serial {r.app_serial} (the issuer's card {number}): never booked to "
                               "another card", "flags": ()}
        else:
            kept.append(r)
    return kept


def _record_row(r: OfflineRecord, v: Mapping[str, Any], card_numbers: Mapping[str, str], window: BlacklistWindow,
                issuer: str | None, operator: str, terminal_id: str, batch: str,
                uploaded_at: str) -> tuple[tuple, dict[str, Any] | None]:
    """The ``transit_records`` row of a record with its verdict, and its listing when not plainly accepted."""
    card_number = r.card_number or card_numbers.get(r.app_serial)
    if v["status"] == "rejected":
        status, reason, flags = "rejected", v["reason"], list(v["flags"])
    else:
        flags = list(v["flags"])
        flag = window.flag(card_number, r)
        if flag:
            flags.append(flag)
        if flags:
            status, reason = "flagged", "; ".join(f["message"] for f in flags)
        else:
            status, reason = "accepted", None
    row = (r.app_serial, _HEX2[r.txn_type], r.counter, r.terminal_no, r.terminal_serial, card_number,
           issuer, operator, terminal_id, r.amount_fen, r.balance_before_fen, _iso(r.date_time), r.tac or "",
           r.blacklist_version,
           json.dumps(dict(r.details), ensure_ascii=False, sort_keys=True, default=str) if r.details else None,
           status, reason, json.dumps(flags, ensure_ascii=False) if flags else None, uploaded_at, batch)
    if status == "accepted":
        return row, None
    return row, {"app_serial": r.app_serial, "card_number": card_number, "txn_type": _HEX2[r.txn_type],
                 "counter": r.counter, "terminal": terminal_id, "terminal_no": r.terminal_no,
                 "terminal_serial": r.terminal_serial, "amount_fen": r.amount_fen, "status": status,
                 "reason": reason, "flags": flags}


def _insert_records(db: sqlite_utils.Database, rows: list[tuple]) -> None:
    rows.sort(key=lambda row: (row[3], row[4]))  # in key order: appended, not scattered
    db.conn.executemany(
        "INSERT INTO transit_records (app_serial, txn_type, counter, terminal_no, terminal_serial, card_number, "
        "issuer_node, operator, terminal, amount_fen, balance_before_fen, at, tac, blacklist_version, details, "
        "status, reason, flags, uploaded_at, upload_batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
        "?, ?, ?, ?)", rows)


_AWAITING_COLUMNS = ("app_serial", "txn_type", "counter", "terminal_no", "terminal_serial", "amount_fen",
                     "balance_before_fen", "date_time", "tac", "issuer_id", "issuer_node", "card_number", "terminal",
                     "operator", "blacklist_version", "record_status", "details")  # OfflineRecord's field order
_TYPE_OF = {h: i for i, h in enumerate(_HEX2)}


def _awaiting_row(r: OfflineRecord, terminal_id: str, issuer: str | None, operator: str, batch: str,
                  uploaded_at: str) -> tuple:
    details = json.dumps(dict(r.details), ensure_ascii=False, sort_keys=True, default=str) if r.details else None
    return (r.app_serial, _HEX2[r.txn_type], r.counter, r.terminal_no, r.terminal_serial, r.amount_fen,
            r.balance_before_fen, r.date_time, r.tac, r.issuer_id, issuer, r.card_number, terminal_id, operator,
            r.blacklist_version, r.status, details, batch, uploaded_at)


def awaiting_count(world: World, node: str) -> int:
    """How many of ``node``'s uploaded records still wait for their issuer."""
    db = world.region(node)
    return sum(db.execute("SELECT count(*) FROM transit_awaiting WHERE issuer_node = ? AND seq > ?",
                          [issuer, seq]).fetchone()[0] for issuer, seq in _routed_up_to(db).items())


def _routed_up_to(db: sqlite_utils.Database) -> dict[str, int]:
    """Per issuer, the highest ``transit_awaiting.seq`` routed (records above it still wait)."""
    return {issuer: db.execute("SELECT coalesce(max(to_seq), 0) FROM transit_routings WHERE issuer_node = ?",
                               [issuer]).fetchone()[0] for issuer in REGION_NODES}


def _waiting_up_to(db: sqlite_utils.Database, routed: Mapping[str, int]) -> dict[str, int]:
    """Per issuer with records waiting, the highest ``seq`` among them."""
    out = {}
    for issuer, seq in routed.items():
        top = db.execute("SELECT max(seq) FROM transit_awaiting WHERE issuer_node = ?", [issuer]).fetchone()[0]
        if top is not None and top > seq:
            out[issuer] = top
    return out


def route_awaiting(world: World, node: str, *, now: dt.datetime) -> dict[str, int]:
    """Send ``node``'s records that waited for their issuers, where the hub reaches them now.

    Each is filed in ``transit_records`` with the issuer's verdict (under its original upload
    batch and time); a ``transit_routings`` row per issuer says which were routed. Returns
    ``{issuer: records routed}``.
    """
    db = world.region(node)
    routed_to = _routed_up_to(db)
    tops = {i: top for i, top in _waiting_up_to(db, routed_to).items() if reachable(world, node, i)}
    if not tops:
        return {}
    waiting: list[tuple[OfflineRecord, str, str]] = []  # (record, upload batch, uploaded at)
    types = _TYPE_OF
    by_issuer: dict[str, list[OfflineRecord]] = {}
    for issuer, top in tops.items():
        group = by_issuer[issuer] = []
        for row in db.execute(
                f"SELECT {', '.join(_AWAITING_COLUMNS)}, upload_batch, uploaded_at FROM transit_awaiting "
                f"WHERE issuer_node = ? AND seq > ? AND seq <= ?", [issuer, routed_to[issuer], top]):
            r = OfflineRecord(row[0], types[row[1]], *row[2:16], json.loads(row[16]) if row[16] else None)
            group.append(r)
            waiting.append((r, row[17], row[18]))
        group.sort(key=lambda r: (r.app_serial, r.counter, r.terminal_no, r.terminal_serial))
    operators = {row[0].upper(): row[1] for row in db.execute("SELECT terminal_no, operator FROM terminals")}
    verdicts: dict[int, dict[str, Any]] = {}
    card_numbers: dict[str, str] = {}
    for issuer, group in by_issuer.items():
        _send(world, node, issuer, group, verdicts, card_numbers, operators, now)
    window = BlacklistWindow(world.hub(), {r.card_number or card_numbers.get(r.app_serial) for r, _, _ in waiting}
                             - {None})
    at = timestamp(now)
    with UnitOfWork(db) as uow:
        if _routed_up_to(uow.db) != routed_to:  # another process routed them meanwhile
            return {}
        rows = [_record_row(r, verdicts[id(r)], card_numbers, window, r.issuer_node, r.operator or "",
                            r.terminal or "", batch, uploaded_at)[0] for r, batch, uploaded_at in waiting]
        _insert_records(uow.db, rows)
        uow.db.conn.executemany(
            "INSERT INTO transit_routings (issuer_node, from_seq, to_seq, records, routed_at) VALUES (?, ?, ?, ?, ?)",
            [(issuer, routed_to[issuer] + 1, tops[issuer], len(group), at) for issuer, group in by_issuer.items()
             if group])
        uow.commit()
    return {issuer: len(group) for issuer, group in sorted(by_issuer.items()) if group}


def _existing_keys(db: sqlite_utils.Database, records: Iterable[OfflineRecord]) -> set[tuple]:
    """The keys among ``records`` already in ``transit_records`` (by terminal number and serial range)."""
    ranges: dict[str, list[int]] = {}
    for r in records:
        lo_hi = ranges.setdefault(r.terminal_no, [r.terminal_serial, r.terminal_serial])
        lo_hi[0] = min(lo_hi[0], r.terminal_serial)
        lo_hi[1] = max(lo_hi[1], r.terminal_serial)
    keys_: set[tuple] = set()
    tables = ["transit_records"]
    if db.execute("SELECT 1 FROM transit_awaiting LIMIT 1").fetchone():
        tables.append("transit_awaiting")  # kept for an issuer out of reach: already taken
    for table in tables:
        for terminal_no, (lo, hi) in ranges.items():
            for row in db.execute(
                f"SELECT app_serial, txn_type, counter, terminal_no, terminal_serial FROM {table} "
                "WHERE terminal_no = ? AND terminal_serial BETWEEN ? AND ?", [terminal_no, lo, hi]
            ):
                keys_.add(tuple(row))
    return keys_


def _iso(date_time: str) -> str:
    """``20250303090000`` → ``2025-03-03T09:00:00+08:00`` (Beijing time, as the terminal's clock)."""
    d = date_time
    if len(d) != 14 or not d.isdigit():
        return d  # a malformed record, kept as it came (the issuer rejected it)
    return f"{d[0:4]}-{d[4:6]}-{d[6:8]}T{d[8:10]}:{d[10:12]}:{d[12:14]}+08:00"


def _local(date_time: str) -> dt.datetime:
    """The terminal's date-time (Beijing local, as sent to the card) as an aware datetime."""
    return dt.datetime.strptime(date_time, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)


class BlacklistWindow:
    """Whether a card was on the hub's blacklist when it was tapped, and the window an old list left open."""

    def __init__(self, hub_db: sqlite_utils.Database, cards: set[str]) -> None:
        self.published = {v: dt.datetime.fromisoformat(at) for v, at in
                          hub_db.execute("SELECT version, published_at FROM blacklist_versions")}
        self.entries: dict[str, list[tuple[int, str]]] = defaultdict(list)
        if cards and self.published:
            for card, version, action in hub_db.execute(
                    "SELECT card_number, version, action FROM blacklist_entries ORDER BY version"):
                if card in cards:
                    self.entries[card].append((version, action))

    def flag(self, card_number: str | None, r: OfflineRecord) -> dict[str, Any] | None:
        history = self.entries.get(card_number or "")
        if not history:
            return None
        try:
            tap = _local(r.date_time)
        except ValueError:  # not a date: no window to tell
            return None
        state = None
        for version, action in history:
            if self.published[version] <= tap:
                state = (version, action)
        if state is None or state[1] != "add":
            return None
        version, _ = state
        published = self.published[version]
        held = r.blacklist_version
        window = int((tap - published).total_seconds())
        if held is not None and held >= version:
            why = (f"blacklisted card {card_number} accepted by a terminal holding list version {held}, which "
                   f"already lists it (since version {version}, published {published.isoformat()})")
        else:
            why = (f"blacklisted card {card_number}: on the list since version {version} (published "
                   f"{published.isoformat()}), the terminal held version {held if held is not None else 'unknown'}; "
                   f"tapped {window} s after the list was published")
        return {"flag": "blacklisted", "message": why, "blacklist_version": version,
                "published_at": published.isoformat(), "terminal_version": held, "tap_at": tap.isoformat(),
                "window_seconds": window}


# ----------------------------------------------------------------------------- the exchange


def exchange(world: World, *, from_node: str, to_node: str, records: Sequence[OfflineRecord],
             now: dt.datetime, operators: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One chunk of records to the issuer and its answer, recorded once in the hub's ``messages``.

    The key is the chunk's digest: the same records sent again (a retried upload) get the
    recorded answer back and the issuer does nothing. The hub's write lock is held for the
    exchange, so two uploads of the same chunk at once do not both reach the issuer.
    ``operators`` (terminal number → operator code) names the operator of a record that
    does not name its own: the issuer keeps it, to know whom it owes at clearing.
    """
    body = repr([(r.key, r.amount_fen, r.balance_before_fen, r.date_time, r.tac, r.status) for r in records])
    digest = hashlib.sha256(body.encode()).hexdigest()
    key = f"{MESSAGE_KIND}/{from_node}/{to_node}/{digest}"
    with UnitOfWork(world.hub()) as hub:
        row = hub.db.execute("SELECT result FROM messages WHERE idempotency_key = ?", [key]).fetchone()
        if row is not None:
            return json.loads(row[0])
        answer = clear_purchases(world.region(to_node), records, from_node=from_node, now=now, operators=operators)
        hub.db["messages"].insert({
            "idempotency_key": key, "kind": MESSAGE_KIND, "from_node": from_node, "to_node": to_node,
            "received_at": now.isoformat(),
            "payload": json.dumps({"records": len(records), "digest": digest}),
            "result": json.dumps(answer, ensure_ascii=False, separators=(",", ":")),
        })
        hub.commit()
    return answer


# ----------------------------------------------------------------------------- issuer side


class _TacChecker:
    """Purchase TACs of one card: CBC-MAC under the card's TAC key, one cipher kept per card.

    The same computation as ``sbcard.chip.purse.purchase_tac`` (tested against it), without
    building a cipher per record: 1,000,000 records clear in seconds.
    """

    __slots__ = ("block", "_enc")

    def __init__(self, alg: Algorithm, dtk: bytes) -> None:
        self.block = alg.block
        if alg is Algorithm.SM4 and len(dtk) == 16:  # the TAC key (crypto.tac_key), folded with ints
            half = int.from_bytes(dtk[:8], "big") ^ int.from_bytes(dtk[8:], "big")
            cipher = algorithms.SM4(half.to_bytes(8, "big") * 2)
        else:
            cipher = _algo(alg, tac_key(alg, dtk))
        self._enc = Cipher(cipher, _ECB).encryptor().update

    def tac(self, amount: int, txn_type: int, terminal_no: bytes, serial: int, date_time: bytes) -> bytes:
        head = amount.to_bytes(4, "big") + _BYTE[txn_type] + terminal_no + serial.to_bytes(4, "big")
        enc = self._enc
        if self.block == 16 and len(head) == 15 and len(date_time) == 7:
            # SM4, the profile's sizes: two blocks, head ‖ date[0] and date[1:] ‖ 80 00…
            first = enc(head + date_time[:1])
            second = int.from_bytes(first, "big") ^ int.from_bytes(date_time[1:] + _PAD9, "big")
            return enc(second.to_bytes(16, "big"))[:4]
        data = head + date_time + b"\x80"
        block = self.block
        data += bytes(-len(data) % block)
        state = 0
        out = b""
        for i in range(0, len(data), block):
            out = enc((state ^ int.from_bytes(data[i:i + block], "big")).to_bytes(block, "big"))
            state = int.from_bytes(out, "big")
        return out[:4]


class _Diversifier:
    """The cards' DTKs from the issuer's DTK master, with one cipher for the master (``crypto.diversify``)."""

    def __init__(self, masters: Any) -> None:
        self.alg = masters.algorithm
        self.master = masters.tac
        self._enc = Cipher(_algo(self.alg, self.master), _ECB).encryptor().update if \
            self.alg is Algorithm.SM4 else None

    def dtk(self, app_serial: str) -> bytes:
        d = to_bcd(app_serial)[-8:].rjust(8, b"\x00")
        if self._enc is None:
            return diversify(self.alg, self.master, d)
        return self._enc(d + bytes(b ^ 0xFF for b in d))


def clear_purchases(db: sqlite_utils.Database, records: Sequence[OfflineRecord], *, from_node: str,
                    now: dt.datetime, operators: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The issuer's check of purchases on its cards, in one transaction of the issuer's region.

    Returns ``{"cleared", "rejected", "verdicts": {index: {status, reason, flags}}, "cards":
    {app_serial: card_number}}``; records absent from ``verdicts`` are cleared without a flag.
    A record the issuer has seen before gets its earlier verdict and changes nothing.
    Each new purchase is kept with its operator (the record's, else ``operators`` by terminal
    number), whom the issuer owes for it at clearing.
    """
    operators = operators or {}
    verdicts: dict[str, dict[str, Any]] = {}
    cards_out: dict[str, str] = {}
    with UnitOfWork(db) as uow:
        masters = keys.issuer_masters(uow.db)
        diversifier = _Diversifier(masters)
        keys_ = [r.key for r in records]
        earlier = _earlier_verdicts(uow.db, records)
        by_card: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            by_card[r.app_serial].append(i)
        serials = sorted(by_card)
        card_of = dict(_select_in(uow.db, "SELECT app_serial, card_number FROM cards WHERE app_serial IN ({})",
                                  serials))
        shadows = {row[0]: row for row in _select_in(
            uow.db, "SELECT app_serial, expected_balance_fen, last_offline_counter, last_offline_at, offline_next, "
                    "offline_spent_fen, loose FROM purse_shadow WHERE app_serial IN ({})", serials)}
        loads: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        reversed_: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # candidates: maybe credited after all
        for app_serial, counter, amount, status, load_id in _select_in(
                uow.db, "SELECT app_serial, online_counter, amount_fen, CASE WHEN status = 'reversed' AND EXISTS "
                        "(SELECT 1 FROM ledger_entries e WHERE e.txn_id = l.id || '-COR') THEN 'confirmed' "
                        "ELSE status END, id FROM purse_loads l WHERE app_serial IN ({})", serials):
            (reversed_ if status == "reversed" else loads)[app_serial].append((counter, amount, status, load_id))

        received_at = timestamp(now)
        new_rows: list[tuple] = []
        shadow_rows: list[tuple] = []
        region = NODE_NAMES[_node(db)]
        for app_serial in serials:
            indexes = sorted(by_card[app_serial], key=lambda i: (records[i].counter, records[i].date_time))
            card_number = card_of.get(app_serial)
            if card_number is None:
                for i in indexes:
                    verdicts[str(i)] = {"status": "rejected", "reason": f"no card with application serial "
                                        f"{app_serial} in {region}", "flags": []}
                continue
            if any(not records[i].card_number for i in by_card[app_serial]):
                cards_out[app_serial] = card_number
            state = _PurseState(shadows.get(app_serial), loads.get(app_serial, ()),
                                _unexplained(reversed_.get(app_serial, ()), loads.get(app_serial, ())))
            checker = _TacChecker(masters.algorithm, diversifier.dtk(app_serial))
            for i in indexes:
                r, key = records[i], keys_[i]
                if key in earlier:  # seen before (another upload, another chunk): its verdict stands
                    if earlier[key] is not None:
                        verdicts[str(i)] = earlier[key]
                    continue
                reason = _tac_problem(r, checker)
                if reason is None and r.txn_type not in PURCHASE_TYPES:
                    reason = f"transaction type {r.txn_type:02X} is not a purchase"
                flags: list[dict[str, Any]] = []
                if reason is None:
                    flags = state.clear(r)
                    if r.status == "mac2_failed":
                        flags.append({"flag": "mac2_failed", "message": "the terminal could not verify the card's MAC2"})
                status = "rejected" if reason else "cleared"
                if reason or flags:
                    verdicts[str(i)] = {"status": status, "reason": reason, "flags": flags}
                earlier[key] = None  # a repeat later in this chunk is the same record
                new_rows.append((r.terminal_no, r.terminal_serial, r.app_serial, f"{r.txn_type:02X}", r.counter,
                                 card_number, r.amount_fen, r.balance_before_fen, r.date_time, r.tac or "", from_node,
                                 status, reason, json.dumps(flags, ensure_ascii=False) if flags else None,
                                 received_at, r.operator or operators.get(r.terminal_no)))
            for load_id, proof in state.credited:  # reversed loads the balance showed credited: taken back
                purse_integrity.take_back(uow.db, _load_row(uow.db, load_id), proof="balance", evidence=proof,
                                          now=now, shadow=False)
            if state.changed:
                shadow_rows.append((app_serial, card_number, *state.row(), received_at))
        new_rows.sort(key=lambda row: (row[0], row[1]))  # in key order: appended, not scattered
        uow.db.conn.executemany(
            "INSERT INTO purse_purchases (terminal_no, terminal_serial, app_serial, txn_type, counter, card_number, "
            "amount_fen, balance_before_fen, date_time, tac, from_node, status, reason, flags, received_at, operator) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", new_rows)
        uow.db.conn.executemany(
            """INSERT INTO purse_shadow (app_serial, card_number, expected_balance_fen, last_offline_counter,
                                         last_offline_at, offline_next, offline_spent_fen, loose, updated_at)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
               ON CONFLICT (app_serial) DO UPDATE SET
                   expected_balance_fen = excluded.expected_balance_fen,
                   last_offline_counter = excluded.last_offline_counter,
                   last_offline_at = excluded.last_offline_at,
                   offline_next = excluded.offline_next,
                   offline_spent_fen = excluded.offline_spent_fen,
                   loose = excluded.loose,
                   updated_at = excluded.updated_at""", shadow_rows)
        uow.commit()
    rejected = sum(1 for v in verdicts.values() if v["status"] == "rejected")
    return {"cleared": len(records) - rejected, "rejected": rejected, "verdicts": verdicts, "cards": cards_out}


def _unexplained(reversed_: Sequence[tuple], live: Sequence[tuple]) -> list[tuple]:
    """The reversed loads without a live load at their online counter: a credit of theirs is unexplained."""
    used = {load[0] for load in live}
    return [load for load in reversed_ if load[0] not in used]


def _load_row(db: sqlite_utils.Database, load_id: str) -> dict[str, Any]:
    return dict(next(iter(db.query("SELECT * FROM purse_loads WHERE id = ?", [load_id]))))


def _earlier_verdicts(db: sqlite_utils.Database, records: Sequence[OfflineRecord]) -> dict[tuple, dict[str, Any] | None]:
    """The issuer's verdicts on those of ``records`` it has seen (None: cleared without a flag)."""
    wanted = {r.key for r in records}
    ranges: dict[str, list[int]] = {}
    for r in records:
        lo_hi = ranges.setdefault(r.terminal_no, [r.terminal_serial, r.terminal_serial])
        lo_hi[0] = min(lo_hi[0], r.terminal_serial)
        lo_hi[1] = max(lo_hi[1], r.terminal_serial)
    out: dict[tuple, dict[str, Any] | None] = {}
    for terminal_no, (lo, hi) in ranges.items():
        for row in db.execute(
            "SELECT app_serial, txn_type, counter, terminal_no, terminal_serial, status, reason, flags "
            "FROM purse_purchases WHERE terminal_no = ? AND terminal_serial BETWEEN ? AND ?", [terminal_no, lo, hi]
        ):
            key = tuple(row[:5])
            if key in wanted:
                status, reason, flags = row[5:]
                out[key] = None if status == "cleared" and not flags else {
                    "status": status, "reason": reason, "flags": json.loads(flags) if flags else []}
    return out


def _tac_problem(r: OfflineRecord, checker: _TacChecker) -> str | None:
    if not r.tac:
        return "no TAC: the terminal never received the card's proof of the purchase"
    try:
        tac = bytes.fromhex(r.tac)
        expected = checker.tac(r.amount_fen, r.txn_type, bytes.fromhex(r.terminal_no), r.terminal_serial,
                               bytes.fromhex(r.date_time))
    except (ValueError, OverflowError) as e:
        return f"malformed record: {e}"
    if tac != expected:
        return f"bad TAC {r.tac}: the card did not make this record (forged or altered)"
    return None


class _PurseState:
    """One card's offline counters and balance as the issuer knows them (a ``purse_shadow`` row).

    ``clear(record)`` takes a purchase whose TAC verified and answers its flags:

    - ``counter_back``: its counter was cleared before (the card's image was put back and
      spent again), or counters and times disagree with the highest cleared counter (a
      lower counter later in time, or a higher one earlier);
    - ``balance_altered``: the balance before it plus what the earlier purchases took is
      what the card's loads had put on it by then — one of the running totals of its loads
      (in online-counter order) when every earlier purchase is known, at most their total
      otherwise. Anything else means the purse was edited behind the card's back;
    - ``reversed_load_credited``: that balance fits only if loads the host reversed (no live
      load at their counter) were credited after all — a card image put back around a torn
      load's recovery. They count as loads from then on, and ``credited`` names them for the
      caller to take the money back (``purse_integrity.take_back``).
    """

    __slots__ = ("expected", "last", "last_at", "next", "spent", "loose", "recent", "totals", "ceiling", "confirmed",
                 "changed", "loads", "candidates", "credited")
    RECENT = 8  # cleared counters just below ``next`` kept by name, for the counter-back message

    def __init__(self, row: tuple | None, loads: Sequence[tuple], candidates: Sequence[tuple] = ()) -> None:
        self.loads, self.candidates = list(loads), sorted(candidates)
        self.credited: list[tuple[str, dict[str, Any]]] = []
        self._count_loads()
        self.changed = False
        self.loose: dict[int, list[Any]] = {}
        self.recent: dict[int, list[Any]] = {}
        if row is None:
            self.expected, self.last, self.last_at, self.next, self.spent = None, None, None, 0, 0
        else:
            _, self.expected, self.last, self.last_at, self.next, self.spent, loose = row
            if loose != "[]":
                for e in json.loads(loose):
                    (self.recent if e[0] < self.next else self.loose)[e[0]] = e

    def _count_loads(self) -> None:
        prefix, running, confirmed = {0}, 0, 0
        for _counter, amount, status, *_ in sorted(self.loads):
            running += amount
            prefix.add(running)
            if status == "confirmed":
                confirmed += amount
        # Pending loads count as possible (the card may have credited them), not as known.
        self.totals, self.ceiling, self.confirmed = prefix, running, confirmed

    def clear(self, r: OfflineRecord) -> list[dict[str, Any]]:
        c = r.counter
        flags: list[dict[str, Any]] = []
        if c < self.next or c in self.loose:
            other = self.loose.get(c) or self.recent.get(c)
            by = f" by terminal {other[3]} serial {other[4]}" if other else ""
            flags.append({"flag": "counter_back", "message": f"counter went back: offline counter {c} was already "
                          f"used{by}", "counter": c})
        elif self.last is not None and ((c < self.last and r.date_time > self.last_at)
                                        or (c > self.last and r.date_time < self.last_at)):
            order = "after" if c < self.last else "before"
            flags.append({"flag": "counter_back", "message": f"counter went back: counter {c} at {r.date_time} comes "
                          f"{order} counter {self.last} at {self.last_at}", "counter": c})
        else:
            flag = self._balance_flag(r)
            if flag:
                flags.append(flag)
        self._take(r)
        return flags

    def _balance_flag(self, r: OfflineRecord) -> dict[str, Any] | None:
        c, b = r.counter, r.balance_before_fen
        if self.loose:
            spent = self.spent + sum(e[1] for k, e in self.loose.items() if k < c)
            contiguous = all(k in self.loose for k in range(self.next, c))
        else:
            spent, contiguous = self.spent, c == self.next
        shown = b + spent
        if shown <= self.ceiling and (not contiguous or shown in self.totals):
            return None
        if self.candidates:
            flag = self._credited_reversal(r, shown, contiguous)
            if flag:
                return flag
        fits = [t - spent for t in self.totals if t >= spent]
        nearest = min(fits, key=lambda x: abs(x - b)) if fits else 0
        expected = nearest if contiguous else self.ceiling - spent
        return {"flag": "balance_altered",
                "message": f"purse balance altered: the card showed {format_fen(b)} before purchase {c}; the "
                           f"issuer's loads and purchases give {format_fen(expected)}"
                           + ("" if contiguous else " at most"),
                "balance_before_fen": b, "expected_fen": expected}

    def _credited_reversal(self, r: OfflineRecord, shown: int, contiguous: bool) -> dict[str, Any] | None:
        """The fewest reversed loads (in counter order) whose credit explains the balance, made loads; or None."""
        for n in range(1, len(self.candidates) + 1):
            chosen = self.candidates[:n]
            running, prefix = 0, {0}
            for _counter, amount, *_ in sorted([*self.loads, *chosen]):
                running += amount
                prefix.add(running)
            if shown <= running and (not contiguous or shown in prefix):
                break
        else:
            return None
        self.candidates = self.candidates[n:]
        self.loads += [(counter, amount, "confirmed", load_id) for counter, amount, _, load_id in chosen]
        self._count_loads()
        added = sum(amount for _, amount, *_ in chosen)
        if self.expected is not None:
            self.expected += added
        ids = [load_id for *_, load_id in chosen]
        proof = {"counter": r.counter, "terminal_no": r.terminal_no, "terminal_serial": r.terminal_serial,
                 "balance_before_fen": r.balance_before_fen}
        self.credited += [(load_id, proof) for load_id in ids]
        return {"flag": "reversed_load_credited",
                "message": f"reversed load{'s' if len(ids) > 1 else ''} {', '.join(ids)} credited after all: the card "
                           f"showed {format_fen(r.balance_before_fen)} before purchase {r.counter} (its image was put "
                           f"back); {format_fen(added)} taken back from the account (what it cannot pay blocks the card)",
                "load_id": ids[0], "load_ids": ids, "amount_fen": added, "balance_before_fen": r.balance_before_fen}

    def _take(self, r: OfflineRecord) -> None:
        """The purchase is cleared: the counters and the spending move on (a reused counter spends again)."""
        self.changed = True
        c = r.counter
        if c >= self.next and c not in self.loose:
            self.loose[c] = [c, r.amount_fen, r.date_time, r.terminal_no, r.terminal_serial]
            while self.next in self.loose:
                entry = self.recent[self.next] = self.loose.pop(self.next)
                self.spent += entry[1]
                self.next += 1
            for k in [k for k in self.recent if k < self.next - self.RECENT]:
                del self.recent[k]
        else:  # counter went back: the money was spent again all the same
            self.spent += r.amount_fen
        if self.last is None or c > self.last:
            self.last, self.last_at = c, r.date_time
        if self.expected is not None:
            self.expected -= r.amount_fen

    def row(self) -> tuple:
        """expected balance, last counter, its time, next, spent, loose — as ``purse_shadow`` holds them."""
        spent_loose = sum(e[1] for e in self.loose.values())
        expected = self.expected if self.expected is not None else self.confirmed - self.spent - spent_loose
        kept = sorted([*self.recent.values(), *self.loose.values()])
        # JSON, written out by hand: the values are ints and digit/hex strings (json.dumps is slower).
        text = "[" + ",".join(f'[{c},{a},"{t}","{n}",{s}]' for c, a, t, n, s in kept) + "]"
        return (expected, self.last, self.last_at, self.next, self.spent, text)


def _select_in_rows(db: sqlite_utils.Database, sql: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for start in range(0, len(values), _PARAMS):
        part = values[start:start + _PARAMS]
        out += db.query(sql.format(", ".join("?" * len(part))), list(part))
    return out


def _select_in(db: sqlite_utils.Database, sql: str, values: Sequence[Any]) -> list[tuple]:
    out: list[tuple] = []
    for start in range(0, len(values), _PARAMS):
        part = values[start:start + _PARAMS]
        out += db.execute(sql.format(", ".join("?" * len(part))), list(part)).fetchall()
    return out


def _node(db: sqlite_utils.Database) -> str:
    return node_of_db(db)

