"""Transit reference data from ``fixtures/transit/``: the I/O edge in front of ``sbcard.domain.network``.

``load_tariff()`` reads the operators, the two rail networks and the bus lines once per
process and returns the pure ``Tariff`` that fare queries and the validators' fare port
use. A malformed fixture is an internal error (exit 3), never the user's bad input.
"""

from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation

from sbcard.domain import fares as F
from sbcard.domain.errors import SbcardError
from sbcard.domain.network import KM, SECTIONS, BusLine, Network, OperatorInfo, Tariff
from sbcard.reference import read_csv_rows

DIR = "transit"
NETWORK_FILES = {F.BJ_SUBWAY: ("bj_subway.csv", KM), F.TJ_METRO: ("tj_metro.csv", SECTIONS)}
LINE_FILES = {
    F.BJ_BUS: "bj_bus_lines.csv",
    F.TJ_BUS: "tj_bus_lines.csv",
    F.HE_SJZ_BUS: "he_sjz_bus_lines.csv",
    F.HE_LF_BUS: "he_lf_bus_lines.csv",
}


def _broken(name: str, why: str) -> SbcardError:
    return SbcardError("fixture.invalid", f"fixtures/{DIR}/{name}: {why}")


@functools.lru_cache(maxsize=None)
def load_tariff() -> Tariff:
    """Every operator, network and line of ``fixtures/transit`` (read once per process)."""
    operators = [_operator(row) for row in read_csv_rows(f"{DIR}/operators.csv")]
    codes = {o.code for o in operators}
    if codes != set(F.OPERATORS):
        raise _broken("operators.csv", f"lists {sorted(codes)}, the rules know {sorted(F.OPERATORS)}")
    networks = {}
    for operator, (name, weight) in NETWORK_FILES.items():
        try:
            networks[operator] = Network(operator, read_csv_rows(f"{DIR}/{name}"), weight=weight)
        except ValueError as e:
            raise _broken(name, str(e)) from None
    lines = [line for operator, name in LINE_FILES.items() for line in _lines(operator, name)]
    try:
        return Tariff(operators, networks, lines)
    except ValueError as e:
        raise _broken("lines", str(e)) from None


def _operator(row: dict[str, str]) -> OperatorInfo:
    try:
        return OperatorInfo(**{k: (row.get(k) or "").strip() for k in
                               ("code", "name", "node", "region", "mode", "fare_rule", "source")})
    except TypeError as e:
        raise _broken("operators.csv", str(e)) from None


def _lines(operator: str, name: str) -> list[BusLine]:
    out = []
    for n, row in enumerate(read_csv_rows(f"{DIR}/{name}"), start=2):
        line = (row.get("line") or "").strip()
        if not line:
            raise _broken(name, f"row {n} has no line")
        try:
            if operator == F.BJ_BUS:
                area = (row.get("area") or "").strip()
                if area not in F.AREAS:
                    raise ValueError(f"area {area!r} is not one of {F.AREAS}")
                out.append(BusLine(operator, line, area=area, km=Decimal((row.get("km") or "").strip())))
            else:
                kind = (row.get("kind") or F.REGULAR).strip()
                if kind not in F.LINE_KINDS:
                    raise ValueError(f"kind {kind!r} is not one of {F.LINE_KINDS}")
                fare = int((row.get("full_fare_fen") or "").strip())
                if fare <= 0:
                    raise ValueError(f"full fare {fare} must be positive")
                out.append(BusLine(operator, line, full_fare_fen=fare, kind=kind))
        except (ValueError, InvalidOperation) as e:
            raise _broken(name, f"row {n}: {e}") from None
    return out
