"""`subsidy pay` of a 1,000,000-row batch: elapsed seconds, peak memory, and the cost over a bare insert.

Targets (issue 5): pay ≤ 60 s, peak resident memory ≤ 500 MB. Also printed: the ratio of
the pay time to a bare `executemany` INSERT of the same rows into a fresh SQLite table in
the same run (same pragmas, one transaction, no checks), so the cost of everything pay
does per row is visible — the re-check of card and account, the exactly-once guards, two
ledger entries, the row's update, a commit per chunk.

Setup (not timed against the target): a Tianjin registry of N persons (河西区 120103),
each with an active card and an open financial account, written straight into tj.db; a
batch file of N rows (高龄津贴 GLJT, one month) imported through the real
`import_batch` (its time is printed for information), of which 0.5 % are refused at
import (name mismatch); approval by a second operator; then 0.5 % of the holders report
their card lost, so their rows fail at pay time. The pay itself runs as the real command
(`python -m sbcard subsidy pay BATCH --json`) in a child process, so its peak memory is
its own; afterwards the batch is checked: every row settled exactly once, paid + failed
= declared, the ledger sums to zero.

    .venv/bin/python benchmarks/subsidy_pay.py [--rows N] [--chunk C] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path

from sbcard.clock import BEIJING, FixedClock
from sbcard.domain.bank_account import BankAccount
from sbcard.domain.card_number import compute_check_char as card_check
from sbcard.domain.citizen_id import compute_check_char as id_check
from sbcard.domain.money import fen_to_yuan_str
from sbcard.services.accounts import ledger
from sbcard.services.outlets import operators
from sbcard.services.subsidies.batch_import import import_batch
from sbcard.services.subsidies.payment import approve
from sbcard.store.db import open_db
from sbcard.store.world import init_world, open_world

TARGET_SECONDS = 60.0
TARGET_MB = 500.0
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
DISTRICT, NODE, ITEM, PERIOD = "120103", "tj", "GLJT", "202610"
MAKER, CHECKER = "bench-maker", "bench-checker"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚华玉萍红鹏飞俊国庆文海燕丹宇浩然"
INVALID_EVERY = 200  # 0.5 % refused at import
LOST_EVERY = 199  # about 0.5 % fail at pay time
ROOT = Path(__file__).resolve().parents[1]
# `python -m sbcard …` that reports its own peak resident memory (VmHWM) on stderr as it exits. Not
# getrusage(RUSAGE_CHILDREN): on Linux a child's ru_maxrss includes the parent's memory it was forked with.
_MEASURED = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as status:
        sys.stderr.write(next(line for line in status if line.startswith("VmHWM:")))
atexit.register(peak)
sys.argv[0] = "sbcard"
runpy.run_module("sbcard", run_name="__main__", alter_sys=True)
"""


def person(n: int, rng: random.Random) -> tuple[str, str]:
    born = date(1930, 1, 1) + timedelta(days=n // 1000)
    first17 = f"{DISTRICT}{born:%Y%m%d}{n % 1000:03d}"
    name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
    return first17 + id_check(first17), name


def card_number(n: int) -> str:
    body = f"T{n:07d}"
    return body + card_check(body)


def build_registry(db, rows: int) -> list[tuple[str, str]]:
    """N persons with an active card and an open account, straight into the tables (one transaction)."""
    rng = random.Random(5)
    at = NOW.isoformat()
    people = [person(n, rng) for n in range(rows)]
    db.conn.execute("BEGIN IMMEDIATE")
    db.conn.executemany(
        "INSERT INTO persons (citizen_id, name, sex, birth_date, household_region, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((cid, name, "M" if int(cid[16]) % 2 else "F", f"{cid[6:10]}-{cid[10:12]}-{cid[12:14]}", DISTRICT, at, at)
         for cid, name in people))
    db.conn.executemany(
        "INSERT INTO enrolments (citizen_id, insured_region, insurance_type, since) VALUES (?, ?, 'resident', ?)",
        ((cid, DISTRICT, "2020-01-01") for cid, _ in people))
    db.conn.executemany(
        "INSERT INTO applications (id, citizen_id, outlet, outlet_region, channel, kind, status, operator, "
        "card_number, created_at, updated_at) VALUES (?, ?, 'TJ-120103-01', ?, 'instant', 'first', 'issued', "
        "'bench', ?, ?, ?)",
        ((f"TJ-A-B-{n:07d}", cid, DISTRICT, card_number(n), at, at) for n, (cid, _) in enumerate(people)))
    db.conn.executemany(
        "INSERT INTO cards (card_number, card_id_code, citizen_id, application_id, chip_serial, app_serial, status, "
        "issue_date, expiry_date, outlet, created_at, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, 'active', '2026-01-01', '2036-01-01', 'TJ-120103-01', ?, ?)",
        ((card_number(n), f"120000D156000005{n:016d}", cid, f"TJ-A-B-{n:07d}", f"8612{n:012d}",
          f"031012000000{n:08d}", at, at) for n, (cid, _) in enumerate(people)))
    db.conn.executemany(
        "INSERT INTO accounts (account_no, kind, citizen_id, card_number, status, opened_at) "
        "VALUES (?, 'holder', ?, ?, 'active', ?)",
        ((BankAccount.make(ledger.BINS[NODE], f"{n + 1:012d}").value, cid, card_number(n), at)
         for n, (cid, _) in enumerate(people)))
    db.conn.execute("INSERT OR REPLACE INTO sequences (name, value) VALUES (?, ?)", [ledger.ACCOUNT_SEQUENCE, rows])
    db.conn.execute("COMMIT")
    return people


def write_batch(path: Path, people: list[tuple[str, str]]) -> tuple[int, int]:
    """The department's file: one row per person, a few with a wrong name; (count, total fen)."""
    rng = random.Random(7)
    total = 0
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"])
        for seq, (cid, name) in enumerate(people, start=1):
            amount = rng.choice((10000, 30000, 50000, 80000)) - rng.randint(0, 99)
            total += amount
            shown = "某某某" if seq % INVALID_EVERY == 0 else name
            out.writerow([seq, cid, shown, "", ITEM, PERIOD, fen_to_yuan_str(amount), ""])
    return len(people), total


def bare_executemany(work: Path, batch: str, source) -> float:
    """The same rows into a fresh table of a fresh database (WAL, synchronous=NORMAL), one executemany."""
    path = work / "bare.db"
    path.unlink(missing_ok=True)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("CREATE TABLE rows (batch_id TEXT, seq INTEGER, citizen_id TEXT, name TEXT, card_number TEXT, "
                 "item TEXT, period TEXT, amount_fen INTEGER, remark TEXT, PRIMARY KEY (batch_id, seq)) STRICT")
    rows = source.execute("SELECT batch_id, seq, citizen_id, name, card_number, item, period, amount_fen, remark "
                          "FROM subsidy_rows WHERE batch_id = ? ORDER BY seq", [batch]).fetchall()
    started = time.perf_counter()
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    conn.close()
    return elapsed


def check(db, batch: str) -> dict:
    """Exactly once, totals and the ledger, after the pay."""
    b = next(db.query("SELECT * FROM subsidy_batches WHERE id = ?", [batch]))
    statuses = dict(db.execute("SELECT status, count(*) FROM subsidy_rows WHERE batch_id = ? GROUP BY status",
                               [batch]).fetchall())
    txns, credited = db.execute(
        "SELECT count(DISTINCT txn_id), coalesce(sum(CASE WHEN amount_fen > 0 THEN amount_fen END), 0) "
        "FROM ledger_entries WHERE txn_id GLOB ?", [f"SUB-{batch}-*"]).fetchone()
    ledger_sum = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries").fetchone()[0]
    twice = db.execute("SELECT count(*) FROM (SELECT 1 FROM subsidy_rows WHERE status = 'paid' "
                       "GROUP BY citizen_id, item, period HAVING count(*) > 1)").fetchone()[0]
    ok = (b["status"] == "paid" and statuses.get("valid", 0) == 0 and txns == b["paid_count"]
          and credited == b["paid_fen"] and b["paid_fen"] + b["failed_fen"] == b["declared_total_fen"]
          and ledger_sum == 0 and twice == 0)
    return {"ok": ok, "statuses": statuses, "txns": txns, "ledger_sum": ledger_sum, "twice": twice, **b}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--keep", type=Path, default=None, help="Work in DIR and keep it (default: a temp dir).")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="sbcard-pay-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(work, args.rows, args.chunk)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)


def run(work: Path, rows: int, chunk: int) -> int:
    home = work / "world"
    shutil.rmtree(home, ignore_errors=True)
    clock = FixedClock(NOW)
    init_world(home, clock, rng_seed=1)
    started = time.perf_counter()
    with open_world(home, clock) as world:
        db = world.region(NODE)
        for code, name in ((MAKER, "制单员"), (CHECKER, "复核员")):
            operators.add_operator(db, code=code, name=name, role="finance", region=DISTRICT, now=NOW)
        people = build_registry(db, rows)
        print(f"registry     {rows:,} persons with active cards and accounts in {time.perf_counter() - started:.1f} s")
        source = work / "batch.csv"
        count, total = write_batch(source, people)
        del people
        started = time.perf_counter()
        imported = import_batch(world, source, region=DISTRICT, operator=MAKER, now=NOW, count=count,
                                total_fen=total)
        batch = imported["batch_id"]
        print(f"import       {imported['rows']:,} rows ({imported['valid']:,} valid, {imported['invalid']:,} refused)"
              f" in {time.perf_counter() - started:.1f} s (the real import_batch; for information)")
        approve(world, batch, operator=CHECKER, now=NOW)
        lost = [r[0] for r in db.execute("SELECT citizen_id FROM subsidy_rows WHERE batch_id = ? AND status = 'valid'"
                                         " AND seq % ? = 0", [batch, LOST_EVERY])]
        db.conn.execute("BEGIN IMMEDIATE")
        db.conn.executemany("UPDATE cards SET status = 'lost', loss_kind = 'formal' WHERE citizen_id = ?",
                            [(c,) for c in lost])
        db.conn.executemany("UPDATE accounts SET status = 'frozen' WHERE citizen_id = ? AND status != 'closed'",
                            [(c,) for c in lost])  # the condition lets SQLite use the open-account index
        db.conn.execute("COMMIT")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        print(f"since import {len(lost):,} holders reported their card lost (their rows fail at pay time)")
        bare = bare_executemany(work, batch, db)

    started = time.perf_counter()
    child = subprocess.run([sys.executable, "-c", _MEASURED, "--home", str(home), "subsidy", "pay", batch,
                            "--operator", CHECKER, "--chunk", str(chunk), "--json"], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.perf_counter() - started
    if child.returncode != 0:
        print(child.stderr, file=sys.stderr)
        return 1
    result = json.loads(child.stdout)
    peak_mb = int(child.stderr.split("VmHWM:")[-1].split()[0]) / 1024  # "VmHWM:  38404 kB"

    db = open_db(home / f"{NODE}.db")
    try:
        verified = check(db, batch)
    finally:
        db.close()
    ok_time, ok_memory = elapsed <= TARGET_SECONDS, peak_mb <= TARGET_MB
    print(f"paid         {result['paid']:,} rows ({fen_to_yuan_str(result['paid_fen'])} yuan), failed "
          f"{result['failed']:,} ({result['invalid']:,} at import, {result['failed'] - result['invalid']:,} at pay "
          f"time); batch {batch}, chunks of {chunk:,}")
    print(f"checked      exactly once, paid + failed = declared, ledger sum {verified['ledger_sum']}: "
          f"{'ok' if verified['ok'] else 'FAILED ' + repr(verified)}")
    print(f"pay          {elapsed:6.1f} s   target ≤ {TARGET_SECONDS:.0f} s    {'ok' if ok_time else 'MISSED'}"
          f"   ({rows / elapsed:,.0f} rows/s, the whole command: start-up included)")
    print(f"peak memory  {peak_mb:6.1f} MB  target ≤ {TARGET_MB:.0f} MB  {'ok' if ok_memory else 'MISSED'}"
          f"   (the pay process)")
    print(f"bare insert  {bare:6.2f} s   (executemany of the same {rows:,} rows into a fresh table, one transaction)")
    print(f"ratio        {elapsed / bare:6.1f} × pay time / bare executemany")
    return 0 if ok_time and ok_memory and verified["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
