"""Seeded fuzzing of the card OS and the PSAM, in process (``terminals/emulator/fuzzing.py``).

    .venv/bin/python benchmarks/fuzz_card.py [--apdus 1000000] [--psam-apdus 100000] [--seed 15]
                                             [--per-episode 48] [--tears 0.1] [--show 5]

Sends N fuzzed APDUs to the card (random and structured, in every security state, a share
of the episodes with a tear) and M to a PSAM; prints the figures — APDUs, rate, per-state
counts, status words, exceptions, hangs, invariant breaks — and exits 1 unless the last
three are all 0.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from terminals.emulator import fuzzing  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--apdus", type=int, default=1_000_000)
    parser.add_argument("--psam-apdus", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--per-episode", type=int, default=fuzzing.APDUS_PER_EPISODE)
    parser.add_argument("--tears", type=float, default=fuzzing.TEAR_SHARE, help="share of episodes with a tear")
    parser.add_argument("--show", type=int, default=5, help="failures shown per kind")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sbcard-fuzz-") as folder:
        pristine = fuzzing.make_pristine(Path(folder))

    def progress(fig: fuzzing.Figures) -> None:
        print(f"  ... {fig.apdus:,} APDUs, {fig.apdus / fig.seconds:,.0f}/s, failures {fig.failures}",
              file=sys.stderr, flush=True)

    fig = fuzzing.fuzz_card(args.apdus, args.seed, pristine, per_episode=args.per_episode, tear_share=args.tears,
                            progress=progress)
    fuzzing.fuzz_psam(args.psam_apdus, args.seed + 1, fig)
    print(f"card OS: {fig.apdus:,} fuzzed APDUs (+ {fig.setup_apdus:,} episodes' set-ups) in {fig.seconds:.1f} s "
          f"= {fig.apdus / max(fig.seconds, 1e-9):,.0f} APDUs/s; {fig.episodes:,} episodes, {fig.tears:,} torn "
          f"(card image reloaded {fig.reloads:,} times)")
    print("per security state: " + ", ".join(f"{k} {v:,}" for k, v in sorted(fig.per_state.items())))
    top = ", ".join(f"{sw:04X} {n:,}" for sw, n in fig.per_sw.most_common(12))
    print(f"status words (most frequent): {top}")
    print("accepted (9000) by command: " + ", ".join(f"{k} {v:,}" for k, v in fig.accepted.most_common()))
    print(f"PSAM: {fig.psam_apdus:,} fuzzed APDUs in {fig.psam_seconds:.1f} s "
          f"= {fig.psam_apdus / max(fig.psam_seconds, 1e-9):,.0f} APDUs/s")
    print(f"exceptions: {len(fig.exceptions)}   hangs: {len(fig.hangs)}   invariant breaks: "
          f"{len(fig.invariant_breaks)}")
    for kind, found in (("exception", fig.exceptions), ("hang", fig.hangs), ("invariant break", fig.invariant_breaks)):
        for line in found[: args.show]:
            print(f"  {kind}: {line}")
    return 1 if fig.failures else 0


if __name__ == "__main__":
    sys.exit(main())
