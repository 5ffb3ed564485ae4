"""``sbcard card …``: blank cards now; the card's life arrives with issuance."""

from __future__ import annotations

from pathlib import Path

import click

from sbcard.cli.context import AppContext, handle_errors, json_option, pass_app
from sbcard.cli.output import emit_json, fields
from sbcard.domain.errors import InvalidInput


@click.group()
def card() -> None:
    """Cards: blank stock, issuance and the card's life."""


@card.command("blank")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the virtual card file.")
@click.option("--serial", default=None, metavar="HEX16", help="Chip serial (8 bytes hex; default random).")
@json_option
@pass_app
@handle_errors
def blank_command(app: AppContext, out: Path, serial: str | None) -> None:
    """Make a blank virtual card: only a chip serial and a transport key."""
    from terminals.emulator.blank import create_blank
    from terminals.emulator.card import VirtualCard

    chip_serial = _parse_serial(serial) if serial else None
    if out.exists():
        raise InvalidInput("card.exists", f"{out} already exists; a blank is never written over a card", "--out")
    out.parent.mkdir(parents=True, exist_ok=True)
    create_blank(out, chip_serial=chip_serial)
    vc = VirtualCard.load(out)
    atr = vc.power_on()
    data = {"path": str(out), "chip_serial": vc.chip_serial.hex().upper(), "atr": atr.hex().upper(), "life_state": "blank"}
    if app.json:
        emit_json(data)
    else:
        click.echo(fields([("blank card", data["path"]), ("chip serial", data["chip_serial"]), ("ATR", data["atr"])]))


def _parse_serial(text: str) -> bytes:
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise InvalidInput("chip_serial.not_hex", f"{text!r} is not hexadecimal", "--serial") from None
    if len(raw) != 8:
        raise InvalidInput("chip_serial.length", f"{len(raw)} bytes, a chip serial has 8", "--serial")
    return raw
