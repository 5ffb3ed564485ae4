"""``sbcard account …``: the card's financial account (金融账户) at the counter."""

from __future__ import annotations

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, money, table, when
from sbcard.domain.masking import mask_middle
from sbcard.domain.money import parse_yuan
from sbcard.store.world import open_world


@click.group()
def account() -> None:
    """The card's financial account (金融账户): deposits, withdrawals, entries."""


def _cash_options(fn):
    fn = click.option("--memo", default=None, help="A note kept with the entry.")(fn)
    fn = click.option("--txn-id", default=None,
                      help="Idempotency key (e.g. the slip number): a retry with the same key posts nothing.")(fn)
    fn = click.option("--outlet", required=True, help="The bank-branch outlet (社银合作) whose till it is.")(fn)
    fn = click.option("--operator", required=True, help="The member of staff at the counter.")(fn)
    fn = click.option("--amount", required=True, metavar="YUAN", help="In yuan, e.g. 100 or 12.30.")(fn)
    return click.argument("card_number", metavar="CARD")(fn)


def _cash_command(move: str, doc: str, *, verb: str, preposition: str) -> click.Command:
    """``account deposit`` or ``withdraw``: cash over a bank-branch outlet's counter (``services.accounts.cash.<move>``)."""

    @account.command(move, help=doc)
    @_cash_options
    @with_app
    def command(app: AppContext, card_number: str, amount: str, operator: str, outlet: str,
                txn_id: str | None, memo: str | None) -> None:
        from sbcard.services.accounts import cash

        fen = parse_yuan(amount, field="--amount")
        with open_world(app.home, app.clock) as world:
            data = getattr(cash, move)(world, card_number=card_number, amount_fen=fen, operator=operator,
                                       outlet=outlet, now=app.clock.now(), txn_id=txn_id, memo=memo)
        _emit_cash(app, data, verb, preposition)

    return command


deposit_command = _cash_command(
    "deposit", "Cash handed in at a bank-branch outlet, credited to CARD's account.",
    verb="Deposited", preposition="to")
withdraw_command = _cash_command(
    "withdraw", "Cash paid out at a bank-branch outlet from the account of an active CARD.",
    verb="Paid out", preposition="from")


@account.command("show")
@click.argument("card_number", metavar="CARD")
@with_app
def show_command(app: AppContext, card_number: str) -> None:
    """CARD's account: number (masked here), status, balance and every entry."""
    from sbcard.services.accounts.cash import account_view

    with open_world(app.home, app.clock) as world:
        data = account_view(world, card_number)
    if app.json:
        emit_json(data)
        return
    click.echo(fields([("card", data["card_number"]), ("account", _masked(data["account_no"])),
                       ("status", data["status"]), ("balance", money(data["balance_fen"]))]))
    if data["entries"]:
        rows = [(when(e["at"]), e["kind"], money(e["amount_fen"]), e["outlet"] or "", e["memo"] or "")
                for e in data["entries"]]
        click.echo(table(rows, ["at", "kind", "amount", "outlet", "memo"]))


def _emit_cash(app: AppContext, data: dict, verb: str, preposition: str) -> None:
    if app.json:
        emit_json(data)
        return
    if not data["posted"]:
        click.echo(f"Transaction {data['txn_id']} was already posted; nothing changed.")
    else:
        click.echo(f"{verb} {money(data['amount_fen'])} {preposition} account {_masked(data['account_no'])} "
                   f"(card {data['card_number']}) at {data['outlet']}")
    click.echo(fields([("balance", money(data["balance_fen"])), ("transaction", data["txn_id"])]))


def _masked(account_no: str) -> str:
    return mask_middle(account_no, 6, 4)
