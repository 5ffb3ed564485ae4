"""The hypothesis state machines (the purse on the chip; accounts, purses, taps, tears and uploads)
run big: ``--examples`` × ``--steps`` each (default 1,000 × 50), through pytest.

    .venv/bin/python benchmarks/state_machines.py [--examples 1000] [--steps 50] [--only purse|money]
                                                  [--timeout SECONDS]

Each machine runs in a pytest child with ``SBCARD_MACHINE_EXAMPLES`` / ``SBCARD_MACHINE_STEPS``
(``tests/machine_budget.py``) and hypothesis' statistics; prints per machine the size asked,
the examples run, the time and the verdict. ``--timeout`` time-boxes each machine (the
child is stopped, and the report says so).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MACHINES = {
    "purse": "tests/emulator/test_emulator_purse_machine.py",
    "money": "tests/transit/test_purse_machine_money.py",
}


def run(name: str, test: str, examples: int, steps: int, timeout: float) -> dict:
    counted = Path(tempfile.mkstemp(prefix=f"sbcard-{name}-examples-")[1])
    env = {**os.environ, "SBCARD_MACHINE_EXAMPLES": str(examples), "SBCARD_MACHINE_STEPS": str(steps),
           "SBCARD_MACHINE_COUNT": str(counted)}
    started = time.monotonic()
    child = subprocess.Popen([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x",
                              "--hypothesis-show-statistics", test], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = child.communicate(timeout=timeout)
        verdict = "passed" if child.returncode == 0 else f"FAILED (exit {child.returncode})"
    except subprocess.TimeoutExpired:
        child.kill()  # exactly the child started here
        out, _ = child.communicate()
        verdict = f"stopped at the time box ({timeout:.0f} s)"
    seconds = time.monotonic() - started
    passing = sum(int(n) for n in re.findall(r"(\d+) passing", out))
    if not passing:  # run_state_machine_as_test has no statistics: the machine counted its examples
        passing = len(counted.read_text().splitlines())
    counted.unlink()
    return {"name": name, "verdict": verdict, "seconds": seconds, "passing": passing, "output": out}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--only", choices=sorted(MACHINES))
    parser.add_argument("--timeout", type=float, default=3600)
    args = parser.parse_args()
    failed = False
    for name, test in MACHINES.items():
        if args.only and name != args.only:
            continue
        r = run(name, test, args.examples, args.steps, args.timeout)
        print(f"{name}: {args.examples:,} examples × {args.steps} steps asked; {r['passing']:,} examples "
              f"run in {r['seconds']:.0f} s: {r['verdict']}", flush=True)
        if not r["verdict"].startswith(("passed", "stopped")):
            failed = True
            print(r["output"][-3000:])
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
