"""Medical reference data from ``fixtures/medical/``: the I/O edge in front of ``sbcard.domain.medical``.

Hospitals, each province's catalogue and each province's policies are read once per
process and returned as the domain's frozen values. A malformed fixture is an internal
error (exit 3), never the user's bad input; an unknown hospital code or province is the
user's (``NotFound`` / ``InvalidInput``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

from sbcard.domain import medical as M
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.reference import load_regions, read_csv_rows

DIR = "medical"
HOSPITALS, CATALOGUE, POLICIES = "hospitals.csv", "catalogue.csv", "policies.csv"

T = TypeVar("T")


def _broken(name: str, why: str) -> SbcardError:
    return SbcardError("fixture.invalid", f"fixtures/{DIR}/{name}: {why}")


def _cell(row: Mapping[str, str], key: str) -> str:
    return (row.get(key) or "").strip()


def _rows(name: str, build: Callable[[Mapping[str, str]], T]) -> list[T]:
    out = []
    for n, row in enumerate(read_csv_rows(f"{DIR}/{name}"), start=2):
        try:
            out.append(build(row))
        except (ValueError, TypeError, KeyError) as e:
            raise _broken(name, f"row {n}: {e}") from None
    return out


def _flag(text: str) -> bool:
    if text not in ("0", "1"):
        raise ValueError(f"expected 0 or 1, got {text!r}")
    return text == "1"


# --------------------------------------------------------------------------- hospitals


@functools.lru_cache(maxsize=None)
def _hospitals() -> Mapping[str, M.Hospital]:
    regions = load_regions()
    out: dict[str, M.Hospital] = {}
    for h in _rows(HOSPITALS, lambda r: M.Hospital(_cell(r, "code"), _cell(r, "name"), _cell(r, "region"),
                                                   int(_cell(r, "level")))):
        if h.code in out:
            raise _broken(HOSPITALS, f"hospital {h.code} is listed twice")
        if h.region not in regions or h.province not in M.PROVINCES:
            raise _broken(HOSPITALS, f"{h.code}: region {h.region} is not a Jing-Jin-Ji region of regions.csv")
        out[h.code] = h
    return MappingProxyType(out)


def hospitals() -> dict[str, M.Hospital]:
    """Every designated hospital of the three provinces, by code (a fresh dict: callers may filter it)."""
    return dict(_hospitals())


def hospital(code: str) -> M.Hospital:
    """The hospital with this code, or ``NotFound``."""
    found = _hospitals().get((code or "").strip().upper())
    if found is None:
        raise NotFound("medical.hospital.unknown", f"no hospital has code {code!r}", "--hospital")
    return found


# --------------------------------------------------------------------------- catalogues


def _check_province(region_province: str, option: str = "--region") -> str:
    if region_province not in M.PROVINCES:
        raise InvalidInput("medical.region",
                           f"{region_province!r} is not one of the provinces {', '.join(M.PROVINCES)}", option)
    return region_province


@functools.lru_cache(maxsize=None)
def _catalogues() -> Mapping[str, Mapping[str, M.CatalogueItem]]:
    out: dict[str, dict[str, M.CatalogueItem]] = {p: {} for p in M.PROVINCES}
    items = _rows(CATALOGUE, lambda r: M.CatalogueItem(
        _cell(r, "region"), _cell(r, "code"), _cell(r, "name"), _cell(r, "class"),
        int(_cell(r, "price_fen")), int(_cell(r, "self_first_pct"))))
    for item in items:
        if item.region not in out:
            raise _broken(CATALOGUE, f"{item.code}: region {item.region} is not a province of {M.PROVINCES}")
        if item.code in out[item.region]:
            raise _broken(CATALOGUE, f"{item.code} is listed twice for {item.region}")
        out[item.region][item.code] = item
    for province, catalogue in out.items():
        if not catalogue:
            raise _broken(CATALOGUE, f"no items for {province}")
    return MappingProxyType({p: MappingProxyType(c) for p, c in out.items()})


def catalogue(region_province: str) -> dict[str, M.CatalogueItem]:
    """The catalogue of a province (``110000`` | ``120000`` | ``130000``): code → item, in file order."""
    return dict(_catalogues()[_check_province(region_province)])


# --------------------------------------------------------------------------- policies


def _policy(row: Mapping[str, str]) -> M.Policy:
    return M.Policy(
        region=_cell(row, "region"),
        insurance_type=_cell(row, "insurance_type"),
        retired=_flag(_cell(row, "retired")),
        deductible_fen={lv: int(_cell(row, f"deductible_fen_l{lv}")) for lv in M.LEVELS},
        ratio_pct={lv: int(_cell(row, f"ratio_pct_l{lv}")) for lv in M.LEVELS},
        cap_fen=int(_cell(row, "cap_fen")),
        personal_account_annual_fen=int(_cell(row, "personal_account_annual_fen")),
        offline_limit_fen=int(_cell(row, "offline_limit_fen")),
        illustrative=_flag(_cell(row, "illustrative")),
        source=_cell(row, "source"),
    )


@functools.lru_cache(maxsize=None)
def _policies() -> Mapping[tuple[str, str, bool], M.Policy]:
    out: dict[tuple[str, str, bool], M.Policy] = {}
    for p in _rows(POLICIES, _policy):
        key = (p.region, p.insurance_type, p.retired)
        if key in out:
            raise _broken(POLICIES, f"{key} is listed twice")
        out[key] = p
    wanted = {(r, t, x) for r in M.PROVINCES for t in M.INSURANCE_TYPES for x in (False, True)}
    if set(out) != wanted:
        raise _broken(POLICIES, f"missing {sorted(wanted - set(out))}, unexpected {sorted(set(out) - wanted)}")
    return MappingProxyType(out)


def policies() -> list[M.Policy]:
    """Every policy row (3 provinces × 2 insurance types × retired or not)."""
    return list(_policies().values())


def policy(region_province: str, insurance_type: str, retired: bool) -> M.Policy:
    """The insured province's policy for this kind of holder (参保地政策)."""
    _check_province(region_province)
    if insurance_type not in M.INSURANCE_TYPES:
        raise InvalidInput("medical.insurance_type",
                           f"{insurance_type!r} is not one of {', '.join(M.INSURANCE_TYPES)}", "insurance_type")
    return _policies()[(region_province, insurance_type, bool(retired))]
