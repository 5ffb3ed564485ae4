"""``sbcard init`` and ``sbcard simulate``."""

from __future__ import annotations

import click

from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, table
from sbcard.store.world import init_world, open_world, world_summary


@click.command("init")
@click.option("--seed", type=int, default=None, help="Seed for the regions' master keys (default: random).")
@with_app
def init_command(app: AppContext, seed: int | None) -> None:
    """Make the world (or upgrade it); running it again changes nothing."""
    report = init_world(app.home, app.clock, rng_seed=seed)
    if app.json:
        emit_json(report.to_dict())
        return
    if not report.changed:
        click.echo(f"World at {report.home} is already up to date; nothing changed.")
        return
    verb = "Created" if report.created else "Upgraded"
    click.echo(f"{verb} the world at {report.home}")
    rows = [(n.node, n.path.name, n.schema_version, ", ".join(n.migrations_applied) or "—") for n in report.nodes]
    click.echo(table(rows, ["node", "database", "schema", "migrations applied"]))


@click.command("simulate")
@click.option("--population", type=click.IntRange(min=1), default=2000, show_default=True)
@click.option("--days", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@with_app
def simulate_command(app: AppContext, population: int, days: int, seed: int) -> None:
    """Run the Jing-Jin-Ji card world. For now: build the world and summarise it."""
    report = init_world(app.home, app.clock, rng_seed=seed)
    with open_world(app.home) as world:
        summary = world_summary(world)
    data = {
        "seed": seed,
        "population": population,
        "days": days,
        "home": str(app.home),
        "world_created": report.created,
        "nodes": summary,
    }
    if app.json:
        emit_json(data)
        return
    click.echo(f"sbcard world at {app.home} (seed {seed})")
    rows = [(node, *(_summary_cells(info))) for node, info in summary.items()]
    click.echo(table(rows, ["node", "schema", "regions", "operators", "audit entries", "cards", "blacklist"]))
    click.echo("The population, days and transactions arrive with the simulator (issue 7).")


def _summary_cells(info: dict) -> tuple:
    return (
        info.get("schema_version"),
        info.get("regions"),
        info.get("operators", "—"),
        info.get("audit_entries", "—"),
        info.get("cards", "—"),
        info.get("blacklist_version", "—"),
    )
