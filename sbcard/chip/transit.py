"""Transit data on the card: the compound (capp) record a metro gate writes.

T-Union SFI 1A holds 8 records of 48 bytes; record 1 is the metro operators' slot
(docs/card-profile.md, "The T-Union application"). An entry gate writes it with a
0-fen compound purchase (INITIALIZE FOR CAPP PURCHASE, UPDATE CAPP DATA CACHE, DEBIT),
the exit gate reads it to know where the journey began and rewrites it with the fare.

| offset | size | field |
|---|---|---|
| 0 | 2 | operator code (``CAPP_OPERATOR_CODES``; 0000 = never written) |
| 2 | 4 | station code (8 BCD digits: the network fixture's code, network ‖ line ‖ station) |
| 6 | 6 | terminal number of the gate |
| 12 | 7 | date and time (BCD YYYYMMDDhhmmss) |
| 19 | 1 | status: 01 inside (entered, not yet out), 00 none (exited) |
| 20 | 28 | 00 |
"""

from __future__ import annotations

import datetime as dt

import attrs

from sbcard.chip import profile
from sbcard.chip.codec import bcd_datetime, from_bcd, parse_bcd_datetime, to_bcd

# The 2-byte operator codes written into capp records (a metro operator's id on the card).
CAPP_OPERATOR_CODES: dict[str, int] = {"bj-subway": 0x1101, "tj-metro": 0x1201}
_OPERATOR_BY_CODE = {code: name for name, code in CAPP_OPERATOR_CODES.items()}


@attrs.frozen
class CappRecord:
    """Record 1 of the capp cache: the last metro gate the card went through."""

    operator: str | None  # None: unknown operator code (another network's)
    operator_code: int
    station_code: str  # 8 digits
    terminal_no: bytes
    at: dt.datetime | None  # naive local time, as on the card
    inside: bool

    @classmethod
    def parse(cls, data: bytes) -> CappRecord | None:
        """None for a record never written (all zeros) or one that does not parse."""
        if len(data) != profile.TU_CAPP_RECORD_LEN or not any(data):
            return None
        code = int.from_bytes(data[0:2], "big")
        try:
            at = parse_bcd_datetime(data[12:19])
            station = from_bcd(data[2:6])
        except ValueError:
            return None
        return cls(
            operator=_OPERATOR_BY_CODE.get(code),
            operator_code=code,
            station_code=station,
            terminal_no=bytes(data[6:12]),
            at=at,
            inside=data[19] == profile.CAPP_INSIDE,
        )

    @classmethod
    def make(cls, operator: str, station_code: str, terminal_no: bytes, at: dt.datetime, *, inside: bool) -> CappRecord:
        if operator not in CAPP_OPERATOR_CODES:
            raise ValueError(f"{operator!r} has no capp operator code")
        if len(station_code) != 8 or not station_code.isdigit():
            raise ValueError(f"a station code has 8 digits, got {station_code!r}")
        return cls(operator, CAPP_OPERATOR_CODES[operator], station_code, bytes(terminal_no), at, inside)

    def to_bytes(self) -> bytes:
        if self.at is None:
            raise ValueError("a capp record needs its time")
        out = (
            self.operator_code.to_bytes(2, "big")
            + to_bcd(self.station_code)
            + self.terminal_no
            + bcd_datetime(self.at)
            + bytes((profile.CAPP_INSIDE if self.inside else profile.CAPP_NONE,))
        )
        return out.ljust(profile.TU_CAPP_RECORD_LEN, b"\x00")
