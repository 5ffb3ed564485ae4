"""``sbcard subsidy approve | reject | pay | reverse``: the checker's and the payer's commands.

Registered onto the ``subsidy`` group by ``sbcard/cli/subsidies.py``.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
import time
from collections.abc import Callable
from typing import Any

import click

from sbcard.cli.context import EXIT_INTERNAL, AppContext, fail, with_app
from sbcard.cli.output import alert, emit_json, fields, money, named_region, refusal, table, when
from sbcard.cli.params import Seconds, Whole
from sbcard.cli.operator_option import staff_operator_option
from sbcard.domain.masking import mask_middle
from sbcard.store.world import open_world

EXIT_INTERRUPTED = 130  # the shell's convention for Ctrl-C
# Tests only: make `subsidy pay` kill itself or dawdle at a point of its run, e.g.
# "kill:before_commit:3" (SIGKILL inside chunk 3's transaction, before its COMMIT),
# "kill:after_commit:2", "kill:lease_taken:0", "sleep:after_commit:0.2" (after every chunk),
# "hold:after_commit:1" (after chunk 1, wait there for SIGUSR1 — or Ctrl-C, a kill — up to HOLD_SECONDS).
TEST_FAULT_ENV = "SBCARD_TEST_PAY_FAULT"
HOLD_SECONDS = 120


def register(subsidy: click.Group) -> None:
    """Add the payment commands to the ``subsidy`` group."""
    for command in (approve_command, reject_command, pay_command, reverse_command):
        subsidy.add_command(command)


# ----------------------------------------------------------------------------- approve / reject


@click.command("approve")
@click.argument("batch", metavar="BATCH")
@click.option("--operator", required=True, help="The checker: finance or supervisor, not the batch's maker.")
@with_app
def approve_command(app: AppContext, batch: str, operator: str) -> None:
    """Approve an imported BATCH for payment (maker–checker: a second operator)."""
    from sbcard.services.subsidies.payment import approve

    with open_world(app.home, app.clock) as world:
        data = approve(world, batch, operator=operator, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Batch {data['batch_id']} approved by {data['checker']} (imported by {data['maker']}): "
               f"{data['valid']:,} of {data['rows']:,} rows to pay, {money(data['valid_total_fen'])}")
    click.echo(f"Next: sbcard subsidy pay {data['batch_id']}")


@click.command("reject")
@click.argument("batch", metavar="BATCH")
@click.option("--operator", required=True, help="The checker: finance or supervisor, not the batch's maker.")
@click.option("--reason", required=True, help="Why, in words the maker can act on.")
@with_app
def reject_command(app: AppContext, batch: str, operator: str, reason: str) -> None:
    """Reject an imported BATCH with a reason; it is never paid."""
    from sbcard.services.subsidies.payment import reject

    with open_world(app.home, app.clock) as world:
        data = reject(world, batch, operator=operator, reason=reason, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Batch {data['batch_id']} rejected by {data['checker']}: {data['reject_reason']}")


# ----------------------------------------------------------------------------- pay


@click.command("pay")
@click.argument("batch", metavar="BATCH")
@staff_operator_option("The finance or supervisor operator running the payment (recorded; required).")
@click.option("--chunk", type=Whole(1, 10_000), default=1000, show_default=True,
              help="Rows per transaction.")
@click.option("--wait", "wait_seconds", type=Seconds(86_400), default=0, show_default=True,
              help="If another pay of BATCH is running, wait up to this many seconds for it instead of refusing.")
@click.option("--take-over", is_flag=True,
              help="Take the batch over from a pay on another machine that is gone (safe: never pays twice).")
@with_app
def pay_command(app: AppContext, batch: str, operator: str, chunk: int, wait_seconds: float,
                take_over: bool) -> None:
    """Pay every valid row of an approved BATCH into the holders' accounts, exactly once.

    Safe to interrupt (Ctrl-C, kill, power cut) and run again: it continues where it
    stopped, and no row is ever paid twice. Paying a paid batch does nothing and says so.
    """
    from sbcard.services.subsidies.payment import PayInProgress, pay

    fault = _test_fault()
    deadline = time.monotonic() + wait_seconds
    told = False
    try:
        with open_world(app.home, app.clock) as world, _Bar(quiet=app.json) as bar:
            while True:
                try:
                    data = pay(world, batch, now=app.clock.now(), chunk=chunk, progress=bar.update,
                               operator=operator, take_over=take_over, fault=fault, clock=app.clock.now)
                    break
                except PayInProgress as busy:
                    if time.monotonic() >= deadline:
                        raise
                    if not told:
                        click.echo(f"waiting (up to {wait_seconds:g} s): {busy.message}", err=True)
                        told = True
                    time.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        _interrupted(app, batch)
    except sqlite3.OperationalError as exc:
        fail(f"BATCH: the region's database stayed busy or failed ({exc}); what was committed stays paid, "
             f"nothing was paid twice: run `sbcard subsidy pay {batch}` again", EXIT_INTERNAL)
    if app.json:
        emit_json(data)
        return
    _print_summary(data)


def _interrupted(app: AppContext, batch: str) -> None:
    """Ctrl-C: the chunk in progress was rolled back; say where the batch stands, exit 130."""
    from sbcard.services.subsidies.payment import locate, summary

    where = ""
    try:
        with open_world(app.home, app.clock) as world:
            uow, batch_id = locate(world, batch)
            now = summary(uow, batch_id)
        where = (f"; batch {now['batch_id']} is {now['status']}: {now['paid']:,} rows paid "
                 f"({money(now['paid_fen'])}), {now['to_pay']:,} still to pay")
    except Exception:  # noqa: BLE001 - the interruption is what must be reported
        pass
    refusal(f"\ninterrupted: the chunk in progress was rolled back, nothing is half-paid{where}. "
            f"Run `sbcard subsidy pay {batch.strip()}` again to finish.", err=True)
    sys.exit(EXIT_INTERRUPTED)


def _print_summary(data: dict[str, Any]) -> None:
    batch = data["batch_id"]
    run = data["this_run"]
    if data["already"]:
        click.echo(f"Batch {batch} was already paid at {when(data['paid_at'])}: nothing done, nobody paid again.")
    else:
        how = "resumed an interrupted pay, and paid" if data["resumed"] else "paid"
        click.echo(f"Batch {batch} {how} for {named_region(data['region'])}, approved by {data['checker']}.")
        if data["took_over"]:
            gone = data["took_over"]
            click.echo(f"The earlier pay (process {gone['pid']} on {gone['host']}, started {when(gone['started_at'])}) "
                       f"had stopped; this run took over from it.")
        click.echo(f"This run: paid {run['paid']:,} ({money(run['paid_fen'])}), failed {run['failed']:,} "
                   f"({money(run['failed_fen'])}) at pay time.")
    failed_at_pay = data["failed"] - data["invalid"]
    balanced = data["paid_fen"] + data["failed_fen"] == data["declared_total_fen"]
    click.echo(fields([
        ("rows", f"{data['rows']:,}"),
        ("paid", f"{data['paid']:,}  {money(data['paid_fen'])}"),
        ("failed", f"{data['failed']:,}  {money(data['failed_fen'])}  "
                   f"({data['invalid']:,} refused at import, {failed_at_pay:,} at pay time)"),
        ("declared", f"{money(data['declared_total_fen'])}  "
                     f"{'= paid + failed' if balanced else alert('≠ paid + failed: CALL SUPPORT')}"),
        *([("reversed", f"{data['reversed']:,}  {money(data['reversed_fen'])}")] if data["reversed"] else []),
    ]))
    if data["failed_by_reason"]:
        click.echo("")
        click.echo(table([(r["reason_code"], f"{r['rows']:,}", money(r["amount_fen"]), r["reason"])
                          for r in data["failed_by_reason"]], ["failed by reason", "rows", "amount", "meaning"]))
        click.echo(f"\nRows to correct and resubmit: sbcard subsidy failures {batch} --out FILE.csv --operator CODE")


class _Bar:
    """A progress bar on stderr when it is a terminal (rows settled of those to pay); nothing otherwise."""

    def __init__(self, *, quiet: bool) -> None:
        self._on = not quiet and sys.stderr.isatty()
        self._bar: Any = None
        self._done = 0

    def __enter__(self) -> _Bar:
        return self

    def update(self, done: int, total: int) -> None:
        if not self._on:
            return
        if self._bar is None:
            self._bar = click.progressbar(length=max(total, 1), label="paying", file=sys.stderr, show_eta=True,
                                          show_pos=True)
            self._bar.__enter__()
        self._bar.update(done - self._done)
        self._done = done

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)


def _test_fault() -> Callable[[str, int], None] | None:
    """The test hook of ``TEST_FAULT_ENV`` (unset in real use: then None)."""
    spec = os.environ.get(TEST_FAULT_ENV, "").strip()
    if not spec:
        return None
    actions = []
    for part in spec.split(","):
        action, point, arg = part.strip().split(":")
        actions.append((action, point, arg))

    if any(action == "hold" for action, _, _ in actions):
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})  # kept pending until the hold takes it

    def fault(point: str, chunk_no: int) -> None:
        for action, at, arg in actions:
            if at != point:
                continue
            if action == "kill" and chunk_no == int(arg):
                os.kill(os.getpid(), signal.SIGKILL)
            elif action == "sleep":
                time.sleep(float(arg))
            elif action == "hold" and chunk_no == int(arg):
                signal.sigtimedwait({signal.SIGUSR1}, HOLD_SECONDS)

    return fault


# ----------------------------------------------------------------------------- reverse


@click.command("reverse")
@click.argument("batch", metavar="BATCH")
@click.argument("seq", metavar="SEQ", type=Whole(1))
@click.option("--operator", required=True, help="Finance or supervisor operator of the batch's region.")
@click.option("--reason", required=True, help="What the error was.")
@with_app
def reverse_command(app: AppContext, batch: str, seq: int, operator: str, reason: str) -> None:
    """Reverse the payment of row SEQ of BATCH, made in error: a new ledger entry, never an edit."""
    from sbcard.services.subsidies.payment import reverse

    with open_world(app.home, app.clock) as world:
        data = reverse(world, batch, seq, operator=operator, reason=reason, now=app.clock.now())
    if app.json:
        emit_json(data)
        return
    click.echo(f"Reversed {money(data['amount_fen'])} paid by row {data['seq']} of batch {data['batch_id']} "
               f"({data['payment_txn_id']}) back to {data['fund_account']}")
    click.echo(fields([("card", data["card_number"]), ("account", mask_middle(data["account_no"], 6, 4)),
                       ("balance now", money(data["balance_fen"])), ("transaction", data["txn_id"]),
                       ("by", data["operator"]), ("reason", data["reason"])]))
