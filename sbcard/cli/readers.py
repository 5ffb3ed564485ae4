"""``sbcard reader list | read | serve``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from sbcard.chip.reader import Reader
from sbcard.cli.context import AppContext, handle_errors, with_app
from sbcard.cli.output import caution, emit_json, fields, money, named_region, table, when
from sbcard.cli.params import Whole
from sbcard.domain.errors import InvalidInput


def reader_option(fn):
    return click.option(
        "--reader",
        "reader_spec",
        required=True,
        metavar="SPEC",
        help="emulator:PATH[?tear=N] (a virtual card file), pcsc:NAME or pcsc: (first reader with a card).",
    )(fn)


def trace_option(fn):
    return click.option("--trace", is_flag=True, help="Print every APDU and response as hex on stderr.")(fn)


def card_reader_options(
    help: str = "The reader with the card (default: the card's virtual file, when it has one).",
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """An optional ``--reader`` (by default the card's own virtual file) and ``--trace``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return click.option("--reader", "reader_spec", default=None, metavar="SPEC", help=help)(trace_option(fn))

    return decorate


def open_reader_for(spec: str, trace: bool):
    from terminals.drivers.spec import open_reader

    return open_reader(spec, trace=(lambda line: click.echo(line, err=True)) if trace else None)


@contextmanager
def reader_for(spec: str, trace: bool) -> Iterator[Reader]:
    """The reader ``spec`` names, closed when the block ends (``--trace``: its APDUs on stderr)."""
    reader = open_reader_for(spec, trace)
    try:
        yield reader
    finally:
        reader.close()


@contextmanager
def reader_session(spec: str, trace: bool) -> Iterator[Reader]:
    """The reader of ``spec`` (with ``trace``, its APDUs on stderr), closed on leaving the block."""
    reader = open_reader_for(spec, trace)
    try:
        yield reader
    finally:
        reader.close()


@click.group()
def reader() -> None:
    """Card readers: list them, read a card, serve a virtual card to PC/SC."""


@reader.command("list")
@with_app
def list_command(app: AppContext) -> None:
    """PC/SC readers (if pcscd runs) and the world's virtual cards."""
    from terminals.drivers.spec import list_readers

    items = list_readers(app.home / "cards")
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No readers and no virtual cards.")
        return
    rows = [(i["spec"] or i["name"], i["driver"], "yes" if i["card_present"] else "no", i["atr_hex"] or i["error"] or "")
            for i in items]
    click.echo(table(rows, ["reader", "driver", "card", "ATR / note"]))


@reader.command("read")
@reader_option
@click.option("--show-personal", is_flag=True, help="Show the citizen ID and name in full (audited).")
@click.option("--operator", default=None, help="Who asks to see personal data (required with --show-personal).")
@trace_option
@with_app
def read_command(app: AppContext, reader_spec: str, show_personal: bool, operator: str | None, trace: bool) -> None:
    """Read a card: ATR, card number, 卡识别码, holder (masked), dates, balance, last transactions."""
    from sbcard.chip.reading import read_card
    from sbcard.services.outlets.audit import record_personal_data_shown

    with reader_session(reader_spec, trace) as rdr:
        snapshot = read_card(rdr)
    if show_personal and snapshot.card_number:
        record_personal_data_shown(app.home, app.clock, operator, snapshot, command="reader read")
    data = snapshot.to_json(show_personal=show_personal)
    if app.json:
        emit_json(data)
        return
    click.echo(_render_snapshot(data))


def _render_snapshot(data: dict) -> str:
    pairs = [("ATR", data["atr"]), ("chip serial", data.get("chip_serial")), ("state", data.get("life_state"))]
    if data.get("card_number"):
        pairs += [
            ("card number", data["card_number"]),
            ("卡识别码", data.get("card_id_code")),
            ("issuing region", named_region(data.get("region")) if data.get("region") else None),
            ("card version", data.get("spec_version")),
            ("holder", data.get("name")),
            ("citizen ID", data.get("citizen_id")),
            ("issued", data.get("issue_date")),
            ("valid until", data.get("expiry_date")),
            ("purse balance", money(data["balance_fen"]) if data.get("balance_fen") is not None else None),
        ]
    out = fields(pairs)
    txns = data.get("transactions") or []
    if txns:
        rows = [(t["counter"], t["type"], money(t["amount_fen"]), t["terminal"], when(t["at"])) for t in txns]
        out += "\n\nLast transactions\n" + table(rows, ["counter", "type", "amount", "terminal", "at"])
    for warning in data.get("warnings") or []:
        out += "\n" + caution(f"warning: {warning}")
    return out


@reader.command("serve")
@click.option("--card", "card_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The virtual card file to serve.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Where vsmartcard-vpcd listens.")
@click.option("--port", type=Whole(1, 65535), default=35963, show_default=True,
              help="35963 is \"Virtual PCD 00 00\", 35964 \"Virtual PCD 00 01\".")
@click.option("--tear", type=Whole(1), default=None,
              help="Fault: tear the card at its N-th persistent write (once; the re-inserted card has no fault).")
@handle_errors
def serve_command(card_path: Path, host: str, port: int, tear: int | None) -> None:
    """Serve a virtual card to pcscd through vsmartcard-vpcd until interrupted (Ctrl-C or SIGTERM)."""
    import signal
    import threading

    from terminals.drivers.vpcd import serve
    from terminals.emulator.card import VirtualCard
    from terminals.emulator.faults import Faults

    try:
        VirtualCard.load(card_path)  # refuse a missing or non-card file before connecting
    except (FileNotFoundError, ValueError) as exc:
        raise InvalidInput("card.unreadable", str(exc), "--card") from None
    faults = Faults(tear_at_write=tear) if tear else None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        serve(card_path, host=host, port=port, stop=stop, faults=faults,
              log=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        pass
    click.echo("stopped", err=True)
