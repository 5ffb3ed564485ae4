"""The issuing region's purse host: loads (圈存) from the holder's financial account into the purse,
or paid in cash at the counter (现金充值).

A load is three steps between the load terminal (``terminals/apps/loader.py``) and this
host, each one transaction of the card's issuing region:

1. ``begin_load`` — after INITIALIZE FOR LOAD. The host checks the card's MAC1 with the
   card's DLK (diversified from the region's master, ``services.cards.keys``), which proves the
   card, its balance and its online counter; the purse's maximum (¥1,000.00); the card
   (active) and its account (open, not frozen, enough money). It posts the ledger
   transaction holder → ``FLOAT-PURSE``, writes a ``pending`` row in ``purse_loads`` and
   answers MAC2 with the date-time the card must be sent. A cash load (``PurseHost(cash=True)``)
   takes the money from the outlet's till instead (the till of an outlet of the card's own
   region: the regions do not clear cash between them), and needs no account.
2. The terminal sends CREDIT FOR LOAD; the card commits and answers its TAC.
3. ``confirm_load`` — the host checks the TAC with the card's DTK: ``confirmed``; the
   issuer's shadow of the purse (``purse_shadow``) goes up by the amount.

A tear, a lost answer or a crash between 1 and 3 leaves the load ``pending``: the holder's
money sits in the float. ``settle`` ends it from what the card shows
(``sbcard.domain.purse_load.decide``): confirmed if the card credited it (its prove's
TAC, else its online counter past the load's), reversed — a new ledger transaction back to
the holder (a cash load: to the till, which pays the holder back) — if it never did. The terminal settles a card's pending loads before every
new load, and the host refuses a new load while one is pending, so money is never taken
without reaching the purse and never reaches it twice.

A reversal trusts the card it was shown; a restored card image can show the old counter
and later come back credited. ``begin_load`` therefore first takes back, with a correction
entry, every reversed load the card's (MAC1-proven) online counter shows credited, and
refuses a card whose purse its issuer blocked (``services.transit.purse_integrity``).
"""

from __future__ import annotations

import copy
import hmac
from collections.abc import Callable
from datetime import datetime
from typing import Any

import attrs

from sbcard.chip.codec import bcd_datetime, to_bcd
from sbcard.chip.crypto import diversify
from sbcard.chip.keys import IssuerMasterKeys
from sbcard.chip.purse import EP_LOAD, load_mac1, load_mac2, load_session_key, load_tac
from sbcard.clock import BEIJING
from sbcard.domain import kiosk_load
from sbcard.domain.allocation import TRANSIT_CITY_CODES
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.lifecycle import effective_status
from sbcard.domain.money import format_fen
from sbcard.domain.purse_load import (
    MAX_BALANCE_FEN,
    CardLoadEvidence,
    Decision,
    LoadGrant,
    LoadRequest,
    LoggedLoad,
    Outcome,
    PendingLoad,
    decide,
)
from sbcard.domain.regions import NODE_NAMES, node_of
from sbcard.services.exchange import lookup, outbox, peers, routed
from sbcard.services.outlets import audit
from sbcard.services.terminals import kiosk as terminal_kiosk
from sbcard.services.cards import keys
from sbcard.services.accounts import ledger
from sbcard.services.transit import purse_integrity
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.transit import PurseLoads
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World

FLOAT_PURSE = "FLOAT-PURSE"
COUNTER, KIOSK = "counter", "kiosk"  # the load's channel: staff at a counter, or an unattended kiosk
_NODE_OF_CITY = {city: node_of(region) for region, city in TRANSIT_CITY_CODES.items()}
LOAD_SEQUENCE = "purse_load"
FIELD = "--reader"  # the card in the reader is what a refusal is about


# ----------------------------------------------------------------------------- finding the card


def find_card_by_app_serial(world: World, app_serial: str) -> tuple[str, dict[str, Any]] | None:
    """(issuing node, card row) of the card with this T-Union application serial, or None.

    The serial's T-Union city code names the issuing region (``domain.allocation.app_serial``),
    so that region is asked first; the others are still asked, in case it does not have it.
    """
    hint = _NODE_OF_CITY.get(app_serial[4:8]) if isinstance(app_serial, str) else None
    for node in REGION_NODES if hint is None else (hint, *(n for n in REGION_NODES if n != hint)):
        if world.holds(node):
            card = _loads(world, node).card(app_serial)
        else:  # one node per process: the region's process answers from its cards
            card = peers.ask(world, node, "purse.card", app_serial=app_serial)
        if card is not None:
            return node, card
    return None


def _card(world: World, app_serial: str) -> tuple[str, dict[str, Any]]:
    found = find_card_by_app_serial(world, app_serial)
    if found is None:
        raise NotFound("card.unknown_purse",
                       f"no card with application serial {app_serial} in Beijing, Tianjin or Hebei", FIELD)
    return found


def dtk_of(masters: IssuerMasterKeys, app_serial: str) -> bytes:
    """The card's TAC key (DTK), diversified by its application serial."""
    return diversify(masters.algorithm, masters.tac, to_bcd(app_serial))


def dlk_of(masters: IssuerMasterKeys, app_serial: str) -> bytes:
    return diversify(masters.algorithm, masters.load, to_bcd(app_serial))


def expected_load_tac(masters: IssuerMasterKeys, row: dict[str, Any]) -> bytes:
    """The TAC the card gives for the load in this ``purse_loads`` row."""
    alg = masters.algorithm
    return load_tac(alg, dtk_of(masters, row["app_serial"]), row["balance_before_fen"] + row["amount_fen"],
                    row["online_counter"], row["amount_fen"], EP_LOAD, bytes.fromhex(row["terminal_no"]),
                    bytes.fromhex(row["date_time"]))


# ----------------------------------------------------------------------------- the use cases


def pending_loads(world: World, app_serial: str, *, node: str | None = None) -> list[PendingLoad]:
    """The card's loads debited from the account and not yet seen credited or refused.

    ``node``: the card's issuing region, when the caller knows it already.
    """
    if node is None:
        found = find_card_by_app_serial(world, app_serial)
        if found is None:
            return []
        node, _ = found
    if not world.holds(node):
        return [_pending_value(row) for row in peers.ask(world, node, "purse.pending", app_serial=app_serial)]
    return [_pending_value(row) for row in _loads(world, node).pending(app_serial)]


def begin_load(
    world: World, request: LoadRequest, *, operator: str, outlet: str | None = None, now: datetime,
    cash: bool = False,
) -> LoadGrant:
    """Step 1: check the card's MAC1, the maximum, the card and its account (or the till); debit; answer MAC2."""
    return _begin_load(world, request, lambda: lookup.require_operator_anywhere(world, operator)[1]["code"],
                       outlet=outlet, now=now, cash=cash)


def _begin_load(world: World, request: LoadRequest, staff_of: Callable[[], str], *, outlet: str | None,
                now: datetime, cash: bool = False, outlet_node: str | None = None,
                node: str | None = None, corrections: list[dict[str, Any]] | None = None,
                check: Callable[[UnitOfWork, LoadRequest], None] | None = None,
                channel: str = COUNTER) -> LoadGrant:
    """``begin_load``; ``staff_of()`` checks the operator (a ``PurseHost`` did when it was opened);
    ``node``: the card's issuing region, when the caller knows it already; ``corrections``
    gets the reversed loads this card's counter proved credited (taken back first); ``check``:
    the caller's own rules, run in the debit's transaction before it. ``channel`` ``KIOSK``:
    the unattended limits (``domain.kiosk_load``) are checked there too, by the card's issuer
    — whose database holds the card's loads of the day — wherever the kiosk stands."""
    if request.amount_fen <= 0:
        raise InvalidInput("load.amount", "the amount to load must be more than ¥0.00", "--amount")
    if node is None:
        node, _ = _card(world, request.app_serial)
    if cash:
        _check_cash_outlet(world, node, outlet, outlet_node)
    staff = staff_of()
    if not world.holds(node):  # another region's card, one node per process: its issuer's process does it
        answer = _remote(world, BEGIN, node, {"request": request, "operator": staff, "outlet": outlet, "cash": cash,
                                              "outlet_node": outlet_node, "channel": channel}, now)
        if corrections is not None:
            corrections.extend(answer["corrections"])
        return _grant(answer["grant"])
    taken = _take_back_credited(world, node, request, now)
    if corrections is not None:
        corrections.extend(taken)
    uow = UnitOfWork(world.region(node))
    with uow.step():
        loads = uow.get(PurseLoads)
        card = loads.card(request.app_serial)  # locked
        if card is None:  # gone since: only a hand-edited database does that
            raise NotFound("card.unknown_purse", f"no card with application serial {request.app_serial}", FIELD)
        masters = keys.issuer_masters(uow.db)
        _check_mac1(masters, request)
        status = effective_status(card, now)
        if status != "active":
            raise RuleRefused("card.not_active", f"card {card['card_number']} is {status}: no load onto its purse",
                              FIELD)
        block = purse_integrity.blocked(uow, card["card_number"])
        if block is not None:
            raise RuleRefused("card.purse_blocked", f"card {card['card_number']} is blocked since {block['at'][:19]} "
                              f"({block['reason']}): no load onto its purse; the issuer's staff review it", FIELD)
        if request.balance_fen + request.amount_fen > MAX_BALANCE_FEN:
            raise RuleRefused(
                "purse.max_balance",
                f"the purse holds {format_fen(request.balance_fen)}; loading {format_fen(request.amount_fen)} would "
                f"pass its maximum of {format_fen(MAX_BALANCE_FEN)}", "--amount")
        waiting = loads.a_pending(request.app_serial)
        again = _begun_already(uow, masters, request, staff, cash) if waiting else None
        if again is not None:  # the same INITIALIZE FOR LOAD asked again (its answer lost): the same grant
            return again
        if waiting:
            raise RuleRefused("load.pending", f"load {waiting} on this card is not settled yet: present the card "
                              "to a load terminal to settle it first", FIELD)
        live = loads.live_at(request.app_serial, request.online_counter)  # confirmed, or a reversal credited
        if live:
            raise RuleRefused("load.counter_reused", f"the card's online counter {request.online_counter} was used "
                              f"by load {live} already: the card's image was put back", FIELD)
        if check is not None:
            check(uow, request)
        if channel == KIOSK:
            if cash or not request.pin_verified:
                raise RuleRefused("kiosk.pin_unverified", "a kiosk loads from the holder's account only after the "
                                  "holder's PIN was verified on the card", "pin_verified")
            kiosk_load.check_unattended_load(request.amount_fen, kiosk_loaded_today(uow, request.app_serial, now))
        if cash:
            assert outlet is not None
            account_no = ledger.ensure_internal_account(uow, ledger.cash_account(outlet), "cash", now)
        else:
            account_no = ledger.account_of_card(uow, card["card_number"])
            if account_no is None:
                raise RuleRefused("account.none", f"card {card['card_number']} reaches no open financial account",
                                  FIELD)
        load_id = f"{node.upper()}-LOAD-{next_value(uow.db, LOAD_SEQUENCE):010d}"
        ensure_float(uow, now)
        ledger.post(uow, txn_id=load_id, entries=[(account_no, -request.amount_fen),
                                                      (FLOAT_PURSE, request.amount_fen)],
                    kind="purse_load", operator=staff, outlet=outlet,
                    memo=f"{'cash ' if cash else ''}load onto the purse of card {card['card_number']} (online "
                         f"counter {request.online_counter})", now=now)
        date_time = bcd_datetime(now.astimezone(BEIJING))
        sk = load_session_key(masters.algorithm, dlk_of(masters, request.app_serial), request.random,
                              request.online_counter)
        mac2 = load_mac2(masters.algorithm, sk, request.amount_fen, EP_LOAD, bytes.fromhex(request.terminal_no),
                         date_time)
        loads.add_pending({
            "id": load_id, "card_number": card["card_number"], "app_serial": request.app_serial,
            "account_no": account_no, "online_counter": request.online_counter, "amount_fen": request.amount_fen,
            "balance_before_fen": request.balance_fen, "terminal_no": request.terminal_no,
            "date_time": date_time.hex(), "mac2": mac2.hex().upper(), "txn_id": load_id, "operator": staff,
            "outlet": outlet, "created_at": timestamp(now)})
        details = {"load_id": load_id, "amount_fen": request.amount_fen, "online_counter": request.online_counter,
                   "terminal_no": request.terminal_no}
        if cash:
            details["paid"] = "cash"
        audit.record(uow.db, at=now, operator=staff, outlet=outlet, action="purse.load", subject=card["card_number"],
                     details=details)
        account_balance = None if cash else ledger.balance(uow, account_no)
    return LoadGrant(load_id=load_id, card_number=card["card_number"], mac2=mac2, date_time=date_time.hex(),
                     account_balance_fen=account_balance)


def _begun_already(uow: UnitOfWork, masters: IssuerMasterKeys, request: LoadRequest, staff: str,
                   cash: bool) -> LoadGrant | None:
    """The pending load this very request began, if any: the same card, counter, amount, balance, terminal and
    operator, and the same card random — its MAC2 made again with the request's session key is the stored one.

    A begin whose answer was lost (another region's card: the asking region answered 503 and released the
    Idempotency-Key) is asked again with the same card answer and gets the same MAC2, never a second debit
    nor a ``load.pending`` kept for good; a new INITIALIZE (another random) is still refused while one is pending.
    """
    for row in uow.get(PurseLoads).pending(request.app_serial):
        if (row["online_counter"], row["amount_fen"], row["balance_before_fen"], row["terminal_no"].upper(),
                row["operator"]) != (request.online_counter, request.amount_fen, request.balance_fen,
                                     request.terminal_no, staff):
            continue
        sk = load_session_key(masters.algorithm, dlk_of(masters, request.app_serial), request.random,
                              request.online_counter)
        mac2 = load_mac2(masters.algorithm, sk, request.amount_fen, EP_LOAD, bytes.fromhex(request.terminal_no),
                         bytes.fromhex(row["date_time"]))
        if hmac.compare_digest(mac2.hex().upper(), row["mac2"].upper()):
            balance = None if cash else ledger.balance(uow, row["account_no"])
            return LoadGrant(load_id=row["id"], card_number=row["card_number"], mac2=mac2,
                             date_time=row["date_time"], account_balance_fen=balance)
    return None


def kiosk_loaded_today(uow: UnitOfWork, app_serial: str, now: datetime) -> int:
    """Fen loaded at kiosks onto the card on ``now``'s Beijing day, not reversed (pending ones count).

    A reversal needs the card's MAC1 over its counter (``settle``), so a reversed load is one
    the card proved it never credited."""
    day = now.astimezone(BEIJING).date()
    total = 0
    for row in uow.db.query("SELECT amount_fen, created_at FROM purse_loads WHERE app_serial = ? AND "
                            "status != 'reversed' AND operator LIKE 'terminal:%'", [app_serial]):
        if datetime.fromisoformat(row["created_at"]).astimezone(BEIJING).date() == day:
            total += row["amount_fen"]
    return total


def _take_back_credited(world: World, node: str, request: LoadRequest, now: datetime) -> list[dict[str, Any]]:
    """The reversed loads the card's online counter shows it credited (a restored image), taken back.

    The counter is the card's own, proven by its MAC1 (checked here before any money moves).
    Its own transaction, committed even when the load is then refused; a card the
    correction blocks (the account could not pay it all) is told to the hub at once.
    """
    uow = UnitOfWork(world.region(node))
    if not purse_integrity.credited_by_counter(uow, request.app_serial, request.online_counter):
        return []  # nearly always: one look-up, no lock
    with uow.step():
        _check_mac1(keys.issuer_masters(uow.db), request)
        done = []
        for row in purse_integrity.credited_by_counter(uow, request.app_serial, request.online_counter):
            case = purse_integrity.take_back(
                uow, row, proof="online_counter", now=now,
                evidence={"online_counter": request.online_counter, "balance_fen": request.balance_fen,
                          "terminal_no": request.terminal_no})
            if case is not None:
                done.append({k: v for k, v in case.items() if k != "evidence"})
    if any(case["short_fen"] for case in done):
        outbox.deliver_pending(world, now)  # the card was blocked: the hub lists it now
    return done


def _check_cash_outlet(world: World, node: str, outlet: str | None, outlet_node: str | None) -> None:
    """Cash is taken at an outlet's counter of the card's own region (its till is in that region's books).

    ``outlet_node``: the outlet's region when the caller has looked the outlet up already.
    """
    if outlet is None:
        raise InvalidInput("load.cash_outlet", "a cash load is paid at an outlet's counter: give the outlet",
                           "--outlet")
    if outlet_node is None:
        outlet_node = lookup.get_outlet(world, outlet)["node"]
    if outlet_node != node:
        raise RuleRefused("load.cash_other_region",
                          f"the card is {NODE_NAMES[node]}'s: its purse takes cash at {NODE_NAMES[node]}'s outlets "
                          f"only (the regions do not clear cash between them); load it from its account here",
                          "--outlet")


def confirm_load(world: World, *, app_serial: str, online_counter: int, tac: bytes, now: datetime,
                 node: str | None = None) -> dict[str, Any]:
    """Step 3: the card's TAC for the load; confirmed once it verifies (again: the same answer).

    ``node``: the card's issuing region, when the caller knows it already.
    """
    if node is None:
        node, _ = _card(world, app_serial)
    if not world.holds(node):
        return _remote(world, CONFIRM, node, {"app_serial": app_serial, "online_counter": online_counter,
                                              "tac": bytes(tac).hex()}, now)
    uow = UnitOfWork(world.region(node))
    with uow.step():
        loads = uow.get(PurseLoads)
        row = _live_load(loads, app_serial, online_counter)
        masters = keys.issuer_masters(uow.db)
        if not hmac.compare_digest(bytes(tac), expected_load_tac(masters, row)):
            raise RuleRefused("load.bad_tac", f"the card's TAC {bytes(tac).hex().upper()} for load {row['id']} does "
                              "not verify; the load stays pending until the card is presented again", FIELD)
        if row["status"] == "pending":
            _confirm(uow, row, "tac", bytes(tac), now)
    return load_view(world, node, _load_row(uow.get(PurseLoads), row["id"]))


def settle(world: World, evidence: CardLoadEvidence, *, operator: str | None = None,
           now: datetime, channel: str = COUNTER) -> list[dict[str, Any]]:
    """Settle the card's pending loads from what the card shows; one entry per load, decided or not.

    Only what the card authenticated is acted on (``shown``): a TAC that verifies with its DTK;
    its online counter only with the MAC1 of the 1-fen INITIALIZE FOR LOAD it came from
    (``CardLoadEvidence.counter_proof``, the DLK) — else anyone who read the counter off
    ``pending`` could reverse a load the card credited (money twice). ``channel``: at an
    unattended kiosk (``KIOSK``) the card's log, which nothing authenticates, counts only with
    a proven counter: a kiosk settles only the card it presents.
    """
    found = find_card_by_app_serial(world, evidence.app_serial)
    if found is None:
        return []
    node, _ = found
    if not world.holds(node):
        return _remote(world, SETTLE, node, {"evidence": evidence, "operator": operator, "channel": channel}, now)
    out = []
    uow = UnitOfWork(world.region(node))
    with uow.step():
        loads = uow.get(PurseLoads)
        masters = keys.issuer_masters(uow.db)
        proof = _proof_id(evidence)
        pending_rows = loads.pending(evidence.app_serial)
        spent = proof is not None and bool(pending_rows) and _proof_spent(uow, pending_rows[0]["card_number"], proof)
        shown = shown_by_card(masters, evidence, unattended=channel == KIOSK, spent=spent)
        for row in pending_rows:
            expected = expected_load_tac(masters, row)
            decision = decide(_pending_value(row), shown, lambda tac: hmac.compare_digest(bytes(tac), expected))
            if decision.outcome is Outcome.UNDECIDED and shown is not evidence and evidence.online_counter is not None:
                decision = Decision(Outcome.UNDECIDED, "counter_unproven")
            note = None
            try:
                with uow.step():
                    _apply(uow, row, decision, operator, now, proof)
            except SbcardError as refused:  # e.g. the account closed since: staff must pay it back by hand
                note = refused.message
                decision = Decision(Outcome.UNDECIDED, "refused")
            out.append({**load_view(world, node, _load_row(loads, row["id"])),
                        "decision": decision.outcome.value, "how": decision.how, "note": note})
    return out


def _proof_id(evidence: CardLoadEvidence) -> str | None:
    """The counter proof's card random ‖ MAC1 (hex): what a reversal records, so the same answer proves nothing
    again (the card's random is its own, not a challenge of the host's: a replay is otherwise fresh to it)."""
    p = evidence.counter_proof
    return None if p is None else (p.random + p.mac1).hex().upper()


def _proof_spent(uow: UnitOfWork, card_number: str, proof: str) -> bool:
    """Whether a reversal of this card was already made on this very counter proof (``_reverse``'s audit)."""
    return uow.db.execute("SELECT 1 FROM audit_log WHERE action = 'purse.load_reversed' AND subject = ? AND "
                          "instr(details, ?) > 0 LIMIT 1", [card_number, f'"proof": "{proof}"']).fetchone() is not None


def shown_by_card(masters: IssuerMasterKeys, evidence: CardLoadEvidence, *, unattended: bool,
                  spent: bool = False) -> CardLoadEvidence:
    """The evidence the issuer may act on: the online counter (and balance) only if the card's MAC1 proves them
    (``counter_proof``: its 1-fen INITIALIZE FOR LOAD, of this card, at this counter and balance, not ``spent`` on
    a reversal already); at an unattended kiosk, without that proof, not the card's log either (only a TAC that
    verifies is left)."""
    proof = evidence.counter_proof
    if proof is not None and not spent and evidence.online_counter is not None and \
            (proof.app_serial, proof.online_counter, proof.amount_fen) == (evidence.app_serial,
                                                                          evidence.online_counter, 1) and \
            evidence.balance_fen in (None, proof.balance_fen):
        try:
            _check_mac1(masters, proof)
            return evidence
        except RuleRefused:
            pass
    return attrs.evolve(evidence, online_counter=None, balance_fen=None,
                        logged=() if unattended else evidence.logged)


def load_view(world: World, node: str, row: dict[str, Any]) -> dict[str, Any]:
    """A load as the CLI shows it (stable keys)."""
    return {
        "load_id": row["id"], "card_number": row["card_number"], "node": node, "status": row["status"],
        "amount_fen": row["amount_fen"], "online_counter": row["online_counter"],
        "balance_before_fen": row["balance_before_fen"], "tac": row["tac"], "how": row["how"],
        "txn_id": row["txn_id"], "reversal_txn_id": row["reversal_txn_id"], "created_at": row["created_at"],
        "settled_at": row["settled_at"],
    }


def ensure_float(uow: UnitOfWork, now: datetime) -> str:
    return ledger.ensure_internal_account(uow, FLOAT_PURSE, "purse_float", now)


# ----------------------------------------------------------------------------- another region's card, per node

# One node per process, a load of another region's card runs each step at the issuer's process, asked
# straight (``routed.call``, a direct kind: nothing recorded at the hub). A lost answer is what the load
# protocol already recovers from: a begun load stays pending and is settled from the card next time.
BEGIN, CONFIRM, SETTLE = "purse.begin", "purse.confirm", "purse.settle"


def _here(world: World) -> str:
    """The region a one-node world holds (the one asking)."""
    return next(node for node in REGION_NODES if world.holds(node))


def _remote(world: World, kind: str, node: str, payload: dict[str, Any], now: datetime) -> Any:
    return routed.call(world, kind, from_node=_here(world), to_node=node, payload={**payload, "node": node}, now=now)


def _grant(data: dict[str, Any]) -> LoadGrant:
    return LoadGrant(data["load_id"], data["card_number"], bytes.fromhex(data["mac2"]), data["date_time"],
                     data["account_balance_fen"])


def _request_dict(r: LoadRequest) -> dict[str, Any]:
    return {**attrs.asdict(r), "random": r.random.hex(), "mac1": r.mac1.hex()}


def _request_value(r: dict[str, Any]) -> LoadRequest:
    return LoadRequest(**{**r, "random": bytes.fromhex(r["random"]), "mac1": bytes.fromhex(r["mac1"])})


def _request_to_wire(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "request": _request_dict(payload["request"])}


def _request_from_wire(payload: dict[str, Any]) -> dict[str, Any]:
    return {**payload, "request": _request_value(payload["request"])}


def _receiver(world: World, p: dict[str, Any]) -> str:
    """The region this process serves: a direct kind acts on it, never on the node a payload names (a mismatch is
    refused: the sender asked the wrong process)."""
    here = _here(world)
    if p.get("node", here) != here:
        raise InvalidInput("purse.node", f"this is {NODE_NAMES[here]}'s process, not {p['node']}'s", "node")
    return here


def _check_sender(p: dict[str, Any], sender: str) -> None:
    """The outlet and the operator of record a load step names belong to the region that signed it.

    An outlet's region is its code's; a kiosk's (``terminal:<outlet>-<n>``) its outlet's. (A member of staff's
    region is not checked here: it would take a question back to the sender.)"""
    for outlet in (p.get("outlet"),):
        if outlet is not None and lookup.node_of_outlet(outlet) != sender:
            raise RuleRefused("purse.sender", f"outlet {outlet} is not {NODE_NAMES[sender]}'s", "outlet")
    if p.get("outlet_node") not in (None, sender):
        raise RuleRefused("purse.sender", f"the outlet's region is not {NODE_NAMES[sender]}", "outlet")
    operator = str(p.get("operator") or "")
    if operator.startswith("terminal:"):
        code = terminal_kiosk.outlet_code(operator.removeprefix("terminal:").rsplit("-", 1)[0])
        if code is None or code.node != sender:
            raise RuleRefused("purse.sender", f"{operator} is not a kiosk of {NODE_NAMES[sender]}", "operator")


def _serve_begin(world: World, p: dict[str, Any], sender: str, now: datetime) -> dict[str, Any]:
    """A load of this region's card begun in another region's process; a kiosk's (its channel, or a kiosk as the
    operator of record: a sender that does not say counts as a kiosk then) under the unattended limits here."""
    node = _receiver(world, p)
    _check_sender(p, sender)
    corrections: list[dict[str, Any]] = []
    kiosk = p.get("channel") == KIOSK or str(p["operator"]).startswith("terminal:")
    grant = _begin_load(world, p["request"], lambda: p["operator"], outlet=p["outlet"], now=now, cash=p["cash"],
                        outlet_node=p["outlet_node"], node=node, corrections=corrections,
                        channel=KIOSK if kiosk else COUNTER)
    return {"grant": {**attrs.asdict(grant), "mac2": grant.mac2.hex()}, "corrections": corrections}


def _evidence_to_wire(payload: dict[str, Any]) -> dict[str, Any]:
    e = payload["evidence"]
    proof = e.counter_proof
    return {**payload, "evidence": {"app_serial": e.app_serial, "balance_fen": e.balance_fen,
                                    "online_counter": e.online_counter,
                                    "proves": {str(k): bytes(v).hex() for k, v in e.proves.items()},
                                    "logged": [attrs.asdict(entry) for entry in e.logged],
                                    "counter_proof": None if proof is None else _request_dict(proof)}}


def _evidence_from_wire(payload: dict[str, Any]) -> dict[str, Any]:
    e = payload["evidence"]
    proof = e.get("counter_proof")
    return {**payload, "evidence": CardLoadEvidence(
        e["app_serial"], e["balance_fen"], e["online_counter"],
        {int(k): bytes.fromhex(v) for k, v in e["proves"].items()}, tuple(LoggedLoad(**x) for x in e["logged"]),
        None if proof is None else _request_value(proof))}


routed.register(BEGIN, routed.Kind(apply=_serve_begin, to_wire=_request_to_wire, from_wire=_request_from_wire,
                                   direct=True))
def _serve_settle(world: World, p: dict[str, Any], sender: str, now: datetime) -> list[dict[str, Any]]:
    _receiver(world, p)
    _check_sender(p, sender)
    return settle(world, p["evidence"], operator=p["operator"], now=now, channel=p.get("channel", KIOSK))


routed.register(CONFIRM, routed.Kind(apply=lambda world, p, _from, now: confirm_load(
    world, app_serial=p["app_serial"], online_counter=p["online_counter"], tac=bytes.fromhex(p["tac"]), now=now,
    node=_receiver(world, p)), direct=True))
routed.register(SETTLE, routed.Kind(apply=_serve_settle, to_wire=_evidence_to_wire,
    from_wire=_evidence_from_wire, direct=True))


# ----------------------------------------------------------------------------- the host port


class PurseHost:
    """The issuers' side of a load terminal (``terminals.apps.loader.LoadHost``), for one operator.

    Each call is one transaction of the card's issuing region, found from the card's
    application serial: a Tianjin card at a Beijing counter is loaded from its Tianjin account.
    The host remembers which region issued each card it has seen (that never changes), so
    a load's three steps look the card up once.
    """

    channel = COUNTER  # staff see the holder and the card (``KioskHost``: KIOSK)

    def __init__(self, world: World, *, operator: str, outlet: str | None = None, now: datetime,
                 cash: bool = False) -> None:
        self.world, self.now, self.outlet, self.cash = world, now, outlet, cash
        self.node, staff = lookup.require_operator_anywhere(world, operator)
        self.operator = staff["code"]
        self.outlet_node = lookup.get_outlet(world, outlet)["node"] if outlet is not None else None
        self._issuers: dict[str, str] = {}
        self.corrections: list[dict[str, Any]] = []  # reversed loads taken back by this host's loads

    def at(self, now: datetime) -> PurseHost:
        """The same host (operator, outlet, what it has looked up) at another time: a later load."""
        later = copy.copy(self)
        later.now = now
        later.corrections = []
        return later

    def _issuer(self, app_serial: str) -> str | None:
        """The card's issuing region, looked up once (None: no region has the card; the use case says so)."""
        node = self._issuers.get(app_serial)
        if node is None:
            found = find_card_by_app_serial(self.world, app_serial)
            if found is None:
                return None
            node = self._issuers[app_serial] = found[0]
        return node

    def pending_loads(self, app_serial: str) -> list[PendingLoad]:
        node = self._issuer(app_serial)
        return [] if node is None else pending_loads(self.world, app_serial, node=node)

    def settle(self, evidence: CardLoadEvidence) -> list[dict[str, Any]]:
        return settle(self.world, evidence, operator=self.operator, now=self.now, channel=self.channel)

    def begin_load(self, request: LoadRequest) -> LoadGrant:
        # The operator was checked when the host was opened for them.
        return _begin_load(self.world, request, lambda: self.operator, outlet=self.outlet, now=self.now,
                           cash=self.cash, outlet_node=self.outlet_node, node=self._issuer(request.app_serial),
                           corrections=self.corrections, check=self._check, channel=self.channel)

    def _check(self, uow: UnitOfWork, request: LoadRequest) -> None:
        """The caller's own rules, in the debit's transaction (none here; a kiosk's limits: ``channel``)."""

    def confirm_load(self, app_serial: str, online_counter: int, tac: bytes) -> dict[str, Any]:
        return confirm_load(self.world, app_serial=app_serial, online_counter=online_counter, tac=tac, now=self.now,
                            node=self._issuer(app_serial))


# ----------------------------------------------------------------------------- the mechanics


def _check_mac1(masters: IssuerMasterKeys, r: LoadRequest) -> None:
    alg = masters.algorithm
    if r.algorithm_id != alg.id_byte or r.key_version != masters.version:
        raise RuleRefused("load.key", f"the card's load key (version {r.key_version:02X}, algorithm "
                          f"{r.algorithm_id:02X}) is not the issuer's ({masters.version:02X}, {alg.id_byte:02X})",
                          FIELD)
    sk = load_session_key(alg, dlk_of(masters, r.app_serial), r.random, r.online_counter)
    if not hmac.compare_digest(r.mac1, load_mac1(alg, sk, r.balance_fen, r.amount_fen, EP_LOAD,
                                                 bytes.fromhex(r.terminal_no))):
        raise RuleRefused("load.mac1", "the card's MAC1 does not verify: not a genuine card of its issuer, or its "
                          "answer was altered on the way", FIELD)


def _loads(world: World, node: str) -> PurseLoads:
    """``node``'s loads, for reads outside a use case's transaction."""
    return UnitOfWork(world.region(node)).get(PurseLoads)


def _live_load(loads: PurseLoads, app_serial: str, online_counter: int) -> dict[str, Any]:
    row = loads.unreversed_at(app_serial, online_counter)
    if row is None:
        raise NotFound("load.unknown", f"no pending load at online counter {online_counter} of this card", FIELD)
    return row


def _load_row(loads: PurseLoads, load_id: str) -> dict[str, Any]:
    row = loads.get(load_id)
    if row is None:
        raise NotFound("load.unknown", f"no load {load_id}", FIELD)
    return row


def _apply(uow: UnitOfWork, row: dict[str, Any], decision: Decision, operator: str | None, now: datetime,
           proof: str | None = None) -> None:
    if decision.outcome is Outcome.CONFIRM:
        _confirm(uow, row, decision.how, decision.tac, now)
    elif decision.outcome is Outcome.REVERSE:
        _reverse(uow, row, operator or row["operator"], now, proof)


def _confirm(uow: UnitOfWork, row: dict[str, Any], how: str, tac: bytes | None, now: datetime) -> None:
    uow.get(PurseLoads).confirm(row["id"], tac=tac.hex().upper() if tac else None, how=how, at=timestamp(now))
    purse_integrity.credit_shadow(uow, row["app_serial"], row["card_number"], row["amount_fen"],
                                  row["online_counter"], now)


def _reverse(uow: UnitOfWork, row: dict[str, Any], operator: str, now: datetime, proof: str | None = None) -> None:
    """The card never credited the load: the money goes back to the account it came from (a till: the holder
    is paid back in cash)."""
    account = ledger.get_account(uow, row["account_no"])
    if account["status"] == "closed":
        raise RuleRefused("account.closed", f"load {row['id']} cannot go back to account {row['account_no']}: it is "
                          "closed; pay the holder from the float by hand", FIELD)
    reversal = f"{row['id']}-REV"
    frozen = account["status"] == "frozen"  # a lost card: the refund still belongs in its account
    if frozen:
        ledger.set_frozen(uow, row["account_no"], frozen=False, now=now)
    ledger.post(uow, txn_id=reversal, entries=[(row["account_no"], row["amount_fen"]),
                                               (FLOAT_PURSE, -row["amount_fen"])],
                kind="purse_load_reversal", operator=operator, outlet=row["outlet"],
                memo=f"load {row['id']} never reached the purse of card {row['card_number']}", now=now)
    if frozen:
        ledger.set_frozen(uow, row["account_no"], frozen=True, now=now)
    uow.get(PurseLoads).reverse(row["id"], reversal_txn_id=reversal, at=timestamp(now))
    audit.record(uow.db, at=now, operator=operator, outlet=row["outlet"], action="purse.load_reversed",
                 subject=row["card_number"], reason="the card never credited the load",
                 details={"load_id": row["id"], "amount_fen": row["amount_fen"], "proof": proof})


def _pending_value(row: dict[str, Any]) -> PendingLoad:
    return PendingLoad(load_id=row["id"], online_counter=row["online_counter"], amount_fen=row["amount_fen"],
                       balance_before_fen=row["balance_before_fen"], terminal_no=row["terminal_no"].upper(),
                       date_time=row["date_time"])

