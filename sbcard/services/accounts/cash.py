"""Cash at the counter on a card's financial account, and what the account shows.

Cash is taken and paid out at bank-branch outlets (社银合作): the cooperating bank's
counter keeps the till. The account lives in the ledger of the card's issuing region,
so the till must be one of that region's bank-branch outlets too (a cross-region cash
desk would need the two regions to clear the cash between them, which they do not).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.lifecycle import effective_status
from sbcard.domain.limits import MAX_AMOUNT_FEN, check_cash_deposit, idempotency_key
from sbcard.domain.money import format_fen
from sbcard.domain.regions import NODE_NAMES
from sbcard.services.exchange import lookup
from sbcard.services.accounts import ledger
from sbcard.services.outlets.operators import require_operator
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import World

CASH_ROLES = {"counter", "supervisor"}
CARD_FIELD = "CARD"


def deposit(
    world: World, *, card_number: str, amount_fen: int, operator: str, outlet: str, now: datetime,
    txn_id: str | None = None, memo: str | None = None,
) -> dict[str, Any]:
    """Cash handed in at a bank-branch outlet, credited to the card's account."""
    return _cash(world, "deposit", card_number=card_number, amount_fen=amount_fen, operator=operator, outlet=outlet,
                 now=now, txn_id=txn_id, memo=memo)


def withdraw(
    world: World, *, card_number: str, amount_fen: int, operator: str, outlet: str, now: datetime,
    txn_id: str | None = None, memo: str | None = None,
) -> dict[str, Any]:
    """Cash paid out at a bank-branch outlet from the account of an active card."""
    return _cash(world, "withdrawal", card_number=card_number, amount_fen=amount_fen, operator=operator,
                 outlet=outlet, now=now, txn_id=txn_id, memo=memo)


def account_view(world: World, card_number: str) -> dict[str, Any]:
    """The account reached through this card (open, else the last closed one), with its entries."""
    node, card = _card(world, card_number)
    uow = UnitOfWork(world.region(node))
    account = ledger.latest_account_of_card(uow, card["card_number"])
    if account is None:
        raise NotFound("account.none", _no_account(uow, card), CARD_FIELD)
    return {
        "card_number": card["card_number"],
        "account_no": account["account_no"],
        "status": account["status"],
        "balance_fen": ledger.balance(uow, account["account_no"]),
        "opened_at": account["opened_at"],
        "closed_at": account["closed_at"],
        "node": node,
        "entries": [
            {"at": e["at"], "kind": e["kind"], "amount_fen": e["amount_fen"], "memo": e["memo"],
             "txn_id": e["txn_id"], "outlet": e["outlet"], "operator": e["operator"]}
            for e in ledger.entries(uow, account["account_no"])
        ],
    }


def _cash(
    world: World, kind: str, *, card_number: str, amount_fen: int, operator: str, outlet: str, now: datetime,
    txn_id: str | None, memo: str | None,
) -> dict[str, Any]:
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen <= 0:
        raise InvalidInput("amount.zero", "the amount must be more than ¥0.00", "--amount")
    if amount_fen > MAX_AMOUNT_FEN:  # no account could take it (and no sum may reach SQLite's integer limit)
        raise InvalidInput("amount.too_large", f"{format_fen(amount_fen)} is more than any account may hold "
                           f"({format_fen(MAX_AMOUNT_FEN)})", "--amount")
    if kind == "deposit":
        check_cash_deposit(amount_fen)
    key = idempotency_key(txn_id, "--txn-id")
    node, card = _card(world, card_number)
    place = lookup.get_outlet(world, outlet)
    if place["kind"] != "bank_branch":
        raise RuleRefused("account.not_bank_branch",
                          f"cash is taken and paid out at bank-branch outlets (社银合作); {place['code']} is not one",
                          "--outlet")
    if place["node"] != node:
        raise RuleRefused("account.other_region",
                          f"the account is kept by {NODE_NAMES[node]}'s card service: use one of "
                          f"{NODE_NAMES[node]}'s bank-branch outlets", "--outlet")
    uow = UnitOfWork(world.region(node))
    status = effective_status(card, now)
    if kind == "withdrawal" and status != "active":
        raise RuleRefused("card.not_active", f"card {card['card_number']} is {status}: no cash is paid out on it",
                          CARD_FIELD)
    with uow.step():
        staff = require_operator(uow.db, operator, roles=CASH_ROLES)
        account_no = ledger.account_of_card(uow, card["card_number"])
        if account_no is None:
            raise RuleRefused("account.none", _no_account(uow, card), CARD_FIELD)
        txn = key or f"{node.upper()}-CASH-{next_value(uow.db, 'cash_txn'):010d}"
        move = ledger.pay_in if kind == "deposit" else ledger.pay_out
        try:
            posted = move(uow, account_no=account_no, outlet=place["code"], amount_fen=amount_fen, txn_id=txn,
                          operator=staff["code"], memo=memo, now=now)
        except InvalidInput as e:
            raise InvalidInput(e.code, e.message, "--txn-id" if e.field == "txn_id" else e.field) from None
        except RuleRefused as e:
            if e.code != "account.max_balance":
                raise
            raise RuleRefused(e.code, e.message, "--amount") from None
        balance = ledger.balance(uow, account_no)
    return {"txn_id": txn, "kind": kind, "card_number": card["card_number"], "account_no": account_no,
            "amount_fen": amount_fen, "balance_fen": balance, "outlet": place["code"], "posted": posted}


def _card(world: World, card_number: str) -> tuple[str, dict[str, Any]]:
    found = lookup.find_card(world, card_number)
    if found is None:
        raise NotFound("card.unknown", f"no card {card_number.strip()} in Beijing, Tianjin or Hebei", CARD_FIELD)
    return found


def _no_account(uow: UnitOfWork, card: dict[str, Any]) -> str:
    """Why a card reaches no account, in the words the counter needs."""
    newer = ledger.replacement_of(uow, card["card_number"])
    if newer:
        return f"card {card['card_number']} was replaced: its account moved to card {newer}"
    if card["status"] == "issued":
        return f"card {card['card_number']} is not activated yet: activation opens its account"
    return f"card {card['card_number']} has no open financial account"

