"""``sbcard init`` and ``sbcard simulate`` (the simulator: ``sbcard/sim``)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from sbcard.cli.context import EXIT_REFUSED, AppContext, with_app
from sbcard.cli.output import alert, emit_json, money, table
from sbcard.cli.params import Whole
from sbcard.store.world import init_world


@click.command("init")
@click.option("--seed", type=Whole(), default=None, help="Seed for the regions' master keys (default: random).")
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
@click.option("--population", type=click.IntRange(min=1), default=2000, show_default=True,
              help="People in the three regions (most hold a card when the run starts); at most 500,000, "
                   "about 15 KB of memory each.")
@click.option("--days", type=Whole(1), default=3, show_default=True, help="Simulated days.")
@click.option("--seed", type=Whole(), default=1, show_default=True,
              help="Everything that varies comes from it: the same seed, the same world and summary.")
@click.option("--faults", type=click.Choice(["none", "light", "heavy"]), default="none", show_default=True,
              help="Torn cards, crashed terminals, lost or repeated messages, a region cut off for hours.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write DIR/index.html (charts) and DIR/summary.json.")
@click.option("--resume", is_flag=True, help="Continue a killed run in --home from its last checkpoint.")
@with_app
def simulate_command(app: AppContext, population: int, days: int, seed: int, faults: str, report_dir: Path | None,
                     resume: bool) -> None:
    """Run the Jing-Jin-Ji card world: a population, its days of transactions, clearing and settlement.

    --home is the world's directory: a new one is made there (an empty or new directory, or
    an earlier simulation with the same options, which is made again). After each day the
    invariants are checked (a violation stops the run: exit 1, the details on stderr) and a
    checkpoint is written, from which --resume continues.
    """
    import time

    from sbcard.sim import checkpoint, report
    from sbcard.cli.sim_progress import SimProgress
    from sbcard.sim.engine import Options, Simulation
    from sbcard.sim.night import InvariantViolated
    from sbcard.sim.population import check_population

    check_population(population)  # before anything is written in --home
    started = time.perf_counter()
    options = Options(population=population, days=days, seed=seed, faults=faults)
    mode = checkpoint.check_home(app.home, options.to_json(), resume=resume)
    shown = SimProgress()
    sim = Simulation(app.home, options, progress=shown.line, beat=shown.beat if shown.on else None)
    failed: InvariantViolated | None = None
    with checkpoint.run_lock(app.home):
        try:
            sim.run(resume=mode == "resume")
        except InvariantViolated as violated:
            failed = violated
        finally:
            shown.close()
    summary = report.summary(seed, population, days, sim.tally, report.total_settlement(sim.settlements),
                             sim.invariants, sim.tally.faults, time.perf_counter() - started)
    if report_dir is not None:
        report.write_html(report_dir, summary, sim.tally)
    if app.json:
        click.echo(report.dumps(summary))
    else:
        _print_summary(app, summary, report_dir)
    if failed is not None:
        click.echo(f"error: {failed.report}", err=True)
        sys.exit(EXIT_REFUSED)


def _print_summary(app: AppContext, summary: dict, report_dir: Path | None) -> None:
    nodes = ("bj", "tj", "he")
    click.echo(f"sbcard simulate: seed {summary['seed']}, {summary['population']:,} people, {summary['days']} day(s) "
               f"in {summary['elapsed_s']:.1f} s (world at {app.home})")
    counts = summary["counts"]
    rows = [(kind, *(f"{counts[kind].get(n, 0):,}" for n in nodes), f"{sum(counts[kind].values()):,}")
            for kind in counts]
    click.echo("\n" + table(rows, ["transactions", *nodes, "total"]))
    matrix = (summary.get("settlement") or {}).get("matrix") or {}
    net = (summary.get("settlement") or {}).get("net") or {}
    rows = [(payer, *(money(int((matrix.get(payer) or {}).get(payee, 0))) for payee in nodes),
             money(int(net.get(payer, 0)))) for payer in nodes]
    click.echo("\nSettlement (payer → payee, all days; net: + receives)\n"
               + table(rows, ["payer", *(f"→ {n}" for n in nodes), "net"]))
    if summary["faults"]:
        click.echo("\nFaults injected: " + ", ".join(f"{k} {v:,}" for k, v in summary["faults"].items()))
    invariants = summary["invariants"]
    held = [k for k, ok in invariants.items() if ok]
    broken = [k for k, ok in invariants.items() if not ok]
    click.echo(f"\nInvariants: {len(held)} of {len(invariants)} held"
               + (alert(f"; VIOLATED: {', '.join(broken)}") if broken else ""))
    if report_dir is not None:
        click.echo(f"Report: {report_dir / 'index.html'}")
    _print_serve_hint(app)


def _print_serve_hint(app: AppContext) -> None:
    """How to put this world on the network and sign in to it (docs/service.md)."""
    import shlex

    sbcard = shlex.quote(sys.argv[0]) if sys.argv and sys.argv[0].endswith("sbcard") else "sbcard"
    home = shlex.quote(str(app.home))
    click.echo("\nServe this world and sign in (docs/service.md):\n"
               f"  {sbcard} --home {home} staff add BJ-ADMIN --name 管理员 --role admin --region 110000 --password-stdin\n"
               "      (type a first password of 10+ characters; change it at the first sign-in)\n"
               f"  {sbcard} --home {home} serve --port 8000\n"
               "  then POST http://127.0.0.1:8000/api/v1/session {\"operator\": \"BJ-ADMIN\", \"password\": …, "
               "\"new_password\": …}; the API is described at http://127.0.0.1:8000/api/docs")
