"""``sbcard simulate`` at scale: a population of 10,000 and of 100,000, one day each.

    .venv/bin/python benchmarks/simulate.py [--sizes 10000,100000] [--days 1] [--seed 1]
                                            [--faults none] [--dir D] [--json]

Each size runs the simulator in process (``sbcard.sim.engine.Simulation``, what ``sbcard
simulate`` runs) in a fresh world: the set-up (registry import, stock, terminals, and the
cards most people hold — made in production batches: each checked as an application,
personalised by the factory machine on a software card with the counter's script, and
recorded active through the batch production service), then the days (taps, loads,
hospital and venue visits, … and the night's uploads, clearing, settlement, invariants
and checkpoint).

Printed per size: wall time, CPU time, the set-up and the days separately, the
transactions (what the tally counts as done at a counter, a gate, a validator, a point of
sale, a finance desk or the card factory: cards made in a batch, applications, issuances,
activations, deposits, loads, taps — refused ones too —, claims, refunds, entries, loans,
returns, losses, replacements and subsidy payments; the night's uploaded and cleared
records are shown beside them), the
transactions per second and the cost per transaction; then the ratio of the cost per
transaction at the largest size to that at the smallest (target ≤ 1.3), and whether the
largest run met the target of 5 minutes for 100,000 people and one day.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sbcard.sim.engine import Options, Simulation  # noqa: E402

TRANSACTIONS = (
    "batch_produced", "apply", "issue", "activate", "deposit", "load", "tap", "tap_refused", "medical_claim", "medical_refund",
    "venue_entry", "venue_refused", "library_loan", "library_return", "library_refused", "lost", "replace",
    "unblock", "subsidy_paid", "finder_tap",
)
SETUP_KINDS = ("batch_produced",)
TARGET_RATIO = 1.3
TARGET_S = {100_000: 300.0}


def run_one(population: int, days: int, seed: int, faults: str, directory: Path) -> dict[str, Any]:
    home = directory / f"world-{population}"
    if home.exists():
        shutil.rmtree(home)
    sim = Simulation(home, Options(population=population, days=days, seed=seed, faults=faults),
                     progress=lambda line: print(f"  [{population:,}] {line}", file=sys.stderr, flush=True))
    wall, cpu = time.perf_counter(), time.process_time()
    sim.run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    counts = sim.tally.to_json()["counts"]
    total = {kind: sum(by_node.values()) for kind, by_node in counts.items()}
    transactions = sum(total.get(k, 0) for k in TRANSACTIONS)
    setup_s = sim.timings.get("setup_s", 0.0)
    days_s = sum(v for k, v in sim.timings.items() if k.startswith("day"))
    issued_in_setup = sum(total.get(k, 0) for k in SETUP_KINDS)
    day_transactions = transactions - issued_in_setup
    out: dict[str, Any] = {
        "population": population, "days": days, "faults": faults, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
        "setup_s": round(setup_s, 2), "days_s": round(days_s, 2), "transactions": transactions,
        "by_kind": {k: total[k] for k in sorted(total)},
        "uploaded_records": total.get("upload", 0), "cleared": total.get("clearing", 0),
        "tx_per_s": round(transactions / wall, 1),
        "ms_per_tx": round(wall / transactions * 1000, 3),
        "day_ms_per_tx": round(days_s / max(1, day_transactions) * 1000, 3),
        "invariants_held": all(r.ok for r in sim.invariants.values()),
    }
    target = TARGET_S.get(population) if days == 1 else None
    if target is not None:
        out["target_s"] = target
        out["target_met"] = wall <= target
    return out  # the world stays until every size has run (``main``)


def _print_run(r: dict[str, Any]) -> None:
    met = ""
    if "target_met" in r:
        met = f"  (target ≤ {r['target_s']:.0f} s: {'met' if r['target_met'] else 'MISSED'})"
    print(f"{r['population']:>9,} people × {r['days']} day: {r['wall_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU in this "
          f"process; set-up {r['setup_s']:.1f} s, days {r['days_s']:.1f} s){met}")
    print(f"          {r['transactions']:,} transactions, {r['tx_per_s']:,.0f}/s, {r['ms_per_tx']:.2f} ms each "
          f"(the days alone: {r['day_ms_per_tx']:.2f} ms); {r['uploaded_records']:,} records uploaded, "
          f"{r['cleared']:,} cleared; invariants {'held' if r['invariants_held'] else 'VIOLATED'}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000", help="populations, comma-separated")
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--faults", default="none", choices=["none", "light", "heavy"])
    parser.add_argument("--dir", type=Path, default=None, help="where the worlds are made (default: a temp dir)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",") if s.strip()]

    runs = []
    # The worlds are removed together once every size has run, not each after its run: on ext4,
    # for minutes after tens of thousands of files are deleted, making a file costs up
    # to 30 times more (the allocator passes over recently freed inodes), and the next size's
    # set-up makes a file for every card.
    with tempfile.TemporaryDirectory(prefix="sbcard-sim-bench-", dir=args.dir) as tmp:
        for n in sizes:
            runs.append(run_one(n, args.days, args.seed, args.faults, Path(tmp)))
            if not args.json:  # each size as it ends: the largest takes a while
                _print_run(runs[-1])
    report: dict[str, Any] = {"runs": runs}
    if len(runs) >= 2:
        small, large = runs[0], runs[-1]
        report["cost_ratio"] = round(large["ms_per_tx"] / small["ms_per_tx"], 3)
        report["day_cost_ratio"] = round(large["day_ms_per_tx"] / small["day_ms_per_tx"], 3)
        report["ratio_target"] = TARGET_RATIO
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
        return 0
    if "cost_ratio" in report:
        ok = report["cost_ratio"] <= TARGET_RATIO
        print(f"cost per transaction, {runs[-1]['population']:,} vs {runs[0]['population']:,}: "
              f"×{report['cost_ratio']:.2f} (days alone ×{report['day_cost_ratio']:.2f}; target ≤ {TARGET_RATIO}: "
              f"{'met' if ok else 'MISSED'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
