"""Throughput of the software card, in process, with its file persistence on.

    .venv/bin/python benchmarks/emulator_throughput.py [--apdus 20000] [--purchases 3000] [--profile] [--dir D] [--durable]

1. APDUs/s: a SELECT + READ RECORD mix (what a reader of SSSE data sends), N APDUs.
2. Purchases/s: a whole e-purse purchase as a validator runs it — SELECT T-Union,
   INITIALIZE FOR PURCHASE, MAC1 by the PSAM formulas, DEBIT FOR PURCHASE (one journal
   commit: the whole image written into the card file's other EEPROM bank with one
   pwrite; with --durable an fdatasync too), MAC2 checked.

Pinned to one core when the platform allows. Targets: >= 5,000 APDUs/s, >= 1,000
purchases/s.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbcard.chip import profile  # noqa: E402
from sbcard.chip.codec import bcd_datetime  # noqa: E402
from sbcard.chip.commands import DebitForPurchase, InitializeForPurchase, ReadRecord, select_ssse, select_tunion  # noqa: E402
from sbcard.chip.crypto import algorithm_from_id  # noqa: E402
from sbcard.chip.purse import EP_PURCHASE, purchase_mac1, purchase_mac2, purchase_session_key  # noqa: E402
from terminals.emulator import card_file, image_codec, testing  # noqa: E402
from terminals.emulator.card import VirtualCard  # noqa: E402

APDU_TARGET = 5_000
PURCHASE_TARGET = 1_000
TERMINAL_NO = testing.TEST_TERMINAL_NO
DATE_TIME = bcd_datetime(testing.TEST_WHEN)


def apdu_mix(n: int) -> list[bytes]:
    select = select_ssse().command().to_bytes()
    reads = [
        ReadRecord(profile.SFI_EF05 if tag in profile.EF05_TAGS else profile.SFI_EF06, tag).command().to_bytes()
        for tag in (*profile.EF05_TAGS, *profile.EF06_TAGS)
    ]
    mix = []
    while len(mix) < n:
        mix.append(select)
        mix.extend(reads[: min(3, n - len(mix))])
        reads = reads[3:] + reads[:3]
    return mix[:n]


def bench_apdus(card, n: int) -> float:
    mix = apdu_mix(n)
    process = card.process
    start = time.perf_counter()
    for apdu in mix:
        if process(apdu)[-2:] != b"\x90\x00":
            raise SystemExit(f"unexpected answer to {apdu.hex()}")
    return n / (time.perf_counter() - start)


def bench_purchases(card, n: int) -> float:
    """Validator-style purchases of 1 fen; the PSAM derives DPK from the FCI's serial."""
    keys = testing.keys_of(testing.card_data())
    select = select_tunion().command().to_bytes()
    init = InitializeForPurchase(profile.CARD_KEY_INDEX, 1, TERMINAL_NO).command().to_bytes()
    process = card.process
    elapsed = 0.0
    for i in range(n):
        if i % 900 == 0:  # top the purse up now and then (not timed)
            testing.load(card, 900, keys=keys)
        serial = (i + 1).to_bytes(4, "big")
        start = time.perf_counter()
        process(select)
        r = process(init)
        counter, alg, random4 = int.from_bytes(r[4:6], "big"), algorithm_from_id(r[10]), r[11:15]
        sk = purchase_session_key(alg, keys.purchase, random4, counter, serial)
        mac1 = purchase_mac1(alg, sk, 1, EP_PURCHASE, TERMINAL_NO, DATE_TIME)
        r = process(DebitForPurchase(serial, DATE_TIME, mac1).command().to_bytes())
        if r[-2:] != b"\x90\x00" or r[4:8] != purchase_mac2(alg, sk, 1):
            raise SystemExit(f"purchase {i}: {r.hex()}")
        elapsed += time.perf_counter() - start
    return n / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--apdus", type=int, default=20_000)
    parser.add_argument("--purchases", type=int, default=3_000)
    parser.add_argument("--profile", action="store_true", help="cProfile the purchases, print the top 25")
    parser.add_argument("--dir", type=Path, default=None, help="where the card file lives (default: a temp dir)")
    parser.add_argument("--durable", action="store_true", help="fdatasync every save (VirtualCard durable=True)")
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = Path(tmp) / f"card{card_file.CARD_FILE_SUFFIX}"
        card = testing.personalised_card(path, rng=random.Random(7))
        if args.durable:
            card.close()
            card = VirtualCard.load(path, rng=random.Random(7), durable=True)
        apdus = bench_apdus(card, args.apdus)
        print(f"APDUs/s (SELECT + READ RECORD, n={args.apdus}): {apdus:,.0f}  (target {APDU_TARGET:,})")
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
        purchases = bench_purchases(card, args.purchases)
        if args.profile:
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(25)
        print(f"purchases/s (SELECT, INITIALIZE, MAC1, DEBIT, MAC2 check, n={args.purchases}): {purchases:,.0f}  (target {PURCHASE_TARGET:,})")
        print(f"card file: {path.stat().st_size:,} bytes, current image {len(image_codec.dumps(card.state)):,} bytes"
              f"{' (durable)' if args.durable else ''}")
        card.close()
    return 0 if apdus >= APDU_TARGET and purchases >= PURCHASE_TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
