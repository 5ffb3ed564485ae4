"""Venue reference data from ``fixtures/venues/``: the I/O edge in front of ``sbcard.domain.venues``.

``venues.csv`` (one row per venue: hours, full price, season, limits) and ``prices.csv``
(one row per published price rule of a venue), each row citing ``sources.csv`` with a
confidence, read once per process into frozen ``Venue`` values with their ``PriceRule``s.
A malformed fixture — a bad cell, a price rule of an unknown venue, an unknown source —
is an internal error (exit 3, ``fixture.invalid`` naming the file and row), never the
user's bad input; an unknown venue code is the user's (``NotFound``, exit 2).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from types import MappingProxyType

from sbcard.domain import venues as venue_rules
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.regions import is_within, validate_region_code
from sbcard.domain.sources import Provenance, cite
from sbcard.reference import load_regions, load_sources, read_csv_rows, why

DIR = "venues"
VENUES = "venues.csv"
PRICES = "prices.csv"


def _broken(why: str, name: str = VENUES) -> SbcardError:
    return SbcardError("fixture.invalid", f"fixtures/{DIR}/{name}: {why}")


def _cell(row: Mapping[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def _int(row: Mapping[str, str], key: str) -> int | None:
    text = _cell(row, key)
    return int(text) if text else None


def _time(row: Mapping[str, str], key: str) -> dt.time:
    text = _cell(row, key)
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a time (HH:MM)") from None


def _date(row: Mapping[str, str], key: str) -> dt.date | None:
    text = _cell(row, key)
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a date (YYYY-MM-DD)") from None


def _cite(row: Mapping[str, str], source: str, confidence: str, where: str) -> Provenance:
    return cite(load_sources(DIR), _cell(row, source), _cell(row, confidence), where=where)


def _rule(row: Mapping[str, str]) -> venue_rules.PriceRule:
    return venue_rules.PriceRule(
        rule=_cell(row, "rule"),
        category=_cell(row, "category"),
        age_from=_int(row, "age_from"),
        age_to=_int(row, "age_to"),
        status=_cell(row, "status") or None,
        price_fen=_int(row, "price_fen"),
        percent=_int(row, "percent"),
        starts=_date(row, "starts"),
        ends=_date(row, "ends"),
        provenance=_cite(row, "source", "confidence", "source"),
        note=_cell(row, "note"),
    )


def _price_rules() -> dict[str, list[tuple[int, venue_rules.PriceRule]]]:
    """prices.csv's rules (with their row numbers) by venue code, in the file's order (the order that wins a tie)."""
    out: dict[str, list[tuple[int, venue_rules.PriceRule]]] = {}
    for n, row in enumerate(read_csv_rows(f"{DIR}/{PRICES}"), start=2):
        try:
            rule = _rule(row)
        except (ValueError, TypeError, SbcardError) as e:
            raise _broken(f"row {n}: {why(e)}", PRICES) from None
        code = _cell(row, "venue").upper()
        earlier = next((m for m, r in out.get(code, []) if r.rule == rule.rule), None)
        if earlier is not None:
            raise _broken(f"row {n}: rule {rule.rule} of {code} is listed twice (row {earlier})", PRICES)
        out.setdefault(code, []).append((n, rule))
    return out


def _venue(row: Mapping[str, str], rules: list[tuple[int, venue_rules.PriceRule]]) -> venue_rules.Venue:
    price = _int(row, "price_fen")
    if price is None:
        raise ValueError("price_fen is missing (0 = free)")
    return venue_rules.Venue(
        code=_cell(row, "code"),
        name=_cell(row, "name"),
        region=validate_region_code(_cell(row, "region")),
        kind=_cell(row, "kind"),
        open_days=venue_rules.parse_days(_cell(row, "open_days")),
        open_from=_time(row, "open_from"),
        open_to=_time(row, "open_to"),
        price_fen=price,
        peak_months=venue_rules.parse_months(_cell(row, "peak_months")),
        off_peak_price_fen=_int(row, "off_peak_price_fen"),
        rules=tuple(rule for _, rule in rules),
        daily_limit=_int(row, "daily_limit"),
        loan_limit=_int(row, "loan_limit"),
        loan_days=_int(row, "loan_days"),
        fine_fen_per_day=_int(row, "fine_fen_per_day"),
        fine_cap_fen=_int(row, "fine_cap_fen"),
        price_provenance=_cite(row, "source", "confidence", "source"),
        rules_provenance=_cite(row, "rules_source", "rules_confidence", "rules_source"),
    )


@functools.lru_cache(maxsize=None)
def _venues() -> Mapping[str, venue_rules.Venue]:
    regions = load_regions()
    rules = _price_rules()
    out: dict[str, venue_rules.Venue] = {}
    for n, row in enumerate(read_csv_rows(f"{DIR}/{VENUES}"), start=2):
        try:
            venue = _venue(row, rules.pop(_cell(row, "code").upper(), []))
        except (ValueError, TypeError, SbcardError) as e:
            raise _broken(f"row {n}: {why(e)}") from None
        if venue.code in out:
            raise _broken(f"row {n}: venue {venue.code} is listed twice")
        try:
            regions.get(venue.region)
        except SbcardError:
            raise _broken(f"row {n}: region {venue.region} is not in fixtures/regions.csv") from None
        out[venue.code] = venue
    for code, listed in rules.items():
        raise _broken(f"row {listed[0][0]}: venue {code or '(blank)'} is not in {VENUES}", PRICES)
    return MappingProxyType(out)


def venues() -> Mapping[str, venue_rules.Venue]:
    """Every venue by code, in the file's order."""
    return _venues()


def venue(code: str, option: str = "--venue") -> venue_rules.Venue:
    """The venue with ``code`` (case-insensitive); ``NotFound`` naming ``option``."""
    key = (code or "").strip().upper()
    found = _venues().get(key)
    if found is None:
        raise NotFound("venue.unknown", f"no venue {code!r} (see `sbcard venue list`)", option)
    return found


def library(code: str) -> venue_rules.Venue:
    """A venue that is a library; ``InvalidInput`` for a museum or scenic spot."""
    found = venue(code, "--library")
    if not found.is_library:
        raise InvalidInput("library.not_a_library", f"{found.code} {found.name} is a {found.kind}, not a library",
                           "--library")
    return found


def in_region(region: str | None = None, kind: str | None = None) -> list[venue_rules.Venue]:
    """The venues within ``region`` (a province, prefecture or county code) and of ``kind``, by code."""
    area = validate_region_code(region) if region is not None else None
    if kind is not None and kind not in venue_rules.KINDS:
        raise InvalidInput("venue.kind", f"{kind!r} is not a kind of venue ({', '.join(venue_rules.KINDS)})", "--kind")
    return sorted((v for v in _venues().values()
                   if (area is None or is_within(v.region, area)) and (kind is None or v.kind == kind)),
                  key=lambda v: v.code)
