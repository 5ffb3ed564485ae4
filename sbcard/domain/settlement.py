"""Settlement arithmetic (结算): clearing lines → who owes whom, net per region; counter gaps; reasons.

Pure functions over values, no storage. A clearing line says that ``payer`` (the card's
issuer, the insured region) owes ``payee`` (the operator's, the hospital's region)
``amount_fen`` for ``count`` records of ``party`` (an operator or a hospital). Money moves
payer → payee: the matrix is indexed ``matrix[payer][payee]``, a region's net position is
what it receives less what it pays (positive: it is owed), and the nets of all regions
sum to zero.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

NODES: tuple[str, ...] = ("bj", "tj", "he")
KINDS: tuple[str, ...] = ("transit", "medical")


def _node(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if value not in NODES:
        raise ValueError(f"{attribute.name} {value!r} is not a region node ({', '.join(NODES)})")


def _kind(_instance: object, _attribute: object, value: str) -> None:
    if value not in KINDS:
        raise ValueError(f"kind {value!r} is not one of {', '.join(KINDS)}")


def _int(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(f"{attribute.name} must be an int, got {value!r}")


@attrs.frozen(order=True)
class Line:
    """One clearing line (see the module doc); ``amount_fen`` may be negative (refunds)."""

    kind: str = attrs.field(validator=_kind)
    payer: str = attrs.field(validator=_node)
    payee: str = attrs.field(validator=_node)
    party: str = attrs.field(validator=attrs.validators.min_len(1))
    count: int = attrs.field(validator=[_int, attrs.validators.ge(0)])
    amount_fen: int = attrs.field(validator=_int)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Line:
        return cls(kind=row["kind"], payer=row["payer_node"], payee=row["payee_node"], party=row["party"],
                   count=int(row["count"]), amount_fen=int(row["amount_fen"]))


def matrix(lines: Iterable[Line], nodes: Sequence[str] = NODES) -> dict[str, dict[str, int]]:
    """Gross amounts ``matrix[payer][payee]`` in fen, every node on both axes (0 where nothing)."""
    out = {a: {b: 0 for b in nodes} for a in nodes}
    for line in lines:
        out[line.payer][line.payee] += line.amount_fen
    return out


def net_positions(lines: Iterable[Line]) -> dict[tuple[str, str], int]:
    """Bilateral nets between regions: ``{(debtor, creditor): fen > 0}``.

    A region's lines to itself cancel out; two regions' lines to each other are offset,
    and the pair appears once, the way the money has to go (none when they balance).
    """
    gross: dict[tuple[str, str], int] = defaultdict(int)
    for line in lines:
        if line.payer != line.payee:
            gross[(line.payer, line.payee)] += line.amount_fen
    out: dict[tuple[str, str], int] = {}
    for a, b in sorted({tuple(sorted(pair)) for pair in gross}):
        owed = gross.get((a, b), 0) - gross.get((b, a), 0)
        if owed > 0:
            out[(a, b)] = owed
        elif owed < 0:
            out[(b, a)] = -owed
    return out


def net_by_region(positions: Mapping[tuple[str, str], int] | Mapping[str, Mapping[str, int]],
                  nodes: Sequence[str] = NODES) -> dict[str, int]:
    """Each region's net: received − paid, from ``net_positions`` or a ``matrix``; sums to zero."""
    out = {n: 0 for n in nodes}
    if positions and isinstance(next(iter(positions)), tuple):
        pairs = positions.items()
    else:
        pairs = (((a, b), fen) for a, row in positions.items() for b, fen in row.items())  # type: ignore[union-attr]
    for (payer, payee), fen in pairs:
        if payer != payee:
            out[payer] -= fen
            out[payee] += fen
    return out


def counterparties(positions: Mapping[tuple[str, str], int], node: str) -> dict[str, int]:
    """``node``'s net with each other region: + it is owed, − it owes (regions it is even with: absent)."""
    out: dict[str, int] = {}
    for (debtor, creditor), fen in positions.items():
        if creditor == node:
            out[debtor] = out.get(debtor, 0) + fen
        elif debtor == node:
            out[creditor] = out.get(creditor, 0) - fen
    return dict(sorted(out.items()))


def parties(lines: Iterable[Line]) -> dict[str, dict[str, Any]]:
    """Per operator / hospital: ``{kind, node, count, amount_fen, from: {payer: fen}}``, sorted."""
    out: dict[str, dict[str, Any]] = {}
    for line in sorted(lines):
        p = out.setdefault(line.party, {"kind": line.kind, "node": line.payee, "count": 0, "amount_fen": 0,
                                         "from": {}})
        p["count"] += line.count
        p["amount_fen"] += line.amount_fen
        p["from"][line.payer] = p["from"].get(line.payer, 0) + line.amount_fen
    for p in out.values():
        p["from"] = dict(sorted(p["from"].items()))
    return dict(sorted(out.items()))


def balanced(net: Mapping[str, int]) -> bool:
    return sum(net.values()) == 0


# ----------------------------------------------------------------------------- counters


def counter_gaps(next_counter: int, cleared_above: Iterable[int]) -> list[int]:
    """The counters a card skipped: below its highest cleared one, at or above ``next_counter``
    (every counter under it is cleared), and not cleared themselves."""
    above = {c for c in cleared_above if c >= next_counter}
    if not above:
        return []
    return [c for c in range(next_counter, max(above)) if c not in above]


def gap_ranges(missing: Sequence[int]) -> list[tuple[int, int]]:
    """``[3, 4, 5, 9]`` → ``[(3, 5), (9, 9)]``: for a short report of many missing counters."""
    out: list[tuple[int, int]] = []
    for c in sorted(missing):
        if out and c == out[-1][1] + 1:
            out[-1] = (out[-1][0], c)
        else:
            out.append((c, c))
    return out


# ----------------------------------------------------------------------------- reasons

REJECTED_REASONS: tuple[tuple[str, str], ...] = (  # (start of the host's reason, category)
    ("bad TAC", "forged_tac"),
    ("no TAC", "forged_tac"),
    ("malformed record", "forged_tac"),
    ("no card with application serial", "unknown_card"),
    ("transaction type", "not_a_purchase"),
    ("terminal number", "wrong_terminal"),
    ("the card's issuer is outside", "no_issuer"),
)
FLAG_CATEGORIES: dict[str, str] = {
    "counter_back": "counter_repeat",
    "balance_altered": "balance_altered",
    "blacklisted": "blacklisted",
    "mac2_failed": "mac2_failed",
    "reversed_load_credited": "credited_reversal",
}


def rejection_category(reason: str | None) -> str:
    """The report's category of a rejected record's reason (``other`` when unknown)."""
    text = reason or ""
    for start, category in REJECTED_REASONS:
        if text.startswith(start):
            return category
    return "other"


def flag_categories(flags: Iterable[Mapping[str, Any]]) -> list[str]:
    """The report's categories of a flagged record's flags, in order, once each."""
    out: list[str] = []
    for f in flags:
        category = FLAG_CATEGORIES.get(str(f.get("flag")), "other")
        if category not in out:
            out.append(category)
    return out
