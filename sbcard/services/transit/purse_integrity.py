"""The issuer's answers to evidence against a card's purse: corrections and blocks.

Policy: ``sbcard.domain.purse_policy``; the whole story:
``docs/protections/credited-reversals-and-flags.md``.

- ``take_back`` — a load the host reversed (its money went back to the account) that the
  card proves it credited (a restored card image): a correction transaction
  ``<load id>-COR`` of kind ``purse_load_correction`` takes the amount back from that
  account into ``FLOAT-PURSE``; what the account cannot pay (it holds less, it is closed,
  or the load was paid in cash at a till) comes from ``PURSE-SHORTFALL`` — the issuer's
  claim on the holder — and the card is blocked. Either way the float backs the purse.
- ``block_card`` — the card goes on the hub's blacklist (an outbox ``blacklist.add``, as a
  lost card does) and its history gets a ``purse_blocked`` event with the rule and the
  evidence; the load host refuses it loads from then on.
- ``review_flags`` — at the clearing run, the issuer's cards whose cleared purchases bear
  anomaly flags or whose counter gaps stay open are weighed by the policy and blocked.

Everything here runs inside the caller's unit of work (one transaction per use case).
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlite_utils

from sbcard.domain import purse_policy
from sbcard.domain.money import format_fen
from sbcard.services.exchange import outbox
from sbcard.services.outlets import audit
from sbcard.services.accounts import ledger
from sbcard.store.migrations import timestamp
from sbcard.store.world import HUB

FLOAT_PURSE = "FLOAT-PURSE"
SHORTFALL = "PURSE-SHORTFALL"
CORRECTION_KIND = "purse_load_correction"
CORRECTED_ACTION = "purse.load_corrected"
BLOCK_EVENT = "purse_blocked"
SYSTEM = "purse-integrity"


def correction_txn(load_id: str) -> str:
    return f"{load_id}-COR"


# ----------------------------------------------------------------------------- credited reversals


def candidates(db: sqlite_utils.Database, app_serial: str) -> list[dict[str, Any]]:
    """The card's reversed loads that no correction has taken back and no live load explains.

    A live load (pending, confirmed, or a reversed one corrected) at the same online counter
    accounts for the card's counter passing it; only a reversed load without one can be the
    credit a restored image kept. In online-counter order.
    """
    return [dict(r) for r in db.query(
        "SELECT * FROM purse_loads l WHERE l.app_serial = ? AND l.status = 'reversed' "
        "AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.txn_id = l.id || '-COR') "
        "AND NOT EXISTS (SELECT 1 FROM purse_loads o WHERE o.app_serial = l.app_serial "
        "                AND o.online_counter = l.online_counter AND o.id != l.id AND (o.status != 'reversed' "
        "                OR EXISTS (SELECT 1 FROM ledger_entries f WHERE f.txn_id = o.id || '-COR'))) "
        "ORDER BY l.online_counter, l.created_at", [app_serial])]


def credited_by_counter(db: sqlite_utils.Database, app_serial: str, online_counter: int) -> list[dict[str, Any]]:
    """The reversed loads the card's online counter (MAC1-proven) shows credited: below it, unexplained."""
    return [row for row in candidates(db, app_serial) if row["online_counter"] < online_counter]


def take_back(db: sqlite_utils.Database, load: Mapping[str, Any], *, proof: str, evidence: Mapping[str, Any],
              now: dt.datetime, shadow: bool = True) -> dict[str, Any] | None:
    """Correct a reversed load the card credited after all (see the module doc); None if corrected before.

    ``proof``: ``online_counter`` (a load's INITIALIZE, MAC1-proven) or ``balance`` (a
    purchase's balance before, at the issuer's check: the card's word, which the TAC does not
    cover — taking the amount from the account into the float costs the issuer nothing either way). ``shadow``: also raise the issuer's ``purse_shadow`` for
    the card (the purchase check keeps its own and writes it afterwards).
    """
    txn = correction_txn(load["id"])
    if ledger.is_posted(db, txn):
        return None
    amount = load["amount_fen"]
    account = ledger.get_account(db, load["account_no"])
    payable = account["kind"] == "holder" and account["status"] != "closed"
    taken = min(amount, max(ledger.balance(db, load["account_no"]), 0)) if payable else 0
    short = amount - taken
    entries: list[tuple[str, int]] = [(FLOAT_PURSE, amount)]
    if taken:
        entries.append((load["account_no"], -taken))
    if short:
        ledger.ensure_internal_account(db, SHORTFALL, "purse_float", now)
        entries.append((SHORTFALL, -short))
    ledger.ensure_internal_account(db, FLOAT_PURSE, "purse_float", now)
    frozen = taken and account["status"] == "frozen"  # a lost card's account: the correction still belongs there
    if frozen:
        ledger.set_frozen(db, load["account_no"], frozen=False, now=now)
    ledger.post(db, txn_id=txn, entries=entries, kind=CORRECTION_KIND, operator=SYSTEM,
                memo=f"load {load['id']} was reversed, but card {load['card_number']} credited it ({proof}): "
                     f"{format_fen(taken)} taken back from the account"
                     + (f", {format_fen(short)} short" if short else ""), now=now)
    if frozen:
        ledger.set_frozen(db, load["account_no"], frozen=True, now=now)
    if shadow:
        credit_shadow(db, load["app_serial"], load["card_number"], amount, load["online_counter"], now)
    case = {"load_id": load["id"], "card_number": load["card_number"], "app_serial": load["app_serial"],
            "online_counter": load["online_counter"], "amount_fen": amount, "taken_fen": taken, "short_fen": short,
            "proof": proof, "txn_id": txn, "evidence": dict(evidence)}
    audit.record(db, at=now, operator=SYSTEM, action=CORRECTED_ACTION, subject=load["card_number"],
                 reason="a reversed load was credited by the card (its image was put back)", details=case)
    if purse_policy.must_block_for_shortfall(short):
        block_card(db, load["card_number"], rule=purse_policy.RULE_CREDITED, now=now,
                   evidence=[{"load_id": load["id"], "amount_fen": amount, "short_fen": short, "proof": proof,
                              **dict(evidence)}])
    return case


# ----------------------------------------------------------------------------- blocks


def blocked(db: sqlite_utils.Database, card_number: str) -> dict[str, Any] | None:
    """The card's ``purse_blocked`` event (its details decoded), or None."""
    row = db.execute("SELECT id, at, reason, details FROM card_events WHERE card_number = ? AND event = ? "
                     "ORDER BY id LIMIT 1", [card_number, BLOCK_EVENT]).fetchone()
    if row is None:
        return None
    return {"event_id": row[0], "at": row[1], "reason": row[2], **json.loads(row[3])}


def block_card(db: sqlite_utils.Database, card_number: str, *, rule: str, evidence: Sequence[Mapping[str, Any]],
               now: dt.datetime, total: int | None = None) -> bool:
    """Block the card (see the module doc); False when it was blocked before (the first block stands)."""
    if rule not in purse_policy.RULES:
        raise ValueError(f"unknown block rule {rule!r}")
    if blocked(db, card_number) is not None:
        return False
    kept = [dict(e) for e in evidence[:purse_policy.EVIDENCE_KEPT]]
    details = {"rule": rule, "evidence": kept, "evidence_count": len(evidence) if total is None else total}
    reason = _REASONS[rule]
    cursor = db.execute(
        "INSERT INTO card_events (card_number, at, event, operator, outlet, reason, details) "
        "VALUES (?, ?, ?, ?, NULL, ?, ?)",
        [card_number, timestamp(now), BLOCK_EVENT, SYSTEM, reason,
         json.dumps(details, ensure_ascii=False, sort_keys=True)])
    outbox.enqueue(db, to_node=HUB, kind="blacklist.add", key=f"blacklist.add/{card_number}/{cursor.lastrowid}",
                   payload={"card_number": card_number, "reason": f"{BLOCK_EVENT}: {rule}"}, now=now)
    return True


_REASONS = {
    purse_policy.RULE_BALANCE: "the purse's balance was altered behind the card's back",
    purse_policy.RULE_COUNTERS: f"{purse_policy.COUNTER_ANOMALY_LIMIT} or more counter anomalies (counters used again or skipped)",
    purse_policy.RULE_CREDITED: "a reversed load was credited by a restored card image, and the account could not pay it back",
}


def blocks_waiting(db: sqlite_utils.Database) -> bool:
    """Whether a purse block of this region has not reached the hub yet (its outbox message pending)."""
    return db.execute("SELECT 1 FROM outbox WHERE delivered_at IS NULL AND kind = 'blacklist.add' "
                      "AND payload LIKE ? LIMIT 1", [f'%"{BLOCK_EVENT}: %']).fetchone() is not None


def review_flags(db: sqlite_utils.Database, day: dt.date, gaps: Iterable[Mapping[str, Any]],
                 now: dt.datetime) -> list[str]:
    """Block this issuer's cards the policy condemns, from the flags of the purchases in ``day``'s
    clearing (their whole flagged history counts) and the gaps standing; the cards blocked now."""
    cards: dict[str, str] = {}
    for app_serial, card_number, flags in db.execute(
            "SELECT app_serial, card_number, flags FROM purse_purchases WHERE clearing_day = ? AND flags IS NOT NULL",
            [day.isoformat()]):
        if card_number and purse_policy.anomaly_flags(json.loads(flags)):
            cards[app_serial] = card_number
    overdue: dict[str, list[int]] = {}
    for g in gaps:
        if not g.get("card_number"):
            continue
        row = db.execute("SELECT loose FROM purse_shadow WHERE app_serial = ?", [g["app_serial"]]).fetchone()
        cleared = {e[0]: e[2] for e in json.loads(row[0])} if row else {}
        late = purse_policy.overdue_gaps(g["missing"], cleared, day)
        if late:
            overdue[g["app_serial"]] = late
            cards[g["app_serial"]] = g["card_number"]
    done = []
    for app_serial, card_number in sorted(cards.items(), key=lambda kv: kv[1]):
        if blocked(db, card_number) is not None:
            continue
        counts: dict[str, int] = defaultdict(int)
        evidence = []
        for counter, terminal_no, serial, flags, cleared_on in db.execute(
                "SELECT counter, terminal_no, terminal_serial, flags, clearing_day FROM purse_purchases "
                "WHERE flags IS NOT NULL AND clearing_day IS NOT NULL AND app_serial = ? "
                "ORDER BY clearing_day, counter, terminal_no, terminal_serial", [app_serial]):
            names = purse_policy.anomaly_flags(json.loads(flags))
            for name in names:
                counts[name] += 1
            if names:
                evidence.append({"counter": counter, "terminal_no": terminal_no, "terminal_serial": serial,
                                 "flags": names, "clearing_day": cleared_on})
        late = overdue.get(app_serial, [])
        if late:
            evidence.append({"flags": ["counter_gap"], "missing": late[:50], "missing_count": len(late)})
        rule = purse_policy.block_rule(counts, len(late))
        if rule is not None and block_card(db, card_number, rule=rule, evidence=evidence, now=now):
            done.append(card_number)
    return done


# ----------------------------------------------------------------------------- what a day's clearing shows


def day_cases(db: sqlite_utils.Database, node: str, since: tuple[str, list[str]],
              until: tuple[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
    """This issuer's corrections and blocks whose time is in the window (SQL conditions on a column ``at``).

    A block shows ``float_fen``: what the issuer's books hold for the card (confirmed loads
    and corrections less cleared purchases, ``purse_shadow``) — float that no usable purse
    backs any more: it waits for staff to refund or write off. ``overspent_fen`` is the
    other side: what the card's purchases took beyond its loads (float of other purses).
    """
    (since_sql, since_args), (until_sql, until_args) = since, until
    corrections = []
    for (details,) in db.execute(
            f"SELECT details FROM audit_log WHERE action = ? AND {until_sql} AND {since_sql} ORDER BY id",
            [CORRECTED_ACTION, *until_args, *since_args]):
        case = json.loads(details)
        corrections.append({"issuer": node, **{k: case[k] for k in (
            "card_number", "app_serial", "load_id", "online_counter", "amount_fen", "taken_fen", "short_fen",
            "proof", "txn_id")}})
    blocks = []
    for card_number, at, reason, details in db.execute(
            f"SELECT card_number, at, reason, details FROM card_events WHERE event = ? AND {until_sql} "
            f"AND {since_sql} ORDER BY id", [BLOCK_EVENT, *until_args, *since_args]):
        d = json.loads(details)
        row = db.execute("SELECT s.expected_balance_fen FROM purse_shadow s JOIN cards c ON c.app_serial = "
                         "s.app_serial WHERE c.card_number = ?", [card_number]).fetchone()
        held = row[0] if row else 0
        blocks.append({"issuer": node, "card_number": card_number, "blocked_at": at, "rule": d["rule"],
                       "reason": reason, "evidence": d["evidence"], "evidence_count": d["evidence_count"],
                       "float_fen": max(held, 0), "overspent_fen": max(-held, 0)})
    return {"corrections": corrections, "blocks": blocks}


def credit_shadow(db: sqlite_utils.Database, app_serial: str, card_number: str, amount_fen: int,
                  online_counter: int, now: dt.datetime) -> None:
    """The issuer's shadow of the purse takes a credited load: its balance up, its online counter past it."""
    db.execute(
        """INSERT INTO purse_shadow (app_serial, card_number, expected_balance_fen, last_offline_counter,
                                     last_online_counter, updated_at)
           VALUES (?, ?, ?, NULL, ?, ?)
           ON CONFLICT (app_serial) DO UPDATE SET
               expected_balance_fen = expected_balance_fen + excluded.expected_balance_fen,
               last_online_counter = max(last_online_counter, excluded.last_online_counter),
               updated_at = excluded.updated_at""",
        [app_serial, card_number, amount_fen, online_counter + 1, timestamp(now)])
