"""Purse loads (圈存) per second as the simulator makes them: a cash deposit, then a load at a load terminal.

    .venv/bin/python benchmarks/purse_load.py [--loads 1000] [--cards 30] [--profile] [--json]

Builds a seeded world in a temporary directory and issues ``--cards`` cards through the
command line (apply, issue, activate), a third in each region. Each load is what
``sbcard.sim.engine.Simulation.load`` does on a person's first day: the account of the
card and its balance from the ledger; a cash deposit of the amount at a bank-branch outlet
of the card's region (``services.accounts.cash.deposit``: the first-day loads of the simulation
nearly all need one); then the load terminal of an outlet (``terminals.apps.loader.load``
with ``services.transit.purse_host.PurseHost``: SELECT, the card's pending loads, INITIALIZE FOR
LOAD, MAC1 checked and the account debited in the issuing region, CREDIT FOR LOAD, the TAC
confirmed). Outlets take turns over the three regions, so two loads in three are made
at another region's counter. The card enters the field afresh for each load (its file
read, as ``emulator:PATH`` does).

Besides loads/s it counts the SQL statements the hosts run per load (sqlite3's trace
callback, over a second, shorter pass so the count costs the timed pass nothing).
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_world import REGIONS, START, build_world  # noqa: E402

from sbcard.clock import SimClock  # noqa: E402
from sbcard.services.accounts import cash, ledger  # noqa: E402
from sbcard.services.transit.purse_host import PurseHost  # noqa: E402
from sbcard.store.world import NODES, open_world  # noqa: E402
from terminals.apps import loader  # noqa: E402
from terminals.drivers.emulator import EmulatorReader  # noqa: E402

AMOUNTS_FEN = (500, 1000, 1000, 2000)  # small, so a card takes many loads under the purse's ¥1,000.00
COUNTED_LOADS = 100


def load_once(world: Any, clock: SimClock, p: dict[str, Any], n: int) -> int:
    """One deposit + load, as the simulator's ``Simulation.load``; the purse's balance after it."""
    amount = AMOUNTS_FEN[n % len(AMOUNTS_FEN)]
    node = p["node"]
    db = world.region(node)
    account = ledger.account_of_card(db, p["card_number"])
    assert account is not None
    if ledger.balance(db, account) < amount:
        cash.deposit(world, card_number=p["card_number"], amount_fen=amount, operator=f"{node.upper()}-BENCH",
                     outlet=REGIONS[node][2], now=clock.advance(dt.timedelta(seconds=30)))
    where = list(REGIONS)[n % 3]
    outlet = REGIONS[where][1]
    district, number = outlet.split("-")[1:]
    terminal_no = bytes.fromhex(f"{district}{number}0001")
    host = PurseHost(world, operator=f"{where.upper()}-BENCH", outlet=outlet,
                     now=clock.advance(dt.timedelta(seconds=40)))
    reader = EmulatorReader(p["path"])
    try:
        return loader.load(reader, host, amount, terminal_no).balance_fen
    finally:
        reader.close()


def run(home: Path, people: list[dict[str, Any]], loads: int, profile: bool) -> dict[str, Any]:
    clock = SimClock(START + dt.timedelta(hours=1))
    profiler = cProfile.Profile() if profile else None
    with open_world(home) as world:
        if profiler:
            profiler.enable()
        t, c = time.perf_counter(), time.process_time()
        for n in range(loads):
            load_once(world, clock, people[n % len(people)], n)
        elapsed, cpu = time.perf_counter() - t, time.process_time() - c
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(45)
        statements = {"n": 0}
        dbs = [world.hub(), *(world.region(node) for node in REGIONS)]
        assert len(dbs) == len(NODES)

        def count(_: str) -> None:
            statements["n"] += 1

        for db in dbs:
            db.conn.set_trace_callback(count)
        for n in range(loads, loads + COUNTED_LOADS):
            load_once(world, clock, people[n % len(people)], n)
        for db in dbs:
            db.conn.set_trace_callback(None)
        recorded = sum(world.region(node).execute("SELECT count(*) FROM purse_loads WHERE status = 'confirmed'")
                       .fetchone()[0] for node in REGIONS)
    return {"loads": loads, "loads_confirmed": recorded, "loads_per_s": round(loads / elapsed),
            "ms_per_load": round(elapsed / loads * 1000, 3), "loads_per_cpu_s": round(loads / cpu) if cpu else None,
            "sql_statements_per_load": round(statements["n"] / COUNTED_LOADS, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loads", type=int, default=1000)
    parser.add_argument("--cards", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    per_card = (args.loads + COUNTED_LOADS) / args.cards * sum(AMOUNTS_FEN) / len(AMOUNTS_FEN)
    if per_card > 100_000:
        parser.error("too many loads for so few cards: a purse holds at most ¥1,000.00 (add --cards)")
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="sbcard-bench-") as tmp:
        home = Path(tmp) / "world"
        t = time.perf_counter()
        people = build_world(home, args.cards)
        setup = time.perf_counter() - t
        result = run(home, people, args.loads, args.profile)
    result["setup_s"] = round(setup, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"purse load: {result['loads']:,} deposits + loads on {args.cards} cards: {result['loads_per_s']:,} "
              f"loads/s ({result['ms_per_load']} ms each; {result['loads_per_cpu_s']:,} per CPU-second; "
              f"{result['sql_statements_per_load']} SQL statements each)")
    return 0 if result["loads_confirmed"] == args.loads + COUNTED_LOADS else 1


if __name__ == "__main__":
    raise SystemExit(main())
