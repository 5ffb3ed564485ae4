"""Time of one validator tap through the real PC/SC stack: pyscard → pcscd → vpcd → bridge → card.

    .venv/bin/python benchmarks/transit_pcsc.py [-n 300] [--json]

Reuses a running pcscd or starts ``pcscd --foreground``; personalises a card (test keys,
¥1,000 on its purse) and serves it with ``sbcard reader serve`` into "Virtual PCD 00 00";
a Tianjin-bus validator (PSAM with every region's test keys, its terminal.db, the fare
rules of ``fixtures/transit``) then taps it N times: SELECT, reads, INITIALIZE, INIT SAM,
DEBIT, VERIFY MAC2, the record committed to the log — each a whole purchase on the card
in the PC/SC reader. Prints the median and p99 per tap (the reader connected, as at a
gate with the card in the field; the connect is timed apart), and the same taps in
process for comparison. Stops what it started, by PID. Target: median <= 50 ms (a
Beijing gate allows 300 ms).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

import pcsc_stack  # noqa: E402  (tests/pcsc_stack.py)

TARGET_MEDIAN_MS = 50.0


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_ms": round(statistics.median(s) * 1000, 3),
        "p99_ms": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1000, 3),
        "max_ms": round(s[-1] * 1000, 3),
    }


def _terminal(directory: Path):
    from sbcard.clock import BEIJING, SimClock
    from sbcard.reference.transit import load_tariff
    from terminals.apps.terminal_state import TerminalConfig, TerminalState
    from terminals.apps.transit import Validator
    from terminals.apps.transit_fares import TariffFares
    from terminals.emulator import testing
    from terminals.psam import PsamKeySet

    keys = [PsamKeySet(f"{p}00000000000000", testing.TEST_MASTER_KEYS.purchase, testing.TEST_MASTER_KEYS.app_maintenance)
            for p in ("11", "12", "13")]
    start = dt.datetime(2025, 3, 3, 7, 0, tzinfo=BEIJING)
    config = TerminalConfig(terminal_id="tj-bus-bench", operator="tj-bus", node="tj", terminal_no="120000999001",
                            psam_id="TJ-PSAM-999001", created_at=start.isoformat(), line="8")
    state = TerminalState.create(directory / "tj-bus-bench", config, keys)
    clock = SimClock(start)
    return state, Validator(state, state.psam(), TariffFares(load_tariff()), clock), clock


def _taps(validator, clock, reader, n: int) -> tuple[list[float], int]:
    samples, ok = [], 0
    for _ in range(5):  # warm up
        validator.tap(reader)
        clock.advance(dt.timedelta(seconds=1))
    for _ in range(n):
        t = time.perf_counter()
        result = validator.tap(reader)
        samples.append(time.perf_counter() - t)
        ok += result.ok
        clock.advance(dt.timedelta(seconds=1))
    return samples, ok


def bench_pcsc(reader_name: str, directory: Path, n: int) -> dict:
    from terminals.drivers.pcsc import PcscReader

    state, validator, clock = _terminal(directory)
    t = time.perf_counter()
    reader = PcscReader(reader_name)
    _ = reader.atr  # connect: the card enters the field
    connect = time.perf_counter() - t
    try:
        samples, ok = _taps(validator, clock, reader, n)
    finally:
        reader.close()
        records = state.record_count()
        state.close()
    return {**_stats(samples), "ok": ok, "records": records, "connect_ms": round(connect * 1000, 3)}


def bench_in_process(card: Path, directory: Path, n: int) -> dict:
    from terminals.drivers.emulator import EmulatorReader

    state, validator, clock = _terminal(directory)
    with EmulatorReader(card) as reader:
        samples, ok = _taps(validator, clock, reader, n)
    state.close()
    return {**_stats(samples), "ok": ok}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="taps (default 300)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from terminals.emulator import testing

    with tempfile.TemporaryDirectory(prefix="sbcard-bench-") as tmp:
        tmpdir = Path(tmp)
        card = tmpdir / "bench.card"
        testing.personalised_card(card, balance_fen=100_000, rng=random.Random(1), region="120000", city="1200").close()
        try:
            stack = pcsc_stack.PcscStack.start(tmpdir / "logs")
        except pcsc_stack.StackUnavailable as e:
            print(f"PC/SC stack unavailable: {e}", file=sys.stderr)
            return 3
        started_here = stack.started_here
        try:
            bridge = pcsc_stack.Bridge.start(card, tmpdir / "logs", reader=stack.reader, port=stack.port)
            try:
                pcsc = bench_pcsc(stack.reader, tmpdir / "pcsc", args.n)
            finally:
                bridge.stop()
        finally:
            stack.stop()
        in_process = bench_in_process(card, tmpdir / "local", min(args.n, 300))

    report = {
        "pcsc": pcsc,
        "in_process": in_process,
        "pcscd_started_here": started_here,
        "target_median_ms": TARGET_MEDIAN_MS,
        "target_met": pcsc["median_ms"] <= TARGET_MEDIAN_MS and pcsc["ok"] == pcsc["n"],
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"tap through PC/SC (pcscd + vpcd): {pcsc['n']} taps, {pcsc['ok']} ok, median {pcsc['median_ms']} ms, "
              f"p99 {pcsc['p99_ms']} ms, max {pcsc['max_ms']} ms; connect {pcsc['connect_ms']} ms "
              f"(target median <= {TARGET_MEDIAN_MS:g} ms: {'met' if report['target_met'] else 'MISSED'})")
        print(f"in process: median {in_process['median_ms']} ms, p99 {in_process['p99_ms']} ms")
        print(f"pcscd {'started and stopped here' if started_here else 'was already running (reused)'}")
    return 0 if report["target_met"] else 1


if __name__ == "__main__":
    sys.exit(main())
