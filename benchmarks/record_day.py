"""Stretch (reported, not required): a Beijing record day of 13.5 million taps — how long, and where the time goes.

    .venv/bin/python benchmarks/record_day.py [--taps 20000] [--cards 300] [--record 13500000] [--json]

Running 13.5 million taps takes hours on this machine, so this measures a sample and scales
it: ``--taps`` whole taps in ``transit_taps.py``'s three mixes (a Tianjin bus, Beijing
subway entries and exits, Beijing bus rides with a distance), each on the validator with its
PSAM and offline log and a software card read from its file, as the simulator's validators
do. The sample runs twice: timed (taps per CPU-second), then under cProfile, whose own time
per function is put into the parts of a tap (the card OS, the APDU stack, the terminal's
application, cryptography, SQLite, files, the rest). Printed: the time of a record day on
one core and on every core of this machine (the taps of different terminals and cards are
independent; the simulator puts them in one process of their own beside its engine), and the
share of each part.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from transit_taps import make_cards, run_mix  # noqa: E402

RECORD_TAPS = 13_500_000  # Beijing's transit, a record day (subway and bus together, all media)
MIXES = ("tj-bus", "bj-subway", "bj-bus")
# (part, substrings of the profiled function's file or name), the first that matches wins
PARTS = (
    ("sqlite (terminal log, PSAM state)", ("sqlite3", "sqlite_utils")),
    ("cryptography (SM4 MACs, session keys)", ("ciphers", "cryptography", "sbcard/chip/crypto.py",
                                                 "sbcard/chip/purse.py")),
    ("card files (read, write)", ("posix.", "terminals/emulator/card_file.py", "terminals/emulator/image_codec.py",
                                  "terminals/emulator/image.py", "terminals/emulator/journal.py")),
    ("card OS (commands on the emulated card)", ("terminals/emulator/",)),
    ("APDU stack (commands, reader, TLV)", ("sbcard/chip/", "terminals/drivers/")),
    ("PSAM", ("terminals/psam.py",)),
    ("validator application (fares, blacklist, log)", ("terminals/apps/", "sbcard/domain/")),
)


def part_of(filename: str, name: str) -> str:
    where = f"{filename}:{name}"
    for part, needles in PARTS:
        if any(n in where for n in needles):
            return part
    return "the rest (Python runtime, attrs, json, datetime)"


def sample(cards: list[Path], taps: int, directory: Path) -> tuple[float, int]:
    """CPU seconds for ``taps`` taps spread over the mixes; and how many were done."""
    cpu, done = 0.0, 0
    for i, mix in enumerate(MIXES):
        n = taps // len(MIXES) + (1 if i < taps % len(MIXES) else 0)
        c = time.process_time()
        result = run_mix(mix, cards, n, directory / "timed", "normal", False)
        cpu += time.process_time() - c
        done += result["taps"]
    return cpu, done


def profiled_parts(cards: list[Path], taps: int, directory: Path) -> dict[str, float]:
    profiler = cProfile.Profile()
    profiler.enable()
    for i, mix in enumerate(MIXES):
        run_mix(mix, cards, taps // len(MIXES), directory / "profiled", "normal", False)
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    parts: dict[str, float] = {}
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        part = part_of(filename, name)
        parts[part] = parts.get(part, 0.0) + tottime
    total = sum(parts.values()) or 1.0
    return {part: round(100 * t / total, 1) for part, t in sorted(parts.items(), key=lambda kv: -kv[1])}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--taps", type=int, default=20_000)
    parser.add_argument("--cards", type=int, default=300)
    parser.add_argument("--record", type=int, default=RECORD_TAPS)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sbcard-record-day-") as tmp:
        directory = Path(tmp)
        for sub in ("cards", "timed", "profiled"):
            (directory / sub).mkdir()
        cards = make_cards(directory / "cards", args.cards)
        cpu, done = sample(cards, args.taps, directory)
        parts = profiled_parts(cards, max(3_000, args.taps // 4), directory)
    per_tap = cpu / done
    cores = os.cpu_count() or 1
    result = {
        "sample_taps": done, "ms_per_tap_cpu": round(per_tap * 1000, 3), "taps_per_cpu_s": round(done / cpu),
        "record_taps": args.record, "record_day_one_core_h": round(args.record * per_tap / 3600, 2),
        "cores": cores, "record_day_all_cores_h": round(args.record * per_tap / cores / 3600, 2),
        "share_percent": parts,
    }
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
        return 0
    print(f"sample: {done:,} taps, {result['ms_per_tap_cpu']} ms of CPU each ({result['taps_per_cpu_s']:,} per CPU-second)")
    print(f"a record day of {args.record:,} taps: {result['record_day_one_core_h']} h on one core, "
          f"{result['record_day_all_cores_h']} h on this machine's {cores} cores")
    print("where a tap's time goes (cProfile, own time):")
    for part, share in parts.items():
        print(f"  {share:5.1f}%  {part}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
