"""What the simulator did, counted: transactions per kind and region, taps per hour,
medical spend per region pair, subsidy outcomes and injected faults.

The engine calls the counting methods as things happen; ``to_json`` gives the counts
with sorted keys (the ``counts`` of ``sbcard simulate --json`` and what a checkpoint
keeps), ``from_json`` reads them back, so a resumed run ends with the same totals as an
uninterrupted one. Counting is all this module does: no I/O, no clock, no randomness.

Kinds of ``count`` (``KINDS``; others are accepted if they are lower-case identifiers,
and shown after these): apply, issue, activate, load, tap, tap_refused, medical_claim,
medical_refund, venue_entry, library_loan, library_return, subsidy_paid, lost, replace,
upload, clearing. ``tap`` is counted by ``tap(node, hour)``, which also counts the hour.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import attrs

NODES: tuple[str, ...] = ("bj", "tj", "he")
KINDS: tuple[str, ...] = (
    "apply", "issue", "activate", "load", "tap", "tap_refused", "medical_claim", "medical_refund",
    "venue_entry", "library_loan", "library_return", "subsidy_paid", "lost", "replace", "upload", "clearing",
)
HOURS = 24
_NAME = re.compile(r"[a-z][a-z0-9_]*\Z")


def _check_node(node: str, field: str = "node") -> str:
    if node not in NODES:
        raise ValueError(f"{field} {node!r} is not a region node (expected one of {', '.join(NODES)})")
    return node


def _check_name(name: str, field: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise ValueError(f"{field} {name!r} is not a lower-case identifier (e.g. 'tap', 'torn_purchase')")
    return name


def _check_n(n: int, field: str = "n") -> int:
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"{field} must be an int >= 0, got {n!r}")
    return n


@attrs.define
class Tally:
    """Mutable counts of one simulation run (see the module doc)."""

    counts: dict[str, dict[str, int]] = attrs.field(factory=dict)  # kind -> node -> n
    taps_per_hour: dict[str, list[int]] = attrs.field(factory=dict)  # node -> 24 counts (Beijing hour)
    medical_pairs: dict[tuple[str, str], list[int]] = attrs.field(factory=dict)  # (insured, hospital) -> [claims, fen]
    subsidies: dict[str, int] = attrs.field(factory=dict)  # outcome -> n
    faults: dict[str, int] = attrs.field(factory=dict)  # fault kind -> n

    # ------------------------------------------------------------------ counting

    def count(self, kind: str, node: str, n: int = 1) -> None:
        """``n`` more transactions of ``kind`` in region ``node``."""
        _check_name(kind, "kind")
        _check_node(node)
        _check_n(n)
        by_node = self.counts.setdefault(kind, {})
        by_node[node] = by_node.get(node, 0) + n

    def tap(self, node: str, hour: int) -> None:
        """One accepted tap on a terminal of ``node`` at ``hour`` (0–23, Beijing time); counts ``tap`` too."""
        if not isinstance(hour, int) or isinstance(hour, bool) or not 0 <= hour < HOURS:
            raise ValueError(f"hour must be an int 0-23, got {hour!r}")
        self.count("tap", node)
        self.taps_per_hour.setdefault(node, [0] * HOURS)[hour] += 1

    def medical(self, insured_node: str, hospital_node: str, fen: int, n: int = 1) -> None:
        """``n`` claims of ``insured_node``'s insured at ``hospital_node``'s hospitals, totalling ``fen``.

        A refund is ``medical(insured, hospital, -fen, n=0)``: the spend falls, the claims stay counted.
        """
        _check_node(insured_node, "insured_node")
        _check_node(hospital_node, "hospital_node")
        if not isinstance(fen, int) or isinstance(fen, bool):
            raise ValueError(f"fen must be an int, got {fen!r}")
        _check_n(n)
        pair = self.medical_pairs.setdefault((insured_node, hospital_node), [0, 0])
        pair[0] += n
        pair[1] += fen

    def subsidy(self, outcome: str, n: int = 1) -> None:
        """``n`` subsidy rows with ``outcome`` (paid, failed, invalid, …)."""
        _check_name(outcome, "outcome")
        self.subsidies[outcome] = self.subsidies.get(outcome, 0) + _check_n(n)

    def fault(self, kind: str, n: int = 1) -> None:
        """``n`` injected faults of ``kind`` (torn_purchase, terminal_crash, message_lost, …)."""
        _check_name(kind, "fault kind")
        self.faults[kind] = self.faults.get(kind, 0) + _check_n(n)

    # ------------------------------------------------------------------ reading

    def total(self, kind: str) -> int:
        """All regions' count of ``kind``."""
        return sum(self.counts.get(kind, {}).values())

    def of(self, kind: str, node: str) -> int:
        return self.counts.get(kind, {}).get(node, 0)

    def kinds(self) -> list[str]:
        """The kinds counted so far: ``KINDS``' order first, then others alphabetically."""
        known = [k for k in KINDS if k in self.counts]
        return known + sorted(k for k in self.counts if k not in KINDS)

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The counts as JSON-ready data with sorted keys (a checkpoint keeps exactly this).

        ``{"counts": {kind: {node: n}}, "faults": {kind: n},
        "medical": {insured: {hospital: {"claims": n, "fen": fen}}}, "subsidies": {outcome: n},
        "taps_per_hour": {node: [24 ints]}}`` — a region or kind with nothing counted is absent.
        """
        medical: dict[str, dict[str, dict[str, int]]] = {}
        for (insured, hospital), (claims, fen) in sorted(self.medical_pairs.items()):
            medical.setdefault(insured, {})[hospital] = {"claims": claims, "fen": fen}
        return {
            "counts": {kind: dict(sorted(by_node.items())) for kind, by_node in sorted(self.counts.items())},
            "faults": dict(sorted(self.faults.items())),
            "medical": medical,
            "subsidies": dict(sorted(self.subsidies.items())),
            "taps_per_hour": {node: list(hours) for node, hours in sorted(self.taps_per_hour.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Tally:
        """The tally ``to_json`` gave (from a checkpoint); ValueError naming what is wrong."""
        t = cls()
        try:
            for kind, by_node in (data.get("counts") or {}).items():
                for node, n in by_node.items():
                    t.count(kind, node, _check_n(n, f"counts.{kind}.{node}"))
            for node, hours in (data.get("taps_per_hour") or {}).items():
                _check_node(node, "taps_per_hour node")
                if not isinstance(hours, list) or len(hours) != HOURS:
                    raise ValueError(f"taps_per_hour.{node} must be a list of {HOURS} counts")
                t.taps_per_hour[node] = [_check_n(h, f"taps_per_hour.{node}") for h in hours]
            for insured, by_hospital in (data.get("medical") or {}).items():
                for hospital, v in by_hospital.items():
                    t.medical(insured, hospital, int(v["fen"]), _check_n(v["claims"], "medical claims"))
            for outcome, n in (data.get("subsidies") or {}).items():
                t.subsidy(outcome, n)
            for kind, n in (data.get("faults") or {}).items():
                t.fault(kind, n)
        except (AttributeError, KeyError, TypeError) as e:
            raise ValueError(f"not a tally: {e!r}") from e
        return t
