"""The numbers an issuing region gives a new card, shaped from its sequences.

The region's ``sequences`` table hands out the counters, inside the issuing transaction
(a rolled-back issuance burns nothing); this module only turns a counter into the
number, so every format rule is testable without a database:

- card number: the region's letter, 7 digits of sequence, the check character
  (``B0000042`` + ``X``) — the letter names the issuer at a glance, as on real cards;
- 卡识别码: issuing region ‖ D156000005 ‖ 8 card-unique bytes (the issuer draws them);
- T-Union application serial: ``0310`` ‖ 4-digit city ‖ 12-digit sequence;
- application id: ``<NODE>-A-<yyyymmdd>-<nnnnnn>``, the node being where it is kept.

The issuing region is the insured region's municipality (Beijing, Tianjin) or its
prefecture-level city (Hebei, where each city's bureau issues its cards).
"""

from __future__ import annotations

import datetime as dt
import re

from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.card_number import CardNumber
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.regions import NODES, node_of, province_code_of

SEQ_CARD_NUMBER = "card_number"
SEQ_APP_SERIAL = "app_serial"
SEQ_APPLICATION = "application"

NODE_LETTERS = {"bj": "B", "tj": "T", "he": "H"}
CARD_SEQUENCE_DIGITS = 7
APP_SERIAL_PREFIX = "0310"  # T-Union: the card's application serial starts so (docs/card-profile.md)
APP_SERIAL_SEQUENCE_DIGITS = 12
MUNICIPALITIES = frozenset({"110000", "120000"})  # provinces whose cards the municipality issues

# The 4-digit city code in the T-Union application serial: the first four digits of the
# city's postcode, as the transit sector numbers cities. Keyed by issuing region.
TRANSIT_CITY_CODES = {
    "110000": "1000",  # 北京
    "120000": "3000",  # 天津
    "130000": "0500",  # 河北 (province level: the capital's code)
    "130100": "0500",  # 石家庄
    "130200": "0630",  # 唐山
    "130300": "0660",  # 秦皇岛
    "130400": "0560",  # 邯郸
    "130500": "0540",  # 邢台
    "130600": "0710",  # 保定
    "130700": "0750",  # 张家口
    "130800": "0670",  # 承德
    "130900": "0610",  # 沧州
    "131000": "0650",  # 廊坊
    "131100": "0530",  # 衡水
}

APPLICATION_FIELD = "APPLICATION_ID"
_APPLICATION_ID = re.compile(r"(BJ|TJ|HE)-A-([0-9]{8})-([0-9]{6,})")


def _check_sequence(name: str, value: int, digits: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"sequence {name} must be a positive int, got {value!r}")
    if value >= 10**digits:
        raise RuleRefused(
            f"sequence.{name}_exhausted",
            f"the {name.replace('_', ' ')} sequence has used all {digits}-digit values",
        )


def card_number(node: str, sequence: int) -> CardNumber:
    """The card number for the region's ``sequence``-th card: letter, 7 digits, check character."""
    _check_sequence(SEQ_CARD_NUMBER, sequence, CARD_SEQUENCE_DIGITS)
    return CardNumber.from_body(f"{NODE_LETTERS[node]}{sequence:0{CARD_SEQUENCE_DIGITS}d}")


def issuing_region(province: str, prefecture: str | None) -> str:
    """Who issues the card of a person insured in a region of ``province`` (and ``prefecture``)."""
    if province in MUNICIPALITIES or prefecture is None:
        return province
    if province_code_of(prefecture) != province:
        raise ValueError(f"prefecture {prefecture} is not in province {province}")
    return prefecture


def transit_city(region: str) -> str:
    """The T-Union city code of an issuing region; an unlisted city takes its province's."""
    return TRANSIT_CITY_CODES.get(region) or TRANSIT_CITY_CODES[province_code_of(region)]


def app_serial(region: str, sequence: int) -> str:
    """The T-Union application serial (20 digits) of the region's ``sequence``-th card."""
    _check_sequence(SEQ_APP_SERIAL, sequence, APP_SERIAL_SEQUENCE_DIGITS)
    return f"{APP_SERIAL_PREFIX}{transit_city(region)}{sequence:0{APP_SERIAL_SEQUENCE_DIGITS}d}"


def card_id_code(region: str, unique8: bytes) -> CardIdCode:
    """The 卡识别码: issuing region ‖ RID ‖ the 8 card-unique bytes."""
    node_of(region)  # only Beijing, Tianjin and Hebei issue here
    return CardIdCode.make(region, unique8)


def application_id(node: str, day: dt.date, sequence: int) -> str:
    """``TJ-A-20240301-000042``: the node that keeps it, the day it was made, the node's count."""
    if node not in NODES.values():
        raise ValueError(f"unknown node {node!r}")
    if type(sequence) is not int or sequence < 1:
        raise ValueError(f"an application sequence is a positive int, got {sequence!r}")
    return f"{node.upper()}-A-{day:%Y%m%d}-{sequence:06d}"


def node_of_application(text: str) -> str:
    """The node that keeps an application, from its id; InvalidInput naming the argument."""
    value = text.strip().upper() if isinstance(text, str) else ""
    match = _APPLICATION_ID.fullmatch(value)
    if not match:
        raise InvalidInput(
            "application.id_format",
            f"{text!r} is not an application id (expected e.g. TJ-A-20240301-000042)",
            APPLICATION_FIELD,
        )
    return match.group(1).lower()
