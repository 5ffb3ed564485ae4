"""Medical settlements per second through the in-process emulator, the hub and the insured region's host.

    .venv/bin/python benchmarks/medical_settle.py [--settlements 2000] [--cards 30] [--profile] [--json]

Builds a seeded world in a temporary directory and issues ``--cards`` cards through the
command line (apply, issue, activate, a deposit), a third in each region, employees and
residents. Each settlement is a whole one as a hospital's point of sale runs it
(``terminals.apps.medical.PointOfSale`` with ``sbcard.services.medical.routing.PosHost``): the
card enters the field (its file loaded, as ``emulator:PATH`` does), the point of sale
reads SSSE and DF04, asks the hub's directory for the card's status, VERIFY PIN when the
personal account pays (every other claim of an employee), takes a claim id from the
hospital's region, routes the claim through the hub (recorded in ``messages``) to the
insured region, which settles it (catalogue, policy, accumulators, personal account,
ledger) in one transaction, and appends the settlement to the card's DF04/EF08. Cards
and hospitals take turns, so half the claims are cross-region. Target: >= 300 settlements/s.
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

from bench_world import PIN, REGIONS, START, build_world  # noqa: E402

from sbcard.reference import medical as ref  # noqa: E402
from sbcard.chip.reader import CountingReader  # noqa: E402
from sbcard.clock import SimClock  # noqa: E402
from sbcard.domain import medical  # noqa: E402
from sbcard.services.medical.routing import PosHost  # noqa: E402
from sbcard.store.world import open_world  # noqa: E402
from terminals.apps.medical import PointOfSale  # noqa: E402
from terminals.drivers.emulator import EmulatorReader  # noqa: E402

TARGET = 300
HOSPITALS = ("BJH003", "TJH002", "HEH001", "BJH007", "TJH006", "HEH007")


def lines_for(hospital: str, n: int) -> list[medical.ClaimLine]:
    """Three lines of the hospital's catalogue (甲, 乙 and whatever comes), small amounts."""
    items = list(ref.catalogue(ref.hospital(hospital).province).values())
    return [medical.ClaimLine(items[(n + k * 7) % len(items)].code, 1 + k, items[(n + k * 7) % len(items)].price_fen or 100)
            for k in range(3)]


def run(home: Path, people: list[dict[str, Any]], settlements: int, profile: bool) -> dict[str, Any]:
    clock = SimClock(START + dt.timedelta(hours=1))
    profiler = cProfile.Profile() if profile else None
    with open_world(home) as world:
        host = PosHost(world, now=clock.now())
        points = {code: PointOfSale(host, ref, clock, code) for code in HOSPITALS}
        elapsed, cpu, apdus, modes, cross, paid = 0.0, 0.0, 0, {"online": 0, "offline": 0}, 0, 0
        if profiler:
            profiler.enable()
        for n in range(settlements):
            p = people[n % len(people)]
            hospital = HOSPITALS[(n // len(people) + n) % len(HOSPITALS)]
            use_pin = p["insurance"] == "employee" and (n // len(people)) % 2 == 0
            lines = lines_for(hospital, n)
            t, c = time.perf_counter(), time.process_time()
            reader = CountingReader(EmulatorReader(p["path"]))
            try:
                receipt = points[hospital].settle(reader, lines, pin=PIN if use_pin else None)
            finally:
                reader.close()
            elapsed += time.perf_counter() - t
            cpu += time.process_time() - c
            apdus += reader.count
            modes[receipt["mode"]] += 1
            cross += receipt["cross_region"]
            paid += receipt["account_fen"] > 0
            host.now = clock.advance(dt.timedelta(seconds=7))
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(35)
        claims = sum(world.region(node).execute("SELECT count(*) FROM medical_claims").fetchone()[0]
                     for node in REGIONS)
    return {"settlements": settlements, "claims_recorded": claims, "online": modes["online"], "cross_region": cross,
            "personal_account_paid": paid, "settlements_per_s": round(settlements / elapsed),
            "ms_per_settlement": round(elapsed / settlements * 1000, 3),
            "settlements_per_cpu_s": round(settlements / cpu) if cpu else None,
            "apdus_per_settlement": round(apdus / settlements, 1), "target": TARGET}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settlements", type=int, default=2000)
    parser.add_argument("--cards", type=int, default=30)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    with tempfile.TemporaryDirectory(prefix="sbcard-bench-") as tmp:
        home = Path(tmp) / "world"
        t = time.perf_counter()
        people = build_world(home, args.cards, insurance=lambda i: "employee" if i % 2 == 0 else "resident",
                             deposit_yuan="5000")
        setup = time.perf_counter() - t
        result = run(home, people, args.settlements, args.profile)
    result["setup_s"] = round(setup, 1)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"medical settle: {result['settlements']:,} settlements on {args.cards} cards "
              f"({result['cross_region']:,} cross-region, {result['personal_account_paid']:,} with the personal "
              f"account): {result['settlements_per_s']:,} settlements/s ({result['ms_per_settlement']} ms each; "
              f"{result['settlements_per_cpu_s']:,} per CPU-second; {result['apdus_per_settlement']} APDUs each)  "
              f"(target {TARGET:,})")
    ok = result["settlements_per_s"] >= TARGET and result["claims_recorded"] == result["settlements"]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
