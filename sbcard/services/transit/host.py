"""The operator's host: offline purchase records uploaded by terminals, cleared with the cards' issuers.

An upload takes the terminal's log records as they are: ``PurseRecord`` values
(``sbcard.chip.purse_record``), the one record type the validator writes and the hosts
read (``TerminalState.unsent()`` gives them; ``terminals.apps.uploads.upload_unsent`` sends
them through its ``TransitHostPort``, whose adapter is ``terminal_host.TerminalHost``). Its SQL is in ``sbcard.store.repositories.transit``,
reached by ``uow.get(...)``: ``OperatorRecords`` at the operator's region, ``IssuerPurchases``
at the issuer's, and ``sbcard.store.repositories.exchange.HubExchanges`` at the hub. The functions that cross nodes take the
``World`` and open one unit of work per node (each commits alone: the hub's message log
makes the crossing idempotent); ``clear_purchases`` and ``expected_batch_mac``, one
node's, take that node's ``UnitOfWork``.

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
down, ``sbcard.services.exchange.links``; or the operator's own link, for another region's card;
or, one node per process, the hub's or the issuer's process not answering) are not sent: they
are kept at the operator in ``transit_awaiting`` and counted ``awaiting``. ``route_awaiting``
sends them once the links are up again — at the start of every upload of that region, in
``clearing run``, and in every round of a per-node process's courier — and files them in
``transit_records`` with the issuer's verdict, under their original upload batch.

**One node per process.** The exchange with the issuer is a routed exchange
(``sbcard.services.exchange.routed``): in process over the whole world, through the hub's
process over HTTP in a process that serves one region; the hub's records the blacklist window
needs and the issuer's card numbers are asked of their processes (docs/api/nodes.md).
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

from sbcard.chip import upload_batch
from sbcard.chip.codec import to_bcd
from sbcard.chip.crypto import Diversifier
from sbcard.chip.purse import CAPP_PURCHASE, EP_PURCHASE, PurchaseTacKey
from sbcard.chip.purse_record import PurseRecord, batch_digest
from sbcard.clock import BEIJING
from sbcard.domain.errors import NotFound, RuleRefused, SbcardError
from sbcard.domain.money import format_fen
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.cards import keys
from sbcard.services.exchange import peers, routed
from sbcard.services.exchange.peers import PeerUnavailable
from sbcard.services.transit import purse_integrity
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.exchange import HubExchanges
from sbcard.store.repositories.transit import CardNumbers, IssuerPurchases, OperatorRecords
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World, node_of_db

CHUNK = 50_000  # records per exchange with an issuer
WIRE_CHUNK = 5_000  # per exchange over HTTP (one node per process), at most …
# … and at most these bytes of records on the wire: a node's request is at most 4 MiB (413 beyond, every
# time), and a record's ``details`` has no fixed size; the rest is left for the request's envelope.
WIRE_BYTES = 3 * 1024 * 1024
MESSAGE_KIND = "transit.clear"
PURCHASE_TYPES = (EP_PURCHASE, CAPP_PURCHASE)
_HEX2 = [f"{i:02X}" for i in range(256)]


# ----------------------------------------------------------------------------- the record


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


def issuer_node_of(record: PurseRecord) -> str | None:
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
        row = _operator(world, node).terminal(terminal_id)
        if row is not None:
            return node, row
    raise NotFound("terminal.unknown", f"no terminal {terminal_id!r} in any region", "--terminal")


def upload(world: World, terminal_id: str, records: Iterable[PurseRecord], *, now: dt.datetime,
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


def ingest(world: World, node: str, records: Iterable[PurseRecord], *, now: dt.datetime,
           macs: Mapping[str, str | None], label: str = "station") -> UploadResult:
    """Take the records of many of ``node``'s terminals at once (a station or line computer's batch).

    Each record names its terminal (``PurseRecord.terminal``), which must be registered in
    ``node``. The same checks as ``upload``; the issuers see the whole batch sorted by card,
    so each card's records of the batch are checked together. ``macs`` holds each terminal's
    PSAM MAC over its own records of the batch, in the batch's order: if any does not
    verify, the whole batch is refused.
    """
    records = list(records)
    ids = sorted({r.terminal for r in records if r.terminal})
    if len(ids) != len({r.terminal for r in records}):
        raise NotFound("terminal.missing", "every record of a batch must name its terminal", "terminal")
    terminals = _operator(world, node).terminals(ids)
    unknown = [t for t in ids if t not in terminals]
    if unknown:
        raise NotFound("terminal.unknown", f"no terminal {unknown[0]!r} in {NODE_NAMES[node]}", "terminal")
    by_terminal: dict[str, list[PurseRecord]] = defaultdict(list)
    for r in records:
        by_terminal[r.terminal or ""].append(r)
    for terminal_id in ids:
        check_batch_mac(world, node, terminals[terminal_id], by_terminal[terminal_id], macs.get(terminal_id),
                        now=now)
    return _ingest(world, node, terminals, records, label=label, default=None, now=now)


# ----------------------------------------------------------------------------- the batch's MAC


def expected_batch_mac(uow: UnitOfWork, terminal_no: str, records: Sequence[PurseRecord]) -> bytes:
    """The MAC the terminal numbered ``terminal_no`` of this region gives these records as one batch
    (``batch_digest``: ``sbcard.chip.purse_record``'s, the terminal's own)."""
    alg, master = keys.upload_master(uow.db)
    number = bytes.fromhex(terminal_no)
    data = upload_batch.batch_mac_input(number, len(records), batch_digest(records))
    return upload_batch.batch_mac(alg, upload_batch.upload_key(alg, master, number), data)


def check_batch_mac(world: World, node: str, terminal: Mapping[str, Any], records: Sequence[PurseRecord],
                    mac: str | None, *, now: dt.datetime) -> None:
    """Refuse (``RuleRefused``, recorded) a batch whose MAC is not the terminal's PSAM's over these records."""
    uow = UnitOfWork(world.region(node))
    expected = expected_batch_mac(uow, terminal["terminal_no"], records)
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
    with uow.transaction():
        uow.get(OperatorRecords).refuse(terminal=terminal["id"], sent=n, code=code, reason=reason,
                                        mac=text[:64] or None, at=timestamp(now))
    raise RuleRefused(code, reason, "batch")


_AWAITING = {"status": "awaiting"}


def _ingest(world: World, node: str, terminals: Mapping[str, Mapping[str, Any]], incoming: list[PurseRecord], *,
            label: str, default: str | None, now: dt.datetime) -> UploadResult:
    route_awaiting(world, node, now=now)  # what waited for its issuer goes first, if it can now
    uow = UnitOfWork(world.region(node))
    unique: dict[tuple, PurseRecord] = {}
    for r in incoming:
        unique.setdefault(r.key, r)
    duplicates = len(incoming) - len(unique)
    seen = uow.get(OperatorRecords).taken_keys(unique)
    duplicates += len(seen)
    fresh = [r for k, r in unique.items() if k not in seen]
    issuer_of = {id(r): issuer_node_of(r) for r in fresh}
    fresh.sort(key=lambda r: (issuer_of[id(r)] or "", r.app_serial, r.counter, r.terminal_no, r.terminal_serial))

    verdicts: dict[int, dict[str, Any]] = {}
    card_numbers: dict[str, str] = {}
    by_issuer: dict[str | None, list[PurseRecord]] = defaultdict(list)
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
        try:
            _send(world, node, issuer, group, verdicts, card_numbers, operators, now)
        except PeerUnavailable:  # the hub's or the issuer's process out of reach: what got no answer waits
            for r in group:
                verdicts.setdefault(id(r), _AWAITING)

    window = _window(world, {r.card_number or card_numbers.get(r.app_serial) for r in fresh
                             if verdicts[id(r)] is not _AWAITING} - {None})
    rows, listed, waiting = [], [], []
    counts = {"accepted": 0, "rejected": 0, "flagged": 0, "awaiting": 0}
    uploaded_at = timestamp(now)
    with uow.transaction():
        taken = uow.get(OperatorRecords)
        batch = f"{node.upper()}-UP-{taken.next_batch_number():010d}"
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
        taken.add_records(rows)
        if waiting:
            taken.add_awaiting(waiting)
        result = UploadResult(terminal=label, batch=batch, node=node, sent=len(incoming), duplicates=duplicates,
                              records=listed, **counts)
        taken.add_upload({
            "batch": batch, "terminal": label, "sent": result.sent, "accepted": result.accepted,
            "duplicates": result.duplicates, "rejected": result.rejected, "flagged": result.flagged,
            "uploaded_at": uploaded_at, "awaiting": result.awaiting})
    return result


def _registration_problem(r: PurseRecord, terminal: Mapping[str, Any]) -> str | None:
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
    return routed.link_up(world, issuer) and (issuer == operator_node or routed.link_up(world, operator_node))


def _send(world: World, node: str, issuer: str, group: Sequence[PurseRecord], verdicts: dict[int, dict[str, Any]],
          card_numbers: dict[str, str], operators: Mapping[str, str], now: dt.datetime) -> None:
    """``group`` (sorted by card and counter) to the issuer in chunks; their verdicts into ``verdicts``."""
    cleared = {"status": "cleared", "reason": None, "flags": ()}
    group = _same_card(world, issuer, group, verdicts)
    for chunk in _chunks(group, CHUNK) if world.holds(HUB) else _wire_chunks(group):
        answer = exchange(world, from_node=node, to_node=issuer, records=chunk, now=now, operators=operators)
        card_numbers.update(answer.get("cards", {}))
        given = answer["verdicts"]
        for i, r in enumerate(chunk):
            verdicts[id(r)] = given.get(str(i), cleared)


def _chunks(group: Sequence[PurseRecord], size: int) -> list[Sequence[PurseRecord]]:
    return [group[start:start + size] for start in range(0, len(group), size)]


def _wire_chunks(group: Sequence[PurseRecord]) -> list[Sequence[PurseRecord]]:
    """``group`` in chunks of at most ``WIRE_CHUNK`` records and ``WIRE_BYTES`` of records as they go on the
    wire (``_records_to_wire``), in order: the same records make the same chunks, so a retry's key is the
    same. A record bigger than the bound alone is a chunk of its own (its node refuses it: logged, it waits)."""
    chunks: list[Sequence[PurseRecord]] = []
    start, size = 0, 0
    for i, r in enumerate(group):
        wire = len(json.dumps([list(r.host_values()), dict(r.details) if r.details else None],
                              ensure_ascii=False).encode()) + 2  # ", " between records
        if i > start and (i - start >= WIRE_CHUNK or size + wire > WIRE_BYTES):
            chunks.append(group[start:i])
            start, size = i, 0
        size += wire
    if start < len(group):
        chunks.append(group[start:])
    return chunks


def _same_card(world: World, issuer: str, group: Sequence[PurseRecord],
               verdicts: dict[int, dict[str, Any]]) -> list[PurseRecord]:
    """The records whose card number, if they give one, is the card of their application serial in the
    issuer's directory (its ``cards``); the others are rejected, never booked to another card."""
    named = sorted({r.app_serial for r in group if r.card_number})
    if not named:
        return list(group)
    if world.holds(issuer):
        numbers = UnitOfWork(world.region(issuer)).get(CardNumbers).of(named)
    else:  # the issuer's process answers from its ``cards``
        numbers = peers.ask(world, issuer, "cards.numbers", app_serials=named)
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


def _record_row(r: PurseRecord, v: Mapping[str, Any], card_numbers: Mapping[str, str], window: BlacklistWindow,
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
           r.blacklist_version, _details_json(r), status, reason,
           json.dumps(flags, ensure_ascii=False) if flags else None, uploaded_at, batch)  # RECORD_COLUMNS' order
    if status == "accepted":
        return row, None
    return row, {"app_serial": r.app_serial, "card_number": card_number, "txn_type": _HEX2[r.txn_type],
                 "counter": r.counter, "terminal": terminal_id, "terminal_no": r.terminal_no,
                 "terminal_serial": r.terminal_serial, "amount_fen": r.amount_fen, "status": status,
                 "reason": reason, "flags": flags}


_TYPE_OF = {h: i for i, h in enumerate(_HEX2)}


def _details_json(r: PurseRecord) -> str | None:
    """The record's details as the host keeps them (sorted JSON), or None."""
    return json.dumps(dict(r.details), ensure_ascii=False, sort_keys=True, default=str) if r.details else None


def _awaiting_row(r: PurseRecord, terminal_id: str, issuer: str | None, operator: str, batch: str,
                  uploaded_at: str) -> tuple:
    """The ``transit_awaiting`` row (``AWAITING_COLUMNS``, then batch and time): the believed fields, the
    registration's terminal and operator, the issuer found."""
    return (r.app_serial, _HEX2[r.txn_type], r.counter, r.terminal_no, r.terminal_serial, r.amount_fen,
            r.balance_before_fen, r.date_time, r.tac, r.issuer_id, issuer, r.card_number, terminal_id, operator,
            r.blacklist_version, r.status, _details_json(r), batch, uploaded_at)


def awaiting_count(world: World, node: str) -> int:
    """How many of ``node``'s uploaded records still wait for their issuer."""
    taken = _operator(world, node)
    return taken.waiting_count(taken.routed_up_to(REGION_NODES))


def _operator(world: World, node: str) -> OperatorRecords:
    """``node``'s records of its terminals' uploads, for reads outside a use case's transaction."""
    return UnitOfWork(world.region(node)).get(OperatorRecords)


def route_awaiting(world: World, node: str, *, now: dt.datetime) -> dict[str, int]:
    """Send ``node``'s records that waited for their issuers, where the hub reaches them now.

    Each is filed in ``transit_records`` with the issuer's verdict (under its original upload
    batch and time); a ``transit_routings`` row per issuer says which were routed. Returns
    ``{issuer: records routed}``.
    """
    uow = UnitOfWork(world.region(node))
    taken = uow.get(OperatorRecords)
    routed_to = taken.routed_up_to(REGION_NODES)
    tops = {i: top for i, top in taken.waiting_up_to(routed_to).items() if reachable(world, node, i)}
    if not tops:
        return {}
    waiting: list[tuple[PurseRecord, str, str]] = []  # (record, upload batch, uploaded at)
    types = _TYPE_OF
    by_issuer: dict[str, list[PurseRecord]] = {}
    for issuer, top in tops.items():
        group = by_issuer[issuer] = []
        for row in taken.awaiting(issuer, routed_to[issuer], top):
            r = PurseRecord.from_host((row[0], types[row[1]], *row[2:16]), json.loads(row[16]) if row[16] else None)
            group.append(r)
            waiting.append((r, row[17], row[18]))
        group.sort(key=lambda r: (r.app_serial, r.counter, r.terminal_no, r.terminal_serial))
    operators = taken.operators_by_number()
    verdicts: dict[int, dict[str, Any]] = {}
    card_numbers: dict[str, str] = {}
    for issuer in list(by_issuer):
        try:
            _send(world, node, issuer, by_issuer[issuer], verdicts, card_numbers, operators, now)
        except PeerUnavailable:  # still out of reach: its records wait for a later round (the hub kept any answer)
            del by_issuer[issuer], tops[issuer]
    if not by_issuer:
        return {}
    kept = {id(r) for group in by_issuer.values() for r in group}
    waiting = [w for w in waiting if id(w[0]) in kept]
    window = _window(world, {r.card_number or card_numbers.get(r.app_serial) for r, _, _ in waiting} - {None})
    at = timestamp(now)
    with uow.transaction():
        if taken.routed_up_to(REGION_NODES) != routed_to:  # another process routed them meanwhile
            return {}
        rows = [_record_row(r, verdicts[id(r)], card_numbers, window, r.issuer_node, r.operator or "",
                            r.terminal or "", batch, uploaded_at)[0] for r, batch, uploaded_at in waiting]
        taken.add_records(rows)
        taken.add_routings([(issuer, routed_to[issuer] + 1, tops[issuer], len(group), at)
                            for issuer, group in by_issuer.items() if group])
    return {issuer: len(group) for issuer, group in sorted(by_issuer.items()) if group}


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

    def __init__(self, hub: HubExchanges, cards: set[str]) -> None:
        self.published = {v: dt.datetime.fromisoformat(at) for v, at in hub.blacklist_published()}
        self.entries: dict[str, list[tuple[int, str]]] = defaultdict(list)
        if cards and self.published:
            for card, version, action in hub.blacklist_history():
                if card in cards:
                    self.entries[card].append((version, action))

    def flag(self, card_number: str | None, r: PurseRecord) -> dict[str, Any] | None:
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


def exchange(world: World, *, from_node: str, to_node: str, records: Sequence[PurseRecord],
             now: dt.datetime, operators: Mapping[str, str] | None = None) -> dict[str, Any]:
    """One chunk of records to the issuer and its answer, recorded once in the hub's ``messages``.

    The key is the chunk's digest: the same records sent again (a retried upload) get the
    recorded answer back and the issuer does nothing. The hub claims the key before it asks
    the issuer, so two uploads of the same chunk at once do not both reach it.
    ``operators`` (terminal number → operator code) names the operator of a record that
    does not name its own: the issuer keeps it, to know whom it owes at clearing.
    It is a routed exchange (``sbcard.services.exchange.routed``): in process over the whole
    world, over HTTP through the hub's process in a process that serves one node.
    """
    body = repr([(r.key, r.amount_fen, r.balance_before_fen, r.date_time, r.tac, r.status) for r in records])
    digest = hashlib.sha256(body.encode()).hexdigest()
    key = f"{MESSAGE_KIND}/{from_node}/{to_node}/{digest}"
    return routed.exchange(world, MESSAGE_KIND, key, from_node=from_node, to_node=to_node,
                           payload={"records": records, "operators": dict(operators or {})},
                           record=json.dumps({"records": len(records), "digest": digest}), now=now)[0]


def _clear_routed(uow: UnitOfWork, payload: Mapping[str, Any], from_node: str, now: dt.datetime) -> dict[str, Any]:
    return clear_purchases(uow, payload["records"], from_node=from_node, now=now, operators=payload["operators"])


def _records_to_wire(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"records": [[list(r.host_values()), dict(r.details) if r.details else None] for r in payload["records"]],
            "operators": payload["operators"]}


def _records_from_wire(payload: Mapping[str, Any]) -> dict[str, Any]:
    return {"records": [PurseRecord.from_host(values, details) for values, details in payload["records"]],
            "operators": dict(payload.get("operators") or {})}


routed.register(MESSAGE_KIND, routed.Kind(apply=lambda *args: _clear_routed(*args), to_wire=_records_to_wire,
                                          from_wire=_records_from_wire))


class _HubLists:
    """The hub's blacklist history as its process answered it (``directory.blacklist_window``), in
    ``HubExchanges``' shape for ``BlacklistWindow``."""

    def __init__(self, answer: Mapping[str, Any]) -> None:
        self._answer = answer

    def blacklist_published(self) -> list[tuple[int, str]]:
        return [tuple(row) for row in self._answer["published"]]

    def blacklist_history(self) -> list[tuple[str, int, str]]:
        return [tuple(row) for row in self._answer["history"]]


def _window(world: World, cards: set[str]) -> BlacklistWindow:
    """The blacklist window of these cards: from the hub's database, or asked of the hub's process."""
    if world.holds(HUB):
        return BlacklistWindow(_hub(world), cards)
    if not cards:  # nothing to look up (every record waits, say, the hub out of reach): the hub is not asked
        return BlacklistWindow(_HubLists({"published": [], "history": []}), cards)
    return BlacklistWindow(_HubLists(peers.ask(world, HUB, "directory.blacklist_window", cards=sorted(cards))),
                           cards)


def _hub(world: World) -> HubExchanges:
    """The hub's exchanges and blacklist history, for reads outside a use case's transaction."""
    return UnitOfWork(world.hub()).get(HubExchanges)


# ----------------------------------------------------------------------------- issuer side


def clear_purchases(uow: UnitOfWork, records: Sequence[PurseRecord], *, from_node: str,
                    now: dt.datetime, operators: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The issuer's check of purchases on its cards, in one transaction of the issuer's region.

    Returns ``{"cleared", "rejected", "verdicts": {index: {status, reason, flags}}, "cards":
    {app_serial: card_number}}``; records absent from ``verdicts`` are cleared without a flag.
    A record the issuer has seen before gets its earlier verdict and changes nothing.
    Each new purchase is kept with its operator (the record's, else ``operators`` by terminal
    number), whom the issuer owes for it at clearing. Each TAC is checked as the card made it
    (``sbcard.chip.purse.PurchaseTacKey``, one per card, its DTK diversified from the issuer's
    DTK master by ``sbcard.chip.crypto.Diversifier``).
    """
    operators = operators or {}
    verdicts: dict[str, dict[str, Any]] = {}
    cards_out: dict[str, str] = {}
    with uow.transaction():
        purchases = uow.get(IssuerPurchases)
        masters = keys.issuer_masters(uow.db)
        diversifier = Diversifier(masters.algorithm, masters.tac)
        keys_ = [r.key for r in records]
        earlier = _earlier_verdicts(purchases, keys_)
        by_card: dict[str, list[int]] = defaultdict(list)
        for i, r in enumerate(records):
            by_card[r.app_serial].append(i)
        serials = sorted(by_card)
        card_of = uow.get(CardNumbers).of(serials)
        shadows = purchases.shadows(serials)
        loads: dict[str, list[tuple[int, int, str]]] = defaultdict(list)
        reversed_: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # candidates: maybe credited after all
        for app_serial, counter, amount, status, load_id in purchases.loads(serials):
            (reversed_ if status == "reversed" else loads)[app_serial].append((counter, amount, status, load_id))

        received_at = timestamp(now)
        new_rows: list[tuple] = []
        shadow_rows: list[tuple] = []
        region = NODE_NAMES[node_of_db(uow.db)]
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
            checker = PurchaseTacKey(masters.algorithm, diversifier.key(to_bcd(app_serial)))
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
                purse_integrity.take_back(uow, purchases.load(load_id), proof="balance", evidence=proof,
                                          now=now, shadow=False)
            if state.changed:
                shadow_rows.append((app_serial, card_number, *state.row(), received_at))
        purchases.add_purchases(new_rows)  # PURCHASE_COLUMNS' order
        purchases.save_shadows(shadow_rows)  # SHADOW_COLUMNS' order
    rejected = sum(1 for v in verdicts.values() if v["status"] == "rejected")
    return {"cleared": len(records) - rejected, "rejected": rejected, "verdicts": verdicts, "cards": cards_out}


def _unexplained(reversed_: Sequence[tuple], live: Sequence[tuple]) -> list[tuple]:
    """The reversed loads without a live load at their online counter: a credit of theirs is unexplained."""
    used = {load[0] for load in live}
    return [load for load in reversed_ if load[0] not in used]


def _earlier_verdicts(purchases: IssuerPurchases,
                      keys_: Sequence[tuple[str, str, int, str, int]]) -> dict[tuple, dict[str, Any] | None]:
    """The issuer's verdicts on the records of ``keys_`` it has seen (None: cleared without a flag)."""
    wanted = set(keys_)
    out: dict[tuple, dict[str, Any] | None] = {}
    for row in purchases.earlier(wanted):
        key = tuple(row[:5])
        if key in wanted:
            status, reason, flags = row[5:]
            out[key] = None if status == "cleared" and not flags else {
                "status": status, "reason": reason, "flags": json.loads(flags) if flags else []}
    return out


def _tac_problem(r: PurseRecord, checker: PurchaseTacKey) -> str | None:
    if not r.tac:
        return "no TAC: the terminal never received the card's proof of the purchase"
    try:
        made = checker.verify(bytes.fromhex(r.tac), r.amount_fen, r.txn_type, bytes.fromhex(r.terminal_no),
                              r.terminal_serial, bytes.fromhex(r.date_time))
    except (ValueError, OverflowError) as e:
        return f"malformed record: {e}"
    if not made:
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

    def clear(self, r: PurseRecord) -> list[dict[str, Any]]:
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

    def _balance_flag(self, r: PurseRecord) -> dict[str, Any] | None:
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

    def _credited_reversal(self, r: PurseRecord, shown: int, contiguous: bool) -> dict[str, Any] | None:
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

    def _take(self, r: PurseRecord) -> None:
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
