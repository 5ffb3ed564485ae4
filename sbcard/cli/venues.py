"""``sbcard venue …`` and ``sbcard library …``: museums, scenic spots and libraries (一卡通游 · 览 · 阅).

The composition root of a venue's gate: the venue's rules from ``fixtures/venues``
(``sbcard.reference.venues``), its gate terminal (``terminals.apps.venue.VenueGate``, its
directory made like a validator's by ``sbcard.cli.terminals``), and the venue region's
host behind it (``sbcard.services.venues.gates.GateHost``: visits, library loans and fines).

A venue's first ``enter`` (or a library's first desk operation) installs its gate when it
has none; ``venue gate add`` adds more (choose one with ``--terminal``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from sbcard.cli.context import EXIT_REFUSED, AppContext, handle_errors, json_option, pass_app, with_app
from sbcard.cli.output import alert, caution, emit_json, fields, money, named_region, number, refusal, table, when
from sbcard.cli.params import Whole
from sbcard.cli.readers import reader_option, reader_session, trace_option
from sbcard.cli.terminals import install_terminal, open_terminal_state, terminal_dir
from sbcard.domain.errors import RuleRefused
from sbcard.domain.venues import KINDS, days_text

TERMINAL = click.option("--terminal", "terminal_id", default=None, metavar="ID",
                        help="Which of the venue's gates (default: its first; one is added when it has none).")


@click.group("venue")
def venue() -> None:
    """Museums, scenic spots and libraries: the list, entries at their gates, visits."""


@click.group("library")
def library() -> None:
    """Libraries: the card as reader's card — borrow, return (overdue fines from the purse), loans, pay."""


# ----------------------------------------------------------------------------- venue list


def rule_json(r: Any) -> dict[str, Any]:
    """One price rule of a venue (``venue list``/``venue show --json``: stable keys, README)."""
    return {
        "rule": r.rule,
        "category": r.category,
        "age_from": r.age_from,
        "age_to": r.age_to,
        "status": r.status,
        "price_fen": r.price_fen,
        "percent": r.percent,
        "starts": r.starts.isoformat() if r.starts else None,
        "ends": r.ends.isoformat() if r.ends else None,
        "description": r.describe(),
        "note": r.note or None,
        **r.provenance.to_json(),
    }


def venue_json(v: Any) -> dict[str, Any]:
    return {
        "code": v.code,
        "name": v.name,
        "region": v.region,
        "node": v.node,
        "kind": v.kind,
        "price_fen": v.price_fen,
        "off_peak_price_fen": v.off_peak_price_fen,
        "peak_months": sorted(v.peak_months),
        "open_days": sorted(v.open_days),
        "open_from": v.open_from.strftime("%H:%M"),
        "open_to": v.open_to.strftime("%H:%M"),
        "daily_limit": v.daily_limit,
        "loan_limit": v.loan_limit,
        "loan_days": v.loan_days,
        "fine_fen_per_day": v.fine_fen_per_day,
        "fine_cap_fen": v.fine_cap_fen,
        "rules": [rule_json(r) for r in v.rules],
        **v.provenance.to_json(),
        "provenance": {"price": v.price_provenance.to_json(), "rules": v.rules_provenance.to_json()},
    }


def _concessions(rules: list[dict[str, Any]]) -> str:
    return "; ".join(r["description"] + (" *" if r["illustrative"] else "") for r in rules)


ILLUSTRATIVE_NOTE = "* illustrative: the project's own figure, not the venue's published rule"


@venue.command("list")
@click.option("--region", default=None, metavar="NNNNNN", help="Only this province, prefecture or district.")
@click.option("--kind", type=click.Choice(list(KINDS)), default=None, help="Only venues of this kind.")
@with_app
def list_command(app: AppContext, region: str | None, kind: str | None) -> None:
    """The venues of the fixtures with their hours, prices and price rules (no world needed)."""
    from sbcard.reference.venues import in_region

    items = [venue_json(v) for v in in_region(region, kind)]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No venues.")
        return
    rows = []
    for i in items:
        price = "free" if not i["price_fen"] else money(i["price_fen"])
        if i["off_peak_price_fen"] is not None:
            price += f" / {money(i['off_peak_price_fen'])}"
        rows.append((i["code"], i["name"], named_region(i["region"]), i["kind"],
                     f"{days_text(frozenset(i['open_days']))} "
                     f"{i['open_from']}–{i['open_to']}", price, len(i["rules"]) or "",
                     number(i["daily_limit"]) if i["daily_limit"] else "", i["confidence"]))
    click.echo(table(rows, ["code", "name", "region", "kind", "open", "price", "rules", "per day", "confidence"]))
    if any(i["illustrative"] for i in items):
        click.echo(caution("illustrative rows hold figures of the project's own (see `venue show CODE`)"))


@venue.command("show")
@click.argument("venue_code", metavar="VENUE")
@with_app
def show_command(app: AppContext, venue_code: str) -> None:
    """One venue: hours, full price, each price rule, and where every figure comes from (no world needed)."""
    from sbcard.reference.venues import venue as find

    place = find(venue_code, "VENUE")
    data = venue_json(place)
    if app.json:
        emit_json(data)
        return
    price = "free" if not place.price_fen else money(place.price_fen)
    if place.off_peak_price_fen is not None:
        months = sorted(place.peak_months)
        price += f" (months {months[0]}–{months[-1]}), {money(place.off_peak_price_fen)} in the others"
    pairs = [("venue", f"{place.code} {place.name}"), ("region", named_region(place.region)), ("kind", place.kind),
             ("open", place.hours_text()), ("price", price), ("price source", place.price_provenance.text()),
             ("per day", number(place.daily_limit) if place.daily_limit else None)]
    if place.is_library:
        from sbcard.domain.library import LoanRules

        loans = LoanRules.of(place)
        pairs += [("loans", f"{loans.limit} items for {loans.days} days"),
                  ("overdue fine",
                   f"{money(loans.fine_fen_per_day)} an item a day, at most {money(loans.fine_cap_fen)}")]
    pairs.append(("hours, limits source", place.rules_provenance.text()))
    click.echo(fields(pairs))
    if place.rules:
        click.echo(table([(r.rule, r.describe() + (" *" if r.provenance.illustrative else ""),
                           r.provenance.confidence, ", ".join(s.id for s in r.provenance.sources))
                          for r in place.rules], ["rule", "who pays what", "confidence", "sources"]))
    if place.illustrative:
        click.echo(caution(ILLUSTRATIVE_NOTE))


# ----------------------------------------------------------------------------- gates


@venue.group("gate")
def gate() -> None:
    """A venue's gates: terminals of its region with a PSAM, like transit validators."""


@gate.command("add")
@click.argument("venue_code", metavar="VENUE")
@click.option("--durability", type=click.Choice(["normal", "full"]), default="normal", show_default=True,
              help="Offline log: normal survives a crash of the terminal; full also a power cut.")
@with_app
def gate_add_command(app: AppContext, venue_code: str, durability: str) -> None:
    """Add a gate at VENUE: its PSAM (every issuer's consumer keys), directory and blacklist copy."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import venue as find

    place = find(venue_code, "VENUE")
    with open_world(app.home, app.clock) as world:
        row = venue_gates.add_gate(world, place, now=app.clock.now(),
                                   install=install_terminal(app.home, durability))
    data = _gate_json(app, row) | {"blacklist_size": row["blacklist_size"], "durability": durability}
    if app.json:
        emit_json(data)
    else:
        click.echo(fields([("gate", data["terminal"]), ("venue", f"{place.code} {place.name}"),
                           ("terminal no", data["terminal_no"]), ("PSAM", data["psam_id"]),
                           ("blacklist version", data["blacklist_version"]), ("directory", data["path"])]))


@gate.command("list")
@click.option("--venue", "venue_code", default=None, metavar="CODE", help="Only this venue's gates.")
@with_app
def gate_list_command(app: AppContext, venue_code: str | None) -> None:
    """The venues' gates (every region)."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import venue as find

    place = find(venue_code) if venue_code else None
    with open_world(app.home, app.clock) as world:
        items = [_gate_json(app, row) for row in venue_gates.gates(world, place)]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No gates.")
        return
    click.echo(table([(i["terminal"], i["venue"], i["venue_name"], i["terminal_no"], i["blacklist_version"])
                      for i in items], ["gate", "venue", "name", "terminal no", "blacklist"]))


def _gate_json(app: AppContext, row: dict[str, Any]) -> dict[str, Any]:
    return {"terminal": row["id"], "venue": row["operator"], "venue_name": row["station"], "node": row["node"],
            "terminal_no": row["terminal_no"], "psam_id": row["psam_id"],
            "blacklist_version": row["blacklist_version"], "path": str(terminal_dir(app.home, row["id"])),
            "created_at": row["created_at"]}


def _card_first(reader_spec: str) -> None:
    """What is in the reader is read before the venue's gate is made at its first use: a file that is no card
    (or no card at all) is refused with the world unchanged."""
    with reader_session(reader_spec, False) as reader:
        reader.atr  # noqa: B018  (powers the card on: reads it)


@contextmanager
def _gate(app: AppContext, world: Any, place: Any, terminal_id: str | None) -> Iterator[Any]:
    """The venue's gate (made if it has none), open, with the venue region's host behind it."""
    from sbcard.services.venues import gates as venue_gates
    from terminals.apps.venue import VenueGate

    row = venue_gates.gate_for(world, place, terminal_id, now=app.clock.now(),
                               install=install_terminal(app.home, "normal"))
    with open_terminal_state(app.home, row["id"]) as state:
        yield VenueGate(state, state.psam(), app.clock, venue_gates.GateHost(world, place), place)


# ----------------------------------------------------------------------------- enter and visits


@venue.command("enter")
@reader_option
@click.option("--venue", "venue_code", required=True, metavar="CODE", help="The venue (see `venue list`).")
@click.option("--student", is_flag=True,
              help="The holder showed a student card (the venue's student price, where it has one).")
@click.option("--elderly-card", "elderly_card", is_flag=True,
              help="The holder showed Beijing's 北京通—养老助残卡 (60+: free at the parks that take it).")
@TERMINAL
@trace_option
@json_option
@pass_app
@handle_errors
def enter_command(app: AppContext, reader_spec: str, venue_code: str, student: bool, elderly_card: bool,
                  terminal_id: str | None, trace: bool) -> None:
    """The card at the venue's gate: admitted (the price taken from the purse) or refused.

    The price is the cheapest of the venue's rules for the holder's age on the day (from
    the card's birth date) and what the staff saw (--student, --elderly-card).
    """
    from sbcard.domain.venues import ELDERLY_CARD, STUDENT
    from sbcard.store.world import open_world
    from sbcard.reference.venues import venue as find

    shown = frozenset({STUDENT} if student else set()) | frozenset({ELDERLY_CARD} if elderly_card else set())

    place = find(venue_code)
    _card_first(reader_spec)
    with open_world(app.home, app.clock) as world, _gate(app, world, place, terminal_id) as gate_app:
        with reader_session(reader_spec, trace) as reader:
            result = gate_app.enter(reader, shown=shown)
    if app.json:
        emit_json(result.to_json())
    elif not result.ok:
        refusal(result.display)
    else:
        click.echo(result.display)
        click.echo(fields([("price", money(result.price_fen)), ("rule", result.description or result.rule),
                           ("card", result.card_number), ("entry today", result.entry_no),
                           ("source", result.provenance.text() if result.provenance else None)]))
        if result.provenance is not None and result.provenance.illustrative:
            click.echo(caution("illustrative: this price rests on a figure of the project's own, "
                               "not the venue's published rule"))
    if not result.ok:
        raise SystemExit(EXIT_REFUSED)


@venue.command("visits")
@click.option("--venue", "venue_code", default=None, metavar="CODE", help="Only this venue.")
@click.option("--card", "card_number", default=None, metavar="CARD", help="Only this card's visits.")
@click.option("--limit", type=Whole(1), default=None, metavar="N", help="Only the newest N.")
@with_app
def visits_command(app: AppContext, venue_code: str | None, card_number: str | None, limit: int | None) -> None:
    """Visits recorded by the venues' gates: admissions (free ones too) and refusals."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import venue as find

    place = find(venue_code) if venue_code else None
    with open_world(app.home, app.clock) as world:
        rows = venue_gates.visits(world, venue=place, card_number=card_number, limit=limit)
    items = [{k: r[k] for k in ("id", "venue", "venue_name", "terminal", "card_number", "app_serial", "issuer_node",
                                "day", "at", "result", "code", "reason", "price_fen", "full_price_fen", "rule",
                                "student", "age", "entry_no", "counter", "terminal_serial", "recovered")}
             for r in rows]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No visits.")
        return
    click.echo(table([(when(i["at"]), i["venue"], i["venue_name"], i["card_number"] or i["app_serial"],
                       i["result"] if i["result"] == "ok" else alert(f"refused: {i['code']}"), money(i["price_fen"]),
                       (i["rule"] or "").rsplit(".", 1)[-1], i["entry_no"] or "") for i in items],
                     ["at", "venue", "name", "card", "result", "price", "rule", "entry"]))


# ----------------------------------------------------------------------------- library


def _identify(gate_app: Any, reader: Any) -> Any:
    """The card at the desk as a reader's card; a card the gate refuses is refused here (exit 1)."""
    from terminals.apps.transit import Refused

    try:
        return gate_app.identify(reader)
    except Refused as r:
        raise RuleRefused(f"card.{r.code}", r.reason, "--reader") from None


def _recovered(gate_app: Any) -> list[dict[str, Any]]:
    return [{"purpose": r.get("purpose"), "amount_fen": r["amount_fen"], "counter": r["counter"],
             "terminal_serial": r["terminal_serial"], "how": r.get("recovered"), "at": r["at"]}
            for r in gate_app.recovered]


def _charge(gate_app: Any, reader: Any, card: Any, owed: list[dict[str, Any]], library_code: str) -> dict[str, Any]:
    """Every fine ``owed`` taken from the purse in one purchase: the payment (ok or refused)."""
    from sbcard.services.venues import gates as venue_gates
    from terminals.apps.transit import Refused

    amount = sum(f["amount_fen"] for f in owed)
    ids = [f["id"] for f in owed]
    try:
        tap = gate_app.charge(reader, card, amount, fine_ids=ids,
                              description=f"overdue fines {', '.join(map(str, ids))}")
    except Refused as r:
        return {"result": "refused", "amount_fen": amount, "fine_ids": ids, "code": r.code, "reason": r.reason,
                "balance_fen": r.balance, "counter": None, "terminal_serial": None,
                "terminal": gate_app.config.terminal_id}
    venue_gates.fines_paid(gate_app.host.world, gate_app.venue, ids, terminal=gate_app.config.terminal_id,
                           counter=tap.counter, terminal_serial=tap.terminal_serial, at=tap.at)
    return {"result": "ok", "amount_fen": amount, "fine_ids": ids, "code": None, "reason": None,
            "balance_fen": tap.balance_fen, "counter": tap.counter, "terminal_serial": tap.terminal_serial,
            "terminal": gate_app.config.terminal_id}


def _loan_rules_note(place: Any) -> None:
    """One line when the library's loan period, limit or fines are the project's own figures."""
    if place.rules_provenance.illustrative:
        click.echo(caution(f"illustrative: {place.name}'s loan rules and fines here are the project's own figures"))


def _library_options(fn):
    fn = trace_option(fn)
    fn = TERMINAL(fn)
    fn = click.option("--library", "library_code", required=True, metavar="CODE",
                      help="The library (see `venue list --kind library`).")(fn)
    return reader_option(fn)


@library.command("borrow")
@_library_options
@click.option("--item", required=True, metavar="BARCODE", help="The item's barcode.")
@with_app
def borrow_command(app: AppContext, reader_spec: str, library_code: str, terminal_id: str | None, trace: bool,
                   item: str) -> None:
    """Lend ITEM to the card's holder (registered as a reader at the first loan)."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import library as find

    place = find(library_code)
    _card_first(reader_spec)
    with open_world(app.home, app.clock) as world, _gate(app, world, place, terminal_id) as desk:
        with reader_session(reader_spec, trace) as reader:
            card = _identify(desk, reader)
        done = venue_gates.borrow(world, place, citizen_id=card.citizen_id, card_number=card.card_number, item=item,
                                  now=app.clock.now())
    done |= {"terminal": desk.config.terminal_id, "recovered": _recovered(desk), **place.rules_provenance.to_json()}
    if app.json:
        emit_json(done)
        return
    click.echo(fields([("item", done["item"]), ("library", f"{done['library']} {done['library_name']}"),
                       ("card", done["card_number"]), ("due", done["due_date"]),
                       ("on loan", f"{done['loans_open']} of {done['loan_limit']}"),
                       ("reader", "registered now" if done["registered"] else "registered")]))
    _loan_rules_note(place)


@library.command("return")
@_library_options
@click.option("--item", required=True, metavar="BARCODE", help="The item's barcode.")
@with_app
def return_command(app: AppContext, reader_spec: str, library_code: str, terminal_id: str | None, trace: bool,
                   item: str) -> None:
    """Take ITEM back; a late return's fine (with any other owed) is taken from the purse, or stays owed."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import library as find

    place = find(library_code)
    _card_first(reader_spec)
    with open_world(app.home, app.clock) as world, _gate(app, world, place, terminal_id) as desk:
        with reader_session(reader_spec, trace) as reader:
            card = _identify(desk, reader)
            done = venue_gates.return_item(world, place, citizen_id=card.citizen_id, card_number=card.card_number,
                                           item=item, now=app.clock.now())
            payment = None
            if done["fine_fen"] > 0:
                owed = venue_gates.fines_owed(world, place, card.citizen_id)
                payment = _charge(desk, reader, card, owed, place.code)
        owed_after = sum(f["amount_fen"] for f in venue_gates.fines_owed(world, place, card.citizen_id))
    done |= {"fine_status": None if not done["fine_fen"] else ("paid" if payment and payment["result"] == "ok"
                                                                 else "owed"),
             "owed_fen": owed_after, "payment": payment, "terminal": desk.config.terminal_id,
             "recovered": _recovered(desk), **place.rules_provenance.to_json()}
    done.pop("owed_fine_ids", None)
    if app.json:
        emit_json(done)
        return
    pairs = [("item", done["item"]), ("library", f"{done['library']} {done['library_name']}"),
             ("due", done["due_date"]), ("late", f"{done['overdue_days']} day(s)")]
    if done["fine_fen"]:
        pairs.append(("fine", f"{money(done['fine_fen'])} {done['fine_status']}"))
        if payment and payment["result"] != "ok":
            pairs.append(("not paid", alert(payment["reason"])))
    if done["owed_fen"]:
        pairs.append(("owed", caution(f"{money(done['owed_fen'])}: borrowing blocked until paid (`library pay`)")))
    click.echo(fields(pairs))
    _loan_rules_note(place)


@library.command("pay")
@_library_options
@with_app
def pay_command(app: AppContext, reader_spec: str, library_code: str, terminal_id: str | None, trace: bool) -> None:
    """Pay every overdue fine the card's holder owes the library, from the purse."""
    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import library as find

    place = find(library_code)
    _card_first(reader_spec)
    with open_world(app.home, app.clock) as world, _gate(app, world, place, terminal_id) as desk:
        with reader_session(reader_spec, trace) as reader:
            card = _identify(desk, reader)
            owed = venue_gates.fines_owed(world, place, card.citizen_id)
            payment = _charge(desk, reader, card, owed, place.code) if owed else None
        owed_after = sum(f["amount_fen"] for f in venue_gates.fines_owed(world, place, card.citizen_id))
    data = {
        "result": "refused" if payment and payment["result"] != "ok" else "ok",
        "library": place.code,
        "library_name": place.name,
        "card_number": card.card_number,
        "paid_fen": payment["amount_fen"] if payment and payment["result"] == "ok" else 0,
        "fine_ids": payment["fine_ids"] if payment else [],
        "owed_fen": owed_after,
        "code": payment["code"] if payment else None,
        "reason": payment["reason"] if payment else None,
        "balance_fen": payment["balance_fen"] if payment else None,
        "counter": payment["counter"] if payment else None,
        "terminal_serial": payment["terminal_serial"] if payment else None,
        "terminal": desk.config.terminal_id,
        "recovered": _recovered(desk),
        **place.rules_provenance.to_json(),
    }
    if app.json:
        emit_json(data)
    elif data["result"] != "ok":
        refusal(f"refused: {data['reason']}")
    elif not payment:
        click.echo(f"Nothing owed at {place.name}.")
    else:
        click.echo(fields([("paid", money(data["paid_fen"])), ("fines", ", ".join(map(str, data["fine_ids"]))),
                           ("purse", money(data["balance_fen"] or 0))]))
    if data["result"] != "ok":
        raise SystemExit(EXIT_REFUSED)


@library.command("loans")
@click.option("--library", "library_code", default=None, metavar="CODE", help="Only this library's loans.")
@click.option("--card", "card_number", default=None, metavar="CARD",
              help="Only the loans of the reader whose card this is (or that were borrowed with it).")
@click.option("--open", "open_only", is_flag=True, help="Only the items not returned yet.")
@with_app
def loans_command(app: AppContext, library_code: str | None, card_number: str | None, open_only: bool) -> None:
    """Loans, with their due dates, late days and fines."""
    import datetime as dt

    from sbcard.services.venues import gates as venue_gates
    from sbcard.store.world import open_world
    from sbcard.reference.venues import library as find

    place = find(library_code) if library_code else None
    today = app.clock.now().date()
    with open_world(app.home, app.clock) as world:
        rows = venue_gates.loans(world, library=place, card_number=card_number, open_only=open_only)
    items = []
    for r in rows:
        due = dt.date.fromisoformat(r["due_date"])
        items.append({"loan_id": r["id"], "library": r["library"], "library_name": r["library_name"],
                      "card_number": r["card_number"], "item": r["item"], "borrowed_at": r["borrowed_at"],
                      "due_date": r["due_date"], "returned_at": r["returned_at"],
                      "returned_with": r["returned_with"],
                      "overdue": r["returned_at"] is None and due < today,
                      "overdue_days": r["overdue_days"], "fine_fen": r["fine_fen"], "fine_id": r["fine_id"],
                      "fine_status": r["fine_status"]})
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No loans.")
        return
    click.echo(table([(i["loan_id"], i["library"], i["item"], i["card_number"], i["borrowed_at"][:10], i["due_date"],
                       (i["returned_at"] or "")[:10] or ("overdue" if i["overdue"] else "on loan"),
                       money(i["fine_fen"]) + f" {i['fine_status']}" if i["fine_fen"] else "")
                      for i in items],
                     ["loan", "library", "item", "card", "borrowed", "due", "returned", "fine"]))
