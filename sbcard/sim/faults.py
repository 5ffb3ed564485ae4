"""What goes wrong in a simulated world, and how often: the ``--faults`` profiles.

A profile is a set of probabilities; ``FaultPlan`` draws every fault from a seeded
``random.Random`` (one per purpose and day), so a run with faults replays exactly:

- ``tear_purchase``: a card leaves the validator's field mid-purchase (the software card's
  power is cut at its N-th persistent write, ``terminals/emulator/faults.py``); the rider
  taps again and the validator completes or redoes the purchase (tear recovery);
- ``tear_load``: a card torn mid-load at a load terminal; the counter recovers it (``transit
  recover``: the host confirms or reverses the pending load) and loads again;
- ``terminal_crash``: a terminal dies before its nightly upload; its log survives and goes
  up the next night;
- ``upload_twice``: a terminal uploads, then crashes before marking its records sent: the
  next night it sends them again (the operator's host counts them as duplicates);
- ``message_lost`` / ``message_twice``: a message between nodes (``services/exchange/outbox``) is
  lost on the way (it stays pending and goes with a later delivery) or delivered twice
  (applied once: the receiver's idempotency key);
- ``region_down``: the hub loses a region for a few hours (``services/exchange/links``): medical
  claims of its insured are settled offline and reconciled when it is back, uploads to
  it as issuer wait (routed by the clearing).

The simulator process being killed is not a fault the engine draws: ``--resume`` and its
test cover it. Counts of what was injected go to the tally's ``faults``.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from sbcard.domain.errors import InvalidInput


@attrs.frozen
class Profile:
    name: str
    tear_purchase: float = 0.0
    tear_load: float = 0.0
    terminal_crash: float = 0.0
    upload_twice: float = 0.0
    message_lost: float = 0.0
    message_twice: float = 0.0
    region_down: float = 0.0  # per day: the chance one region is cut off for a few hours
    down_hours: tuple[int, int] = (2, 4)


PROFILES: dict[str, Profile] = {
    "none": Profile("none"),
    "light": Profile("light", tear_purchase=0.003, tear_load=0.01, terminal_crash=0.03, upload_twice=0.03,
                     message_lost=0.01, message_twice=0.01, region_down=0.4, down_hours=(2, 4)),
    "heavy": Profile("heavy", tear_purchase=0.03, tear_load=0.08, terminal_crash=0.15, upload_twice=0.15,
                     message_lost=0.06, message_twice=0.06, region_down=1.0, down_hours=(3, 8)),
}
NAMES = tuple(PROFILES)
# A purchase writes the card a few times (journal, commit; a metro gate's capp record too):
# the tear falls on one of the first ones, so it may hit before or after the commit.
TEAR_WRITES = (1, 2, 3)
LOAD_TEAR_WRITES = (1, 2)


def profile(name: str) -> Profile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput("sim.faults", f"{name!r} is not a fault profile ({', '.join(NAMES)})", "--faults") from None


@attrs.frozen
class Outage:
    node: str
    down: dt.datetime
    up: dt.datetime

    def to_json(self) -> dict[str, Any]:
        return {"node": self.node, "down": self.down.isoformat(), "up": self.up.isoformat()}


class FaultPlan:
    """One day's fault decisions, from the seed, the profile and the day (nothing else)."""

    def __init__(self, profile: Profile, seed: int, day_no: int,
                 counted: Callable[[str], None] | None = None) -> None:
        self.profile = profile
        self._counted = counted or (lambda _kind: None)
        self._taps = random.Random(f"{seed}/faults/{day_no}/taps")
        self._loads = random.Random(f"{seed}/faults/{day_no}/loads")
        self._terminals = random.Random(f"{seed}/faults/{day_no}/terminals")
        self._messages = random.Random(f"{seed}/faults/{day_no}/messages")
        self._links = random.Random(f"{seed}/faults/{day_no}/links")

    @property
    def active(self) -> bool:
        return self.profile.name != "none"

    def tear_purchase(self) -> int | None:
        """The card write at which this tap is torn, or None."""
        p = self.profile.tear_purchase
        if p and self._taps.random() < p:
            return self._taps.choice(TEAR_WRITES)
        return None

    def tear_load(self) -> int | None:
        p = self.profile.tear_load
        if p and self._loads.random() < p:
            return self._loads.choice(LOAD_TEAR_WRITES)
        return None

    def terminal_crash(self) -> bool:
        p = self.profile.terminal_crash
        return bool(p) and self._terminals.random() < p

    def upload_twice(self) -> bool:
        p = self.profile.upload_twice
        return bool(p) and self._terminals.random() < p

    def message(self, _node: str, _message: Mapping[str, Any]) -> str:
        """``outbox.delivery_faults``' question: deliver, lose or twice."""
        lost, twice = self.profile.message_lost, self.profile.message_twice
        if not (lost or twice):
            return "deliver"
        x = self._messages.random()
        if x < lost:
            self._counted("message_lost")
            return "lose"
        if x < lost + twice:
            self._counted("message_twice")
            return "twice"
        return "deliver"

    def outage(self, day: dt.date, tz: dt.tzinfo, nodes: tuple[str, ...]) -> Outage | None:
        """A region cut off from the hub for a few hours today, or None.

        It starts between 08:00 and 20:00 and is over before the nightly clearing (23:45),
        so it may cover the terminals' uploads at 22:30 (their issuer is then away).
        """
        p = self.profile.region_down
        if not p or self._links.random() >= p:
            return None
        node = self._links.choice(nodes)
        lo, hi = self.profile.down_hours
        start = dt.datetime.combine(day, dt.time(8), tz) + dt.timedelta(minutes=self._links.randrange(12 * 60))
        end = min(start + dt.timedelta(minutes=self._links.randrange(lo * 60, hi * 60 + 1)),
                  dt.datetime.combine(day, dt.time(23, 45), tz))
        return Outage(node, start, end)
