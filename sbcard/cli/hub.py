"""``sbcard hub link | links``: the hub's links to the regions' hosts (``sbcard.services.exchange.links``)."""

from __future__ import annotations

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import alert, emit_json, table, when


@click.group("hub")
def hub() -> None:
    """The national hub: its links to the regions' hosts."""


@hub.command("link")
@click.argument("node", metavar="NODE")
@click.option("--down/--up", "down", default=None, help="Mark the region unreachable (--down) or reachable again.")
@click.option("--note", default=None, metavar="TEXT", help="Why (kept with the link).")
@with_app
def link_command(app: AppContext, node: str, down: bool | None, note: str | None) -> None:
    """Mark the hub's link to NODE (bj, tj, he) down or up; without --down/--up, show it.

    While a region is down, medical points of sale settle its insured persons' claims
    offline against the card and queue them; `sbcard medical reconcile` sends them once
    the link is up again.
    """
    from sbcard.services.exchange import links
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        if down is None:
            data = links.link(world.hub(), node)
        else:
            data = links.set_link(world.hub(), node, up=not down, note=note, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    state = "up" if data["up"] else alert("DOWN")
    click.echo(f"{data['name']} ({data['node']}): {state}" + (f" — {data['note']}" if data["note"] else ""))


@hub.command("links")
@with_app
def links_command(app: AppContext) -> None:
    """Every region's link from the hub."""
    from sbcard.services.exchange import links
    from sbcard.store.world import open_world

    with open_world(app.home, app.clock) as world:
        data = links.links(world.hub())
    if app.json:
        emit_json(data)
        return
    click.echo(table([(d["node"], d["name"], "up" if d["up"] else alert("DOWN"),
                       when(d["changed_at"]) if d["changed_at"] else "", d["note"] or "")
                      for d in data], ["node", "region", "link", "changed", "note"]))
