"""Medical reference data from ``fixtures/medical/``: the I/O edge in front of ``sbcard.domain.medical``.

Hospitals, each province's catalogue and each province's policies are read once per
process and returned as the domain's frozen values. A malformed fixture is an internal
error (exit 3), never the user's bad input; an unknown hospital code or province is the
user's (``NotFound`` / ``InvalidInput``).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TypeVar

import attrs

from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, cite, combine
from sbcard.reference import load_regions, load_sources, read_csv_rows, why

DIR = "medical"
HOSPITALS, CATALOGUE, POLICIES = "hospitals.csv", "catalogue.csv", "policies.csv"
NATIONAL, CROSS_REGION = "national.csv", "cross_region.csv"

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
def _hospitals() -> Mapping[str, medical.Hospital]:
    regions = load_regions()
    out: dict[str, medical.Hospital] = {}
    for h in _rows(HOSPITALS, lambda r: medical.Hospital(_cell(r, "code"), _cell(r, "name"), _cell(r, "region"),
                                                   int(_cell(r, "level")))):
        if h.code in out:
            raise _broken(HOSPITALS, f"hospital {h.code} is listed twice")
        if h.region not in regions or h.province not in medical.PROVINCES:
            raise _broken(HOSPITALS, f"{h.code}: region {h.region} is not a Jing-Jin-Ji region of regions.csv")
        out[h.code] = h
    return MappingProxyType(out)


def hospitals() -> dict[str, medical.Hospital]:
    """Every designated hospital of the three provinces, by code (a fresh dict: callers may filter it)."""
    return dict(_hospitals())


def hospital(code: str) -> medical.Hospital:
    """The hospital with this code, or ``NotFound``."""
    found = _hospitals().get((code or "").strip().upper())
    if found is None:
        raise NotFound("medical.hospital.unknown", f"no hospital has code {code!r}", "--hospital")
    return found


# --------------------------------------------------------------------------- catalogues


def _check_province(region_province: str, option: str = "--region") -> str:
    if region_province not in medical.PROVINCES:
        raise InvalidInput("medical.region",
                           f"{region_province!r} is not one of the provinces {', '.join(medical.PROVINCES)}", option)
    return region_province


@functools.lru_cache(maxsize=None)
def _catalogues() -> Mapping[str, Mapping[str, medical.CatalogueItem]]:
    out: dict[str, dict[str, medical.CatalogueItem]] = {p: {} for p in medical.PROVINCES}
    items = _rows(CATALOGUE, lambda r: medical.CatalogueItem(
        _cell(r, "region"), _cell(r, "code"), _cell(r, "name"), _cell(r, "class"),
        int(_cell(r, "price_fen")), int(_cell(r, "self_first_pct")),
        _provenance(r, "source", "confidence", f"{_cell(r, 'region')} {_cell(r, 'code')}")))
    for item in items:
        if item.region not in out:
            raise _broken(CATALOGUE, f"{item.code}: region {item.region} is not a province of {medical.PROVINCES}")
        if item.code in out[item.region]:
            raise _broken(CATALOGUE, f"{item.code} is listed twice for {item.region}")
        out[item.region][item.code] = item
    for province, catalogue in out.items():
        if not catalogue:
            raise _broken(CATALOGUE, f"no items for {province}")
    return MappingProxyType({p: MappingProxyType(c) for p, c in out.items()})


def catalogue(region_province: str) -> dict[str, medical.CatalogueItem]:
    """The catalogue of a province (``110000`` | ``120000`` | ``130000``): code → item, in file order."""
    return dict(_catalogues()[_check_province(region_province)])


# --------------------------------------------------------------------------- policies


def _optional_int(text: str) -> int | None:
    return int(text) if text else None


def _provenance(row: Mapping[str, str], source: str, confidence: str, where: str) -> Provenance:
    try:
        return cite(load_sources(DIR), _cell(row, source), _cell(row, confidence), where=where)
    except ValueError as e:
        raise ValueError(str(e)) from None


def _policy(row: Mapping[str, str]) -> medical.Policy:
    where = f"{_cell(row, 'region')} {_cell(row, 'insurance_type')} retired={_cell(row, 'retired')} " \
            f"{_cell(row, 'episode')}"
    provenance = _provenance(row, "source", "confidence", where)
    band_fen = _optional_int(_cell(row, "band_fen"))
    band = (_provenance(row, "band_source", "band_confidence", f"{where} band") if band_fen is not None
            else ILLUSTRATIVE_ONLY)
    episode = _cell(row, "episode")
    account, offline = _cell(row, "personal_account_annual_fen"), _cell(row, "offline_limit_fen")
    if episode == medical.OUTPATIENT and not (account and offline):
        raise ValueError(f"{where}: an outpatient row gives personal_account_annual_fen and offline_limit_fen")
    return medical.Policy(
        region=_cell(row, "region"),
        insurance_type=_cell(row, "insurance_type"),
        retired=_flag(_cell(row, "retired")),
        deductible_fen={lv: int(_cell(row, f"deductible_fen_l{lv}")) for lv in medical.LEVELS},
        ratio_pct={lv: int(_cell(row, f"ratio_pct_l{lv}")) for lv in medical.LEVELS},
        cap_fen=_optional_int(_cell(row, "cap_fen")),
        personal_account_annual_fen=int(account or 0),
        offline_limit_fen=int(offline or 0),
        illustrative=provenance.illustrative,
        source=provenance.text(),
        episode=episode,
        deductible_basis=_cell(row, "deductible_basis"),
        band_fen=band_fen,
        band_ratio_pct=_optional_int(_cell(row, "band_ratio_pct")),
        provenance=provenance,
        band_provenance=band,
    )


PolicyKey = tuple[str, str, bool, str]


@functools.lru_cache(maxsize=None)
def _policies() -> Mapping[PolicyKey, medical.Policy]:
    out: dict[PolicyKey, medical.Policy] = {}
    for p in _rows(POLICIES, _policy):
        key = (p.region, p.insurance_type, p.retired, p.episode)
        if key in out:
            raise _broken(POLICIES, f"{key} is listed twice")
        out[key] = p
    wanted = {(r, t, x, e) for r in medical.PROVINCES for t in medical.INSURANCE_TYPES for x in (False, True) for e in medical.EPISODES}
    if set(out) != wanted:
        raise _broken(POLICIES, f"missing {sorted(wanted - set(out))}, unexpected {sorted(set(out) - wanted)}")
    for (r, t, x, e), p in list(out.items()):  # the holder's account and card limit are the outpatient row's
        if e == medical.INPATIENT:
            outpatient = out[(r, t, x, medical.OUTPATIENT)]
            out[(r, t, x, e)] = attrs.evolve(p, personal_account_annual_fen=outpatient.personal_account_annual_fen,
                                             offline_limit_fen=outpatient.offline_limit_fen)
    return MappingProxyType(out)


def policies() -> list[medical.Policy]:
    """Every policy row (3 provinces × 2 insurance types × retired or not × outpatient / inpatient)."""
    return list(_policies().values())


def policy(region_province: str, insurance_type: str, retired: bool, episode: str = medical.OUTPATIENT) -> medical.Policy:
    """The insured province's policy for this kind of holder and episode (参保地政策)."""
    _check_province(region_province)
    if insurance_type not in medical.INSURANCE_TYPES:
        raise InvalidInput("medical.insurance_type",
                           f"{insurance_type!r} is not one of {', '.join(medical.INSURANCE_TYPES)}", "insurance_type")
    if episode not in medical.EPISODES:
        raise InvalidInput("medical.episode", f"{episode!r} is not one of {', '.join(medical.EPISODES)}", "--episode")
    return _policies()[(region_province, insurance_type, bool(retired), episode)]


# --------------------------------------------------------------------------- cross-region terms


@functools.lru_cache(maxsize=None)
def national_caps() -> medical.NationalCaps:
    """The national caps on the cross-region cut (``national.csv``, 国医保发〔2022〕22号)."""
    points: dict[str, int] = {}
    provenances = []
    for n, row in enumerate(read_csv_rows(f"{DIR}/{NATIONAL}"), start=2):
        try:
            rule = _cell(row, "rule")
            if rule in points:
                raise ValueError(f"rule {rule} is listed twice")
            points[rule] = int(_cell(row, "max_cut_points"))
            provenances.append(_provenance(row, "source", "confidence", f"rule {rule}"))
        except ValueError as e:
            raise _broken(NATIONAL, f"row {n}: {e}") from None
    try:
        return medical.NationalCaps(points, combine(provenances))
    except ValueError as e:
        raise _broken(NATIONAL, str(e)) from None


def _date(text: str) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


@functools.lru_cache(maxsize=None)
def _cross_region() -> Mapping[str, medical.CrossRegionRules]:
    kinds: dict[str, dict[str, medical.KindTerms]] = {p: {} for p in medical.PROVINCES}
    for n, row in enumerate(read_csv_rows(f"{DIR}/{CROSS_REGION}"), start=2):
        try:
            region, kind = _cell(row, "region"), _cell(row, "kind")
            if region not in kinds:
                raise ValueError(f"region {region!r} is not a province of {medical.PROVINCES}")
            if kind in kinds[region]:
                raise ValueError(f"{region} {kind} is listed twice")
            switch = _cell(row, "switch")
            if switch not in ("on", "off"):
                raise ValueError(f"switch must be on or off, got {switch!r}")
            kinds[region][kind] = medical.KindTerms(
                kind, int(_cell(row, "cut_points")), _provenance(row, "source", "confidence", f"{region} {kind}"),
                on=switch == "on", valid_from=_date(_cell(row, "valid_from")))
        except ValueError as e:
            raise _broken(CROSS_REGION, f"row {n}: {why(e)}") from None
    caps = national_caps()
    out = {}
    for region, terms in kinds.items():
        rules = medical.CrossRegionRules(region, terms)
        try:
            rules.check(caps)
        except ValueError as e:
            raise _broken(CROSS_REGION, str(e)) from None
        out[region] = rules
    return MappingProxyType(out)


def cross_region(region_province: str) -> medical.CrossRegionRules:
    """The insured province's cross-region terms (``cross_region.csv``), checked against the national caps."""
    return _cross_region()[_check_province(region_province)]


def clear_caches() -> None:
    """Forget what was read (tests that point ``SBCARD_FIXTURES`` elsewhere)."""
    for f in (_hospitals, _catalogues, _policies, national_caps, _cross_region, load_sources):
        f.cache_clear()
