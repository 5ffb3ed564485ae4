"""Venue reference data from ``fixtures/venues/venues.csv``: the I/O edge in front of ``sbcard.domain.venues``.

Read once per process into frozen ``Venue`` values. A malformed fixture is an internal
error (exit 3), never the user's bad input; an unknown venue code is the user's
(``NotFound``, exit 2).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Mapping
from types import MappingProxyType

from sbcard.domain import venues as V
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.regions import is_within, validate_region_code
from sbcard.reference import load_regions, read_csv_rows

DIR = "venues"
VENUES = "venues.csv"


def _broken(why: str) -> SbcardError:
    return SbcardError("fixture.invalid", f"fixtures/{DIR}/{VENUES}: {why}")


def _cell(row: Mapping[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def _int(row: Mapping[str, str], key: str) -> int | None:
    text = _cell(row, key)
    return int(text) if text else None


def _flag(row: Mapping[str, str], key: str) -> bool:
    text = _cell(row, key)
    if text not in ("0", "1"):
        raise ValueError(f"{key}: expected 0 or 1, got {text!r}")
    return text == "1"


def _time(row: Mapping[str, str], key: str) -> dt.time:
    text = _cell(row, key)
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{key}: {text!r} is not a time (HH:MM)") from None


def _venue(row: Mapping[str, str]) -> V.Venue:
    price = _int(row, "price_fen")
    if price is None:
        raise ValueError("price_fen is missing (0 = free)")
    return V.Venue(
        code=_cell(row, "code"),
        name=_cell(row, "name"),
        region=validate_region_code(_cell(row, "region")),
        kind=_cell(row, "kind"),
        open_days=V.parse_days(_cell(row, "open_days")),
        open_from=_time(row, "open_from"),
        open_to=_time(row, "open_to"),
        price_fen=price,
        peak_months=V.parse_months(_cell(row, "peak_months")),
        off_peak_price_fen=_int(row, "off_peak_price_fen"),
        free_from_age=_int(row, "free_from_age"),
        half_from_age=_int(row, "half_from_age"),
        student_half=_flag(row, "student_half"),
        card_discount_pct=_int(row, "card_discount_pct") or 0,
        daily_limit=_int(row, "daily_limit"),
        loan_limit=_int(row, "loan_limit"),
        loan_days=_int(row, "loan_days"),
        fine_fen_per_day=_int(row, "fine_fen_per_day"),
        fine_cap_fen=_int(row, "fine_cap_fen"),
        illustrative=_flag(row, "illustrative"),
        source=_cell(row, "source"),
    )


@functools.lru_cache(maxsize=None)
def _venues() -> Mapping[str, V.Venue]:
    regions = load_regions()
    out: dict[str, V.Venue] = {}
    for n, row in enumerate(read_csv_rows(f"{DIR}/{VENUES}"), start=2):
        try:
            venue = _venue(row)
        except (ValueError, TypeError, SbcardError) as e:
            raise _broken(f"row {n}: {e}") from None
        if venue.code in out:
            raise _broken(f"row {n}: venue {venue.code} is listed twice")
        try:
            regions.get(venue.region)
        except SbcardError:
            raise _broken(f"row {n}: region {venue.region} is not in fixtures/regions.csv") from None
        out[venue.code] = venue
    return MappingProxyType(out)


def venues() -> Mapping[str, V.Venue]:
    """Every venue by code, in the file's order."""
    return _venues()


def venue(code: str, option: str = "--venue") -> V.Venue:
    """The venue with ``code`` (case-insensitive); ``NotFound`` naming ``option``."""
    key = (code or "").strip().upper()
    found = _venues().get(key)
    if found is None:
        raise NotFound("venue.unknown", f"no venue {code!r} (see `sbcard venue list`)", option)
    return found


def library(code: str) -> V.Venue:
    """A venue that is a library; ``InvalidInput`` for a museum or scenic spot."""
    found = venue(code, "--library")
    if not found.is_library:
        raise InvalidInput("library.not_a_library", f"{found.code} {found.name} is a {found.kind}, not a library",
                           "--library")
    return found


def in_region(region: str | None = None, kind: str | None = None) -> list[V.Venue]:
    """The venues within ``region`` (a province, prefecture or county code) and of ``kind``, by code."""
    area = validate_region_code(region) if region is not None else None
    if kind is not None and kind not in V.KINDS:
        raise InvalidInput("venue.kind", f"{kind!r} is not a kind of venue ({', '.join(V.KINDS)})", "--kind")
    return sorted((v for v in _venues().values()
                   if (area is None or is_within(v.region, area)) and (kind is None or v.kind == kind)),
                  key=lambda v: v.code)
