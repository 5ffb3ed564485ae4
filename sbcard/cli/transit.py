"""``sbcard transit …``: fares, concessions, loads, taps, uploads (一卡通乘).

This module holds the group, the fare quote and the concession commands; taps and the
terminal's log (``transit_taps``) and loads and uploads (``transit_purse``) register their
commands onto the same group.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import click

from sbcard.cli.context import AppContext, handle_errors, json_option, pass_app
from sbcard.cli.output import caution, emit_json, fields, money, named_region, table, when
from sbcard.cli.params import Whole
from sbcard.cli.readers import reader_for, trace_option
from sbcard.domain import fares
from sbcard.domain.errors import InvalidInput
from sbcard.domain.money import parse_yuan


@click.group()
def transit() -> None:
    """Transit: fare quotes, concessions, purse loads, validator taps and uploads."""


# ----------------------------------------------------------------------------- fare


@transit.command("fare")
@click.option("--operator", "operator_code", required=True, type=click.Choice(fares.OPERATORS),
              help="The operator whose rules apply.")
@click.option("--km", default=None, metavar="K", help="Distance ridden in km (Beijing subway and bus).")
@click.option("--from", "origin", default=None, metavar="STATION",
              help="Entry station, by name or code (bj-subway, tj-metro): the route gives the distance.")
@click.option("--to", "destination", default=None, metavar="STATION", help="Exit station, by name or code.")
@click.option("--sections", type=Whole(), default=None, metavar="N",
              help="Sections (区间) ridden on the Tianjin metro, instead of --from/--to.")
@click.option("--line", default=None, metavar="LINE",
              help="A bus line of the fixtures: its area (bj-bus) or full fare and kind (flat-fare lines).")
@click.option("--area", type=click.Choice(fares.AREAS), default=None,
              help="Beijing bus: city (市域内, the default) or suburb (市域外, beyond Beijing's territory).")
@click.option("--holder-id", default=None, metavar="CITIZEN_ID",
              help="The holder's citizen ID: their age on the day of travel (the elderly concessions' ages).")
@click.option("--card-region", default=None, metavar="NNNNNN",
              help="The card's issuing region (its 卡识别码's first 6 digits): what a same-treatment switch looks at.")
@click.option("--date", "day_text", default=None, metavar="YYYY-MM-DD", help="The day of travel (default: today).")
@click.option("--concession", type=click.Choice(fares.CONCESSIONS), default=None,
              help="What the card carries for this operator's region: a student ticket, or that region's elderly "
                   "concession (Beijing's elderly free bus, Tianjin's free-ride function).")
@click.option("--full-fare", "full_fare", default=None, metavar="YUAN",
              help="A flat-fare line's full fare (Tianjin and Hebei buses).")
@json_option
@pass_app
@handle_errors
def fare_command(app: AppContext, operator_code: str, km: str | None, origin: str | None, destination: str | None,
                 sections: int | None, line: str | None, area: str | None, holder_id: str | None,
                 card_region: str | None, day_text: str | None, concession: str | None,
                 full_fare: str | None) -> None:
    """A fare quote from the operators' rules, for staff and riders (no card, no world needed).

    The answer names its sources and their confidence (``--json``: "source", "confidence",
    "illustrative"); a figure that is the project's own is said to be illustrative.
    """
    from sbcard.domain.citizen_id import CitizenId
    from sbcard.domain.regions import validate_region_code
    from sbcard.reference.transit import load_tariff

    day = _date(day_text, "--date") if day_text else app.clock.now().date()
    birth = None
    age = None
    if holder_id is not None:
        try:
            citizen = CitizenId.parse(holder_id)
        except InvalidInput as e:
            raise InvalidInput(e.code, e.message, "--holder-id") from None
        birth = citizen.birth_date
        age = fares.age_on(birth, day)
    if card_region is not None:
        try:
            card_region = validate_region_code(card_region)
        except InvalidInput as e:
            raise InvalidInput(e.code, e.message, "--card-region") from None
        if card_region[:2] not in ("11", "12", "13"):
            raise InvalidInput("fare.card_region", f"{card_region} is not in Beijing (11…), Tianjin (12…) or Hebei "
                               "(13…): cards of other regions are not issued here", "--card-region")
    tariff = load_tariff()
    fare, route = tariff.quote(
        operator_code,
        km=fares.to_km(km) if km is not None else None,
        sections=sections, origin=origin, destination=destination, line=line, area=area,
        full_fare_fen=parse_yuan(full_fare, "--full-fare") if full_fare is not None else None,
        holder_birth_date=birth, day=day, concession=concession, card_region=card_region,
    )
    data: dict[str, Any] = {
        **fare.to_json(),
        "operator": operator_code,
        "date": day.isoformat(),
        "age": age,
        "card_region": card_region,
        "route": route.to_json(tariff.network(operator_code)) if route else None,
    }
    if app.json:
        emit_json(data)
        return
    pairs = [("fare", money(fare.fare_fen)), ("full fare", money(fare.full_fare_fen)),
             ("rule", fare.rule), ("why", fare.description), ("date", data["date"])]
    if route is not None:
        net = tariff.network(operator_code)
        pairs.append(("route", f"{net.stations[route.from_code].name} → {net.stations[route.to_code].name} via "
                               f"{' / '.join(route.lines)}: {route.km} km, {route.sections} sections"))
    pairs.append(("source", fare.provenance.text()))
    click.echo(fields(pairs))
    if fare.illustrative:
        click.echo(caution("illustrative: this answer rests on a figure of the project's own (an estimated "
                           "distance, a line's fare or an unconfirmed rule), not only on published rules "
                           "(fixtures/transit/README.md)"))


# ----------------------------------------------------------------------------- concessions


@transit.group("concession")
def concession() -> None:
    """Concessions on the card (T-Union EF 0017): Beijing's and Tianjin's elderly ones, student tickets."""


CARD = click.argument("card_number", metavar="CARD")


def _reader_option(fn):
    return click.option("--reader", "reader_spec", default=None, metavar="SPEC",
                        help="The reader with the card (default: the card's virtual file, when it has one).")(fn)


def _staff_options(fn):
    fn = click.option("--outlet", default=None, metavar="CODE", help="The outlet where it is done.")(fn)
    return click.option("--operator", required=True, help="The counter operator (of the card's issuing region).")(fn)


@concession.command("enable")
@CARD
@click.option("--kind", required=True, type=click.Choice(["elderly", "student"]),
              help="elderly: the card's region's elderly concession (Beijing cards: the free bus from 60, Beijing "
                   "户籍 or 居住证; Tianjin cards: the free ride from a month before 65); student: a student ticket.")
@click.option("--until", "until_text", default=None, metavar="YYYY-MM-DD",
              help="A student ticket's last day (at most one year ahead).")
@_reader_option
@_staff_options
@trace_option
@json_option
@pass_app
@handle_errors
def concession_enable_command(app: AppContext, card_number: str, kind: str, until_text: str | None,
                              reader_spec: str | None, operator: str, outlet: str | None, trace: bool) -> None:
    """Enable a concession on the card: the host record, and EF 0017 written on the chip.

    Enabling an elderly concession locks it on the holder's other card (one card per
    person); the hub publishes the revocation so terminals charge that card the full fare.
    The rules are data: fixtures/transit/concessions.csv.
    """
    from sbcard.services.cards import concessions
    from sbcard.store.world import open_world
    from terminals.apps import counter

    until = _date(until_text, "--until") if until_text else None
    now = app.clock.now()
    with open_world(app.home) as world:
        with concessions.enable(world, card_number=card_number, kind=kind, until=until, operator=operator,
                                outlet=outlet, now=now) as order:
            with reader_for(_spec_of(reader_spec, order.virtual_path), trace) as reader:
                order.check_card(counter.read_back(reader))
                before = counter.read_concession(reader)
                counter.write_concession(reader, order.keys, order.data0017)
            done = order.record(before)
    if app.json:
        emit_json(done)
        return
    pairs = [("card", done["card_number"]), ("concession", f"{done['kind']} ({done['status']})"),
             ("region", named_region(done["region"])), ("from", done["start"]), ("until", done["end"] or "no end")]
    if done["locked_cards"]:
        pairs.append(("locked on", ", ".join(done["locked_cards"]) + " (terminals charge the full fare)"))
    pairs.append(("by", done["operator"] + (f" at {done['outlet']}" if done["outlet"] else "")))
    click.echo(fields(pairs))


@concession.command("show")
@CARD
@_reader_option
@trace_option
@json_option
@pass_app
@handle_errors
def concession_show_command(app: AppContext, card_number: str, reader_spec: str | None, trace: bool) -> None:
    """The card's concessions: host records, what EF 0017 should hold, revocations; with --reader, the chip's."""
    from sbcard.services.cards import concessions
    from sbcard.store.world import open_world
    from terminals.apps import counter

    now = app.clock.now()
    with open_world(app.home) as world:
        on_card = None
        if reader_spec is not None:
            with reader_for(reader_spec, trace) as reader:
                snapshot = counter.read_back(reader)
                if snapshot.card_number != card_number.strip().upper():
                    raise InvalidInput("card.wrong_card", f"the card in the reader is "
                                       f"{snapshot.card_number or 'not a personalised card'}, not {card_number}",
                                       "--reader")
                on_card = counter.read_concession(reader)
        data = concessions.show(world, card_number=card_number, now=now, on_card=on_card)
    if app.json:
        emit_json(data)
        return
    out = fields([("card", data["card_number"]), ("holder", data["citizen_id"]), ("age", data["age"]),
                  ("elderly concession from", data["elderly_free_ride_from"] or "none for this card's region"),
                  ("EF 0017 should hold", _concession_text(data["expected_0017"]))]
                 + ([("EF 0017 holds", _concession_text(data["card_0017"]) + ("" if data["in_sync"] else "  " + caution(
                     "(differs: run `sbcard transit concession sync`)")))] if "card_0017" in data else []))
    if data["concessions"]:
        rows = [(c["kind"], c["status"], c["start"], c["end"] or "", when(c["at"]))
                for c in data["concessions"]]
        out += "\n\n" + table(rows, ["kind", "status", "from", "until", "at"])
    for r in data["revocations"]:
        out += "\n" + caution(f"revoked at the hub: {r['kind']} (blacklist version {r['version']}): {r['reason']}")
    click.echo(out)


@concession.command("sync")
@CARD
@_reader_option
@_staff_options
@trace_option
@json_option
@pass_app
@handle_errors
def concession_sync_command(app: AppContext, card_number: str, reader_spec: str | None, operator: str,
                            outlet: str | None, trace: bool) -> None:
    """At a counter: bring the card's EF 0017 in line with the host (a free ride moved away: locked)."""
    from sbcard.services.cards import concessions
    from sbcard.store.world import open_world
    from terminals.apps import counter

    now = app.clock.now()
    with open_world(app.home) as world:
        with concessions.sync_card(world, card_number=card_number, operator=operator, outlet=outlet,
                                   now=now) as order:
            with reader_for(_spec_of(reader_spec, order.virtual_path), trace) as reader:
                order.check_card(counter.read_back(reader))
                before = counter.read_concession(reader)
                written = order.needs_write(before)
                if written:
                    counter.write_concession(reader, order.keys, order.data0017)
            done = order.record(before if written else None)
    if app.json:
        emit_json(done)
        return
    state = _concession_text(done["card_0017"])
    click.echo(f"Card {done['card_number']}: EF 0017 " + (f"written: {state}." if done["written"]
                                                          else f"already right: {state}."))


# ----------------------------------------------------------------------------- helpers


def _date(text: str, field: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput("date.format", f"{text!r} is not a date (YYYY-MM-DD)", field) from None


def _spec_of(reader_spec: str | None, virtual_path: str | None) -> str:
    if reader_spec:
        return reader_spec
    if virtual_path:
        return f"emulator:{virtual_path}"
    raise InvalidInput("reader.missing", "the card has no virtual file: say which reader holds it", "--reader")


def _concession_text(c: dict[str, Any] | None) -> str:
    if not c:
        return "no concession"
    return (f"{c['kind']} {c['status']} in {named_region(c['region'])} from {c['start']}"
            + (f" until {c['end']}" if c["end"] else ""))
