"""The card's life after issuance: loss, unblock, replacement, cancellation, purse refunds, PIN.

Registered onto the ``card`` group by ``register``. The services decide and record; this
module opens the world and the readers and drives the counter terminal's card functions.
"""

from __future__ import annotations

from typing import Any

import click

from sbcard.chip.sw import AuthenticationBlocked, WrongPin
from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, money, table, when
from sbcard.cli.readers import card_reader_options, reader_session, trace_option
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.masking import mask_middle
from sbcard.store.world import open_world


def register(card: click.Group) -> None:
    """Add this module's commands to the ``card`` group."""
    for command in (report_lost_command, confirm_loss_command, unblock_command, replace_command, cancel_command,
                    lapse_losses_command, refunds_command, pin):
        card.add_command(command)


def _operator(fn):
    return click.option("--operator", required=True, help="The operator making the change (refused if unknown).")(fn)


def _outlet(required: bool = False, help: str = "The outlet where it is done (recorded with the event).") -> Any:
    return click.option("--outlet", required=required, default=None, metavar="CODE", help=help)


def _reason(fn):
    return click.option("--reason", default=None, help="Why (recorded with the event).")(fn)


def _event_options(fn):
    """``--operator``, ``--outlet`` and ``--reason``: who makes the change, where and why."""
    return _operator(_outlet()(_reason(fn)))


CARD = click.argument("card_number", metavar="CARD")


# ----------------------------------------------------------------------------- loss and unblock


@click.command("report-lost")
@CARD
@click.option("--temporary", is_flag=True, help="A temporary loss by phone or app: lapses after 5 days unless confirmed.")
@click.option("--channel", type=click.Choice(["phone", "app", "counter"]), default=None,
              help="Where the loss is reported: phone or app (temporary), counter (formal; the default).")
@_event_options
@with_app
def report_lost_command(app: AppContext, card_number: str, temporary: bool, channel: str | None, operator: str,
                        outlet: str | None, reason: str | None) -> None:
    """挂失: stop the card and freeze its account; by phone/app only for 5 days unless confirmed."""
    from sbcard.services.cards import lifecycle

    if channel is None:
        channel = "phone" if temporary else "counter"
    elif temporary and channel == "counter":
        raise InvalidInput("loss.channel", "a loss reported at a counter is formal, not temporary", "--temporary")
    with open_world(app.home) as world:
        done = lifecycle.report_lost(world, card_number=card_number, channel=channel, operator=operator,
                                     outlet=outlet, reason=reason, now=app.clock.now())
    _show_event(app, done)


def _event_command(name: str, event: str, doc: str) -> click.Command:
    """The command of a life event that needs nothing but who, where and why: ``lifecycle.<event>``."""

    @click.command(name, help=doc)
    @CARD
    @_event_options
    @with_app
    def command(app: AppContext, card_number: str, operator: str, outlet: str | None, reason: str | None) -> None:
        from sbcard.services.cards import lifecycle

        with open_world(app.home) as world:
            done = getattr(lifecycle, event)(world, card_number=card_number, operator=operator, outlet=outlet,
                                              reason=reason, now=app.clock.now())
        _show_event(app, done)

    return command


confirm_loss_command = _event_command(
    "confirm-loss", "confirm_loss", "Make a temporary loss formal at a counter, before it lapses.")
unblock_command = _event_command(
    "unblock", "unblock", "解挂: a lost card is found; the card and its account work again.")


@click.command("lapse-losses")
@with_app
def lapse_losses_command(app: AppContext) -> None:
    """Write the lapse of temporary losses not confirmed within 5 days (run daily)."""
    from sbcard.services.cards import lifecycle

    with open_world(app.home) as world:
        lapsed = lifecycle.lapse_temporary_losses(world, now=app.clock.now())
    if app.json:
        emit_json({"lapsed": lapsed})
    elif lapsed:
        click.echo(table([(e["card_number"], when(e["at"])) for e in lapsed], ["card", "lapsed at"]))
    else:
        click.echo("No temporary loss has lapsed unrecorded.")


# ----------------------------------------------------------------------------- replacement


@click.command("replace")
@CARD
@click.option("--reader", "reader_spec", required=True, metavar="SPEC",
              help="The reader with a blank of the outlet's stock, for the new card.")
@_operator
@_outlet(required=True, help="The outlet issuing the new card (its stock provides the blank).")
@click.option("--old-reader", "old_reader_spec", default=None, metavar="SPEC",
              help="The reader with the old card, when the holder brings it: its purse balance is refunded.")
@click.option("--guardian-id", default=None, metavar="ID",
              help="The guardian replacing a minor's card (under 16), as recorded in the registry.")
@_reason
@trace_option
@with_app
def replace_command(app: AppContext, card_number: str, reader_spec: str, operator: str, outlet: str,
                    old_reader_spec: str | None, guardian_id: str | None, reason: str | None, trace: bool) -> None:
    """补换卡: a new card with a new number; the old one blacklisted, the account moved to the new one."""
    from sbcard.services.cards.replacement import Replacement
    from terminals.apps import counter

    now = app.clock.now()
    with open_world(app.home) as world:
        job = Replacement(world, card_number, operator=operator, outlet=outlet, reason=reason, now=now,
                          guardian_id=guardian_id)
        if old_reader_spec:
            with reader_session(old_reader_spec, trace) as old:
                job.old_card_presented(counter.read_back(old))
        with reader_session(reader_spec, trace) as reader:
            job.check_blank(counter.chip_info(reader))
            outcome = counter.issue(reader, job.issuance_desk())
    done = {**job.result(outcome.record), "apdus": outcome.apdus}
    if app.json:
        emit_json(done)
        return
    if done["purse_balance_fen"] is None:
        refund = "not read (the old card was not presented): refunded from the clearing records"
        if done["refund_due_at"]:
            refund += f" from {done['refund_due_at'][:10]}"
    else:
        refund = money(done["purse_balance_fen"])
        if done["refund_due_at"]:
            refund += f", refunded to the account from {done['refund_due_at'][:10]}"
    click.echo(fields([
        ("old card", f"{done['old_card']}  replaced (blacklisted)"),
        ("new card", f"{done['new_card']}  {done['new_status']} (activate it: sbcard card activate "
                     f"{done['new_card']})"),
        ("account", mask_middle(done["account_no"], 6, 4) + " moved to the new card" if done["account_no"] else None),
        ("old purse", refund),
        *([("guardian", done["guardian_id"])] if done["guardian_id"] else []),
        ("operator", _where(done)),
    ]))


# ----------------------------------------------------------------------------- cancellation


@click.command("cancel")
@CARD
@_operator
@click.option("--reason", required=True, help="Why the card is cancelled (e.g. the holder died).")
@_outlet(help="The outlet; a bank-branch outlet when the account's balance is paid out in cash.")
@with_app
def cancel_command(app: AppContext, card_number: str, operator: str, reason: str, outlet: str | None) -> None:
    """注销: pay out the account's balance in cash, close the account, end the card for good."""
    from sbcard.services.cards import lifecycle

    with open_world(app.home) as world:
        done = lifecycle.cancel(world, card_number=card_number, operator=operator, reason=reason, outlet=outlet,
                                now=app.clock.now())
    if app.json:
        emit_json(done)
        return
    _show_event(app, done, extra=[
        ("account", (mask_middle(done["account_no"], 6, 4) + " closed") if done["account_no"] else "none"),
        ("paid out", money(done["payout_fen"])),
    ])


# ----------------------------------------------------------------------------- purse refunds


@click.command("refunds")
@click.option("--pay", is_flag=True, help="Pay the refunds of the operator's region whose window has passed.")
@click.option("--operator", default=None, help="The finance operator paying them (required with --pay).")
@with_app
def refunds_command(app: AppContext, pay: bool, operator: str | None) -> None:
    """Purse balances of replaced cards: waiting for the clearing window, due, paid."""
    from sbcard.services.cards import replacement

    if pay and not operator:
        raise InvalidInput("refund.operator", "paying refunds needs the finance operator who pays them", "--operator")
    with open_world(app.home) as world:
        now = app.clock.now()
        items = (replacement.pay_due_refunds(world, operator=operator, now=now) if pay
                 else replacement.refunds(world, now=now))
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No refund is due." if pay else "No purse refunds.")
        return
    rows = [(r["old_card"], r["new_card"], money(r["amount_fen"]), r["due_at"][:10], r["status"],
             r["note"] or "") for r in items]
    click.echo(table(rows, ["old card", "new card", "amount", "due", "status", "note"]))


# ----------------------------------------------------------------------------- PIN


@click.group()
def pin() -> None:
    """The card's PIN: change it with the old one; a counter resets a forgotten or blocked one."""


@pin.command("change")
@CARD
@click.option("--old-pin", default=None, help="The current PIN (prompted, hidden, when absent).")
@click.option("--new-pin", default=None, help="The new PIN (prompted, hidden and confirmed, when absent).")
@card_reader_options()
@with_app
def pin_change_command(app: AppContext, card_number: str, old_pin: str | None, new_pin: str | None,
                       reader_spec: str | None, trace: bool) -> None:
    """Change the PIN; three wrong old PINs block it until a counter resets it."""
    from sbcard.services.cards import pin as pins
    from terminals.apps import counter

    old_pin = old_pin if old_pin is not None else click.prompt("Old PIN", hide_input=True)
    new_pin = new_pin if new_pin is not None else click.prompt("New PIN", hide_input=True, confirmation_prompt=True)
    now = app.clock.now()
    with open_world(app.home) as world:
        try:
            with pins.pin_change(world, card_number=card_number, old_pin=old_pin, new_pin=new_pin, now=now) as order:
                with reader_session(_spec_of(reader_spec, order.virtual_path), trace) as reader:
                    order.check_card(counter.read_back(reader))
                    counter.change_pin(reader, old_pin, new_pin)
                done = order.record()
        except WrongPin as wrong:
            if wrong.tries_left == 0:
                pins.record_pin_blocked(world, card_number=card_number, now=now)
                raise RuleRefused("pin.blocked", "wrong PIN, 0 tries left: the PIN is now blocked; "
                                  "have it reset at a counter", "--old-pin") from None
            raise RuleRefused("pin.wrong", f"wrong PIN, {wrong.tries_left} tries left", "--old-pin") from None
        except AuthenticationBlocked:
            raise RuleRefused("pin.blocked", "PIN blocked: have it reset at a counter", "--old-pin") from None
    _show_pin(app, done, "PIN changed")


@pin.command("reset")
@CARD
@click.option("--citizen-id", required=True, help="The holder's citizen ID, checked against the card's holder.")
@click.option("--new-pin", default=None, help="The new PIN (prompted, hidden and confirmed, when absent).")
@_operator
@_outlet()
@card_reader_options()
@with_app
def pin_reset_command(app: AppContext, card_number: str, citizen_id: str, new_pin: str | None, operator: str,
                      outlet: str | None, reader_spec: str | None, trace: bool) -> None:
    """At a counter: set a new PIN (and lift a block) for the holder, identity checked."""
    from sbcard.services.cards import pin as pins
    from terminals.apps import counter

    new_pin = new_pin if new_pin is not None else click.prompt("New PIN", hide_input=True, confirmation_prompt=True)
    with open_world(app.home) as world, pins.pin_reset(
        world, card_number=card_number, citizen_id=citizen_id, new_pin=new_pin, operator=operator, outlet=outlet,
        now=app.clock.now(),
    ) as order:
        with reader_session(_spec_of(reader_spec, order.virtual_path), trace) as reader:
            order.check_card(counter.read_back(reader))
            counter.set_pin(reader, order.keys, new_pin)
        done = order.record()
    _show_pin(app, done, "PIN reset")


# ----------------------------------------------------------------------------- helpers


def _spec_of(reader_spec: str | None, virtual_path: str | None) -> str:
    if reader_spec:
        return reader_spec
    if virtual_path:
        return f"emulator:{virtual_path}"
    raise InvalidInput("reader.missing", "the card has no virtual file: say which reader holds it", "--reader")


def _where(done: dict[str, Any]) -> str:
    return done["operator"] + (f" at {done['outlet']}" if done.get("outlet") else "")


def _show_event(app: AppContext, done: dict[str, Any], extra: list[tuple[str, Any]] | None = None) -> None:
    if app.json:
        emit_json(done)
        return
    status = done["status"]
    if done["loss_kind"] == "temporary":
        status += f" (temporary, lapses {when(done['loss_expires_at'])} unless confirmed)"
    elif done["loss_kind"]:
        status += f" ({done['loss_kind']})"
    click.echo(fields([
        ("card", done["card_number"]),
        ("status", status),
        ("event", done["event"]),
        ("by", _where(done)),
        ("reason", done["reason"]),
        *(extra or []),
    ]))


def _show_pin(app: AppContext, done: dict[str, Any], what: str) -> None:
    if app.json:
        emit_json(done)
    else:
        click.echo(f"{what} on card {done['card_number']} ({done['tries_left']} tries).")
