"""Instant issuance end to end: ``card apply`` + ``card issue`` + ``card activate``.

    .venv/bin/python benchmarks/issuance.py [-n 20] [--pcsc-n 5] [--no-pcsc] [--json]

Builds a seeded world in a temporary directory (a Tianjin counter operator, one
resident per issuance, blank stock at TJ-120103-01), then runs the three commands
in-process through the command line (click's runner, the same code path as the shell
minus interpreter start-up) for each person: N times with the card in the in-process
emulator, then ``--pcsc-n`` times with the blank served to pcscd by ``sbcard reader
serve`` and the counter talking to it through pyscard (the bridge is started before the
clock starts). Prints the median and worst time per issuance and per command, and the
APDUs one issuance and one activation exchange with the card.
Targets: median ≤ 1 s through the emulator, ≤ 3 s through pcscd + vpcd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import pcsc_stack  # noqa: E402  (tests/pcsc_stack.py)
from click.testing import CliRunner  # noqa: E402

from sbcard.cli.main import cli  # noqa: E402
from sbcard.clock import BEIJING, FixedClock  # noqa: E402
from sbcard.domain.citizen_id import compute_check_char  # noqa: E402
from sbcard.services.outlets import operators, stock
from sbcard.services.people import registry  # noqa: E402
from sbcard.store.world import init_world, open_world  # noqa: E402
from terminals.emulator.blank import create_blank  # noqa: E402

OUTLET, OPERATOR = "TJ-120103-01", "TJ-BENCH"
TARGETS_S = {"emulator": 1.0, "pcsc": 3.0}


def build_world(home: Path, people: int) -> tuple[list[str], list[Path]]:
    now = datetime.now(BEIJING)
    init_world(home, FixedClock(now), rng_seed=2024)
    ids = []
    with open_world(home) as world:
        tj = world.region("tj")
        operators.add_operator(tj, code=OPERATOR, name="李娜", role="counter", region="120103", now=now)
        for n in range(1, people + 1):
            first17 = f"1201031990{n // 1000 % 12 + 1:02d}01{n % 1000:03d}"  # one a day, 1,000 a month
            ids.append(first17 + compute_check_char(first17))
            registry.add_person(tj, citizen_id=ids[-1], name=f"测试{n}", region="120103", insurance="employee",
                                now=now)
        made = stock.receive_stock(tj, outlet=OUTLET, count=people, operator=OPERATOR, now=now,
                                   cards_dir=world.paths.cards_dir, make_blank=create_blank)
    return ids, [Path(p) for p in made["paths"]]


def run(runner: CliRunner, home: Path, *args: str) -> dict[str, Any]:
    result = runner.invoke(cli, ["--home", str(home), *args, "--json"], catch_exceptions=False)
    if result.exit_code != 0:
        raise SystemExit(f"sbcard {' '.join(args)} failed: {result.stderr.strip()}")
    return json.loads(result.stdout)


def issue_one(runner: CliRunner, home: Path, citizen_id: str, reader: str) -> dict[str, Any]:
    """apply + issue + activate for one person; the seconds each took and the APDUs."""
    t0 = time.perf_counter()
    application = run(runner, home, "card", "apply", "--citizen-id", citizen_id, "--outlet", OUTLET,
                      "--operator", OPERATOR)
    t1 = time.perf_counter()
    issued = run(runner, home, "card", "issue", application["application_id"], "--reader", reader,
                 "--operator", OPERATOR)
    t2 = time.perf_counter()
    active = run(runner, home, "card", "activate", issued["card_number"], "--pin", "147258", "--operator", OPERATOR,
                 "--reader", reader)
    t3 = time.perf_counter()
    return {"apply": t1 - t0, "issue": t2 - t1, "activate": t3 - t2, "total": t3 - t0,
            "issue_apdus": issued["apdus"], "activate_apdus": active["apdus"]}


def summary(samples: list[dict[str, Any]], target: float) -> dict[str, Any]:
    def stat(key: str) -> dict[str, float]:
        values = [s[key] for s in samples]
        return {"median_s": round(statistics.median(values), 4), "max_s": round(max(values), 4)}

    out = {key: stat(key) for key in ("total", "apply", "issue", "activate")}
    out["n"] = len(samples)
    out["issue_apdus"] = sorted({s["issue_apdus"] for s in samples})
    out["activate_apdus"] = sorted({s["activate_apdus"] for s in samples})
    out["target_median_s"] = target
    out["target_met"] = out["total"]["median_s"] <= target
    return out


def bench_pcsc(runner: CliRunner, home: Path, people: list[str], blanks: list[Path], logs: Path) -> dict[str, Any]:
    stack = pcsc_stack.PcscStack.start(logs)
    samples = []
    try:
        for citizen_id, blank in zip(people, blanks):
            bridge = pcsc_stack.Bridge.start(blank, logs, reader=stack.reader, port=stack.port)
            try:
                samples.append(issue_one(runner, home, citizen_id, f"pcsc:{stack.reader}"))
            finally:
                bridge.stop()
    finally:
        stack.stop()
    return {**summary(samples, TARGETS_S["pcsc"]), "pcscd_started_here": stack.started_here}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20, help="issuances through the emulator (default 20)")
    parser.add_argument("--pcsc-n", type=int, default=5, help="issuances through pcscd + vpcd (default 5)")
    parser.add_argument("--no-pcsc", action="store_true", help="skip the PC/SC run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    pcsc_n = 0 if args.no_pcsc else args.pcsc_n

    runner = CliRunner()
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sbcard-bench-") as tmp:
        home = Path(tmp) / "world"
        people, blanks = build_world(home, args.n + pcsc_n)
        samples = [issue_one(runner, home, people[i], f"emulator:{blanks[i]}") for i in range(args.n)]
        report["emulator"] = summary(samples, TARGETS_S["emulator"])
        if pcsc_n:
            try:
                report["pcsc"] = bench_pcsc(runner, home, people[args.n:], blanks[args.n:], Path(tmp) / "logs")
            except pcsc_stack.StackUnavailable as e:
                report["pcsc"] = {"skipped": f"PC/SC stack unavailable: {e}"}

    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    for name, r in report.items():
        if "skipped" in r:
            print(f"{name}: {r['skipped']}")
            continue
        t = r["total"]
        print(f"{name}: {r['n']} issuances, apply+issue+activate median {t['median_s'] * 1000:.0f} ms, "
              f"max {t['max_s'] * 1000:.0f} ms (target median ≤ {r['target_median_s']:.0f} s: "
              f"{'met' if r['target_met'] else 'MISSED'})")
        print("    " + ", ".join(f"{k} {r[k]['median_s'] * 1000:.0f} ms" for k in ("apply", "issue", "activate")))
        print(f"    APDUs: issue {'/'.join(map(str, r['issue_apdus']))}, "
              f"activate {'/'.join(map(str, r['activate_apdus']))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
