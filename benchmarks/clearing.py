"""Clearing 1,000,000 purse records with TAC verification (target ≤ 60 s).

    .venv/bin/python benchmarks/clearing.py [--records 1000000] [--cards 100000]
        [--terminals 100] [--modes routed,uploaded] [--json]

The world and the day's records are ``benchmarks/transit_upload.py``'s (its generators:
``--cards`` active cards of the three issuers with a confirmed ¥1,000.00 load, every
record with the TAC its card computes, spread over ``--terminals`` Beijing metro
validators); building them is not timed. Timed, each on a fresh copy of the world:

- ``routed``: the records reach the operator's host while the hub cannot reach any
  issuer (every link down: the upload keeps them *awaiting*, not timed); the links come
  back and **one ``clearing run``** does the whole job: routes the 1,000,000 records
  through the hub to their issuers, which verify every TAC with their DTK masters and the
  counters and balances per card, files the verdicts at the operator, then clears them —
  lines, ledgers, counter gaps, the hub's settlement, the settlement files. This is the
  figure: clearing 1,000,000 records with TAC verification in one run.
- ``uploaded``: the usual night — the day's records uploaded (the TACs verified at
  upload, as ``transit upload`` does: timed as ``upload_s``), then the clearing run
  (``clearing_s``: lines, ledgers, gaps, settlement).

Wall-clock seconds are the figure (``met``); the process's CPU seconds are printed beside
them, since other work on the machine stretches the wall clock. Each mode ends with the checks that the run is right: every record cleared once, the
lines' total equal to the records' amounts, the settlement's nets summing to zero, every
issuer's purse float reconciled, and a second run of the same date changing nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import transit_upload as gen  # noqa: E402

from sbcard.services.clearing import purse_records as clearing
from sbcard.services.accounts import ledger
from sbcard.services.exchange import links
from sbcard.services.transit import host as transit_host  # noqa: E402
from sbcard.services.transit.purse_host import FLOAT_PURSE, ensure_float  # noqa: E402
from sbcard.store.unit_of_work import UnitOfWork  # noqa: E402
from sbcard.store.world import REGION_NODES, open_world  # noqa: E402

TARGET_S = 60.0
UPLOAD_AT = gen.NOW  # 23:00 on the day of the taps
CLEAR_AT = gen.NOW + dt.timedelta(minutes=30)
DAY = gen.NOW.date()
MODES = ("routed", "uploaded")


def _ingest(home: Path, by_terminal: dict[str, list[Any]]) -> tuple[float, dict[str, int]]:
    records = [r for rs in by_terminal.values() for r in rs]
    with open_world(home) as world:
        macs = gen.batch_macs(world, by_terminal)
        t0, c0 = time.perf_counter(), time.process_time()
        result = transit_host.ingest(world, "bj", records, now=UPLOAD_AT, label="line-centre", macs=macs)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
    return elapsed, {"cpu_s": round(cpu, 2),
                     **{k: getattr(result, k) for k in ("sent", "accepted", "awaiting", "rejected", "duplicates")}}


def _fund_floats(home: Path) -> None:
    """The generator writes the cards' confirmed loads straight into ``purse_loads``; their money in the float
    (one transaction per issuer from a benchmark fund), so that the floats reconcile as after real loads."""
    with open_world(home) as world:
        for node in REGION_NODES:
            db = world.region(node)
            total = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM purse_loads").fetchone()[0]
            if total:
                uow = UnitOfWork(db)
                ensure_float(uow, UPLOAD_AT)
                ledger.ensure_internal_account(uow, "FUND-BENCH-LOADS", "fund", UPLOAD_AT)
                ledger.post(uow, txn_id="BENCH-LOADS", entries=[("FUND-BENCH-LOADS", -total), (FLOAT_PURSE, total)],
                            kind="purse_load", operator="bench", now=UPLOAD_AT)


def _set_links(home: Path, up: bool) -> None:
    with open_world(home) as world:
        for node in REGION_NODES:
            links.set_link(world.hub(), node, up=up, note="benchmark", now=UPLOAD_AT)


def _clear(home: Path) -> tuple[float, dict[str, Any]]:
    with open_world(home) as world:
        t0, c0 = time.perf_counter(), time.process_time()
        result = clearing.run_clearing(world, DAY, now=CLEAR_AT)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        again = clearing.run_clearing(world, DAY, now=CLEAR_AT + dt.timedelta(minutes=1))
        checks = _checks(world, result.to_dict(), again.changed)
    return elapsed, {"clearing_cpu_s": round(cpu, 2), "routed": result.routed, "lines": len(result.lines), "gaps": len(result.gaps), **checks}


def _checks(world: Any, result: dict[str, Any], changed_again: bool) -> dict[str, Any]:
    cleared = uncleared = amount = 0
    for node in REGION_NODES:
        db = world.region(node)
        c, a = db.execute("SELECT count(*), coalesce(sum(amount_fen), 0) FROM purse_purchases "
                          "WHERE clearing_day IS NOT NULL").fetchone()
        cleared, amount = cleared + c, amount + a
        uncleared += db.execute("SELECT count(*) FROM purse_purchases WHERE clearing_day IS NULL").fetchone()[0]
    s = result["settlement"]
    return {
        "cleared": cleared, "uncleared": uncleared,
        "lines_match": sum(x["count"] for x in result["lines"]) == cleared
        and sum(x["amount_fen"] for x in result["lines"]) == amount,
        "net_sums_to_zero": sum(s["net"].values()) == 0,
        "reconciled": all(r["ok"] for r in s["reconciliation"].values()),
        "second_run_changed_nothing": not changed_again,
        "net": s["net"],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--modes", default=",".join(MODES), help=f"Which to time: {', '.join(MODES)}.")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: choose among {', '.join(MODES)}")
    gen.TERMINALS = args.terminals
    report: dict[str, Any] = {"target_s": TARGET_S, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="sbcard-clearing-") as tmp:
        base = Path(tmp) / "world"
        t0 = time.perf_counter()
        cards = gen.build_cards(base, args.cards)
        by_terminal = gen.generate(base, cards, args.records, random.Random(7))
        _fund_floats(base)
        report.update(records=sum(len(v) for v in by_terminal.values()), cards=sum(len(v) for v in cards.values()),
                      terminals=len(by_terminal), setup_s=round(time.perf_counter() - t0, 1))
        for mode in modes:
            home = Path(tmp) / f"world-{mode}"
            shutil.copytree(base, home)
            if mode == "routed":
                _set_links(home, up=False)
                _, uploaded = _ingest(home, by_terminal)
                _set_links(home, up=True)
                clear_s, checks = _clear(home)
                m = {"uploaded": uploaded, "clearing_s": round(clear_s, 2),
                     "records_per_s": round(report["records"] / clear_s), "met": clear_s <= TARGET_S, **checks}
            else:
                upload_s, uploaded = _ingest(home, by_terminal)
                clear_s, checks = _clear(home)
                total = upload_s + clear_s
                m = {"uploaded": uploaded, "upload_s": round(upload_s, 2), "clearing_s": round(clear_s, 2),
                     "total_s": round(total, 2), "records_per_s": round(report["records"] / total),
                     "met": total <= TARGET_S, **checks}
            m["db_bytes"] = {p.name: p.stat().st_size for p in sorted(home.glob("*.db"))}
            report["modes"][mode] = m
            shutil.rmtree(home)
    ok = all(m["lines_match"] and m["net_sums_to_zero"] and m["reconciled"] and m["second_run_changed_nothing"]
             and m["uncleared"] == 0 for m in report["modes"].values())
    report["correct"] = ok
    report["met"] = ok and all(m["met"] for m in report["modes"].values())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['records']:,} records from {report['cards']:,} cards over {report['terminals']} terminals "
              f"(setup {report['setup_s']:.1f} s, not timed); target ≤ {TARGET_S:.0f} s")
        for mode, m in report["modes"].items():
            if mode == "routed":
                met = "met" if m["met"] else "NOT met"
                print(f"  routed: one clearing run routing, TAC-verifying and clearing every record: "
                      f"{m['clearing_s']:.1f} s = {m['records_per_s']:,} records/s ({met}; CPU "
                      f"{m['clearing_cpu_s']:.1f} s)")
            else:
                print(f"uploaded: upload with TAC check {m['upload_s']:.1f} s + clearing run {m['clearing_s']:.1f} s "
                      f"= {m['total_s']:.1f} s = {m['records_per_s']:,} records/s "
                      f"({'met' if m['met'] else 'NOT met'}; CPU {m['uploaded']['cpu_s'] + m['clearing_cpu_s']:.1f} s)")
            print(f"          cleared {m['cleared']:,}, left {m['uncleared']:,}; {m['lines']} lines; lines match "
                  f"records: {m['lines_match']}; nets sum to 0: {m['net_sums_to_zero']}; floats reconciled: "
                  f"{m['reconciled']}; second run changed nothing: {m['second_run_changed_nothing']}")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
