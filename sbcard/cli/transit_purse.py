"""Purse loads (圈存) and uploads of offline records to the operator's host.

Registered onto the ``transit`` group by ``register``:

- ``transit load``: the load terminal (``terminals.apps.loader``) with the card's issuer
  (``sbcard.services.transit.purse_host``) behind its host port; with ``--terminal K --host
  URL``, a registered kiosk's self-service load over the host API
  (``terminals.apps.http_host.HttpLoadHost``, the holder's ``--pin`` verified on the card);
- ``transit recover``: settle a card's pending loads (a load does it first by itself), the
  same two ways;
- ``transit upload``: a terminal's unsent offline log to its operator's host, marked sent
  in the terminal afterwards (``terminals.apps.uploads.upload_unsent`` with the host's
  adapter, ``sbcard.services.transit.terminal_host.TerminalHost``).
"""

from __future__ import annotations

from typing import Any

import click

from sbcard.cli.context import AppContext, handle_errors, json_option, pass_app
from sbcard.cli.output import alert, caution, emit_json, fields, money, number, table
from sbcard.cli.readers import reader_for, trace_option
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.money import parse_yuan
from sbcard.store.world import World, open_world


def register(transit: click.Group) -> None:
    """Add this module's commands to the ``transit`` group."""
    for command in (load_command, recover_command, upload_command):
        transit.add_command(command)


def _load_options(fn):
    fn = click.option("--host", "host_url", default=None, metavar="URL",
                      help="A kiosk's load over the host API of a running service (e.g. http://127.0.0.1:8000), "
                           "signed with the --terminal's credential, instead of into the world's files.")(fn)
    fn = click.option("--terminal", "terminal_id", default=None, metavar="ID",
                      help="The load kiosk (`terminal add --kind kiosk`) doing it, with --host.")(fn)
    fn = click.option("--terminal-no", default=None, metavar="HEX12",
                      help="The load terminal's number (default: from the outlet, else the operator's region).")(fn)
    fn = click.option("--outlet", default=None, metavar="CODE", help="The outlet where it is done (recorded).")(fn)
    fn = click.option("--operator", default=None,
                      help="The member of staff (or machine account) loading (required without --host).")(fn)
    return click.option("--reader", "reader_spec", required=True, metavar="SPEC",
                        help="The reader with the card: emulator:PATH[?tear=N], pcsc:NAME or pcsc:.")(fn)


@click.command("load")
@_load_options
@click.option("--amount", required=True, metavar="YUAN", help="In yuan, e.g. 50 or 12.30 (purse maximum ¥1,000.00).")
@click.option("--cash", is_flag=True, help="Paid in cash into the outlet's till (an outlet of the card's region) "
              "instead of from the card's financial account.")
@click.option("--pin", default=None, metavar="PIN", help="The holder's PIN, verified on the card before the load "
              "(required at a kiosk, with --host).")
@trace_option
@json_option
@pass_app
@handle_errors
def load_command(app: AppContext, reader_spec: str, amount: str, operator: str | None, outlet: str | None,
                 terminal_no: str | None, terminal_id: str | None, host_url: str | None, cash: bool, pin: str | None,
                 trace: bool) -> None:
    """圈存: move AMOUNT from the card's financial account into its purse (settling any torn load first);
    with --cash, 现金充值: AMOUNT paid in cash at the outlet's counter; with --terminal and --host, 自助圈存 at
    a kiosk over the host API."""
    from sbcard.services.transit.purse_host import PurseHost
    from terminals.apps import loader

    fen = parse_yuan(amount, field="--amount")
    if fen <= 0:
        raise InvalidInput("load.amount", "the amount to load must be more than ¥0.00", "--amount")
    _check_ways(operator, outlet, terminal_no, terminal_id, host_url)
    if host_url is not None:
        if cash:
            raise InvalidInput("load.kiosk_cash", "a kiosk takes no cash: it loads from the card's account", "--cash")
        if pin is None:
            raise InvalidInput("pin.missing", "a kiosk loads only once the holder's PIN is verified: give --pin",
                               "--pin")
        remote, number = _kiosk(app, terminal_id, host_url)
        with remote, reader_for(reader_spec, trace) as reader:
            outcome = loader.load(reader, remote, fen, number, pin=pin)
        corrections = remote.corrections
    else:
        assert operator is not None
        with open_world(app.home, app.clock) as world:
            host = PurseHost(world, operator=operator, outlet=outlet, now=app.clock.now(), cash=cash)
            number = _terminal_no(world, terminal_no, outlet, operator)
            with reader_for(reader_spec, trace) as reader:
                outcome = loader.load(reader, host, fen, number, pin=pin)
        corrections = host.corrections
    done = outcome.to_dict(paid="cash" if cash else "account", terminal_no=number, corrections=corrections)
    if app.json:
        emit_json(done)
        return
    click.echo(fields([
        ("card", done["card_number"]),
        ("loaded", money(done["amount_fen"])),
        ("purse", money(done["balance_fen"])),
        ("account", money(done["account_balance_fen"])) if not cash else ("paid", f"in cash at {outlet}"),
        ("load", f"{done['load_id']}  TAC {done['tac']}"),
        *(_settled_lines(done["settled"])),
        *((f"corrected {c['load_id']}", f"reversed, but the card had credited it: {money(c['taken_fen'])} "
           f"taken back from the account" + (f", {money(c['short_fen'])} short" if c["short_fen"] else ""))
          for c in done["corrections"]),
    ]))


@click.command("recover")
@_load_options
@trace_option
@json_option
@pass_app
@handle_errors
def recover_command(app: AppContext, reader_spec: str, operator: str | None, outlet: str | None,
                    terminal_no: str | None, terminal_id: str | None, host_url: str | None, trace: bool) -> None:
    """Settle the card's loads left pending by a tear: confirmed if the card credited them, else reversed."""
    from sbcard.services.transit.purse_host import PurseHost
    from terminals.apps import loader

    _check_ways(operator, outlet, terminal_no, terminal_id, host_url)
    if host_url is not None:
        remote, number = _kiosk(app, terminal_id, host_url)
        with remote, reader_for(reader_spec, trace) as reader:
            outcome = loader.recover(reader, remote, number)
    else:
        assert operator is not None
        with open_world(app.home, app.clock) as world:
            host = PurseHost(world, operator=operator, outlet=outlet, now=app.clock.now())
            number = _terminal_no(world, terminal_no, outlet, operator)
            with reader_for(reader_spec, trace) as reader:
                outcome = loader.recover(reader, host, number)
    done = {"app_serial": outcome.app_serial, "balance_fen": outcome.balance_fen, "settled": outcome.settled,
            "apdus": outcome.apdus}
    if app.json:
        emit_json(done)
        return
    lines = _settled_lines(done["settled"])
    click.echo(fields([("purse", money(done["balance_fen"])), *lines]) if lines
               else f"No pending load on this card; purse {money(done['balance_fen'])}.")


@click.command("upload")
@click.option("--terminal", "terminal_id", required=True, metavar="ID", help="The terminal whose offline log is sent.")
@click.option("--host", "host_url", default=None, metavar="URL",
              help="Send it over the host API of a running service (e.g. http://127.0.0.1:8000), signed with the "
                   "terminal's credential, instead of into the world's files.")
@json_option
@pass_app
@handle_errors
def upload_command(app: AppContext, terminal_id: str, host_url: str | None) -> None:
    """Send the terminal's unsent offline records to its operator's host (cleared with each card's issuer)."""
    from sbcard.services.transit import host as transit_host
    from sbcard.services.transit.terminal_host import TerminalHost
    from terminals.apps import uploads
    from terminals.apps.terminal_state import TerminalState, TerminalStateError

    now = app.clock.now()
    if host_url is not None:
        from sbcard.cli.terminals import http_host_for, open_terminal_state

        with open_terminal_state(app.home, terminal_id) as state, \
                http_host_for(state, terminal_id, host_url, app.clock) as remote:
            sent = uploads.upload_unsent(state, remote, terminal_id, now=now)
    else:
        with open_world(app.home, app.clock) as world:
            transit_host.terminal_row(world, terminal_id)
            try:
                state = TerminalState.open(world.paths.terminals_dir / terminal_id)
            except TerminalStateError as e:
                raise NotFound("terminal.no_state", str(e), "--terminal") from None
            with state:
                sent = uploads.upload_unsent(state, TerminalHost(world), terminal_id, now=now)
    done = sent.answer.to_dict()
    if app.json:
        emit_json(done)
        return
    click.echo(fields([
        ("terminal", terminal_id), ("batch", done["batch"]), ("sent", number(done["sent"])),
        ("accepted", number(done["accepted"])), ("duplicates", number(done["duplicates"])),
        ("rejected", alert(number(done["rejected"])) if done["rejected"] else "0"),
        ("flagged", caution(number(done["flagged"])) if done["flagged"] else "0"),
        *([("awaiting", f"{number(done['awaiting'])} (the card's issuer is out of reach: routed later)")]
          if done["awaiting"] else []),
    ]))
    if done["records"]:
        rows = [(r["card_number"] or r["app_serial"], r["counter"], money(r["amount_fen"]), r["status"],
                 r["reason"]) for r in done["records"]]
        click.echo(table(rows, ["card", "counter", "amount", "status", "reason"]))


# ----------------------------------------------------------------------------- helpers


def _check_ways(operator: str | None, outlet: str | None, terminal_no: str | None, terminal_id: str | None,
                host_url: str | None) -> None:
    """A load is either staff's in the world's files (--operator) or a kiosk's over the host API (--terminal,
    --host): the kiosk's operator, outlet and number are its register's, never options."""
    if host_url is not None:
        if terminal_id is None:
            raise InvalidInput("terminal.missing", "--host needs the kiosk that signs: give --terminal", "--terminal")
        given = [name for name, value in (("--operator", operator), ("--outlet", outlet),
                                          ("--terminal-no", terminal_no)) if value is not None]
        if given:
            raise InvalidInput("load.kiosk_options", f"a kiosk's load takes no {', '.join(given)}: its operator of "
                               "record, outlet and terminal number are its register's", given[0])
    elif terminal_id is not None:
        raise InvalidInput("terminal.host_missing", "--terminal is a kiosk's, over the host API: give --host",
                           "--host")
    elif operator is None:
        raise InvalidInput("operator.missing", "give --operator (or a kiosk's --terminal and --host)", "--operator")


def _kiosk(app: AppContext, terminal_id: str | None, host_url: str):  # type: ignore[no-untyped-def]
    """(the kiosk's ``HttpLoadHost`` at ``host_url``, its terminal number), from its own state."""
    from sbcard.cli.terminals import http_host_for, open_terminal_state

    assert terminal_id is not None
    with open_terminal_state(app.home, terminal_id) as state:
        remote = http_host_for(state, terminal_id, host_url, app.clock, load=True)
        return remote, state.config.terminal_no_bytes


def _terminal_no(world: World, given: str | None, outlet: str | None, operator: str) -> bytes:
    """The load terminal's 6-byte number: given, else the outlet's district ‖ number ‖ 0001, else the region's."""
    from sbcard.domain.outlets import OutletCode
    from sbcard.services.exchange import lookup

    if given is not None:
        text = given.strip()
        if len(text) != 12 or any(c not in "0123456789abcdefABCDEF" for c in text):
            raise InvalidInput("terminal.number", f"{given!r} is not a terminal number (12 hex digits)",
                               "--terminal-no")
        return bytes.fromhex(text)
    if outlet is not None:
        code = OutletCode.parse(outlet)
        return bytes.fromhex(f"{code.district}{code.number}0001")
    _, staff = lookup.require_operator_anywhere(world, operator)
    return bytes.fromhex(f"{staff['region']}000001")


def _settled_lines(settled: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(f"earlier load {s['load_id']}",
             f"{s['status']} ({s['how'] or s['decision']}) {money(s['amount_fen'])}" + (f": {s['note']}"
                                                                                            if s.get("note") else ""))
            for s in settled]
