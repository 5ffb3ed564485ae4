"""``sbcard card …``: blank cards, application, issuance, activation, and the card's record.

The composition root of issuance: it opens the world, makes the issuing region's desks
(``sbcard.services.cards.issuance`` / ``activation``) and hands them, as host ports, to the
counter terminal (``terminals.apps.counter``) driving the card in ``--reader``. The life
events after activation are registered onto this group by ``sbcard.cli.card_life``.
"""

from __future__ import annotations

from pathlib import Path

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import alert, emit_json, fields, named_region, table, when
from sbcard.cli.readers import card_reader_options, reader_option, reader_session, trace_option
from sbcard.domain.bank_account import BankAccount
from sbcard.domain.errors import InvalidInput
from sbcard.domain.masking import mask_card_holder
from sbcard.domain.pin import check_new_pin


@click.group()
def card() -> None:
    """Cards: blank stock, application, issuance, activation and the card's life."""


@card.command("blank")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the virtual card file.")
@click.option("--serial", default=None, metavar="HEX16", help="Chip serial (8 bytes hex; default random).")
@with_app
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


def _operator_option(fn):
    return click.option("--operator", required=True, help="The member of staff doing it (an operator code).")(fn)


def _world(app: AppContext):
    from sbcard.store.world import open_world

    return open_world(app.home, app.clock)


# ----------------------------------------------------------------------------- application


@card.command("apply")
@click.option("--citizen-id", required=True, help="The applicant's citizen ID (社会保障号码).")
@click.option("--outlet", required=True, help="The outlet applied at (for --online: the one that makes the card).")
@_operator_option
@click.option("--online", is_flag=True, help="Made centrally and mailed to --address, not issued at the counter.")
@click.option("--address", default=None, help="Delivery address of an --online application.")
@click.option("--guardian-id", default=None, help="The guardian applying for a minor (recorded in the registry).")
@with_app
def apply_command(app: AppContext, citizen_id: str, outlet: str, operator: str, online: bool,
                  address: str | None, guardian_id: str | None) -> None:
    """Apply for a card (申领) at an outlet, or --online to have it mailed."""
    from sbcard.services.cards import issuance

    if online != (address is not None):
        raise InvalidInput("application.address", "--online and --address go together", "--address")
    with _world(app) as world:
        data = issuance.apply(world, citizen_id=citizen_id, outlet=outlet, operator=operator, now=app.clock.now(),
                              online_address=address, guardian_id=guardian_id)
    _emit_application(app, data)


@card.command("applications")
@click.option("--status", type=click.Choice(["applied", "in_production", "mailed", "delivered", "issued", "withdrawn"]),
              default=None, help="Only applications with this status.")
@with_app
def applications_command(app: AppContext, status: str | None) -> None:
    """Every region's applications, oldest first."""
    from sbcard.services.cards import issuance

    with _world(app) as world:
        items = issuance.list_applications(world, status=status)
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No applications.")
        return
    rows = [(a["application_id"], a["status"], a["kind"], a["channel"], a["citizen_id"], a["outlet"],
             a["card_number"] or "") for a in items]
    click.echo(table(rows, ["application", "status", "kind", "channel", "citizen ID", "outlet", "card"]))


@card.command("application-status")
@click.argument("application_id")
@click.option("--set", "new_status", type=click.Choice(["in_production", "mailed", "delivered", "withdrawn"]),
              default=None, help="Move the application on (online: in_production → mailed → delivered).")
@click.option("--operator", default=None, help="Who moves it (required with --set).")
@with_app
def application_status_command(app: AppContext, application_id: str, new_status: str | None,
                               operator: str | None) -> None:
    """Show an application, or move an online one along (made → mailed → delivered)."""
    from sbcard.services.cards import issuance

    with _world(app) as world:
        if new_status is None:
            data = issuance.show_application(world, application_id)
        else:
            if not operator:
                raise InvalidInput("operator.missing", "--set needs --operator: the change is recorded", "--operator")
            data = issuance.set_application_status(world, application_id, new_status, operator=operator,
                                                   now=app.clock.now())
    _emit_application(app, data)


def _emit_application(app: AppContext, data: dict) -> None:
    if app.json:
        emit_json(data)
        return
    pairs = [("application", data["application_id"]), ("status", data["status"]), ("kind", data["kind"]),
             ("channel", data["channel"]), ("citizen ID", data["citizen_id"]),
             ("issued by", named_region(data["issuing_region"])), ("outlet", data["outlet"])]
    if data["delivery_address"]:
        pairs.append(("deliver to", data["delivery_address"]))
    if data["guardian_id"]:
        pairs.append(("guardian", data["guardian_id"]))
    if data["card_number"]:
        pairs.append(("card", data["card_number"]))
    click.echo(fields(pairs))


# ----------------------------------------------------------------------------- issuance


@card.command("issue")
@click.argument("application_id")
@reader_option
@_operator_option
@trace_option
@with_app
def issue_command(app: AppContext, application_id: str, reader_spec: str, operator: str, trace: bool) -> None:
    """Issue an application's card on the blank in --reader (即时制卡): personalise, read back, record."""
    from sbcard.services.cards.issuance import IssuanceDesk
    from terminals.apps import counter

    with _world(app) as world:
        desk = IssuanceDesk(world, application_id, operator=operator, now=app.clock.now())
        with reader_session(reader_spec, trace) as reader:
            outcome = counter.issue(reader, desk)
    data = {**outcome.record, "apdus": outcome.apdus}
    if app.json:
        emit_json(data)
        return
    click.echo(fields([("card number", data["card_number"]), ("卡识别码", data["card_id_code"]),
                       ("status", data["status"]), ("issued by", named_region(data["region"])),
                       ("valid until", data["expiry_date"]), ("chip serial", data["chip_serial"]),
                       ("APDUs", data["apdus"])]))


@card.command("activate")
@click.argument("card_number", metavar="CARD")
@click.option("--pin", default=None, help="The holder's new PIN (default: asked for, hidden, twice).")
@_operator_option
@click.option("--outlet", default=None, help="Where (default: the outlet that issued the card).")
@card_reader_options("The reader with the card (default: the card's virtual card file, when the world keeps one).")
@with_app
def activate_command(app: AppContext, card_number: str, pin: str | None, operator: str, outlet: str | None,
                     reader_spec: str | None, trace: bool) -> None:
    """Activate an issued card: the holder sets the PIN, the financial account opens."""
    from sbcard.services.cards.activation import ActivationDesk
    from terminals.apps import counter

    with _world(app) as world:
        desk = ActivationDesk(world, card_number, operator=operator, now=app.clock.now(), outlet=outlet)
        if reader_spec is None:
            if desk.virtual_path is None:
                raise InvalidInput("reader.missing", "the world keeps no virtual card for this card: give --reader",
                                   "--reader")
            reader_spec = f"emulator:{desk.virtual_path}"
        if pin is None:
            pin = click.prompt("New PIN (6 digits)", hide_input=True, confirmation_prompt=True, err=True)
        check_new_pin(pin)  # the birth-date rule is checked against the card itself
        with reader_session(reader_spec, trace) as reader:
            outcome = counter.activate(reader, desk, pin)
    data = {**outcome.record, "apdus": outcome.apdus}
    if app.json:
        emit_json(data)
        return
    click.echo(fields([("card number", data["card_number"]), ("status", data["status"]),
                       ("account", BankAccount(data["account_no"]).masked())]))


# ----------------------------------------------------------------------------- the record


@card.command("show")
@click.argument("card_or_citizen_id")
@click.option("--show-personal", is_flag=True, help="Show the citizen ID and name in full (audited).")
@click.option("--operator", default=None, help="Who asks to see personal data (required with --show-personal).")
@with_app
def show_command(app: AppContext, card_or_citizen_id: str, show_personal: bool, operator: str | None) -> None:
    """A card's record, by card number or by the holder's citizen ID (their valid card)."""
    from sbcard.services.cards import card_view

    with _world(app) as world:
        data = card_view.card_view(world, card_or_citizen_id, now=app.clock.now())
        if show_personal:
            card_view.record_personal_data_shown(world, data, operator=operator, now=app.clock.now())
    if not show_personal:
        data = mask_card_holder(data)
    if app.json:
        emit_json(data)
        return
    status = data["status"] + (f" ({data['loss_kind']})" if data["loss_kind"] else "")
    pairs = [("card number", data["card_number"]), ("status", status),
             ("issued by", named_region(data["region"])), ("holder", data["name"]),
             ("citizen ID", data["citizen_id"]), ("issued", data["issue_date"]), ("valid until", data["expiry_date"]),
             ("account", BankAccount(data["account_no"]).masked() if data["account_no"] else None),
             ("卡识别码", data["card_id_code"]), ("outlet", data["outlet"])]
    if data["loss_expires_at"]:
        pairs.append(("loss lapses", when(data["loss_expires_at"])))
    if data["replaces"]:
        pairs.append(("replaces", data["replaces"]))
    if data["replaced_by"]:
        pairs.append(("replaced by", data["replaced_by"]))
    if data["blacklisted"]:
        pairs.append(("blacklist", alert("on the national blacklist")))
    click.echo(fields(pairs))


@card.command("history")
@click.argument("card_number", metavar="CARD")
@with_app
def history_command(app: AppContext, card_number: str) -> None:
    """Everything that happened to a card: when, what, who, where and why."""
    from sbcard.services.cards import card_view

    with _world(app) as world:
        events = card_view.history(world, card_number)
    if app.json:
        emit_json(events)
        return
    rows = [(when(e["at"]), e["event"], e["operator"], e["outlet"] or "", e["reason"] or "") for e in events]
    click.echo(table(rows, ["at", "event", "operator", "outlet", "reason"]))
