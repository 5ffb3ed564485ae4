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

Everything here runs inside the caller's unit of work (one transaction per use case); a
function that writes more than one row does it in a step (``uow.step()``: a savepoint inside
the caller's transaction). The SQL is ``sbcard.store.repositories.transit.PurseIntegrity``'s.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sbcard.domain import purse_policy
from sbcard.domain.money import format_fen
from sbcard.services.exchange import outbox
from sbcard.services.outlets import audit
from sbcard.services.accounts import ledger
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.transit import PurseIntegrity
from sbcard.store.unit_of_work import UnitOfWork
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


def candidates(uow: UnitOfWork, app_serial: str) -> list[dict[str, Any]]:
    """The card's reversed loads that no correction has taken back and no live load explains.

    A live load (pending, confirmed, or a reversed one corrected) at the same online counter
    accounts for the card's counter passing it; only a reversed load without one can be the
    credit a restored image kept. In online-counter order.
    """
    return uow.get(PurseIntegrity).uncorrected_reversals(app_serial)


def credited_by_counter(uow: UnitOfWork, app_serial: str, online_counter: int) -> list[dict[str, Any]]:
    """The reversed loads the card's online counter (MAC1-proven) shows credited: below it, unexplained."""
    return [row for row in candidates(uow, app_serial) if row["online_counter"] < online_counter]


def take_back(uow: UnitOfWork, load: Mapping[str, Any], *, proof: str, evidence: Mapping[str, Any],
              now: dt.datetime, shadow: bool = True) -> dict[str, Any] | None:
    """Correct a reversed load the card credited after all (see the module doc); None if corrected before.

    ``proof``: ``online_counter`` (a load's INITIALIZE, MAC1-proven) or ``balance`` (a
    purchase's balance before, at the issuer's check: the card's word, which the TAC does not
    cover — taking the amount from the account into the float costs the issuer nothing either way). ``shadow``: also raise the issuer's ``purse_shadow`` for
    the card (the purchase check keeps its own and writes it afterwards).
    """
    txn = correction_txn(load["id"])
    if ledger.is_posted(uow, txn):
        return None
    with uow.step():
        amount = load["amount_fen"]
        account = ledger.get_account(uow, load["account_no"])
        payable = account["kind"] == "holder" and account["status"] != "closed"
        taken = min(amount, max(ledger.balance(uow, load["account_no"]), 0)) if payable else 0
        short = amount - taken
        entries: list[tuple[str, int]] = [(FLOAT_PURSE, amount)]
        if taken:
            entries.append((load["account_no"], -taken))
        if short:
            ledger.ensure_internal_account(uow, SHORTFALL, "purse_float", now)
            entries.append((SHORTFALL, -short))
        ledger.ensure_internal_account(uow, FLOAT_PURSE, "purse_float", now)
        frozen = taken and account["status"] == "frozen"  # a lost card's account: the correction still belongs there
        if frozen:
            ledger.set_frozen(uow, load["account_no"], frozen=False, now=now)
        ledger.post(uow, txn_id=txn, entries=entries, kind=CORRECTION_KIND, operator=SYSTEM,
                    memo=f"load {load['id']} was reversed, but card {load['card_number']} credited it ({proof}): "
                         f"{format_fen(taken)} taken back from the account"
                         + (f", {format_fen(short)} short" if short else ""), now=now)
        if frozen:
            ledger.set_frozen(uow, load["account_no"], frozen=True, now=now)
        if shadow:
            credit_shadow(uow, load["app_serial"], load["card_number"], amount, load["online_counter"], now)
        case = {"load_id": load["id"], "card_number": load["card_number"], "app_serial": load["app_serial"],
                "online_counter": load["online_counter"], "amount_fen": amount, "taken_fen": taken, "short_fen": short,
                "proof": proof, "txn_id": txn, "evidence": dict(evidence)}
        audit.record(uow.db, at=now, operator=SYSTEM, action=CORRECTED_ACTION, subject=load["card_number"],
                     reason="a reversed load was credited by the card (its image was put back)", details=case)
        if purse_policy.must_block_for_shortfall(short):
            block_card(uow, load["card_number"], rule=purse_policy.RULE_CREDITED, now=now,
                       evidence=[{"load_id": load["id"], "amount_fen": amount, "short_fen": short, "proof": proof,
                                  **dict(evidence)}])
    return case


# ----------------------------------------------------------------------------- blocks


def blocked(uow: UnitOfWork, card_number: str) -> dict[str, Any] | None:
    """The card's ``purse_blocked`` event (its details decoded), or None."""
    row = uow.get(PurseIntegrity).first_event(card_number, BLOCK_EVENT)
    if row is None:
        return None
    return {"event_id": row[0], "at": row[1], "reason": row[2], **json.loads(row[3])}


def block_card(uow: UnitOfWork, card_number: str, *, rule: str, evidence: Sequence[Mapping[str, Any]],
               now: dt.datetime, total: int | None = None) -> bool:
    """Block the card (see the module doc); False when it was blocked before (the first block stands)."""
    if rule not in purse_policy.RULES:
        raise ValueError(f"unknown block rule {rule!r}")
    if blocked(uow, card_number) is not None:
        return False
    kept = [dict(e) for e in evidence[:purse_policy.EVIDENCE_KEPT]]
    details = {"rule": rule, "evidence": kept, "evidence_count": len(evidence) if total is None else total}
    reason = _REASONS[rule]
    with uow.step():
        event_id = uow.get(PurseIntegrity).add_event(
            card_number=card_number, at=timestamp(now), event=BLOCK_EVENT, operator=SYSTEM, reason=reason,
            details=json.dumps(details, ensure_ascii=False, sort_keys=True))
        outbox.enqueue(uow.db, to_node=HUB, kind="blacklist.add", key=f"blacklist.add/{card_number}/{event_id}",
                       payload={"card_number": card_number, "reason": f"{BLOCK_EVENT}: {rule}"}, now=now)
    return True


_REASONS = {
    purse_policy.RULE_BALANCE: "the purse's balance was altered behind the card's back",
    purse_policy.RULE_COUNTERS: f"{purse_policy.COUNTER_ANOMALY_LIMIT} or more counter anomalies (counters used again or skipped)",
    purse_policy.RULE_CREDITED: "a reversed load was credited by a restored card image, and the account could not pay it back",
}


def blocks_waiting(uow: UnitOfWork) -> bool:
    """Whether a purse block of this region has not reached the hub yet (its outbox message pending)."""
    return uow.get(PurseIntegrity).blacklist_add_pending(f"{BLOCK_EVENT}: ")


def review_flags(uow: UnitOfWork, day: dt.date, gaps: Iterable[Mapping[str, Any]],
                 now: dt.datetime) -> list[str]:
    """Block this issuer's cards the policy condemns, from the flags of the purchases in ``day``'s
    clearing (their whole flagged history counts) and the gaps standing; the cards blocked now."""
    found = uow.get(PurseIntegrity)
    cards: dict[str, str] = {}
    for app_serial, card_number, flags in found.flagged_on(day):
        if card_number and purse_policy.anomaly_flags(json.loads(flags)):
            cards[app_serial] = card_number
    overdue: dict[str, list[int]] = {}
    for g in gaps:
        if not g.get("card_number"):
            continue
        loose = found.loose(g["app_serial"])
        cleared = {e[0]: e[2] for e in json.loads(loose)} if loose is not None else {}
        late = purse_policy.overdue_gaps(g["missing"], cleared, day)
        if late:
            overdue[g["app_serial"]] = late
            cards[g["app_serial"]] = g["card_number"]
    done = []
    for app_serial, card_number in sorted(cards.items(), key=lambda kv: kv[1]):
        if blocked(uow, card_number) is not None:
            continue
        counts: dict[str, int] = defaultdict(int)
        evidence = []
        for counter, terminal_no, serial, flags, cleared_on in found.flagged_history(app_serial):
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
        if rule is not None and block_card(uow, card_number, rule=rule, evidence=evidence, now=now):
            done.append(card_number)
    return done


# ----------------------------------------------------------------------------- what a day's clearing shows


def day_cases(uow: UnitOfWork, node: str, day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """This issuer's corrections and blocks made on ``day`` (Beijing).

    A block shows ``float_fen``: what the issuer's books hold for the card (confirmed loads
    and corrections less cleared purchases, ``purse_shadow``) — float that no usable purse
    backs any more: it waits for staff to refund or write off. ``overspent_fen`` is the
    other side: what the card's purchases took beyond its loads (float of other purses).
    """
    found = uow.get(PurseIntegrity)
    corrections = []
    for details in found.audit_details_on(CORRECTED_ACTION, day):
        case = json.loads(details)
        corrections.append({"issuer": node, **{k: case[k] for k in (
            "card_number", "app_serial", "load_id", "online_counter", "amount_fen", "taken_fen", "short_fen",
            "proof", "txn_id")}})
    blocks = []
    for card_number, at, reason, details in found.events_on(BLOCK_EVENT, day):
        d = json.loads(details)
        balance = found.shadow_balance(card_number)
        held = balance if balance is not None else 0
        blocks.append({"issuer": node, "card_number": card_number, "blocked_at": at, "rule": d["rule"],
                       "reason": reason, "evidence": d["evidence"], "evidence_count": d["evidence_count"],
                       "float_fen": max(held, 0), "overspent_fen": max(-held, 0)})
    return {"corrections": corrections, "blocks": blocks}


def credit_shadow(uow: UnitOfWork, app_serial: str, card_number: str, amount_fen: int,
                  online_counter: int, now: dt.datetime) -> None:
    """The issuer's shadow of the purse takes a credited load: its balance up, its online counter past it
    (one statement: no step of its own)."""
    uow.get(PurseIntegrity).credit_shadow(app_serial, card_number, amount_fen, online_counter + 1, timestamp(now))
