"""Medical settlements per second through the in-process emulator, the hub and the insured region's host.

    .venv/bin/python benchmarks/medical_settle.py [--settlements 2000] [--cards 30] [--profile] [--json]

Builds a seeded world in a temporary directory and issues ``--cards`` cards through the
command line (apply, issue, activate, a deposit), a third in each region, employees and
residents. Each settlement is a whole one as a hospital's point of sale runs it
(``terminals.apps.medical.PointOfSale`` with ``sbcard.federation.medical.PosHost``): the
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

from click.testing import CliRunner  # noqa: E402

from sbcard import medical_reference as ref  # noqa: E402
from sbcard.chip.reader import CountingReader  # noqa: E402
from sbcard.cli.main import cli  # noqa: E402
from sbcard.clock import BEIJING, FixedClock, SimClock  # noqa: E402
from sbcard.domain import medical as M  # noqa: E402
from sbcard.domain.citizen_id import compute_check_char  # noqa: E402
from sbcard.federation.medical import PosHost  # noqa: E402
from sbcard.services import operators, registry, stock  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402
from terminals.apps.medical import PointOfSale  # noqa: E402
from terminals.drivers.emulator import EmulatorReader  # noqa: E402
from terminals.emulator.blank import create_blank  # noqa: E402

TARGET = 300
PIN = "147258"
START = dt.datetime(2025, 3, 3, 8, 0, tzinfo=BEIJING)
# node → (district, counter outlet, bank outlet)
REGIONS = {"bj": ("110105", "BJ-110105-01", "BJ-110105-02"), "tj": ("120103", "TJ-120103-01", "TJ-120103-02"),
           "he": ("130102", "HE-130102-01", "HE-130108-01")}
HOSPITALS = ("BJH003", "TJH002", "HEH001", "BJH007", "TJH006", "HEH007")


def build_world(home: Path, cards: int) -> list[dict[str, Any]]:
    """A seeded world with ``cards`` issued, activated cards holding ¥5,000.00; their details."""
    init_world(home, FixedClock(START), rng_seed=2025)
    people: list[dict[str, Any]] = []
    with open_world(home) as world:
        for node, (district, outlet, _) in REGIONS.items():
            db = world.region(node)
            operators.add_operator(db, code=f"{node.upper()}-BENCH", name="王芳", role="counter", region=district,
                                   now=START)
            mine = [i for i in range(cards) if list(REGIONS)[i % 3] == node]
            for i in mine:
                first17 = f"{district}1980{i // 28 % 12 + 1:02d}{i % 28 + 1:02d}{i % 1000:03d}"
                citizen_id = first17 + compute_check_char(first17)
                kind = "employee" if i % 2 == 0 else "resident"
                registry.add_person(db, citizen_id=citizen_id, name=f"测试{i}", region=district, insurance=kind,
                                    now=START)
                people.append({"node": node, "citizen_id": citizen_id, "insurance": kind})
            made = stock.receive_stock(db, outlet=outlet, count=len(mine), operator=f"{node.upper()}-BENCH",
                                       now=START, cards_dir=world.paths.cards_dir, make_blank=create_blank)
            blanks = iter(made["paths"])
            for p in people:
                if p["node"] == node and "path" not in p:
                    p["path"] = Path(next(blanks))
    runner = CliRunner()
    for p in people:
        _, outlet, bank = REGIONS[p["node"]]
        staff = f"{p['node'].upper()}-BENCH"
        applied = _run(runner, home, "card", "apply", "--citizen-id", p["citizen_id"], "--outlet", outlet,
                       "--operator", staff)
        issued = _run(runner, home, "card", "issue", applied["application_id"], "--reader", f"emulator:{p['path']}",
                      "--operator", staff)
        p["card_number"] = issued["card_number"]
        _run(runner, home, "card", "activate", p["card_number"], "--pin", PIN, "--operator", staff)
        _run(runner, home, "account", "deposit", p["card_number"], "--amount", "5000", "--operator", staff,
             "--outlet", bank)
    return people


def _run(runner: CliRunner, home: Path, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["--home", str(home), *args, "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"sbcard {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def lines_for(hospital: str, n: int) -> list[M.ClaimLine]:
    """Three lines of the hospital's catalogue (甲, 乙 and whatever comes), small amounts."""
    items = list(ref.catalogue(ref.hospital(hospital).province).values())
    return [M.ClaimLine(items[(n + k * 7) % len(items)].code, 1 + k, items[(n + k * 7) % len(items)].price_fen or 100)
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
        people = build_world(home, args.cards)
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
