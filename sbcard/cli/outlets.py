"""``sbcard outlet …``: the service outlets and their blank card stock."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import caution, emit_json, fields, number, table, warn
from sbcard.cli.params import Whole
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.outlets import KINDS
from sbcard.domain.regions import node_of, validate_region_code
from sbcard.store.world import REGION_NODES, open_world


@click.group()
def outlet() -> None:
    """Service outlets and their blank card stock."""


@outlet.command("list")
@click.option("--region", default=None, metavar="NNNNNN", help="Only this province, prefecture or district.")
@click.option("--kind", type=click.Choice(list(KINDS)), default=None, help="Only outlets of this kind.")
@with_app
def list_command(app: AppContext, region: str | None, kind: str | None) -> None:
    """Outlets with their kind and the blanks they hold."""
    from sbcard.services.outlets.stock import outlets_with_stock

    area = _area(region) if region else None
    nodes = [node_of(area)] if area else list(REGION_NODES)
    with open_world(app.home, app.clock) as world:
        items = [o for node in nodes for o in outlets_with_stock(world.region(node), area=area)
                 if kind is None or o["kind"] == kind]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No outlets.")
        return
    rows = [(o["code"], o["kind"], caution(f"{number(o['stock'])} (low)") if o["low"] else number(o["stock"]),
             o["name"]) for o in items]
    click.echo(table(rows, ["outlet", "kind", "stock", "name"]))


@outlet.group("stock")
def stock_group() -> None:
    """An outlet's blank cards: receive a delivery, show what is there, write off a spoiled one."""


@stock_group.command("receive")
@click.argument("code", metavar="CODE")
@click.option("--count", required=True, type=Whole(), help="How many blanks arrived (1–1000).")
@click.option("--operator", required=True, help="The member of staff receiving them.")
@with_app
def receive_command(app: AppContext, code: str, count: int, operator: str) -> None:
    """Take delivery of --count blank cards at outlet CODE (virtual card files under cards/stock/)."""
    from sbcard.services.outlets.stock import receive_stock, stock_of
    from terminals.emulator.blank import create_blank

    with _outlet_is_code(), open_world(app.home, app.clock) as world:
        db = world.region(_node_of_outlet(code))
        data = receive_stock(db, outlet=code, count=count, operator=operator, now=app.clock.now(),
                             cards_dir=world.paths.cards_dir, make_blank=create_blank)
        level = stock_of(db, data["outlet"])
    _warn_if_low(level)
    if app.json:
        emit_json(data)
        return
    click.echo(f"Received {number(data['received'])} blanks at {data['outlet']}: {number(data['in_stock'])} in stock")
    click.echo(fields([("first", data["paths"][0]), ("last", data["paths"][-1])]))


@stock_group.command("show")
@click.argument("code", metavar="CODE")
@with_app
def show_command(app: AppContext, code: str) -> None:
    """Outlet CODE's blanks: counts by status and each blank's card file."""
    from sbcard.services.outlets.stock import blanks, stock_of

    with _outlet_is_code(), open_world(app.home, app.clock) as world:
        db = world.region(_node_of_outlet(code))
        level = stock_of(db, code)
        items = blanks(db, level["outlet"])
    data = {**level, "blanks": [{"chip_serial": b["chip_serial"], "path": world.paths.resolve(b["path"]), "status": b["status"],
                                 "received_at": b["received_at"], "used_for": b["used_for"]} for b in items]}
    _warn_if_low(level)
    if app.json:
        emit_json(data)
        return
    click.echo(fields([("outlet", data["outlet"]), ("in stock", number(data["in_stock"])),
                       ("used", number(data["used"])), ("spoiled", number(data["spoiled"])),
                       ("low at", number(data["low_stock"]))]))
    if items:
        click.echo(table([(b["chip_serial"], b["status"], b["used_for"] or "", b["path"]) for b in data["blanks"]],
                         ["chip serial", "status", "card", "file"]))


@stock_group.command("spoil")
@click.argument("code", metavar="CODE")
@click.argument("chip_serial", metavar="CHIP_SERIAL")
@click.option("--operator", required=True, help="The member of staff writing it off.")
@click.option("--reason", required=True, help="Why it cannot be used (damaged, lost…).")
@with_app
def spoil_command(app: AppContext, code: str, chip_serial: str, operator: str, reason: str) -> None:
    """Write off blank CHIP_SERIAL of outlet CODE: it leaves the stock."""
    from sbcard.services.outlets.stock import spoil_blank, stock_of

    with _outlet_is_code(), open_world(app.home, app.clock) as world:
        db = world.region(_node_of_outlet(code))
        row = spoil_blank(db, outlet=code, chip_serial=chip_serial, operator=operator, reason=reason,
                          now=app.clock.now())
        level = stock_of(db, row["outlet"])
    _warn_if_low(level)
    data = {"outlet": row["outlet"], "chip_serial": row["chip_serial"], "status": row["status"],
            "in_stock": level["in_stock"]}
    if app.json:
        emit_json(data)
        return
    click.echo(f"Blank {data['chip_serial']} written off at {data['outlet']}: {number(data['in_stock'])} left in stock")


def _warn_if_low(level: dict[str, Any]) -> None:
    if level["low"]:
        warn(f"{level['outlet']} has {number(level['in_stock'])} blanks left (low at {number(level['low_stock'])}): "
             "order more")


def _node_of_outlet(code: str) -> str:
    from sbcard.services.exchange.lookup import node_of_outlet

    return node_of_outlet(code)


@contextmanager
def _outlet_is_code() -> Iterator[None]:
    """Here the outlet is the CODE argument: errors about "--outlet" name it so."""
    try:
        yield
    except SbcardError as e:
        if e.field != "--outlet":
            raise
        raise type(e)(e.code, e.message, "CODE") from None


def _area(region: str) -> str:
    try:
        code = validate_region_code(region)
        node_of(code)
    except SbcardError as e:
        raise InvalidInput(e.code, e.message, "--region") from None
    return code
