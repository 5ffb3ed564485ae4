"""Latency of one APDU through the real PC/SC stack: pyscard → pcscd → vpcd → bridge → card.

    .venv/bin/python benchmarks/pcsc_latency.py [--card FILE] [-n 2000] [--json]

Reuses a running pcscd or starts ``pcscd --foreground``; serves the card (unless
``--card`` is given, a blank card from ``terminals.emulator.blank.create_blank``,
personalised in-process with the driver tests' card data and test keys) with
``sbcard reader serve``; sends N APDUs, alternately SELECT of the SSSE
directory and READ RECORD of EF05; prints the median and p99 in µs per APDU, and the
same APDUs through the in-process emulator reader for comparison. Stops what it
started, by PID. Target: median ≤ 2 ms.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "drivers")]

import pcsc_stack  # noqa: E402  (tests/pcsc_stack.py)

SELECT_SSSE = bytes.fromhex("00A404000F7378312E73682EC9E7BBE1B1A3D5CF")
READ_EF05 = bytes.fromhex("00B2012C00")
TARGET_MEDIAN_US = 2000.0


def _stats(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "n": len(s),
        "median_us": round(statistics.median(s) * 1e6, 1),
        "p99_us": round(s[min(len(s) - 1, int(len(s) * 0.99))] * 1e6, 1),
        "max_us": round(s[-1] * 1e6, 1),
    }


def _apdus(n: int) -> list[bytes]:
    return [SELECT_SSSE if i % 2 == 0 else READ_EF05 for i in range(n)]


def bench_pcsc(reader_name: str, n: int) -> tuple[dict[str, float], dict[str, str]]:
    from smartcard.System import readers

    (reader,) = [r for r in readers() if str(r) == reader_name]
    conn = reader.createConnection()
    conn.connect()
    answers: dict[str, str] = {}
    samples: list[float] = []
    try:
        for _ in range(20):  # warm up
            conn.transmit(list(SELECT_SSSE))
        for apdu in _apdus(n):
            cmd = list(apdu)
            t = time.perf_counter()
            data, sw1, sw2 = conn.transmit(cmd)
            samples.append(time.perf_counter() - t)
            answers.setdefault(apdu.hex().upper(), f"{sw1:02X}{sw2:02X}")
    finally:
        conn.disconnect()
        conn.release()
    return _stats(samples), answers


def bench_emulator(card: Path, n: int) -> dict[str, float]:
    from terminals.drivers.emulator import EmulatorReader

    samples: list[float] = []
    with EmulatorReader(card) as r:
        for apdu in _apdus(min(n, 2000)):
            t = time.perf_counter()
            r.transmit_raw(apdu)
            samples.append(time.perf_counter() - t)
    return _stats(samples)


def personalise_for_bench(card: Path) -> None:
    from drivers_fakes import personalisation_inputs  # tests/drivers/drivers_fakes.py

    from sbcard.chip.personalisation import personalise
    from terminals.drivers.emulator import EmulatorReader

    data, keys = personalisation_inputs()
    with EmulatorReader(card) as r:
        personalise(r, data, keys)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", type=Path, help="a virtual card file (default: a fresh blank card)")
    parser.add_argument("-n", type=int, default=2000, help="APDUs to send (default 2000)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="sbcard-bench-") as tmp:
        tmpdir = Path(tmp)
        card = args.card
        if card is None:
            try:
                from terminals.emulator.blank import create_blank
            except ImportError as e:
                print(f"--card: no card given and no blank-card factory ({e})", file=sys.stderr)
                return 2
            card = create_blank(tmpdir / "bench.card")
            personalise_for_bench(card)
        if not card.exists():
            print(f"--card: no such file {card}", file=sys.stderr)
            return 2

        try:
            stack = pcsc_stack.PcscStack.start(tmpdir / "logs")
        except pcsc_stack.StackUnavailable as e:
            print(f"PC/SC stack unavailable: {e}", file=sys.stderr)
            return 3
        started_here = stack.started_here
        try:
            bridge = pcsc_stack.Bridge.start(card, tmpdir / "logs", reader=stack.reader, port=stack.port)
            try:
                pcsc, answers = bench_pcsc(stack.reader, args.n)
            finally:
                bridge.stop()
        finally:
            stack.stop()
        emulator = bench_emulator(card, args.n)

    report = {
        "pcsc": pcsc,
        "emulator_in_process": emulator,
        "status_words": answers,
        "pcscd_started_here": started_here,
        "target_median_us": TARGET_MEDIAN_US,
        "target_met": pcsc["median_us"] <= TARGET_MEDIAN_US,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"PC/SC via vpcd: {pcsc['n']} APDUs, median {pcsc['median_us']:.0f} µs, "
              f"p99 {pcsc['p99_us']:.0f} µs, max {pcsc['max_us']:.0f} µs "
              f"(target median ≤ {TARGET_MEDIAN_US:.0f} µs: {'met' if report['target_met'] else 'MISSED'})")
        print(f"in-process emulator: median {emulator['median_us']:.0f} µs, p99 {emulator['p99_us']:.0f} µs")
        print("status words: " + ", ".join(f"{k[:10]}… → {v}" for k, v in answers.items()))
        print(f"pcscd {'started and stopped here' if started_here else 'was already running (reused)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
