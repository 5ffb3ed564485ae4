"""The day's settlement (结算) between the three regions, its files, and the purse float's reconciliation.

``day_settlement(world, day)`` reads the hub's clearing lines of the day (``sbcard.services
.clearing``) and answers, with stable keys:

- ``matrix``: ``{payer: {payee: fen}}``, every region on both axes (the diagonal is what a
  region's own cards and insured owe its own operators and hospitals);
- ``net``: each region's net position, received − paid (sums to zero);
- ``operators``: per operator / hospital ``{kind, node, count, amount_fen, from: {payer: fen}}``;
- ``reconciliation``: per issuer, as things stand now — ``float_fen`` (the ``FLOAT-PURSE``
  balance: loads less cleared purchases less refunded purses) against ``cards_fen`` (Σ of the
  issuer's expected purse balances, ``purse_shadow``) + ``uncleared_fen`` (purchases it
  accepted, not yet in a clearing) + ``pending_loads_fen`` (loads taken from accounts, not
  yet seen on the card or reversed) − ``refunded_fen`` (replaced cards' purses paid back);
  ``ok`` when they are equal.

The hub records a day's settlement once (``settlements``, ``messages`` key
``settlement/<day>``); ``write_files`` writes ``<home>/settlement/<day>/<node>.json`` per region.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from typing import Any

import sqlite_utils

from sbcard.domain import settlement as settlement_rules
from sbcard.services.accounts import ledger
from sbcard.services.transit.purse_host import FLOAT_PURSE
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.clearing import ClearingRepository, RegionClearingRepository
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.services.exchange import peers
from sbcard.services.exchange.peers import PeerUnavailable
from sbcard.store.world import HUB, REGION_NODES, NodeElsewhere, World

SETTLEMENT_DIR = "settlement"
SETTLEMENT_KIND = "settlement"


def settlement_key(day: dt.date) -> str:
    """The idempotency key of the hub's message that records the day's settlement."""
    return f"{SETTLEMENT_KIND}/{day.isoformat()}"


def hub_lines(world: World, day: dt.date) -> list[dict[str, Any]]:
    """The day's lines as the hub holds them, sorted by kind, payer, payee, party (asked of the hub's
    process when this world does not hold it: ``clearing.hub_lines``)."""
    if world.holds(HUB):
        return answer_hub_lines(world.hub(), day.isoformat())
    return peers.ask(world, HUB, "clearing.hub_lines", day=day.isoformat())


def answer_hub_lines(db: sqlite_utils.Database, day: str) -> list[dict[str, Any]]:
    """(question ``clearing.hub_lines``, the hub) The day's lines the hub holds."""
    return UnitOfWork(db).get(ClearingRepository).hub_lines(day)


def day_lines(world: World, day: dt.date) -> list[settlement_rules.Line]:
    """The day's clearing lines as the hub holds them."""
    return [settlement_rules.Line.from_row(row) for row in hub_lines(world, day)]


def day_settlement(world: World, day: dt.date) -> dict[str, Any]:
    """The settlement of ``day`` (see the module doc): ``{date, matrix, net, operators, reconciliation}``."""
    lines = day_lines(world, day)
    matrix = settlement_rules.matrix(lines)
    return {
        "date": day.isoformat(),
        "matrix": matrix,
        "net": settlement_rules.net_by_region(matrix),
        "operators": settlement_rules.parties(lines),
        "reconciliation": {node: reconcile(world, node) for node in REGION_NODES},
    }


def reconcile(world: World, node: str) -> dict[str, Any]:
    """The issuer's purse float against its cards' expected balances and what is in flight (fen).

    Asked of the region's process when this world does not hold it (``clearing.reconcile``);
    a region that cannot be reached now answers ``{"unavailable": True, "note"}``.
    """
    if world.holds(node):
        return answer_reconcile(world.region(node))
    try:
        return peers.ask(world, node, "clearing.reconcile")
    except (PeerUnavailable, NodeElsewhere) as exc:
        return {"unavailable": True, "note": exc.message}


def answer_reconcile(db: sqlite_utils.Database) -> dict[str, Any]:
    """(question ``clearing.reconcile``, a region) The region's reconciliation of its purse float."""
    uow = UnitOfWork(db)
    float_fen = ledger.balances(uow, [FLOAT_PURSE]).get(FLOAT_PURSE, 0)
    figures = uow.get(RegionClearingRepository).float_figures()
    cards, uncleared = figures["cards"], figures["uncleared"]
    pending, refunded = figures["pending"], figures["refunded"]
    expected = cards + uncleared + pending - refunded
    return {"float_fen": float_fen, "cards_fen": cards, "uncleared_fen": uncleared, "pending_loads_fen": pending,
            "refunded_fen": refunded, "difference_fen": float_fen - expected, "ok": float_fen == expected}


def region_file(lines: list[settlement_rules.Line], settlement: dict[str, Any], node: str) -> dict[str, Any]:
    """One region's settlement file: its lines both ways, its net and counterparties, its reconciliation."""
    positions = settlement_rules.net_positions(lines)
    return {
        "date": settlement["date"],
        "node": node,
        "payable": [_line_json(x) for x in sorted(lines) if x.payer == node],
        "receivable": [_line_json(x) for x in sorted(lines) if x.payee == node],
        "net_fen": settlement["net"][node],
        "counterparties": settlement_rules.counterparties(positions, node),
        "reconciliation": settlement["reconciliation"][node],
    }


def files_for(world: World, day: dt.date, settlement: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Each region's settlement file's content, by node."""
    lines = day_lines(world, day)
    return {node: region_file(lines, settlement, node) for node in REGION_NODES}


def region_settlement(world: World, node: str, day: dt.date) -> dict[str, Any]:
    """Region ``node``'s settlement file for ``day`` from its own records alone (its process needs no other):
    its lines as the payer, and those delivered to it as the payee; once the day's lines are all
    delivered, the same as the file the hub writes for it. ``cleared``: its part of the day was run;
    ``unsent``: its lines of the day have not reached the hub yet."""
    db = world.region(node)
    store = UnitOfWork(db).get(RegionClearingRepository)
    lines = [settlement_rules.Line.from_row(row) for row in store.day_lines(day.isoformat())]
    net = settlement_rules.net_by_region(settlement_rules.matrix(lines))
    content = region_file(lines, {"date": day.isoformat(), "net": net,
                                  "reconciliation": {node: answer_reconcile(db)}}, node)
    return {**content, "cleared": store.run_summary(day.isoformat()) is not None,
            "unsent": day.isoformat() in store.unsent_days(node)}


def write_files(world: World, day: dt.date, settlement: dict[str, Any]) -> list[str]:
    """Write ``<home>/settlement/<day>/<node>.json`` (sorted keys; written whole, then renamed)."""
    folder = world.paths.home / SETTLEMENT_DIR / day.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for node, content in files_for(world, day, settlement).items():
        path = folder / f"{node}.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(content, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        written.append(str(path.relative_to(world.paths.home)))
    return written


def record(world: World, day: dt.date, settlement: dict[str, Any], result: dict[str, Any], *,
           now: dt.datetime, operator: str | None = None) -> bool:
    """The hub records the day's settlement once; False if it had (nothing written). ``operator``: who started
    the run (in the message's payload; the CLI's run names none)."""
    key = settlement_key(day)
    with UnitOfWork(world.hub()) as hub:
        store = hub.get(ClearingRepository)
        if store.settlement_of(day.isoformat()) is not None:
            return False
        dumps = _dumps
        store.record_settlement({
            "day": day.isoformat(), "idempotency_key": key, "matrix": dumps(settlement["matrix"]),
            "net": dumps(settlement["net"]), "parties": dumps(settlement["operators"]), "result": dumps(result),
            "recorded_at": timestamp(now)}, {
            "idempotency_key": key, "kind": SETTLEMENT_KIND, "from_node": "hub", "to_node": "hub",
            "received_at": now.isoformat(), "payload": dumps({"date": day.isoformat(), "net": settlement["net"],
                                                      **({"operator": operator} if operator else {})}),
            "result": dumps({"recorded": True})})
        hub.finish()
    return True


def recorded_settlement(world: World, day: dt.date) -> dict[str, Any] | None:
    """The settlement the hub recorded for ``day`` (matrix, net, operators), or None."""
    row = UnitOfWork(world.hub()).get(ClearingRepository).settlement_of(day.isoformat())
    if row is None:
        return None
    return {"matrix": json.loads(row["matrix"]), "net": json.loads(row["net"]), "operators": json.loads(row["parties"])}


def _line_json(line: settlement_rules.Line) -> dict[str, Any]:
    return {"kind": line.kind, "payer": line.payer, "payee": line.payee, "party": line.party, "count": line.count,
            "amount_fen": line.amount_fen}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
