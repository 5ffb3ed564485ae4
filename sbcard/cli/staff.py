"""``sbcard staff …``: the network service's accounts, managed by whoever holds the world's files.

Holding the files is holding the database: the CLI acts without signing in, and its acts
are audited as done by ``cli``. Over the service (``sbcard serve``) only a signed-in
administrator administers accounts.
"""

from __future__ import annotations

import sys

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, named_region, table
from sbcard.domain.errors import InvalidInput
from sbcard.domain.staff import STAFF_ROLES

FIELDS = ("code", "name", "role", "region", "node", "outlet", "state", "must_change_password", "failed_signins",
          "locked_until", "created_at")


@click.group()
def staff() -> None:
    """Staff accounts of the network service: passwords, roles, scope, locks."""


def _password_from_stdin() -> str:
    """One line of standard input; at a terminal, asked for without echo and twice."""
    if sys.stdin.isatty():
        return click.prompt("First password", hide_input=True, confirmation_prompt=True, err=True)
    line = sys.stdin.readline()
    password = line.rstrip("\r\n")
    if not password:
        raise InvalidInput("staff.password", "no password on standard input", "--password-stdin")
    return password


def _region_node(world, code: str) -> str:  # type: ignore[no-untyped-def]
    from sbcard.domain.errors import NotFound
    from sbcard.services.exchange.lookup import require_operator_anywhere

    try:
        return require_operator_anywhere(world, code)[0]
    except NotFound as e:
        raise NotFound("staff.unknown", f"no staff account {code!r} in any region", "CODE") from e


@staff.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The person's name.")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES), help="What they may do over the service.")
@click.option("--region", required=True, metavar="NNNNNN", help="The district they work in (its province: their node).")
@click.option("--outlet", default=None, metavar="CODE", help="Scope: the one outlet they act at.")
@click.option("--password-stdin", "password_stdin", is_flag=True, required=True,
              help="Read the first password from standard input (changed at the first sign-in).")
@with_app
def add_command(app: AppContext, code: str, name: str, role: str, region: str, outlet: str | None,
                password_stdin: bool) -> None:
    """Create staff account CODE: an operator with a password, a role and a scope."""
    from sbcard.domain.regions import node_of, validate_region_code
    from sbcard.services.exchange.lookup import refuse_taken_operator_code
    from sbcard.services.outlets import staff as accounts
    from sbcard.services.outlets.staff import CLI_HOLDER
    from sbcard.store.world import open_world

    try:
        node = node_of(validate_region_code(region))
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, "--region") from None
    password = _password_from_stdin()
    with open_world(app.home, app.clock) as world:
        refuse_taken_operator_code(world, code)
        data = accounts.add_staff(world.region(node), code=code, name=name, role=role, region=region, outlet=outlet,
                                  password=password, by=CLI_HOLDER, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Added staff account {data['code']} ({data['role']}); they choose their own password at first sign-in")
    click.echo(fields([("name", data["name"]), ("region", named_region(data["region"])), ("outlet", data["outlet"])]))


@staff.command("list")
@with_app
def list_command(app: AppContext) -> None:
    """Every region's staff accounts, by region then code."""
    from sbcard.services.outlets import staff as accounts
    from sbcard.store.world import REGION_NODES, open_world

    with open_world(app.home, app.clock) as world:
        items = [row for node in REGION_NODES for row in accounts.list_staff(world.region(node))]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No staff accounts.")
        return
    click.echo(table([(s["code"], s["name"], s["role"], s["region"], s["outlet"] or "", s["state"],
                       "yes" if s["must_change_password"] else "") for s in items],
                     ["code", "name", "role", "region", "outlet", "state", "first password"]))


def _account_command(name: str, help_text: str, act: str):  # type: ignore[no-untyped-def]
    @staff.command(name, help=help_text)
    @click.argument("code")
    @with_app
    def command(app: AppContext, code: str) -> None:
        from sbcard.services.outlets import staff as accounts
        from sbcard.services.outlets.staff import CLI_HOLDER
        from sbcard.store.world import open_world

        with open_world(app.home, app.clock) as world:
            data = getattr(accounts, act)(world.region(_region_node(world, code)), code, by=CLI_HOLDER,
                                          now=app.clock.now())
        if app.json:
            emit_json(data)
            return
        click.echo(f"{data['code']}: {data['state']}")

    return command


lock_command = _account_command("lock", "Lock account CODE until unlocked; its sessions end now.", "lock_staff")
unlock_command = _account_command("unlock", "Unlock account CODE (a lock or a lockout); failures forgotten.",
                                  "unlock_staff")


@staff.command("grant")
@click.argument("code")
@click.option("--role", required=True, type=click.Choice(STAFF_ROLES), help="The account's new role.")
@with_app
def grant_command(app: AppContext, code: str, role: str) -> None:
    """Give account CODE another role (it replaces the old one; its sessions end)."""
    from sbcard.services.outlets import staff as accounts
    from sbcard.services.outlets.staff import CLI_HOLDER
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        data = accounts.grant_role(world.region(_region_node(world, code)), code, role, by=CLI_HOLDER,
                                   now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"{data['code']} is now {data['role']}")


@staff.command("password")
@click.argument("code")
@click.option("--password-stdin", "password_stdin", is_flag=True, required=True,
              help="Read the new first password from standard input.")
@with_app
def password_command(app: AppContext, code: str, password_stdin: bool) -> None:
    """Give account CODE a new first password (changed again at the next sign-in); its sessions end."""
    from sbcard.services.outlets import staff as accounts
    from sbcard.services.outlets.staff import CLI_HOLDER
    from sbcard.store.world import open_world

    password = _password_from_stdin()
    with open_world(app.home, app.clock) as world:
        data = accounts.reset_password(world.region(_region_node(world, code)), code, password, by=CLI_HOLDER,
                                       now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"{data['code']}: new first password set")
