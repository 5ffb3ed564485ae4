"""The cyclic garbage collector in the simulator's day-long processes (the engine, the validators).

Both keep the card images they powered (``validators.CardImages``: up to 150,000 cards,
millions of small objects). CPython starts a full collection, which walks every tracked
object, whenever the objects that survived the young generations have grown by a
quarter since the last one; as the images piled up over a 100,000-person day that was 33
full passes in the engine and 20 in the validators' process, 10 and 13 s of CPU that found
next to nothing: what a tap, a load or a visit makes is freed by reference counting as
soon as it is done with. So in these processes only the young generations are collected
during the day (as often as ever); the engine makes one full collection between two days
(``between_days``), and the validators' process ends with its day.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

NEVER = 2**31 - 1  # middle-generation collections before a full one (CPython's default: 10)


def day_long() -> None:
    """No full collections in this process from now on (one that ends with its day)."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, NEVER)


@contextmanager
def for_the_days() -> Iterator[None]:
    """No full collections in the block but ``between_days``' (the thresholds as they were after it)."""
    before = gc.get_threshold()
    day_long()
    try:
        yield
    finally:
        gc.set_threshold(*before)


def between_days() -> None:
    """The full collection the day went without."""
    gc.collect()
