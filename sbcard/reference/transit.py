"""Transit reference data from ``fixtures/transit/``: the I/O edge in front of ``sbcard.domain.network``.

``load_tariff()`` reads the operators, the two rail networks, the bus lines, the fare
rules' sources (``fare_rules.csv``) and the concession policy (``concessions.csv``) once
per process and returns the pure ``Tariff`` that fare queries and the validators' fare
port use. Every row with figures cites ``sources.csv`` (``source`` ids and a
``confidence``). A malformed fixture (an unknown source id included) is an internal error
(exit 3, ``fixture.invalid``), never the user's bad input.
"""

from __future__ import annotations

import functools
from datetime import date
from decimal import Decimal, InvalidOperation

from sbcard.domain import concessions
from sbcard.domain import fares
from sbcard.domain.errors import SbcardError
from sbcard.domain.network import KM, SECTIONS, BusLine, Network, OperatorInfo, Tariff
from sbcard.domain.sources import Provenance
from sbcard.reference import provenance, read_csv_rows, why

DIR = "transit"
NETWORK_FILES = {fares.BJ_SUBWAY: ("bj_subway.csv", KM), fares.TJ_METRO: ("tj_metro.csv", SECTIONS)}
LINE_FILES = {
    fares.BJ_BUS: "bj_bus_lines.csv",
    fares.TJ_BUS: "tj_bus_lines.csv",
    fares.HE_SJZ_BUS: "he_sjz_bus_lines.csv",
    fares.HE_LF_BUS: "he_lf_bus_lines.csv",
}


def _broken(name: str, why: str) -> SbcardError:
    return SbcardError("fixture.invalid", f"fixtures/{DIR}/{name}: {why}")


@functools.lru_cache(maxsize=None)
def load_tariff() -> Tariff:
    """Every operator, network and line of ``fixtures/transit`` (read once per process)."""
    operators = [_operator(row, n) for n, row in enumerate(read_csv_rows(f"{DIR}/operators.csv"), start=2)]
    codes = {o.code for o in operators}
    if codes != set(fares.OPERATORS):
        raise _broken("operators.csv", f"lists {sorted(codes)}, the rules know {sorted(fares.OPERATORS)}")
    networks = {}
    for operator, (name, weight) in NETWORK_FILES.items():
        try:
            networks[operator] = Network(operator, read_csv_rows(f"{DIR}/{name}"), weight=weight)
        except ValueError as e:
            raise _broken(name, str(e)) from None
    lines = [line for operator, name in LINE_FILES.items() for line in _lines(operator, name)]
    try:
        return Tariff(operators, networks, lines, load_concession_policy(), load_fare_rules())
    except ValueError as e:
        raise _broken("lines", str(e)) from None


def _cited(name: str, n: int, row: dict[str, str]) -> Provenance:
    """A row's ``source`` and ``confidence`` cells (both columns required)."""
    if "source" not in row or "confidence" not in row:
        raise _broken(name, "has no source/confidence columns (fixtures/README.md)")
    return provenance(DIR, row.get("source") or "", row.get("confidence") or "", where=f"{name} line {n}")


def _operator(row: dict[str, str], n: int = 0) -> OperatorInfo:
    try:
        return OperatorInfo(**{k: (row.get(k) or "").strip() for k in
                               ("code", "name", "node", "region", "mode", "fare_rule")},
                            provenance=_cited("operators.csv", n, row))
    except TypeError as e:
        raise _broken("operators.csv", str(e)) from None


# Every rule identifier the fare rules give (``FareQuote.rule``) has a row in fare_rules.csv.
FARE_RULES: tuple[str, ...] = (
    "bj-subway.distance", "bj-subway.airport-express", "bj-subway.student",
    "bj-bus.card-city", "bj-bus.card-suburb", "bj-bus.student-city", "bj-bus.student-suburb", "bj-bus.elderly-free",
    "tj-bus.full", "tj-bus.elderly-free-ride", "tj-metro.sections", "tj-metro.student",
    *(f"{op}.{what}" for op in fares.HE_BUSES for what in ("full", "student")),
)


@functools.lru_cache(maxsize=None)
def load_fare_rules() -> dict[str, Provenance]:
    """``fare_rules.csv``: each fare rule's sources and confidence, by ``FareQuote.rule``."""
    name = "fare_rules.csv"
    out: dict[str, Provenance] = {}
    for n, row in enumerate(read_csv_rows(f"{DIR}/{name}"), start=2):
        rule = (row.get("rule") or "").strip()
        if not rule or rule in out:
            raise _broken(name, f"line {n}: rule {rule!r} is {'listed twice' if rule else 'missing'}")
        out[rule] = _cited(name, n, row)
    missing = [r for r in FARE_RULES if r not in out]
    if missing:
        raise _broken(name, f"no row for {', '.join(missing)}")
    return out


CONCESSION_COLUMNS = ("id", "region", "kind", "card_kind", "operators", "areas", "line_kinds", "max_full_fare_fen",
                      "min_age", "start", "end", "residence", "card_regions", "enable_ahead", "same_treatment",
                      "same_treatment_regions", "source", "confidence", "note")
SWITCH = {"on": True, "off": False}


def _list(cell: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in (cell or "").split(";") if p.strip())


@functools.lru_cache(maxsize=None)
def load_concession_policy() -> concessions.ConcessionPolicy:
    """``concessions.csv``: one row per concession rule (region, who, where, from when, the switch)."""
    name = "concessions.csv"
    rows = read_csv_rows(f"{DIR}/{name}")
    if rows and set(CONCESSION_COLUMNS) - set(rows[0]):
        raise _broken(name, f"missing columns {sorted(set(CONCESSION_COLUMNS) - set(rows[0]))}")
    rules = []
    for n, row in enumerate(rows, start=2):
        cell = {k: (row.get(k) or "").strip() for k in CONCESSION_COLUMNS}
        try:
            operators = _list(cell["operators"])
            unknown = [o for o in operators if o not in fares.OPERATORS]
            if unknown:
                raise ValueError(f"unknown operators {unknown}")
            if cell["kind"] != concessions.ELDERLY:
                raise ValueError(f"kind {cell['kind']!r} is not {concessions.ELDERLY!r}")
            if cell["same_treatment"] not in SWITCH:
                raise ValueError(f"same_treatment {cell['same_treatment']!r} is not on or off")
            rules.append(concessions.ConcessionRule(
                id=cell["id"], region=cell["region"], kind=cell["kind"], card_kind=cell["card_kind"],
                operators=operators, areas=_list(cell["areas"]), line_kinds=_list(cell["line_kinds"]),
                max_full_fare_fen=int(cell["max_full_fare_fen"]) if cell["max_full_fare_fen"] else None,
                min_age=int(cell["min_age"]), start=date.fromisoformat(cell["start"]),
                end=date.fromisoformat(cell["end"]) if cell["end"] else None,
                residence=_list(cell["residence"]), card_regions=_list(cell["card_regions"]),
                enable_ahead=cell["enable_ahead"] or concessions.AHEAD_NONE, same_treatment=SWITCH[cell["same_treatment"]],
                same_treatment_regions=_list(cell["same_treatment_regions"]),
                provenance=_cited(name, n, row), note=cell["note"]))
        except (TypeError, ValueError) as e:
            raise _broken(name, f"line {n}: {why(e)}") from None
    try:
        return concessions.ConcessionPolicy(tuple(rules))
    except ValueError as e:
        raise _broken(name, str(e)) from None


def _lines(operator: str, name: str) -> list[BusLine]:
    out = []
    for n, row in enumerate(read_csv_rows(f"{DIR}/{name}"), start=2):
        line = (row.get("line") or "").strip()
        if not line:
            raise _broken(name, f"row {n} has no line")
        try:
            if operator == fares.BJ_BUS:
                area = (row.get("area") or "").strip()
                if area not in fares.AREAS:
                    raise ValueError(f"area {area!r} is not one of {fares.AREAS}")
                out.append(BusLine(operator, line, area=area, km=Decimal((row.get("km") or "").strip()),
                                   provenance=_cited(name, n, row)))
            else:
                kind = (row.get("kind") or fares.REGULAR).strip()
                if kind not in fares.LINE_KINDS:
                    raise ValueError(f"kind {kind!r} is not one of {fares.LINE_KINDS}")
                fare = int((row.get("full_fare_fen") or "").strip())
                if fare <= 0:
                    raise ValueError(f"full fare {fare} must be positive")
                out.append(BusLine(operator, line, full_fare_fen=fare, kind=kind, provenance=_cited(name, n, row)))
        except (ValueError, InvalidOperation) as e:
            raise _broken(name, f"row {n}: {e}") from None
    return out
