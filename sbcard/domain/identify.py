"""Tell what kind of identifier a string is and whether it is valid (``sbcard ids check``).

The kind is decided from the shape alone, before any check, so that a mistyped value is
reported against what it was meant to be: an 18-character value of 17 digits and one
more character is a citizen ID whose check character is wrong, not "unknown". Every
kind's dict always has the same keys (None where a value cannot be derived), so
scripts reading ``--json`` need no special cases.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sbcard.domain.bank_account import BankAccount, luhn_check_digit
from sbcard.domain.card_id_code import RID, CardIdCode
from sbcard.domain.card_number import CardNumber
from sbcard.domain.citizen_id import CitizenId, eighteen_digit_form
from sbcard.domain.errors import SbcardError
from sbcard.domain.regions import RegionDirectory, node_of, province_code_of

_CITIZEN_SHAPE = re.compile(r"[0-9]{17}.")
_CARD_NUMBER_SHAPE = re.compile(r"[0-9A-Z]{9}")
_HEX32 = re.compile(r"[0-9A-F]{32}")
_REGION_SHAPE = re.compile(r"[0-9]{6}")
_BANK_SHAPE = re.compile(r"[0-9]{16,19}")
_WHITESPACE = re.compile(r"\s+")

UNKNOWN_REASON = (
    "not the shape of a citizen ID (18 characters), card number (9 letters/digits), "
    "card identification code (32 hex digits), region code (6 digits) or bank account (16-19 digits)"
)


def _answer(kind: str, value: str, **defaults: Any) -> dict[str, Any]:
    """An answer that is invalid until proven otherwise, with every key of its kind present."""
    return {"kind": kind, "value": value, "valid": False, "reason": None, **defaults}


def _region_fields(code: str, regions: RegionDirectory) -> dict[str, Any]:
    known = regions.is_known(code)
    return {"region": code, "region_name": regions.full_name(code) if known else None, "region_known": known}


def _citizen_id(value: str, regions: RegionDirectory, today: date | None) -> dict[str, Any]:
    out = _answer("citizen_id", value, birth_date=None, sex=None, **_region_fields(value[:6], regions))
    try:
        cid = CitizenId(value)
        if today is not None:
            cid.check_not_future(today)
    except SbcardError as e:
        out["reason"] = e.message
        if _BANK_SHAPE.fullmatch(value) and value[-1] == luhn_check_digit(value[:-1]):
            out["also_valid_as"] = ["bank_account"]
    else:
        out.update(valid=True, birth_date=cid.birth_date.isoformat(), sex=cid.sex)
    return out


def _card_number(value: str) -> dict[str, Any]:
    number = CardNumber(value)  # the shape is already checked; only the check char can fail
    return _answer("card_number", value) | {"valid": number.check_ok, "reason": number.warning}


def _card_id_code(value: str, regions: RegionDirectory) -> dict[str, Any]:
    out = _answer("card_id_code", value, region=None, region_name=None, region_known=False, unique=None)
    try:
        code = CardIdCode(value)
    except SbcardError as e:
        out["reason"] = e.message
    else:
        out.update(valid=True, unique=code.unique, **_region_fields(code.region_code, regions))
    return out


def _region(value: str, regions: RegionDirectory) -> dict[str, Any]:
    out = _answer("region", value, name=None, full_name=None, level=None, province=None, node=None)
    try:
        out.update(node=node_of(value), province=province_code_of(value))
        region = regions.get(value)
    except SbcardError as e:  # outside the three provinces, or not listed (e.g. abolished)
        out["reason"] = e.message
        return out
    out.update(valid=True, name=region.name, full_name=regions.full_name(value), level=region.level)
    return out


def _bank_account(value: str) -> dict[str, Any]:
    out = _answer("bank_account", value, masked=None)
    try:
        account = BankAccount(value)
    except SbcardError as e:
        out["reason"] = e.message
    else:
        out.update(valid=True, masked=account.masked())
    return out


def identify(value: str, regions: RegionDirectory, today: date | None = None) -> dict[str, Any]:
    """``{"kind", "value" (normalised), "valid", "reason", ...kind-specific keys}``.

    Kind-specific keys: citizen_id → birth_date (YYYY-MM-DD), sex, region, region_name,
    region_known (and ``also_valid_as`` when an invalid ID passes as another kind);
    card_id_code → region, region_name, region_known, unique; region → name, full_name,
    level, province, node; bank_account → masked. With ``today`` (the caller's clock), a
    citizen ID born after it is invalid too.
    """
    text = _WHITESPACE.sub("", value)
    upper = text.upper()
    if len(upper) == 18 and _CITIZEN_SHAPE.fullmatch(upper):
        return _citizen_id(upper, regions, today)
    new = eighteen_digit_form(upper)
    if new is not None:  # the 15-digit form of before 1999: refused, with the form to give instead
        out = _answer("citizen_id", upper, birth_date=None, sex=None, eighteen_digit_form=new,
                      **_region_fields(upper[:6], regions))
        out["reason"] = f"a 15-digit ID (the form used before 1999) is not accepted: its 18-digit form is {new}"
        return out
    if _CARD_NUMBER_SHAPE.fullmatch(upper):
        return _card_number(upper)
    if _HEX32.fullmatch(upper) and upper[6:16] == RID:
        return _card_id_code(upper, regions)
    if _REGION_SHAPE.fullmatch(text):
        return _region(text, regions)
    if _BANK_SHAPE.fullmatch(text):
        return _bank_account(text)
    return {"kind": "unknown", "value": text, "valid": False, "reason": _unknown_reason(upper)}


def _unknown_reason(upper: str) -> str:
    if not upper:
        return "no value given"
    if _HEX32.fullmatch(upper):
        return f"32 hex digits, but not a card identification code: characters 7-16 must be {RID}"
    if len(upper) == 18:
        return "18 characters, but a citizen ID is 17 digits then a digit or 'X'"
    return UNKNOWN_REASON
