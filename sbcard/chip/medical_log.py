"""The medical log on the card: DF04/EF08, 10 cyclic records of 32 bytes (record 1 the newest).

A medical point of sale appends one record per settlement, and one per refund of a claim
(kind 03: the claim's serial and what went back to the fund, the personal account and the
holder), so the card's log never shows a claim that was reversed as if it stood (APPEND RECORD: no key, no PIN;
docs/card-profile.md, "Keys and access rules"), so the card itself remembers where and
how its last ten claims were settled, online or offline.

| offset | size | field |
|---|---|---|
| 0 | 1 | kind: 01 settled online, 02 settled offline (against DF04/EF06), 03 refunded (退费: the amounts given back) |
| 1 | 6 | hospital code (ASCII, space padded), e.g. ``BJH003`` |
| 7 | 7 | date and time (BCD YYYYMMDDhhmmss, Beijing time) |
| 14 | 4 | claim serial: the number in the claim id ``<hospital>-<serial>`` |
| 18 | 4 | total (fen) |
| 22 | 4 | pooled fund (fen) |
| 26 | 4 | self-pay (fen); the personal account paid total − fund − self-pay |
| 30 | 1 | flags: bit 0 personal account used, bit 1 self-pay from the financial account, bit 2 cross-region |
| 31 | 1 | 00 (reserved) |
"""

from __future__ import annotations

import datetime as dt

import attrs

from sbcard.chip import profile
from sbcard.chip.codec import bcd_datetime, parse_bcd_datetime

ONLINE, OFFLINE, REFUND = 0x01, 0x02, 0x03
KINDS = {ONLINE: "online", OFFLINE: "offline", REFUND: "refund"}
HOSPITAL_LEN = 6
FLAG_ACCOUNT, FLAG_SELF_PAY_ACCOUNT, FLAG_CROSS_REGION = 0x01, 0x02, 0x04
_U32 = 0xFFFFFFFF


def _u32(name: str):
    def check(_i: object, _a: object, value: int) -> None:
        if not isinstance(value, int) or not 0 <= value <= _U32:
            raise ValueError(f"{name} must fit 4 bytes, got {value!r}")

    return check


@attrs.frozen
class MedicalLogRecord:
    """One settlement as the card's medical log keeps it."""

    kind: int = attrs.field(validator=attrs.validators.in_(tuple(KINDS)))
    hospital: str
    at: dt.datetime  # naive local time, as on the card
    serial: int = attrs.field(validator=_u32("serial"))
    total_fen: int = attrs.field(validator=_u32("total_fen"))
    fund_fen: int = attrs.field(validator=_u32("fund_fen"))
    self_fen: int = attrs.field(validator=_u32("self_fen"))
    account_used: bool = False
    self_pay_account: bool = False
    cross_region: bool = False

    def __attrs_post_init__(self) -> None:
        if not (self.hospital.isascii() and 0 < len(self.hospital) <= HOSPITAL_LEN):
            raise ValueError(f"a hospital code on the card is 1–{HOSPITAL_LEN} ASCII characters, "
                             f"got {self.hospital!r}")
        if self.fund_fen + self.self_fen > self.total_fen:
            raise ValueError("fund + self-pay exceed the total")

    @property
    def account_fen(self) -> int:
        return self.total_fen - self.fund_fen - self.self_fen

    @property
    def mode(self) -> str:
        return KINDS[self.kind]

    def to_bytes(self) -> bytes:
        flags = ((FLAG_ACCOUNT if self.account_used else 0) | (FLAG_SELF_PAY_ACCOUNT if self.self_pay_account else 0)
                 | (FLAG_CROSS_REGION if self.cross_region else 0))
        out = (bytes((self.kind,)) + self.hospital.encode("ascii").ljust(HOSPITAL_LEN, b" ")
               + bcd_datetime(self.at) + self.serial.to_bytes(4, "big") + self.total_fen.to_bytes(4, "big")
               + self.fund_fen.to_bytes(4, "big") + self.self_fen.to_bytes(4, "big") + bytes((flags, 0)))
        assert len(out) == profile.MEDICAL_LOG_RECORD_LEN
        return out

    @classmethod
    def parse(cls, data: bytes) -> MedicalLogRecord | None:
        """The record, or None for a never-written (all-zero) one; ``ValueError`` if malformed."""
        if len(data) != profile.MEDICAL_LOG_RECORD_LEN:
            raise ValueError(f"a medical log record is {profile.MEDICAL_LOG_RECORD_LEN} bytes, got {len(data)}")
        if not any(data):
            return None
        u = lambda a, b: int.from_bytes(data[a:b], "big")  # noqa: E731
        flags = data[30]
        return cls(kind=data[0], hospital=data[1:7].decode("ascii").rstrip(" "), at=parse_bcd_datetime(data[7:14]),
                   serial=u(14, 18), total_fen=u(18, 22), fund_fen=u(22, 26), self_fen=u(26, 30),
                   account_used=bool(flags & FLAG_ACCOUNT), self_pay_account=bool(flags & FLAG_SELF_PAY_ACCOUNT),
                   cross_region=bool(flags & FLAG_CROSS_REGION))

    def to_json(self) -> dict[str, object]:
        return {"mode": self.mode, "hospital": self.hospital, "at": self.at.isoformat(), "serial": self.serial,
                "total_fen": self.total_fen, "fund_fen": self.fund_fen, "account_fen": self.account_fen,
                "self_fen": self.self_fen, "self_pay_account": self.self_pay_account,
                "cross_region": self.cross_region}
