"""Field encodings on the card: BCD dates and times, GBK names, fixed-width text."""

from __future__ import annotations

import datetime as dt

from sbcard.domain.errors import InvalidInput

NAME_BYTES = 30


def to_bcd(digits: str) -> bytes:
    if len(digits) % 2 or not digits.isdigit() or not digits.isascii():
        raise ValueError(f"not an even number of decimal digits: {digits!r}")
    return bytes.fromhex(digits)


def from_bcd(data: bytes) -> str:
    text = data.hex()
    if not text.isdigit():
        raise ValueError(f"not BCD: {data.hex().upper()}")
    return text


def bcd_date(day: dt.date) -> bytes:
    """YYYYMMDD in 4 BCD bytes. Digits by format, as ``bcd_datetime`` (a card's personalisation
    writes five dates); a year before 1000 keeps ``strftime``'s digits."""
    if day.year < 1000:
        return to_bcd(day.strftime("%Y%m%d"))
    return bytes.fromhex(f"{day.year:04d}{day.month:02d}{day.day:02d}")


def parse_bcd_date(data: bytes) -> dt.date:
    """YYYYMMDD in 4 BCD bytes (``ValueError`` if it is not a date). Not strptime: a
    validator parses three of these per tap."""
    text = from_bcd(data)
    if len(text) != 8:
        raise ValueError(f"a BCD date has 8 digits, got {text!r}")
    return dt.date(int(text[0:4]), int(text[4:6]), int(text[6:8]))


def bcd_time(moment: dt.time | dt.datetime) -> bytes:
    return to_bcd(moment.strftime("%H%M%S"))


def bcd_datetime(moment: dt.datetime) -> bytes:
    """The 7 bytes date ‖ time used in purse cryptograms and logs.

    Digits by format, not ``strftime`` (several times slower; every purchase makes these);
    a year before 1000 keeps ``strftime``'s digits (and its error)."""
    if moment.year < 1000 or not isinstance(moment, dt.datetime):
        return to_bcd(moment.strftime("%Y%m%d%H%M%S"))
    return bytes.fromhex(
        f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}{moment.minute:02d}{moment.second:02d}"
    )


def parse_bcd_datetime(data: bytes) -> dt.datetime:
    """YYYYMMDDhhmmss in 7 BCD bytes (``ValueError`` if it is not a moment)."""
    t = from_bcd(data)
    if len(t) != 14:
        raise ValueError(f"a BCD date and time has 14 digits, got {t!r}")
    return dt.datetime(int(t[0:4]), int(t[4:6]), int(t[6:8]), int(t[8:10]), int(t[10:12]), int(t[12:14]))


def encode_name(name: str, width: int = NAME_BYTES, field: str = "name") -> bytes:
    """A holder name in GBK, space padded to ``width`` bytes.

    The rule applied: names are stripped of surrounding spaces, must not be empty, every
    character must be encodable in GBK (rare characters outside GBK are refused: the
    outlet records them with the nearest GBK character and notes the original), and the
    encoded name must fit the card's 30 bytes (15 Chinese characters).
    """
    text = name.strip()
    if not text:
        raise InvalidInput("name.empty", "must not be empty", field)
    try:
        raw = text.encode("gbk")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end]
        raise InvalidInput(
            "name.not_gbk",
            f"character {bad!r} (U+{ord(bad[0]):04X}) cannot be written in GBK; record the nearest GBK "
            "character and keep the original in the remarks",
            field,
        ) from None
    if len(raw) > width:
        raise InvalidInput("name.too_long", f"{len(raw)} GBK bytes, the card holds at most {width}", field)
    return raw.ljust(width, b" ")


def decode_name(data: bytes) -> str:
    return bytes(data).rstrip(b" \x00").decode("gbk", errors="replace")


def encode_text(text: str, width: int, pad: bytes = b" ") -> bytes:
    raw = text.encode("ascii")
    if len(raw) > width:
        raise ValueError(f"{text!r} longer than {width}")
    return raw.ljust(width, pad)


def decode_text(data: bytes) -> str:
    return bytes(data).rstrip(b" \x00").decode("ascii", errors="replace")
