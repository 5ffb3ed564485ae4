"""BER-TLV (ISO/IEC 8825-1 as used by ISO 7816 and EMV): multi-byte tags and lengths."""

from __future__ import annotations

from collections.abc import Iterator

import attrs


class TlvError(ValueError):
    pass


@attrs.frozen
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        first = self.tag
        while first > 0xFF:
            first >>= 8
        return bool(first & 0x20)

    def children(self) -> list["Tlv"]:
        return decode(self.value)

    def to_bytes(self) -> bytes:
        return encode(self.tag, self.value)


def encode_tag(tag: int) -> bytes:
    return tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    if len(raw) > 4:
        raise TlvError("length too large")
    return bytes((0x80 | len(raw),)) + raw


def encode(tag: int, value: bytes | list[Tlv]) -> bytes:
    if isinstance(value, list):
        value = b"".join(t.to_bytes() for t in value)
    return encode_tag(tag) + encode_length(len(value)) + bytes(value)


def _iter(data: bytes) -> Iterator[Tlv]:
    i, n = 0, len(data)
    while i < n:
        if data[i] in (0x00, 0xFF):  # padding between objects
            i += 1
            continue
        start = i
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:
            while True:
                if i >= n:
                    raise TlvError(f"truncated tag at offset {start}")
                tag = (tag << 8) | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
        if i >= n:
            raise TlvError(f"missing length for tag {tag:X}")
        length = data[i]
        i += 1
        if length & 0x80:
            count = length & 0x7F
            if count == 0 or count > 4 or i + count > n:
                raise TlvError(f"bad length for tag {tag:X}")
            length = int.from_bytes(data[i : i + count], "big")
            i += count
        if i + length > n:
            raise TlvError(f"value of tag {tag:X} truncated ({length} bytes announced, {n - i} left)")
        yield Tlv(tag, bytes(data[i : i + length]))
        i += length


def decode(data: bytes) -> list[Tlv]:
    return list(_iter(bytes(data)))


def find(data: bytes | list[Tlv], tag: int, *, recursive: bool = True) -> Tlv | None:
    items = decode(data) if isinstance(data, (bytes, bytearray)) else data
    for item in items:
        if item.tag == tag:
            return item
        if recursive and item.constructed:
            found = find(item.children(), tag)
            if found is not None:
                return found
    return None
