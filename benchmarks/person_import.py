"""`person import` of 1,000,000 persons into a fresh world: elapsed seconds and peak memory.

Targets (issue 3): at most 60 s and 300 MB peak resident memory. The CSV holds valid
persons only: citizen IDs with real GB/T 2260 codes of Jing-Jin-Ji from
fixtures/regions.csv, birth dates from 1940 to last year, correct check characters,
GBK names, phones, Tianjin districts as household regions. It is generated from a fixed
seed, so every run imports the same file.

    .venv/bin/python benchmarks/person_import.py [--rows N] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import date, datetime
from pathlib import Path

from sbcard.clock import BEIJING, FixedClock
from sbcard.domain.citizen_id import compute_check_char
from sbcard.reference import load_regions
from sbcard.services.people.registry import import_persons
from sbcard.store.world import init_world, open_world

TARGET_SECONDS = 60.0
TARGET_MB = 300.0
NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉兰萍红鹏建华飞俊国庆文海燕丹宇浩然子涵欣怡梓萱一诺思远嘉怡雨泽"


def generate(path: Path, rows: int, seed: int = 3) -> None:
    """Write `rows` valid, distinct persons (streamed: the file never sits in memory)."""
    rng = random.Random(seed)
    regions = load_regions()
    birth_codes = [r.code for r in regions if r.level == "county"]
    tianjin = [r.code for r in regions if r.level == "county" and r.code.startswith("12")]
    first_day = date(1940, 1, 1).toordinal()
    last_day = date(NOW.year - 1, 12, 31).toordinal()
    seen: set[str] = set()
    with path.open("w", encoding="utf-8", newline="") as f:
        out = csv.writer(f)
        out.writerow(["citizen_id", "name", "insurance", "retired", "ethnicity", "phone", "region"])
        written = 0
        while written < rows:
            born = date.fromordinal(rng.randint(first_day, last_day))
            first17 = f"{rng.choice(birth_codes)}{born:%Y%m%d}{rng.randint(0, 999):03d}"
            if first17 in seen:
                continue
            seen.add(first17)
            age = NOW.year - born.year
            insurance = "employee" if 18 <= age and rng.random() < 0.6 else "resident"
            retired = int(insurance == "employee" and age >= 60)
            name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.randint(1, 2)))
            phone = f"1{rng.choice('3456789')}{rng.randint(0, 10**9 - 1):09d}" if age >= 12 else ""
            ethnicity = 1 if rng.random() < 0.9 else rng.choice((3, 11, 2, 4, 10, 97))
            out.writerow([first17 + compute_check_char(first17), name, insurance, retired, f"{ethnicity:02d}", phone,
                          rng.choice(tianjin)])
            written += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", type=Path, default=None, help="Work in DIR and keep it (default: a temp dir).")
    parser.add_argument("--generate-only", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate_only:
        generate(args.generate_only, args.rows)
        return 0
    work = args.keep or Path(tempfile.mkdtemp(prefix="sbcard-import-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return run(work, args.rows)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)  # a million persons take ~400 MB on disk


def run(work: Path, rows: int) -> int:
    source = work / "persons.csv"
    started = time.perf_counter()
    # In a child process, so its bookkeeping does not count towards the import's peak memory.
    subprocess.run([sys.executable, __file__, "--rows", str(rows), "--generate-only", str(source)], check=True)
    print(f"generated {rows:,} persons ({source.stat().st_size / 2**20:.0f} MiB) "
          f"in {time.perf_counter() - started:.1f} s")

    home = work / "world"
    shutil.rmtree(home, ignore_errors=True)  # a fresh world every run
    clock = FixedClock(NOW)
    init_world(home, clock, rng_seed=1)
    with open_world(home, clock) as world:
        started = time.perf_counter()
        report = import_persons(world, source, region="120000", now=clock.now(),
                                error_report_path=work / "persons.errors.csv")
        elapsed = time.perf_counter() - started
        persons = world.region("tj")["persons"].count
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB

    ok_time, ok_memory = elapsed <= TARGET_SECONDS, peak_mb <= TARGET_MB
    print(f"imported {report.imported:,} of {report.rows:,} rows ({report.rejected} rejected), "
          f"{persons:,} persons in tj.db")
    print(f"elapsed      {elapsed:6.1f} s   target ≤ {TARGET_SECONDS:.0f} s    {'ok' if ok_time else 'MISSED'}")
    print(f"peak memory  {peak_mb:6.1f} MB  target ≤ {TARGET_MB:.0f} MB  {'ok' if ok_memory else 'MISSED'}")
    print(f"rate         {report.rows / elapsed:,.0f} rows/s")
    return 0 if ok_time and ok_memory and report.rejected == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
