"""``sbcard operator …``: staff who act at counters and in finance, one region each."""

from __future__ import annotations

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, named_region, table
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.regions import NODE_NAMES, node_of, validate_region_code
from sbcard.services.outlets.operators import ROLES
from sbcard.store.world import REGION_NODES, open_world


@click.group()
def operator() -> None:
    """Staff operators: who may act at a counter or in finance."""


@operator.command("add")
@click.argument("code")
@click.option("--name", required=True, help="The operator's name.")
@click.option("--role", required=True, type=click.Choice(ROLES), help="What they may do.")
@click.option("--region", required=True, metavar="NNNNNN", help="The district they work in (its province = their region).")
@with_app
def add_command(app: AppContext, code: str, name: str, role: str, region: str) -> None:
    """Register operator CODE in the card service of --region's province. Codes are unique nationally."""
    from sbcard.services.exchange.lookup import find_operator
    from sbcard.services.outlets.operators import add_operator

    node = _node(region)
    with open_world(app.home, app.clock) as world:
        found = find_operator(world, code)
        if found is not None:
            raise RuleRefused("operator.exists", f"operator {code.strip()} already exists in {NODE_NAMES[found[0]]}",
                              "CODE")
        data = add_operator(world.region(node), code=code, name=name, role=role, region=region, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Added operator {data['code']} ({data['role']}) to {NODE_NAMES[data['node']]}'s card service")
    click.echo(fields([("name", data["name"]), ("region", named_region(data["region"]))]))


@operator.command("list")
@click.option("--region", default=None, metavar="NNNNNN", help="Only this province, prefecture or district.")
@with_app
def list_command(app: AppContext, region: str | None) -> None:
    """Operators of every region (or of --region), by region then code."""
    from sbcard.services.outlets.operators import list_operators

    nodes = [_node(region)] if region else list(REGION_NODES)
    with open_world(app.home, app.clock) as world:
        items = [op for node in nodes for op in list_operators(world.region(node), region=region and region.strip())]
    if app.json:
        emit_json(items)
        return
    if not items:
        click.echo("No operators.")
        return
    click.echo(table([(o["code"], o["name"], o["role"], named_region(o["region"]), o["node"]) for o in items],
                     ["operator", "name", "role", "region", "node"]))


def _node(region: str) -> str:
    try:
        return node_of(validate_region_code(region))
    except InvalidInput as e:
        raise InvalidInput(e.code, e.message, "--region") from None
