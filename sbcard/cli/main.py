"""``sbcard``: the composition root. Each group lives in its own module."""

from __future__ import annotations

from pathlib import Path

import click

from sbcard.cli import (
    accounts,
    card_life,
    cards,
    clearing,
    hub,
    ids,
    medical,
    operators,
    outlets,
    persons,
    readers,
    serve,
    staff,
    subsidies,
    terminals,
    transit,
    transit_purse,
    transit_taps,
    venues,
    world,
)
from sbcard.cli.context import AppContext, default_home
from sbcard.cli.errors import SbcardGroup


@click.group(cls=SbcardGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The world's directory (default: $SBCARD_HOME, else ./sbcard-world).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON with stable keys (also accepted after the command).")
@click.version_option(package_name="sbcard")
@click.pass_context
def cli(ctx: click.Context, home: Path | None, as_json: bool) -> None:
    """Simulator of the Jing-Jin-Ji third-generation social security card service."""
    ctx.obj = AppContext(home=home or default_home(), json=as_json)


cli.add_command(world.init_command)
cli.add_command(world.simulate_command)
cli.add_command(ids.ids)
cli.add_command(readers.reader)
cli.add_command(cards.card)
card_life.register(cards.card)
cli.add_command(persons.person)
cli.add_command(operators.operator)
cli.add_command(outlets.outlet)
cli.add_command(accounts.account)
cli.add_command(transit.transit)
transit_taps.register(transit.transit)
transit_purse.register(transit.transit)
cli.add_command(terminals.terminal)
cli.add_command(subsidies.subsidy)
cli.add_command(medical.medical)
cli.add_command(venues.venue)
cli.add_command(venues.library)
cli.add_command(hub.hub)
cli.add_command(clearing.clearing)
cli.add_command(clearing.settlement)
cli.add_command(staff.staff)
cli.add_command(serve.serve_command)


def main() -> None:
    cli(prog_name="sbcard")
