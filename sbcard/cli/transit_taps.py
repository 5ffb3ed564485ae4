"""Validator taps and the terminal's offline log.

Registered onto the ``transit`` group by ``register``:

- ``transit tap``: one tap of the card in ``--reader`` on terminal ``--terminal`` — the
  validator (``terminals.apps.transit``) with the terminal's PSAM and state, the fare
  rules of ``fixtures/transit`` and the CLI's clock. Offline: no database of the world is
  opened, as a gate on a line with no network works.
- ``transit log``: the terminal's offline log, what is still to be uploaded, a purchase
  left in flight by a tear, and the terminal's events (blocked cards…).
"""

from __future__ import annotations

import click

from sbcard.cli.context import EXIT_REFUSED, AppContext, handle_errors, json_option, pass_app
from sbcard.cli.output import caution, emit_json, fields, money, number, refusal, table, when
from sbcard.cli.readers import open_reader_for, trace_option
from sbcard.cli.terminals import open_terminal_state


def register(transit: click.Group) -> None:
    """Add this module's commands to the ``transit`` group."""
    transit.add_command(tap_command)
    transit.add_command(log_command)


@click.command("tap")
@click.option("--reader", "reader_spec", required=True, metavar="SPEC",
              help="The reader with the card: emulator:PATH[?tear=N], pcsc:NAME or pcsc:.")
@click.option("--terminal", "terminal_id", required=True, metavar="ID", help="The validator (see `terminal list`).")
@click.option("--km", default=None, metavar="K", help="A bus ride's distance in km (Beijing buses).")
@click.option("--station", default=None, help="Where the tap happens, if not the terminal's own station.")
@trace_option
@json_option
@pass_app
@handle_errors
def tap_command(app: AppContext, reader_spec: str, terminal_id: str, km: str | None, station: str | None,
                trace: bool) -> None:
    """Tap a card on a validator: the fare is debited offline on the chip, the record kept."""
    from sbcard.reference.transit import load_tariff
    from terminals.apps.transit import Validator
    from terminals.apps.transit_fares import TariffFares

    fares = TariffFares(load_tariff())
    if km is not None:
        from sbcard.domain.fares import to_km

        km = to_km(km)  # type: ignore[assignment]
    with open_terminal_state(app.home, terminal_id) as state:
        validator = Validator(state, state.psam(), fares, app.clock)
        reader = open_reader_for(reader_spec, trace)
        try:
            result = validator.tap(reader, km=km, station=station)
        finally:
            reader.close()
    if app.json:
        emit_json(result.to_json(terminal_id))
    elif not result.ok:
        refusal(result.display)
    else:
        click.echo(result.display)
        if result.ok and result.rule:
            click.echo(fields([("fare", money(result.fare_fen or 0)), ("rule", result.description or result.rule),
                               ("card", result.card_number)]))
            if (result.provenance or {}).get("illustrative"):
                click.echo(caution("illustrative: the fare rests on figures of the project's own "
                                   "(fixtures/transit/README.md)"))
    if not result.ok:
        raise SystemExit(EXIT_REFUSED)


@click.command("log")
@click.option("--terminal", "terminal_id", required=True, metavar="ID", help="The validator.")
@click.option("--unsent", is_flag=True, help="Only the records not uploaded yet.")
@json_option
@pass_app
@handle_errors
def log_command(app: AppContext, terminal_id: str, unsent: bool) -> None:
    """The terminal's offline log (purchases on cards), pending recovery and events."""
    with open_terminal_state(app.home, terminal_id) as state:
        uploaded_to = state.last_uploaded_seq()
        records = state.unsent_records() if unsent else state.records()
        data = {
            "terminal": terminal_id,
            "operator": state.config.operator,
            "station": state.config.station,
            "terminal_no": state.config.terminal_no,
            "blacklist_version": state.blacklist_version,
            "psam_serial": state.last_serial(),
            "uploaded_up_to": uploaded_to,
            "records": [{**r, "uploaded": r["seq"] <= uploaded_to} for r in records],
            "pending": [{k: v for k, v in p.items() if k not in ("random", "key_version", "algorithm_id")}
                        for p in state.pending()],
            "events": state.events(),
        }
    if app.json:
        emit_json(data)
        return
    if not records:
        click.echo("No records.")
    else:
        click.echo(table([(r["seq"], when(r["at"]), r["kind"], r["card_number"] or r["app_serial"], r["counter"],
                           money(r["amount_fen"]), money(r["balance_before_fen"]), r["terminal_serial"],
                           r["tac"] or "—", "yes" if r["uploaded"] else "no") for r in data["records"]],
                         ["seq", "at", "kind", "card", "counter", "amount", "before", "serial", "TAC", "uploaded"]))
    if data["pending"]:
        click.echo(caution(f"{number(len(data['pending']))} purchase(s) in flight, completed at the card's next tap"))
