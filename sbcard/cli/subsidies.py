"""``sbcard subsidy …``: subsidy batch payouts (惠民惠农“一卡通”).

This module has the catalogue and the maker's side (items, import, generate, show,
failures, batches); ``sbcard/cli/subsidy_payout.py`` adds the checker's and the payer's
commands (approve, reject, pay, reverse) to the same group.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from sbcard.cli import subsidy_payout
from sbcard.cli.context import AppContext, with_app
from sbcard.cli.output import emit_json, fields, money, named_region, table, when
from sbcard.cli.params import Whole
from sbcard.cli.operator_option import staff_operator_option
from sbcard.domain.money import parse_yuan
from sbcard.store.world import open_world

STATUSES = ("imported", "approved", "rejected", "paying", "paid")


@click.group()
def subsidy() -> None:
    """Subsidy batch payouts into the card's financial account: import, approve, pay, failures."""


@subsidy.command("items")
@click.option("--region", default=None, metavar="NNNNNN", help="Whose catalogue (every region loads the same).")
@with_app
def items_command(app: AppContext, region: str | None) -> None:
    """The subsidy catalogue: code, name, paying department, period, cap per person and period.

    Each cap says how far to trust it (official, secondary or illustrative); the sources
    are in --json and fixtures/subsidies/sources.csv.
    """
    from sbcard.services.subsidies.batch_import import items

    with open_world(app.home, app.clock) as world:
        data = items(world, region=region)
    if app.json:
        emit_json(data)
        return
    rows = [(i["code"], i["name"], i["department"], i["period"], money(i["cap_fen"]), i["confidence"])
            for i in data]
    click.echo(table(rows, ["code", "name", "department", "period", "cap", "cap is"]))
    if any(i["illustrative"] for i in data):
        click.echo("Illustrative caps are the simulator's own ceilings per person and period, not published "
                   "figures (fixtures/subsidies/README.md).")


@subsidy.command("import")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--region", required=True, metavar="NNNNNN", help="The district (or city) whose batch this is.")
@click.option("--operator", required=True, help="The maker: a finance operator of the region.")
@click.option("--count", type=Whole(0), default=None,
              help="The declared number of rows (with --total), when the file has no #TOTAL trailer.")
@click.option("--total", default=None, metavar="YUAN", help="The declared total in yuan (with --count).")
@with_app
def import_command(app: AppContext, file: Path, region: str, operator: str, count: int | None,
                   total: str | None) -> None:
    """Check FILE (CSV or .xlsx) and store it as a batch to approve; a bad file is rejected whole.

    Columns: seq,citizen_id,name,card_number,item,period,amount,remark (card_number and
    remark optional); control totals from a last row #TOTAL,<count>,<total yuan>[,<region>]
    or from --count and --total.
    """
    from sbcard.services.subsidies.batch_import import import_batch

    total_fen = parse_yuan(total, "--total") if total is not None else None
    with open_world(app.home, app.clock) as world, _progress_bars(quiet=app.json) as progress:
        data = import_batch(world, file, region=region, operator=operator, now=app.clock.now(), count=count,
                            total_fen=total_fen, progress=progress)
    _emit_batch(app, data, f"Imported {data['file']} ({_format(data)})")


@subsidy.command("generate")
@click.option("--item", required=True, metavar="CODE_OR_NAME", help="The item, e.g. GLJT or 高龄津贴.")
@click.option("--as-of", "as_of", type=click.DateTime(formats=["%Y-%m-%d"]), default=None, metavar="YYYY-MM-DD",
              help="The day ages are taken on; the period is the month (or year) it falls in. Default: today.")
@click.option("--region", required=True, metavar="NNNNNN", help="The district (or city) whose residents it pays.")
@click.option("--operator", required=True, help="The maker: a finance operator of the region.")
@with_app
def generate_command(app: AppContext, item: str, as_of: datetime | None, region: str, operator: str) -> None:
    """Build a batch from the registry by the item's rules (免申即享), to approve and pay like a file's."""
    from sbcard.services.subsidies.batch_import import generate_batch

    now = app.clock.now()
    day = as_of.date() if as_of else now.date()
    with open_world(app.home, app.clock) as world, _progress_bars(quiet=app.json) as progress:
        data = generate_batch(world, item=item, as_of=day, region=region, operator=operator, now=now,
                              progress=progress)
    _emit_batch(app, data, f"Generated {data['item']} {data['period']} for {named_region(data['region'])} "
                           f"(ages on {data['as_of']})", rules=True)


@subsidy.command("show")
@click.argument("batch", metavar="BATCH")
@with_app
def show_command(app: AppContext, batch: str) -> None:
    """A batch: origin, maker and checker, status, totals, and its rows by status, reason and item."""
    from sbcard.services.subsidies.batch_import import show

    with open_world(app.home, app.clock) as world:
        data = show(world, batch)
    if app.json:
        emit_json(data)
        return
    click.echo(fields([
        ("batch", data["batch_id"]), ("region", named_region(data["region"])),
        ("source", data["file_name"] if data["source"] == "file" else "generated (免申即享)"),
        ("status", data["status"] + (f": {data['reject_reason']}" if data["reject_reason"] else "")),
        ("maker", f"{data['maker']} at {when(data['created_at'])}"),
        ("checker", f"{data['checker']} at {when(data['approved_at'])}" if data["checker"] else None),
        ("declared", f"{data['declared_count']:,} rows, {money(data['declared_total_fen'])}"),
        ("valid at import", f"{data['valid']:,} rows, {money(data['valid_total_fen'])}"),
        ("invalid at import", f"{data['invalid']:,} rows, {money(data['invalid_total_fen'])}"),
        ("paid", f"{data['paid_count']:,} rows, {money(data['paid_fen'])}" + (
            f" at {when(data['paid_at'])}" if data["paid_at"] else "")),
        ("failed", f"{data['failed_count']:,} rows, {money(data['failed_fen'])}"),
    ]))
    if data["items"]:
        click.echo()
        click.echo(table([(i["item"], i["period"], f"{i['rows']:,}", money(i["amount_fen"]))
                          for i in data["items"]], ["item", "period", "rows", "amount"]))
    if data["reasons"]:
        click.echo()
        click.echo(table([(r["reason_code"], r["status"], f"{r['rows']:,}", money(r["amount_fen"]), r["words"])
                          for r in data["reasons"]], ["reason", "when", "rows", "amount", "meaning"]))
        click.echo(f"\nThe rows not paid, to correct and resubmit: sbcard subsidy failures {data['batch_id']} "
                   "--out FILE.csv --operator CODE")
    if data["noted"]:
        click.echo(f"{data['noted']:,} rows carry a note (e.g. paid to the card that replaced the one in the file).")


@subsidy.command("failures")
@click.argument("batch", metavar="BATCH")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The CSV file to write (UTF-8 with BOM): the rows not paid with reason_code and reason.")
@staff_operator_option("Who takes the list out (recorded in the audit log; required).")
@with_app
def failures_command(app: AppContext, batch: str, out_path: Path, operator: str) -> None:
    """Write BATCH's rows that were not paid, each with its reason, ready to correct and resubmit."""
    from sbcard.services.exchange.lookup import require_operator_anywhere
    from sbcard.services.subsidies.batch_import import failures

    with open_world(app.home, app.clock) as world:
        require_operator_anywhere(world, operator)
        data = failures(world, batch, out_path, operator=operator, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Wrote {data['rows']:,} rows not paid ({money(data['amount_fen'])}) of batch "
               f"{data['batch_id']} to {data['out']}")
    if data["rows"]:
        click.echo("Correct them, drop the ones not to resubmit, add the trailer #TOTAL,<count>,<total> (or give "
                   "--count and --total), then `sbcard subsidy import` the file.")


@subsidy.command("batches")
@click.option("--region", default=None, metavar="NNNNNN", help="A district, city or province.")
@click.option("--status", type=click.Choice(STATUSES), default=None)
@with_app
def batches_command(app: AppContext, region: str | None, status: str | None) -> None:
    """Every region's subsidy batches, oldest first."""
    from sbcard.services.subsidies.batch_import import batches

    with open_world(app.home, app.clock) as world:
        data = batches(world, region=region, status=status)
    if app.json:
        emit_json(data)
        return
    click.echo(table([(b["batch_id"], named_region(b["region"]), b["file_name"] or "generated", b["status"],
                       f"{b['rows']:,}",
                       f"{b['valid']:,}", money(b["declared_total_fen"]), f"{b['paid_count']:,}",
                       money(b["paid_fen"]), b["maker"], b["checker"] or "") for b in data],
                     ["batch", "region", "source", "status", "rows", "valid", "total", "paid", "paid amount",
                      "maker", "checker"]))


subsidy_payout.register(subsidy)


# ----------------------------------------------------------------------------- output


def _format(data: dict[str, Any]) -> str:
    if data["format"] == "xlsx":
        return "xlsx"
    return f"CSV, {data['encoding']}"


def _emit_batch(app: AppContext, data: dict[str, Any], headline: str, *, rules: bool = False) -> None:
    if app.json:
        emit_json(data)
        return
    click.echo(f"{headline}: batch {data['batch_id']}")
    if rules:
        _echo_rules(data)
    click.echo(table([
        ("rows", f"{data['rows']:,}", money(data["total_fen"])),
        ("valid", f"{data['valid']:,}", money(data["valid_fen"])),
        ("invalid", f"{data['invalid']:,}", money(data["invalid_fen"])),
    ], ["", "rows", "amount"]))
    if data["reasons"]:
        from sbcard.domain.subsidies import describe

        click.echo()
        click.echo(table([(code, f"{n:,}", describe(code)) for code, n in data["reasons"].items()],
                         ["invalid because", "rows", "meaning"]))
    if data["noted"]:
        click.echo(f"{data['noted']:,} valid rows carry a note (`sbcard subsidy show {data['batch_id']}`).")
    click.echo(f"\nNext: another finance or supervisor operator approves it: sbcard subsidy approve "
               f"{data['batch_id']} --operator CODE")
    if data["invalid"]:
        click.echo(f"The invalid rows, to correct and resubmit: sbcard subsidy failures {data['batch_id']} "
                   "--out FILE.csv --operator CODE")


def _echo_rules(data: dict[str, Any]) -> None:
    """The age bands a generated batch paid by, each with how far its amount can be trusted."""
    click.echo(table([(_ages(r), money(r["amount_fen"]), f"{r['rows']:,}", r["confidence"]) for r in data["rules"]],
                     ["ages", "amount", "rows", "amount is"]))
    if data["illustrative"]:
        click.echo("Illustrative amounts are the project's own, not the region's published rule "
                   "(fixtures/subsidies/README.md).")
    click.echo()


def _ages(rule: dict[str, Any]) -> str:
    return f"{rule['min_age']}+" if rule["max_age"] is None else f"{rule['min_age']}-{rule['max_age']}"


class _Bars:
    """One progress bar on stderr per phase of the work ("reading" the file, "checking" the rows)."""

    def __init__(self) -> None:
        self.phase: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int) -> None:
        if phase != self.phase:
            self.close()
            self.phase, self.done = phase, 0
            self.bar = click.progressbar(length=max(total, 1), label=f"{phase:<8}", file=sys.stderr, show_eta=True)
            self.bar.__enter__()
        step = min(done, max(total, 1)) - self.done
        if step > 0:
            self.bar.update(step)
            self.done += step

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@contextmanager
def _progress_bars(*, quiet: bool) -> Iterator[_Bars | None]:
    """Bars on stderr when it is a terminal and no JSON was asked for; nothing otherwise."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    bars = _Bars()
    try:
        yield bars
    finally:
        bars.close()
