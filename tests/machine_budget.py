"""How big the hypothesis state machines run: the suite's size, or the benchmark's.

``benchmarks/state_machines.py`` sets ``SBCARD_MACHINE_EXAMPLES`` and ``SBCARD_MACHINE_STEPS``
(e.g. 1,000 × 50); unset, each machine keeps the size its test module gives.
"""

from __future__ import annotations

import os
from typing import Any

EXAMPLES_ENV = "SBCARD_MACHINE_EXAMPLES"
STEPS_ENV = "SBCARD_MACHINE_STEPS"
COUNT_ENV = "SBCARD_MACHINE_COUNT"  # a file: each example run adds a line (the benchmark counts them)


def machine_size(max_examples: int, stateful_step_count: int) -> dict[str, Any]:
    """``settings`` keywords: the test's own size unless the benchmark asks for another."""
    examples = os.environ.get(EXAMPLES_ENV)
    steps = os.environ.get(STEPS_ENV)
    return {"max_examples": int(examples) if examples else max_examples,
            "stateful_step_count": int(steps) if steps else stateful_step_count}


def count_example() -> None:
    """One example of a machine started (only when the benchmark asks: hypothesis reports no
    statistics for ``run_state_machine_as_test``)."""
    path = os.environ.get(COUNT_ENV)
    if path:
        with open(path, "a", encoding="ascii") as f:
            f.write("1\n")
