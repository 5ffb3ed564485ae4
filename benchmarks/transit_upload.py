"""Upload of 1,000,000 offline records into an operator's host, TAC check included.

    .venv/bin/python benchmarks/transit_upload.py [--records 1000000] [--cards 100000]
        [--terminals 100] [--modes day,station,terminal] [--json]

Builds a seeded world in a temporary directory: ``--cards`` active cards spread over the
three issuers (70% Beijing, 20% Tianjin, 10% Hebei — the Beijing metro sees mostly
Beijing cards), each with a confirmed ¥1,000.00 load, written straight into the regions'
tables (issuing 100,000 cards through the counter is another benchmark's business). Then
it generates the day's taps: each card's purchases in counter order with its balance
running down, spread at random over ``--terminals`` Beijing metro validators, every
record with the TAC the card itself would compute (the card's DTK diversified from its
issuer's master once per card, the CBC-MAC with one cipher per card). Generation is not
timed.

Timed, each on a fresh copy of the world: the whole day's records into the operator's
host — ``day``: every terminal's log in one ``transit_host.ingest`` (the file a line centre
sends), ``station``: 10 terminals' logs per ingest, ``terminal``: one
``transit_host.upload`` per terminal, as ``sbcard transit upload`` runs it. Each includes
the duplicates check, each chunk to its card's issuer through the hub (message log), the
issuer's TAC check with its DTK master, the counter and balance checks, the blacklist
window, and the operator's and issuers' writes. Then the same again (every record a
duplicate). Target: 1,000,000 records ≤ 60 s. The issuers' work is per card: the fewer
calls a card's records are split over, the less key set-up and shadow reading per record.
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
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from sbcard.chip.codec import to_bcd  # noqa: E402
from sbcard.chip.crypto import diversify  # noqa: E402
from sbcard.chip.purse import PurchaseTacKey  # noqa: E402
from sbcard.chip.purse_record import PurseRecord  # noqa: E402
from sbcard.clock import BEIJING, FixedClock  # noqa: E402
from sbcard.services.cards import keys
from sbcard.services.transit import host as transit_host  # noqa: E402
from sbcard.store.unit_of_work import UnitOfWork  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402

TARGET_S = 60.0
NOW = dt.datetime(2025, 3, 3, 23, 0, tzinfo=BEIJING)
DAY = dt.datetime(2025, 3, 3, 6, 0)  # the taps' local time starts here
SHARES = (("bj", "110105", "1000", 0.7), ("tj", "120103", "3000", 0.2), ("he", "130102", "2000", 0.1))
LOAD_FEN = 100_000


def build_cards(home: Path, n_cards: int) -> dict[str, list[tuple[str, str]]]:
    """``n_cards`` active cards with a confirmed load, per node: [(card number, app serial)]."""
    init_world(home, FixedClock(NOW), rng_seed=2025)
    at = NOW.isoformat()
    out: dict[str, list[tuple[str, str]]] = {}
    with open_world(home) as world:
        for node, region, city, share in SHARES:
            count = int(n_cards * share)
            db = world.region(node)
            persons, applications, cards, accounts, loads = [], [], [], [], []
            out[node] = []
            for i in range(count):
                citizen = f"{region}1980{i % 12 + 1:02d}01{i:04d}"[:18].ljust(18, "0")
                citizen = f"{region}{i:012d}"
                number = f"{node[0].upper()}{i:07d}X"
                app_serial = f"0310{city}{i:012d}"
                persons.append((citizen, "测试", "M", "1980-01-01", region, at, at))
                applications.append((f"{node.upper()}-A-{i}", citizen, "BENCH", region, "instant", "first", "issued",
                                     "BENCH", number, at, at))
                cards.append((number, f"{region}D156000005{i:016X}", citizen, f"{node.upper()}-A-{i}", f"{i:016X}",
                              app_serial, "active", "2025-01-01", "2035-01-01", "BENCH", at, at))
                accounts.append((f"{node.upper()}{i:017d}", "holder", citizen, number, "active", at))
                loads.append((f"{node.upper()}-LOAD-{i}", number, app_serial, f"{node.upper()}{i:017d}", 0, LOAD_FEN,
                              0, "110105010001", "20250302090000", "confirmed", "00000000", "00000000", "tac",
                              f"{node.upper()}-LOAD-{i}", "BENCH", at, at))
                out[node].append((number, app_serial))
            conn = db.conn
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO persons (citizen_id, name, sex, birth_date, household_region, created_at, "
                             "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)", persons)
            conn.executemany("INSERT INTO applications (id, citizen_id, outlet, outlet_region, channel, kind, status, "
                             "operator, card_number, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             applications)
            conn.executemany("INSERT INTO cards (card_number, card_id_code, citizen_id, application_id, chip_serial, "
                             "app_serial, status, issue_date, expiry_date, outlet, created_at, updated_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", cards)
            conn.executemany("INSERT INTO accounts (account_no, kind, citizen_id, card_number, status, opened_at) "
                             "VALUES (?, ?, ?, ?, ?, ?)", accounts)
            conn.executemany("INSERT INTO purse_loads (id, card_number, app_serial, account_no, online_counter, "
                             "amount_fen, balance_before_fen, terminal_no, date_time, status, mac2, tac, how, txn_id, "
                             "operator, created_at, settled_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                             "?, ?)", loads)
            conn.execute("COMMIT")
        bj = world.region("bj")
        bj.conn.execute("BEGIN")
        for t in range(TERMINALS):
            bj["terminals"].insert({"id": terminal_id(t), "operator": "bj-subway", "station": None, "node": "bj",
                                    "psam_id": f"PSAM{t:08d}", "terminal_no": terminal_no(t), "blacklist_version": 0,
                                    "synced_at": None, "created_at": NOW.isoformat()})
        bj.conn.execute("COMMIT")
    return out


TERMINALS = 100


def terminal_id(t: int) -> str:
    return f"bj-subway-{t + 1:04d}"


def terminal_no(t: int) -> str:
    return f"1101009{t + 1:05d}"


def generate(home: Path, cards: dict[str, list[tuple[str, str]]], n_records: int,
             rng: random.Random) -> dict[str, list[PurseRecord]]:
    """The taps of the day, per terminal, each with the TAC the card computes."""
    total_cards = sum(len(v) for v in cards.values())
    per_card, extra = divmod(n_records, total_cards)
    by_terminal: dict[str, list[PurseRecord]] = defaultdict(list)
    serials = [0] * TERMINALS
    with open_world(home) as world:
        masters = {node: keys.issuer_masters(world.region(node)) for node in cards}
    made = 0
    for node, items in cards.items():
        m = masters[node]
        for idx, (number, app_serial) in enumerate(items):
            checker = PurchaseTacKey(m.algorithm, diversify(m.algorithm, m.tac, to_bcd(app_serial)))
            taps = per_card + (1 if made < extra else 0)
            balance = LOAD_FEN
            when = DAY + dt.timedelta(seconds=rng.randrange(3600))
            for counter in range(taps):
                fare = rng.choice((300, 400, 500, 600))
                t = rng.randrange(TERMINALS)
                serials[t] += 1
                date_time = when.strftime("%Y%m%d%H%M%S")
                tac = checker.tac(fare, 0x06, bytes.fromhex(terminal_no(t)), serials[t], bytes.fromhex(date_time))
                by_terminal[terminal_id(t)].append(PurseRecord(
                    app_serial=app_serial, txn_type=0x06, counter=counter, terminal_no=terminal_no(t),
                    terminal_serial=serials[t], amount_fen=fare, balance_before_fen=balance, date_time=date_time,
                    tac=tac.hex().upper(), issuer_node=node, card_number=number, terminal=terminal_id(t),
                    operator="bj-subway", blacklist_version=0))
                balance -= fare
                when += dt.timedelta(minutes=rng.randrange(20, 90))
            made += 1
    return by_terminal


def batch_macs(world: Any, by_terminal: dict[str, list[PurseRecord]]) -> dict[str, str]:
    """Each terminal's batch MAC, as its PSAM makes it (its upload key from the region's UMK master)."""
    db = world.region("bj")
    numbers = {row[0]: row[1] for row in db.execute("SELECT id, terminal_no FROM terminals")}
    return {t: transit_host.expected_batch_mac(UnitOfWork(db), numbers[t], records).hex().upper()
            for t, records in by_terminal.items()}


def upload_all(home: Path, by_terminal: dict[str, list[PurseRecord]],
               per_batch: int = 1) -> tuple[float, dict[str, int]]:
    """Every terminal's log into the operator's host: ``per_batch`` terminals per call.

    1: one ``upload`` per terminal (``sbcard transit upload``); more: ``ingest`` of that many
    terminals' logs at once (a station computer's batch).
    """
    totals: dict[str, int] = defaultdict(int)
    terminals = list(by_terminal)
    with open_world(home) as world:
        macs = batch_macs(world, by_terminal)  # the terminals' PSAMs' work, before the host's clock starts
        t0 = time.perf_counter()
        for start in range(0, len(terminals), per_batch):
            group = terminals[start:start + per_batch]
            if per_batch == 1:
                result = transit_host.upload(world, group[0], by_terminal[group[0]], now=NOW, mac=macs[group[0]])
            else:
                records = [r for t in group for r in by_terminal[t]]
                result = transit_host.ingest(world, "bj", records, now=NOW, label=f"station-{start // per_batch}",
                                             macs=macs)
            for key in ("sent", "accepted", "duplicates", "rejected", "flagged"):
                totals[key] += getattr(result, key)
        elapsed = time.perf_counter() - t0
    return elapsed, dict(totals)


def tac_only(by_terminal: dict[str, list[PurseRecord]], home: Path, limit: int = 200_000) -> float:
    """Seconds per record of the TAC check alone (a per-card cipher, as the issuer does)."""
    with open_world(home) as world:
        masters = {node: keys.issuer_masters(world.region(node)) for node in ("bj", "tj", "he")}
    records = [r for rs in by_terminal.values() for r in rs][:limit]
    checkers: dict[str, PurchaseTacKey] = {}
    t0 = time.perf_counter()
    for r in records:
        c = checkers.get(r.app_serial)
        if c is None:
            m = masters[r.issuer_node]
            c = checkers[r.app_serial] = PurchaseTacKey(m.algorithm, diversify(m.algorithm, m.tac, to_bcd(r.app_serial)))
        assert c.tac(r.amount_fen, r.txn_type, bytes.fromhex(r.terminal_no), r.terminal_serial,
                     bytes.fromhex(r.date_time)).hex().upper() == r.tac
    return (time.perf_counter() - t0) / len(records)


MODES = {"day": None, "station": 10, "terminal": 1}  # terminals per call (None: all of them)


def main(argv: list[str] | None = None) -> int:
    global TERMINALS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--cards", type=int, default=100_000)
    parser.add_argument("--terminals", type=int, default=100)
    parser.add_argument("--modes", default="day,terminal",
                        help="Which to time, of day (the whole day's logs in one ingest: the line centre's file), "
                             "station (10 terminals per ingest) and terminal (one `transit upload` per terminal).")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    TERMINALS = args.terminals
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        parser.error(f"--modes: choose among {', '.join(MODES)}")
    rng = random.Random(7)
    report: dict[str, Any] = {"target_s": TARGET_S, "modes": {}}
    with tempfile.TemporaryDirectory(prefix="sbcard-upload-") as tmp:
        base = Path(tmp) / "world"
        t0 = time.perf_counter()
        cards = build_cards(base, args.cards)
        by_terminal = generate(base, cards, args.records, rng)
        setup = time.perf_counter() - t0
        sent = sum(len(v) for v in by_terminal.values())
        report.update(records=sent, cards=sum(len(v) for v in cards.values()), terminals=len(by_terminal),
                      setup_s=round(setup, 1))
        for mode in modes:
            home = Path(tmp) / f"world-{mode}"
            shutil.copytree(base, home)
            per_call = MODES[mode] or len(by_terminal)
            elapsed, totals = upload_all(home, by_terminal, per_call)
            again, dup_totals = upload_all(home, by_terminal, per_call)
            report["modes"][mode] = {
                "terminals_per_call": per_call, "upload_s": round(elapsed, 2),
                "records_per_s": round(sent / elapsed), "met": elapsed <= TARGET_S, "totals": totals,
                "reupload_s": round(again, 2), "reupload_totals": dup_totals,
                "db_bytes": {p.name: p.stat().st_size for p in sorted(home.glob("*.db"))},
            }
            shutil.rmtree(home)
        report["tac_check_us"] = round(tac_only(by_terminal, base) * 1e6, 2)
    report["met"] = any(m["met"] for m in report["modes"].values())
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{sent:,} records from {report['cards']:,} cards over {report['terminals']} terminals "
              f"(setup {setup:.1f} s, not timed); target ≤ {TARGET_S:.0f} s")
        for mode, m in report["modes"].items():
            print(f"{mode:>8}: {m['terminals_per_call']:>3} terminal(s) per call: {m['upload_s']:.1f} s = "
                  f"{m['records_per_s']:,} records/s ({'met' if m['met'] else 'NOT met'}); {m['totals']}; "
                  f"sent again: {m['reupload_s']:.1f} s, {m['reupload_totals']['duplicates']:,} duplicates")
        print(f"TAC check alone: {report['tac_check_us']} µs/record")
    return 0 if report["met"] else 1


if __name__ == "__main__":
    sys.exit(main())
