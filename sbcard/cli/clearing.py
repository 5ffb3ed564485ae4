"""``sbcard clearing run | report`` and ``sbcard settlement show``: the day's clearing and settlement.

The work is ``sbcard.services.clearing.purse_records`` (lines, ledgers, routing through the hub) and
``sbcard.services.clearing.settlement`` (the matrix, nets, files, the purse float's reconciliation).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import alert, caution, emit_json, fields, money, number, table
from sbcard.clock import BEIJING
from sbcard.store.world import REGION_NODES

NODES = tuple(REGION_NODES)


def _date_option(fn):
    return click.option("--date", "date_text", default=None, metavar="YYYY-MM-DD",
                        help="The clearing date (default: today, Beijing time).")(fn)


def _day(app: AppContext, date_text: str | None) -> dt.date:
    from sbcard.services.clearing.purse_records import parse_day

    if date_text is None:
        return app.clock.now().astimezone(BEIJING).date()
    return parse_day(date_text)


@click.group("clearing")
def clearing() -> None:
    """清分: the day's clearing of purse purchases and medical claims between the regions."""


@clearing.command("run")
@_date_option
@with_app
def run_command(app: AppContext, date_text: str | None) -> None:
    """Clear DATE once: route records that waited for their issuer, lines per issuer/operator and
    insured region/hospital, the ledgers, the hub's settlement and the settlement files.

    A second run of the same date changes nothing and says so.
    """
    from sbcard.services.clearing import purse_records as service
    from sbcard.store.world import open_world

    day = _day(app, date_text)
    with open_world(app.home, app.clock) as world:
        result = service.run_clearing(world, day, now=app.clock.now()).to_dict()
    if app.json:
        emit_json(result)
        return
    click.echo(result["message"])
    if result["routed"]:
        click.echo("routed: " + ", ".join(f"{node} → {issuer}: {number(n)}" for node, per in result["routed"].items()
                                          for issuer, n in per.items()))
    click.echo(table([(node, r["status"], number(r["transit"]["count"]), money(r["transit"]["amount_fen"]),
                       number(r["medical"]["count"]), money(r["medical"]["amount_fen"]), number(r["gaps"]))
                      for node, r in result["regions"].items()],
                     ["region", "status", "purchases", "amount", "claims", "owed", "gaps"]))
    _print_lines(result["lines"])
    if result["undelivered"]:
        click.echo(caution(f"{number(result['undelivered'])} line(s) wait for their payee's region (link down)"))
    _print_purse_cases(result)
    _print_matrix(result["settlement"])
    if result["files"]:
        click.echo("files: " + ", ".join(result["files"]))


@clearing.command("report")
@_date_option
@with_app
def report_command(app: AppContext, date_text: str | None) -> None:
    """DATE's clearing: per issuer/operator accepted, flagged and rejected records with the reasons
    (forged TAC, unknown card, counter repeat…), duplicates, counter gaps, medical lines."""
    from sbcard.services.clearing import purse_records as service
    from sbcard.store.world import open_world

    day = _day(app, date_text)
    with open_world(app.home, app.clock) as world:
        data = service.report(world, day)
    if app.json:
        emit_json(data)
        return
    t = data["totals"]
    click.echo(fields([
        ("date", data["date"]), ("cleared", "yes" if data["run"] else "not yet"),
        ("accepted", f"{number(t['accepted'])} ({money(t['accepted_fen'])}), {number(t['flagged'])} flagged"),
        ("rejected", number(t["rejected"])), ("duplicates", number(t["duplicates"])),
        ("counter gaps", number(t["gaps"])),
        ("medical", f"{number(t['medical_claims'])} claim(s), {money(t['medical_fen'])}"),
    ]))
    if data["transit"]:
        click.echo(table([(e["issuer"], e["operator_node"], e["operator"], number(e["accepted"]),
                           money(e["amount_fen"]),
                           _counts(e["flags"]) or (number(e["flagged"]) if e["flagged"] else ""),
                           number(e["rejected"]) if e["rejected"] else "", _counts(e["reasons"]))
                          for e in data["transit"]],
                         ["issuer", "op. region", "operator", "accepted", "amount", "flagged", "rejected", "reasons"]))
    if data["rejected"]:
        click.echo(caution("rejected:"))
        click.echo(table([(r["card_number"] or r["app_serial"], r["counter"], r["terminal"],
                           money(r["amount_fen"]), r["category"], r["reason"]) for r in data["rejected"]],
                         ["card", "counter", "terminal", "amount", "category", "reason"]))
    if data["flagged"]:
        click.echo(caution("flagged:"))
        click.echo(table([(r["card_number"], r["counter"], r["operator"], money(r["amount_fen"]),
                           ",".join(r["categories"]), r["reason"]) for r in data["flagged"]],
                         ["card", "counter", "operator", "amount", "flags", "reason"]))
    if data["gaps"]:
        click.echo(caution("counter gaps:"))
        click.echo(table([(g["card_number"], g["issuer"], ",".join(map(str, g["missing"])), g["highest_cleared"])
                          for g in data["gaps"]], ["card", "issuer", "missing", "highest cleared"]))
    _print_purse_cases(data)
    _print_lines(data["medical"])
    waiting = {n: c for n, c in data["awaiting"].items() if c}
    if waiting:
        click.echo("awaiting their issuer: " + ", ".join(f"{n}: {number(c)}" for n, c in waiting.items()))


@click.group("settlement")
def settlement() -> None:
    """结算: net positions between the regions and the purse float's reconciliation."""


@settlement.command("show")
@_date_option
@with_app
def show_command(app: AppContext, date_text: str | None) -> None:
    """DATE's settlement: the matrix payer → payee, each region's net (sums to zero), per
    operator/hospital, and per issuer the purse float reconciled with its cards' balances."""
    from sbcard.services.clearing import settlement as service
    from sbcard.store.world import open_world

    day = _day(app, date_text)
    with open_world(app.home, app.clock) as world:
        data = service.day_settlement(world, day)
    if app.json:
        emit_json(data)
        return
    click.echo(f"settlement of {data['date']}")
    _print_matrix(data)
    if data["operators"]:
        click.echo(table([(party, p["kind"], p["node"], number(p["count"]), money(p["amount_fen"]),
                           ", ".join(f"{k} {money(v)}" for k, v in p["from"].items()))
                          for party, p in data["operators"].items()],
                         ["operator / hospital", "kind", "region", "count", "amount", "from"]))
    click.echo(table([(node, money(r["float_fen"]), money(r["cards_fen"]), money(r["uncleared_fen"]),
                       money(r["pending_loads_fen"]), money(r["refunded_fen"]), "ok" if r["ok"] else
                       alert(f"OFF by {money(r['difference_fen'])}")) for node, r in data["reconciliation"].items()],
                     ["issuer", "float", "cards", "uncleared", "pending loads", "refunded", "reconciled"]))


def _print_purse_cases(data: dict[str, Any]) -> None:
    """Reversed loads the cards had credited (taken back), and cards blocked with the float they leave."""
    if data.get("corrections"):
        click.echo(caution("credited reversals taken back (restored card images):"))
        click.echo(table([(c["card_number"], c["load_id"], money(c["amount_fen"]), money(c["taken_fen"]),
                           money(c["short_fen"]), c["proof"]) for c in data["corrections"]],
                         ["card", "load", "amount", "taken back", "short", "proof"]))
    if data.get("blocks"):
        click.echo(caution("cards blocked (blacklisted):"))
        click.echo(table([(b["card_number"], b["rule"], number(b["evidence_count"]), money(b["float_fen"]),
                           money(b["overspent_fen"])) for b in data["blocks"]],
                         ["card", "rule", "evidence", "float no purse backs", "overspent"]))


def _counts(d: dict[str, int]) -> str:
    return ", ".join(f"{k} {number(v)}" for k, v in d.items())


def _print_lines(lines: list[dict[str, Any]]) -> None:
    if lines:
        click.echo(table([(x["kind"], x["payer"], x["payee"], x["party"], number(x["count"]), money(x["amount_fen"]))
                          for x in lines], ["kind", "payer", "payee", "party", "count", "amount"]))


def _print_matrix(data: dict[str, Any]) -> None:
    matrix, net = data["matrix"], data["net"]
    click.echo(table([(payer, *(money(matrix[payer][payee]) for payee in NODES), money(net[payer]))
                      for payer in NODES], ["payer \\ payee", *NODES, "net"]))
