"""Subsidy reference data from ``fixtures/subsidies/``: the I/O edge in front of ``sbcard.domain.subsidies``.

``catalogue_rows()`` is the catalogue as rows of the ``subsidy_items`` table (``sbcard
init`` loads them into every region's database); ``generate_rules()`` the age bands of
the items granted without application (免申即享). Each row names where its figure (an
item's cap, a band's amount) comes from: ``source`` ids of ``sources.csv`` and a
``confidence`` (``sbcard.domain.sources``). A malformed fixture — an unknown source, a
sourced confidence without a source — is an internal error (exit 3) naming the file and
line, never the user's bad input.
"""

from __future__ import annotations

import functools
from typing import Any

from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.money import parse_yuan
from sbcard.domain.regions import NODES
from sbcard.domain.sources import ILLUSTRATIVE_ONLY, Provenance, cite
from sbcard.domain.subsidies import AgeBand, Catalogue, Item, check_bands
from sbcard.reference import load_sources, read_csv_rows

DIR = "subsidies"
ITEMS = f"{DIR}/items.csv"
RULES = f"{DIR}/generate_rules.csv"


def _broken(name: str, line: int | None, why: object) -> SbcardError:
    where = f"fixtures/{name}" + (f" line {line}" if line else "")
    return SbcardError("fixture.invalid", f"{where}: {why}")


@functools.lru_cache(maxsize=None)
def catalogue() -> Catalogue:
    """The items of ``items.csv``, checked (read once per process)."""
    items = []
    for line, row in enumerate(read_csv_rows(ITEMS), start=2):
        try:
            cap_source = _provenance(row)
            items.append(Item(
                code=row["code"].strip(), name=row["name"].strip(), department=row["department"].strip(),
                period_type=row["period_type"].strip(), cap_fen=parse_yuan(row["cap"], "cap"),
                fund_account=row["fund_account"].strip(), illustrative=cap_source.illustrative,
                cap_source=cap_source,
            ))
        except (InvalidInput, KeyError, ValueError, AttributeError) as e:
            raise _broken(ITEMS, line, e) from e
    try:
        return Catalogue(items)
    except InvalidInput as e:
        raise _broken(ITEMS, None, e) from e


def cap_provenance(code: str, cap_fen: int) -> Provenance:
    """Where an item's cap comes from, for an item as a region's database holds it.

    The fixture's provenance when the fixture lists the item with the same cap; otherwise
    (a database loaded from another version of the file) nothing says where it comes from:
    illustrative.
    """
    item = catalogue().find(code)
    if item is None or item.code != code or item.cap_fen != cap_fen:
        return ILLUSTRATIVE_ONLY
    return item.cap_provenance


def catalogue_rows() -> list[dict[str, Any]]:
    """The catalogue as ``subsidy_items`` rows."""
    return [
        {"code": item.code, "name": item.name, "department": item.department, "period_type": item.period_type.value,
         "cap_fen": item.cap_fen, "fund_account": item.fund_account, "illustrative": int(item.illustrative)}
        for item in catalogue()
    ]


@functools.lru_cache(maxsize=None)
def generate_rules() -> tuple[AgeBand, ...]:
    """The age bands of ``generate_rules.csv``, checked against the catalogue and for overlaps."""
    known = catalogue()
    bands = []
    for line, row in enumerate(read_csv_rows(RULES), start=2):
        try:
            code = row["item"].strip()
            if known.find(code) is None or known.find(code).code != code:  # type: ignore[union-attr]
                raise ValueError(f"item {code!r} is not a code of {ITEMS}")
            province = row["province"].strip() or None
            if province is not None and province not in NODES:
                raise ValueError(f"province {province!r} is not 110000, 120000 or 130000")
            max_age = row["max_age"].strip()
            bands.append(AgeBand(
                item=code, province=province, min_age=_age(row["min_age"]), max_age=_age(max_age) if max_age else None,
                amount_fen=parse_yuan(row["amount"], "amount"), provenance=_provenance(row),
            ))
        except (InvalidInput, KeyError, ValueError, AttributeError) as e:
            raise _broken(RULES, line, e) from e
    try:
        check_bands(bands)
    except InvalidInput as e:
        raise _broken(RULES, None, e) from e
    for band in bands:
        cap = known.find(band.item).cap_fen  # type: ignore[union-attr]
        if band.amount_fen > cap:
            raise _broken(RULES, None, f"{band.item} from age {band.min_age} pays more than the item's cap")
    return tuple(bands)


def _provenance(row: dict[str, str]) -> Provenance:
    """The row's ``source`` ids (from ``sources.csv``) and ``confidence``, checked."""
    if "confidence" not in row or "source" not in row:
        raise ValueError("no source and confidence columns (every figure says where it comes from: "
                         "fixtures/README.md)")
    return cite(load_sources(DIR), row["source"] or "", row["confidence"] or "", where="source/confidence")


def _age(text: str) -> int:
    value = (text or "").strip()
    if not (value.isascii() and value.isdigit()) or not 0 <= int(value) <= 150:
        raise ValueError(f"{value!r} is not an age in years")
    return int(value)
