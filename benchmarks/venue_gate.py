"""Gate entries per second at a venue, in process: card, PSAM, offline log and the venue's host included.

    .venv/bin/python benchmarks/venue_gate.py [--entries 5000] [--cards 200] [--mix paid|free|all]
                                              [--profile] [--dir D] [--json]

Each entry is a whole one as the gate sees it: the card enters the field (its file is
loaded, as ``emulator:PATH`` does), the gate reads it (SSSE card number and birth date,
T-Union FCI), checks the blacklist copy (1,000 cards) and the dates, asks the venue's
host how often the card entered today (the region's ``venue_visits``), decides the price
by the holder's age, and — at a paying venue — INITIALIZE → INIT SAM FOR PURCHASE →
DEBIT (the card's journal commit into its file) → VERIFY MAC2 → the record committed to
the gate's offline log; then the visit is committed to the venue's region database and
the card leaves the field. Cards of the three regions take turns; the holders' ages
vary, so the full price, the senior half price and senior free entries are all made.

Two mixes: 颐和园 (BJ-SC-001, paid: ¥20 off-peak, 60+ half, 65+ free) and 天津博物馆
(TJ-MU-001, free: no purse purchase). Pinned to one core where the platform allows;
wall-clock entries/s (the target) and entries per CPU-second are printed.
Target: >= 1,000 entries/s on the paid mix.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbcard.cli.terminals import install_terminal  # noqa: E402
from sbcard.clock import BEIJING, FixedClock, SimClock  # noqa: E402
from sbcard.domain.card_number import CardNumber  # noqa: E402
from sbcard.domain.citizen_id import compute_check_char  # noqa: E402
from sbcard.services.venues import gates as venue_gates  # noqa: E402
from sbcard.services.cards.keys import issuer_masters  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402
from sbcard.reference.venues import venue  # noqa: E402
from terminals.apps.terminal_state import TerminalState  # noqa: E402
from terminals.apps.venue import VenueGate  # noqa: E402
from terminals.drivers.emulator import EmulatorReader  # noqa: E402
from terminals.emulator import testing  # noqa: E402

TARGET = 1_000
START = dt.datetime(2025, 3, 4, 9, 0, tzinfo=BEIJING)  # a Tuesday, off-peak
REGIONS = (("bj", "110000", "1000"), ("tj", "120000", "1200"), ("he", "130100", "0311"))
BIRTH_YEARS = (1990, 1962, 1955, 2001)  # full, 60+ half, 65+ free, full
MIXES = {"paid": "BJ-SC-001", "free": "TJ-MU-001"}


def make_cards(world, directory: Path, n: int) -> list[Path]:
    masters = {node: issuer_masters(world.region(node)) for node, _, _ in REGIONS}
    paths = []
    for i in range(n):
        node, region, city = REGIONS[i % 3]
        number = CardNumber.from_body(f"{'BTH'[i % 3]}{i + 1:07d}").value
        first17 = f"{region[:4]}02{BIRTH_YEARS[i % len(BIRTH_YEARS)]}0101{i % 1000:03d}"
        path = directory / f"{number}.card"
        card = testing.personalised_card(path, masters=masters[node], card_number=number, region=region, city=city,
                                   balance_fen=100_000, citizen_id=first17 + compute_check_char(first17),
                                   rng=random.Random(i))
        card.close()
        paths.append(path)
    return paths


def run_mix(mix: str, home: Path, cards: list[Path], entries: int, profile: bool) -> dict:
    clock = SimClock(START)
    place = venue(MIXES[mix])
    with open_world(home) as world:
        row = venue_gates.add_gate(world, place, now=START, install=install_terminal(home, "normal"))
        state = TerminalState.open(home / "terminals" / row["id"])
        state.replace_blacklist(7, [f"X{i:08d}" for i in range(1000)], published_at=START.isoformat(),
                                synced_at=START.isoformat())
        gate = VenueGate(state, state.psam(), clock, venue_gates.GateHost(world, place), place)
        for path in cards[:3]:  # warm up: the PSAM's key cache, the fixture
            with EmulatorReader(path) as reader:
                gate.enter(reader)
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        elapsed = cpu = 0.0
        ok = paid = n = 0
        while n < entries:
            for path in cards:
                if n >= entries:
                    break
                t, c = time.perf_counter(), time.process_time()
                reader = EmulatorReader(path)
                try:
                    result = gate.enter(reader)
                finally:
                    reader.close()
                elapsed += time.perf_counter() - t
                cpu += time.process_time() - c
                ok += result.ok
                paid += bool(result.price_fen)
                n += 1
            clock.advance(dt.timedelta(minutes=1))
        if profiler:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(30)
        records = state.record_count()
        visits = world.region(place.node).execute("SELECT count(*) FROM venue_visits").fetchone()[0]
        state.close()
    return {"mix": mix, "venue": place.code, "entries": n, "ok": ok, "paid": paid, "records": records,
            "visits": visits, "entries_per_s": round(n / elapsed), "ms_per_entry": round(elapsed / n * 1000, 3),
            "entries_per_cpu_s": round(n / cpu) if cpu else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=5000)
    parser.add_argument("--cards", type=int, default=200)
    parser.add_argument("--mix", choices=["paid", "free", "all"], default="all")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--dir", type=Path, default=None, help="where the world lives (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    mixes = ["paid", "free"] if args.mix == "all" else [args.mix]
    results = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        home = Path(tmp) / "world"
        init_world(home, FixedClock(START), rng_seed=7)
        (home / "bench-cards").mkdir()
        with open_world(home) as world:
            cards = make_cards(world, home / "bench-cards", args.cards)
        for mix in mixes:
            r = run_mix(mix, home, cards, args.entries, args.profile)
            results.append(r)
            if not args.json:
                print(f"{mix:5s} {r['venue']}: entries={r['entries']:,} ok={r['ok']:,} paid={r['paid']:,} "
                      f"records={r['records']:,} visits={r['visits']:,}: {r['entries_per_s']:,} entries/s "
                      f"({r['ms_per_entry']} ms/entry; {r['entries_per_cpu_s']:,} per CPU-second)"
                      f"{'  (target ' + format(TARGET, ',') + ')' if mix == 'paid' else ''}")
    if args.json:
        print(json.dumps(results, indent=2))
    good = all(r["entries_per_s"] >= TARGET and r["ok"] == r["entries"] for r in results)
    return 0 if good else 1


if __name__ == "__main__":
    raise SystemExit(main())
