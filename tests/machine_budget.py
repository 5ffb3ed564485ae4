"""How big the hypothesis state machines run: the suite's size, or the benchmark's.

``benchmarks/state_machines.py`` sets ``SBCARD_MACHINE_EXAMPLES`` and ``SBCARD_MACHINE_STEPS``
(e.g. 1,000 × 50); unset, each machine keeps the size its test module gives.
"""

from __future__ import annotations

import os
from typing import Any

EXAMPLES_ENV = "SBCARD_MACHINE_EXAMPLES"
STEPS_ENV = "SBCARD_MACHINE_STEPS"


def machine_size(max_examples: int, stateful_step_count: int) -> dict[str, Any]:
    """``settings`` keywords: the test's own size unless the benchmark asks for another."""
    examples = os.environ.get(EXAMPLES_ENV)
    steps = os.environ.get(STEPS_ENV)
    return {"max_examples": int(examples) if examples else max_examples,
            "stateful_step_count": int(steps) if steps else stateful_step_count}
