"""`subsidy import` of a 1,000,000-row batch against a registry of 1,000,000 persons with cards.

Targets (issue 5): import + validate at most 60 s, peak resident memory at most 500 MB.

Setup (not timed, in a child process so that it does not count towards the import's
peak memory): a fresh world whose Tianjin registry holds N persons living in Tianjin's
districts, each with a card and an open financial account — written with direct batched
SQL inserts, since issuing a million cards through the counter is not what is measured
here — and a batch file of N rows, one per person, with the #TOTAL trailer. Like a real
department's list, a few rows cannot be paid: about 0.5 % of the persons have reported
their card lost, 0.5 % have no card, 0.2 % of the rows carry a misspelt name and 0.1 % an
amount over the item's cap. Everything comes from a fixed seed.

Timed: ``import_batch`` of that file by a city-level finance operator (region 120000),
every row checked against the registry, the cards and the accounts, and stored.

    .venv/bin/python benchmarks/subsidy_import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from sbcard.clock import BEIJING, FixedClock
from sbcard.domain.card_number import compute_check_char as card_check
from sbcard.domain.citizen_id import compute_check_char as id_check
from sbcard.domain.money import fen_to_yuan_str
from sbcard.reference import load_regions
from sbcard.services.outlets import operators
from sbcard.services.subsidies.batch_import import import_batch
from sbcard.store.world import init_world, open_world

TARGET_SECONDS = 60.0
TARGET_MB = 500.0
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
AT = NOW.isoformat()
MAKER = "tj-fin-bench"
OUTLET = "TJ-120103-01"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂华玉萍红鹏建飞俊国庆文海燕丹宇浩然子涵欣怡梓萱一诺思远嘉雨泽"
BATCH = 20_000  # rows per executemany in the setup
LOST, NO_CARD, MISSPELT, OVER_CAP = 0.005, 0.005, 0.002, 0.001


# ----------------------------------------------------------------------------- setup (child process)


def _people(rows: int, seed: int) -> list[tuple[str, str, str, str, str]]:
    """(citizen_id, name, sex, birth_date, household district) of ``rows`` distinct persons, by citizen ID."""
    rng = random.Random(seed)
    districts = [r.code for r in load_regions() if r.level == "county" and r.code.startswith("12")]
    first_day, last_day = date(1930, 1, 1).toordinal(), date(2005, 12, 31).toordinal()
    seen: set[str] = set()
    people = []
    while len(people) < rows:
        born = date.fromordinal(rng.randint(first_day, last_day))
        district = rng.choice(districts)
        first17 = f"{district}{born:%Y%m%d}{rng.randint(0, 999):03d}"
        if first17 in seen:
            continue
        seen.add(first17)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
        sex = "M" if int(first17[16]) % 2 else "F"
        people.append((first17 + id_check(first17), name, sex, born.isoformat(), district))
    people.sort()
    return people


def setup(work: Path, rows: int, seed: int = 5) -> None:
    """The world (registry, cards, accounts) and the batch file."""
    home = work / "world"
    shutil.rmtree(home, ignore_errors=True)
    init_world(home, FixedClock(NOW), rng_seed=1)
    with open_world(home) as world:
        operators.add_operator(world.region("tj"), code=MAKER, name="基准会计", role="finance", region="120000",
                               now=NOW)
    people = _people(rows, seed)
    rng = random.Random(seed + 1)
    situation = [("lost" if r < LOST else "none" if r < LOST + NO_CARD else "active")
                 for r in (rng.random() for _ in people)]
    conn = sqlite3.connect(home / "tj.db", isolation_level=None)
    conn.execute("PRAGMA foreign_keys = OFF")  # the rows below are consistent by construction
    conn.execute("PRAGMA cache_size = -262144")
    conn.execute("BEGIN")
    _insert(conn, "persons", ("citizen_id", "name", "sex", "birth_date", "ethnicity", "household_region",
                              "created_at", "updated_at"),
            ((cid, name, sex, born, 1, district, AT, AT) for cid, name, sex, born, district in people))
    _insert(conn, "enrolments", ("citizen_id", "insured_region", "insurance_type", "retired", "since"),
            ((p[0], p[4], "resident", 0, AT) for p in people))
    carded = [(n, p, s) for n, (p, s) in enumerate(zip(people, situation)) if s != "none"]
    _insert(conn, "applications", ("id", "citizen_id", "outlet", "outlet_region", "channel", "kind", "status",
                                   "operator", "card_number", "created_at", "updated_at"),
            ((f"TJ-A-B-{n:07d}", p[0], OUTLET, "120103", "instant", "first", "issued", "bench", _card(n), AT, AT)
             for n, p, _ in carded))
    _insert(conn, "cards", ("card_number", "card_id_code", "citizen_id", "application_id", "chip_serial",
                            "app_serial", "status", "loss_kind", "issue_date", "expiry_date", "outlet", "created_at",
                            "updated_at"),
            ((_card(n), f"120000D156000005{n:016d}", p[0], f"TJ-A-B-{n:07d}", f"8612{n:012d}",
              f"03101200{n:012d}", "lost" if s == "lost" else "active", "formal" if s == "lost" else None,
              "2026-01-01", "2036-01-01", OUTLET, AT, AT) for n, p, s in carded))
    _insert(conn, "accounts", ("account_no", "kind", "citizen_id", "card_number", "status", "opened_at"),
            ((f"621120{n:012d}0", "holder", p[0], _card(n), "frozen" if s == "lost" else "active", AT)
             for n, p, s in carded))
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    _write_batch(work / "batch.csv", people, seed + 2)


def _card(n: int) -> str:
    body = f"T{n + 1:07d}"
    return body + card_check(body)


def _insert(conn: sqlite3.Connection, table: str, columns: tuple[str, ...], rows) -> None:
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    chunk = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == BATCH:
            conn.executemany(sql, chunk)
            chunk = []
    conn.executemany(sql, chunk)


def _write_batch(path: Path, people, seed: int) -> None:
    rng = random.Random(seed)
    total = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"])
        for seq, (cid, name, _, _, _) in enumerate(people, start=1):
            r = rng.random()
            item, fen = ("ZDSHBZJ", rng.randint(20000, 150000)) if r < 0.3 else ("GLJT", 10000)
            if rng.random() < MISSPELT:
                name = name[0] + "某"
            if rng.random() < OVER_CAP:
                fen = 200000
            total += fen
            out.writerow([seq, cid, name, "", item, "202610", fen_to_yuan_str(fen), ""])
        out.writerow(["#TOTAL", len(people), fen_to_yuan_str(total), "120000"])


# ----------------------------------------------------------------------------- the measurement


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="Work in DIR and keep it (default: a temp dir).")
    parser.add_argument("--setup-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.setup_only:
        setup(args.setup_only, args.rows)
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="sbcard-subsidy-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(work, args.rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, rows: int) -> int:
    started = time.perf_counter()
    subprocess.run([sys.executable, __file__, "--rows", str(rows), "--setup-only", str(work)], check=True)
    source = work / "batch.csv"
    print(f"setup: {rows:,} persons with cards and accounts, a {rows:,}-row batch "
          f"({source.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - started:.1f} s")

    phases: dict[str, float] = {}

    def progress(phase: str, done: int, total: int) -> None:
        phases.setdefault(phase, time.perf_counter())

    clock = FixedClock(NOW)
    with open_world(work / "world", clock) as world:
        started = time.perf_counter()
        data = import_batch(world, source, region="120000", operator=MAKER, now=clock.now(), progress=progress)
        elapsed = time.perf_counter() - started
        stored = world.region("tj").execute("SELECT count(*) FROM subsidy_rows").fetchone()[0]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    storing = phases.get("storing", started + elapsed)

    ok_time, ok_memory = elapsed <= TARGET_SECONDS, peak_mb <= TARGET_MB
    print(f"batch {data['batch_id']}: {data['rows']:,} rows, {data['valid']:,} valid, {data['invalid']:,} invalid "
          f"({', '.join(f'{code} {n:,}' for code, n in data['reasons'].items())}); {stored:,} rows stored")
    print(f"  reading and checking (one pass, staged)  {storing - started:6.1f} s")
    print(f"  storing (one transaction)                {started + elapsed - storing:6.1f} s")
    print(f"elapsed      {elapsed:6.1f} s   target ≤ {TARGET_SECONDS:.0f} s    {'ok' if ok_time else 'MISSED'}")
    print(f"peak memory  {peak_mb:6.1f} MB  target ≤ {TARGET_MB:.0f} MB  {'ok' if ok_memory else 'MISSED'}")
    print(f"rate         {data['rows'] / elapsed:,.0f} rows/s")
    return 0 if ok_time and ok_memory and stored == data["rows"] == rows else 1


if __name__ == "__main__":
    sys.exit(main())
