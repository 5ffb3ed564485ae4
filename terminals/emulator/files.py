"""The file system: directories, elementary files and the commands that use them.

Every EF is named by the SFI inside its DF (docs/card-profile.md); files are not selected
by FID, so READ/UPDATE name the file in P1 or P2. Four kinds of EF:

- TLV: records identified by their tag (P1), answered as the whole TLV;
- binary: fixed size, addressed by offset; reads of a never-written byte give 00;
- cyclic: fixed-size records, record 1 the newest, appended by APPEND RECORD or the purse;
- fixed: ``count`` records of one size addressed by number, 00…00 until written.

Writes need MK once the card is personalised, with two exceptions for a medical point
of sale, which holds no card key (docs/card-profile.md, "Keys and access rules"): DF04/EF06
offline settlement's used amount and year move only *forward* without MK (a later year,
which starts the year's used amount again at 0; or the same year and a used amount at
least the stored one), and APPEND RECORD to DF04/EF08 (the medical log) needs no key and
no PIN. A terminal can so spend the offline limit but never give it back.
"""

from __future__ import annotations

import enum
import functools

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip import tlv
from sbcard.chip.apdu import Command
from sbcard.chip.profile import KeyUsage, LifeState
from sbcard.chip.sw import CardStatus
from terminals.emulator.image import MF, SSSE, TU, FileRef
from terminals.emulator.session import Session, require, require_length

# Selection by DF name / AID; both T-Union AIDs select the same application.
DF_BY_NAME = {
    profile.SSSE_NAME: SSSE,
    profile.AID_DF01: "DF01",
    profile.AID_DF02: "DF02",
    profile.AID_DF04: "DF04",
    profile.AID_DF03: "DF03",
    profile.AID_DF05: "DF05",
    profile.AID_TUNION: TU,
    profile.AID_TUNION_JJJ: TU,
}


class Kind(enum.Enum):
    TLV = "TLV records by tag"
    BINARY = "binary"
    CYCLIC = "cyclic records"
    FIXED = "fixed records by number"


@attrs.frozen
class EF:
    kind: Kind
    size: int = 0  # binary: file size; records: record length
    count: int = 0  # cyclic and fixed: number of records
    tags: dict[int, int] = attrs.field(factory=dict)  # TLV: tag -> value length
    appendable: bool = False  # APPEND RECORD allowed (no key, no PIN: a log costs the holder nothing)

    def blank_record(self) -> bytes:
        return bytes(self.size)


def _tlv(tags: dict[int, int]) -> EF:
    return EF(Kind.TLV, tags={int(t): n for t, n in tags.items()})


LAYOUT: dict[FileRef, EF] = {
    (SSSE, profile.SFI_EF05): _tlv({t: profile.TAG_LENGTHS[t] for t in profile.EF05_TAGS}),
    (SSSE, profile.SFI_EF06): _tlv({t: profile.TAG_LENGTHS[t] for t in profile.EF06_TAGS}),
    ("DF04", profile.SFI_EF05): _tlv(
        {profile.MedicalTag.INSURED_REGION: 3, profile.MedicalTag.INSURANCE_TYPE: 1, profile.MedicalTag.RETIRED: 1,
         profile.MedicalTag.PERSONAL_ACCOUNT: 1}
    ),
    ("DF04", profile.SFI_EF06): _tlv({profile.OfflineTag.LIMIT: 4, profile.OfflineTag.USED: 4,
                                      profile.OfflineTag.YEAR: 2}),
    ("DF04", profile.SFI_EF08): EF(Kind.CYCLIC, profile.MEDICAL_LOG_RECORD_LEN, profile.MEDICAL_LOG_RECORDS,
                                   appendable=True),
    (TU, profile.SFI_TU_ISSUER): EF(Kind.BINARY, profile.TU_ISSUER_LEN),
    (TU, profile.SFI_TU_MANAGEMENT): EF(Kind.BINARY, profile.TU_MANAGEMENT_LEN),
    (TU, profile.SFI_TU_LOG): EF(Kind.CYCLIC, profile.TU_LOG_RECORD_LEN, profile.TU_LOG_RECORDS),
    (TU, profile.SFI_TU_CAPP): EF(Kind.FIXED, profile.TU_CAPP_RECORD_LEN, profile.TU_CAPP_RECORDS),
}


def lookup(s: Session, sfi: int) -> tuple[FileRef, EF]:
    """The EF with this SFI in the selected DF (6A82 if there is none)."""
    ref = (s.current_df, sfi)
    ef = LAYOUT.get(ref)
    if ef is None:
        raise CardStatus(sw.FILE_NOT_FOUND, f"no EF with SFI {sfi:02X} in {s.current_df}")
    return ref, ef


def binary_content(s: Session, ref: FileRef) -> bytes:
    return s.state.binaries.get(ref) or LAYOUT[ref].blank_record()


def _record_sfi(p2: int) -> int:
    """READ/UPDATE RECORD: P2 = SFI << 3 | 100 (P1 names the record)."""
    require(p2 & 0x07 == 0x04 and p2 >> 3 != 0, sw.WRONG_P1P2, "P2 must be SFI<<3|4")
    return p2 >> 3


def _record(s: Session, cmd: Command) -> tuple[FileRef, EF, int]:
    """READ/UPDATE RECORD: the EF that P2 names in the selected DF, and the record P1 names."""
    ref, ef = lookup(s, _record_sfi(cmd.p2))
    require(cmd.p1 != 0, sw.WRONG_P1P2, "P1 names the record: 00 is none")
    return ref, ef, cmd.p1


def _binary_sfi(p1: int) -> int:
    """READ/UPDATE BINARY: P1 = 100 ‖ SFI (there is no current EF to address by offset alone)."""
    require(p1 & 0xE0 == 0x80 and p1 & 0x1F != 0, sw.WRONG_P1P2, "P1 must be 0x80|SFI")
    return p1 & 0x1F


def _answer(data: bytes, le: int | None) -> bytes:
    """Short Le other than 00 must be exact, as T=0 asks (6Cxx gives the right one)."""
    if le is not None and le != 256 and le != len(data):
        raise CardStatus(0x6C00 | len(data) & 0xFF, f"Le {le}, {len(data)} bytes available")
    return data


# --- SELECT ---------------------------------------------------------------------------------


def select(s: Session, cmd: Command) -> bytes:
    """SELECT the MF by FID (00 A4 00 00 02 3F00) or a DF by name (00 A4 04 00 Lc name).

    With no data (``00 A4 00 00``, ``00 A4 04 00``, ``00 A4 04 00 00``) the MF is selected,
    as ISO 7816-4 says for P1-P2 0000 with the data field absent; for P1 04 an absent name
    selects the card's default, which on this card is the MF (it has no implicitly
    selected application). Both answer the MF's FCI.
    """
    require(cmd.p2 in (0x00, 0x0C), sw.WRONG_P1P2, "P2 must be 00 (FCI) or 0C (no answer)")
    if cmd.p1 == 0x00 or (cmd.p1 == 0x04 and not cmd.data):
        require(cmd.data in (b"", profile.MF_FID), sw.FILE_NOT_FOUND, f"no DF with FID {cmd.data.hex().upper()}")
        df, fci = MF, _MF_FCI
    elif cmd.p1 == 0x04:
        df = DF_BY_NAME.get(cmd.data)
        if df is None:  # (the message is made only then: every tap selects twice)
            raise CardStatus(sw.FILE_NOT_FOUND, f"no application {cmd.data.hex().upper()}")
        fci = _fci(s, df, cmd.data)
    else:
        raise CardStatus(sw.WRONG_P1P2, "P1 must be 00 (FID) or 04 (name)")
    s.current_df = df
    s.pending = None  # a transaction does not survive leaving its application
    return fci if cmd.p2 == 0x00 else b""


_MF_FCI = tlv.encode(profile.TAG_FCI, tlv.encode(profile.TAG_FILE_ID, profile.MF_FID))


def _fci(s: Session, df: str, name: bytes) -> bytes:
    """6F [84 name] and, for T-Union on a personalised card, [A5 [9F0C 1E <EF 0015>]]."""
    if df == TU and s.state.life_state is LifeState.PERSONALISED:
        return _fci_bytes(bytes(name), bytes(binary_content(s, (TU, profile.SFI_TU_ISSUER))))
    return _fci_bytes(bytes(name), None)


@functools.lru_cache(maxsize=1024)
def _fci_bytes(name: bytes, issuer: bytes | None) -> bytes:
    """The FCI's bytes, encoded once per name and issuer data (every tap SELECTs twice)."""
    body = tlv.encode(profile.TAG_DF_NAME, name)
    if issuer is not None:
        body += tlv.encode(profile.TAG_FCI_PROPRIETARY, tlv.encode(profile.TAG_TU_ISSUER_DATA, issuer))
    return tlv.encode(profile.TAG_FCI, body)


# --- READ RECORD / READ BINARY --------------------------------------------------------------


def read_record(s: Session, cmd: Command) -> bytes:
    """00 B2 <tag or record no> <SFI<<3|4> Le."""
    s.require_personalised()
    ref, ef, n = _record(s, cmd)
    if ef.kind is Kind.TLV:
        value = s.state.records.get(ref, {}).get(n)
        if value is None:  # (a message is made only for a refusal: every tap reads records)
            raise CardStatus(sw.RECORD_NOT_FOUND, f"no record with tag {n:02X}")
        return _answer(tlv.encode(n, value), cmd.le)
    if ef.kind is Kind.CYCLIC:
        log = s.state.logs.get(ref, ())
        if n > len(log):
            raise CardStatus(sw.RECORD_NOT_FOUND, f"record {n} of {len(log)}")
        return _answer(log[n - 1], cmd.le)
    if ef.kind is Kind.FIXED:
        if n > ef.count:
            raise CardStatus(sw.RECORD_NOT_FOUND, f"record {n} of {ef.count}")
        return _answer(s.state.records.get(ref, {}).get(n, ef.blank_record()), cmd.le)
    raise CardStatus(sw.CONDITIONS_NOT_SATISFIED, "a binary file has no records")


def read_binary(s: Session, cmd: Command) -> bytes:
    """00 B0 <0x80|SFI> <offset> Le (Le 00: to the end of the file)."""
    s.require_personalised()
    ref, ef = lookup(s, _binary_sfi(cmd.p1))
    require(ef.kind is Kind.BINARY, sw.CONDITIONS_NOT_SATISFIED, "not a binary file")
    offset = cmd.p2
    if offset >= ef.size:
        raise CardStatus(sw.WRONG_P1P2_6B, f"offset {offset} beyond the file's {ef.size} bytes")
    rest = binary_content(s, ref)[offset:]
    if cmd.le is None or cmd.le == 256:
        return rest
    if cmd.le > len(rest):
        raise CardStatus(0x6C00 | len(rest), f"Le {cmd.le}, {len(rest)} bytes to the end of the file")
    return rest[: cmd.le]


# --- UPDATE RECORD / UPDATE BINARY / APPEND RECORD ------------------------------------------


OFFLINE_SETTLEMENT = ("DF04", profile.SFI_EF06)
_FORWARD_TAGS = (profile.OfflineTag.USED, profile.OfflineTag.YEAR)


def update_record(s: Session, cmd: Command) -> bytes:
    """00 DC <tag> <SFI<<3|4> TLV (tag = P1), or a fixed record by number."""
    if _forward_only(s, cmd):
        return _update_offline_forward(s, cmd)
    s.require_write_access()
    ref, ef, n = _record(s, cmd)
    if ef.kind is Kind.TLV:
        require(n in ef.tags, sw.RECORD_NOT_FOUND, f"tag {n:02X} is not a record of this file")
        value = _single_tlv(cmd.data, n)
        require(len(value) == ef.tags[n], sw.WRONG_DATA, f"tag {n:02X} holds {ef.tags[n]} bytes, got {len(value)}")
    elif ef.kind is Kind.FIXED:
        require(n <= ef.count, sw.RECORD_NOT_FOUND, f"record {n} of {ef.count}")
        require_length(cmd.data, ef.size)
        value = cmd.data
    else:
        raise CardStatus(sw.CONDITIONS_NOT_SATISFIED, f"UPDATE RECORD does not write a {ef.kind.value} file")
    s.journal.write(s.state.records, ref, {**s.state.records.get(ref, {}), n: value})
    s.journal.commit()
    return b""


def _forward_only(s: Session, cmd: Command) -> bool:
    """An UPDATE RECORD of DF04/EF06 used or year on a personalised card without MK: the forward rule applies."""
    return (
        s.current_df == OFFLINE_SETTLEMENT[0]
        and s.state.life_state is LifeState.PERSONALISED
        and s.authenticated is not KeyUsage.MAINTENANCE
        and cmd.p1 in _FORWARD_TAGS
        and cmd.p2 & 0x07 == 0x04
        and cmd.p2 >> 3 == OFFLINE_SETTLEMENT[1]
    )


def _update_offline_forward(s: Session, cmd: Command) -> bytes:
    """DF04/EF06 tag 02 (used) or 03 (year) without MK: only forward, else 6982.

    A later year is taken with the year's used amount back at 0 (in the same commit: a
    new year's offline spending starts again); the same year leaves the record as it is;
    a used amount must be at least the stored one. A 6982 changes nothing.
    """
    ref = OFFLINE_SETTLEMENT
    ef = LAYOUT[ref]
    tag = cmd.p1
    value = _single_tlv(cmd.data, tag)
    require(len(value) == ef.tags[tag], sw.WRONG_DATA, f"tag {tag:02X} holds {ef.tags[tag]} bytes, got {len(value)}")
    records = dict(s.state.records.get(ref, {}))
    if tag == profile.OfflineTag.YEAR:
        stored, new = _bcd_year(records.get(tag)), _bcd_year(value)
        require(new is not None, sw.WRONG_DATA, "the year must be 4 BCD digits")
        require(stored is None or new >= stored, sw.SECURITY_NOT_SATISFIED,
                f"year {new} is before the stored {stored}: only MK writes it back")
        if stored is not None and new == stored:
            return b""
        records[tag] = value
        records[profile.OfflineTag.USED] = bytes(ef.tags[profile.OfflineTag.USED])
    else:
        stored_used = int.from_bytes(records.get(tag, b""), "big")
        require(int.from_bytes(value, "big") >= stored_used, sw.SECURITY_NOT_SATISFIED,
                f"used amount below the stored {stored_used}: only MK writes it back")
        records[tag] = value
    s.journal.write(s.state.records, ref, records)
    s.journal.commit()
    return b""


def _bcd_year(value: bytes | None) -> int | None:
    if value is None or len(value) != 2:
        return None
    text = value.hex()
    return int(text) if text.isdigit() else None


def _single_tlv(data: bytes, tag: int) -> bytes:
    """The value of ``data`` if it is exactly one TLV with this tag (6A80 otherwise)."""
    try:
        items = tlv.decode(data)
    except tlv.TlvError:
        items = []
    require(
        len(items) == 1 and items[0].tag == tag and items[0].to_bytes() == data,
        sw.WRONG_DATA,
        f"the data must be one TLV with tag {tag:02X}",
    )
    return items[0].value


def update_binary(s: Session, cmd: Command) -> bytes:
    """00 D6 <0x80|SFI> <offset> Lc data."""
    s.require_write_access()
    ref, ef = lookup(s, _binary_sfi(cmd.p1))
    require(ef.kind is Kind.BINARY, sw.CONDITIONS_NOT_SATISFIED, "not a binary file")
    offset, data = cmd.p2, cmd.data
    require(offset < ef.size, sw.WRONG_P1P2_6B, f"offset {offset} beyond the file's {ef.size} bytes")
    require(0 < len(data) <= ef.size - offset, sw.WRONG_LENGTH, f"{len(data)} bytes at {offset} overrun {ef.size}")
    old = binary_content(s, ref)
    s.journal.write(s.state.binaries, ref, old[:offset] + data + old[offset + len(data) :])
    s.journal.commit()
    return b""


# --- whole files, for STORE DATA (personalisation.store_data) ------------------------------

DGI_NOT_FOUND = sw.REFERENCED_DATA_NOT_FOUND  # 6A88: here a DGI the card does not know


def whole_file(s: Session, sfi: int, data: bytes) -> tuple[FileRef, Kind, dict[int, bytes] | bytes]:
    """A STORE DATA DGI 'SS00': the EF with SFI ``sfi`` in the selected DF and its new content.

    A TLV file's content is its records by tag, a binary file's its bytes. 6A88 if the
    selected DF has no TLV or binary EF with that SFI (no DGI names a log); 6700 for
    a binary file of another size; 6A80 for records that do not fit the file.
    """
    ref = (s.current_df, sfi)
    ef = LAYOUT.get(ref)
    if ef is None or ef.kind not in (Kind.TLV, Kind.BINARY):
        raise CardStatus(DGI_NOT_FOUND, f"no DGI {sfi:02X}00 in {s.current_df}: not a TLV or binary EF")
    if ef.kind is Kind.BINARY:
        require_length(data, ef.size)
        return ref, ef.kind, data
    return ref, ef.kind, tlv_records(ef, data)


def tlv_records(ef: EF, data: bytes) -> dict[int, bytes]:
    """A TLV file's records from their TLVs back to back, read in one pass.

    Each tag is one of the file's (every tag of the profile is one byte, every length
    below 128, so a BER multi-byte tag or length is simply not one of them), once, with
    the length the file gives it; 6A80 otherwise, 6700 for no record at all.
    """
    require(bool(data), sw.WRONG_LENGTH, "a TLV file's DGI holds at least one record")
    tags, records = ef.tags, {}
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        size = tags.get(tag)
        if size is None or tag in records:
            why = "is not a record of this file" if size is None else "comes twice"
            raise CardStatus(sw.WRONG_DATA, f"tag {tag:02X} at offset {i} {why}")
        end = i + 2 + size
        if end > n or data[i + 1] != size:
            raise CardStatus(sw.WRONG_DATA, f"tag {tag:02X} at offset {i} holds {size} bytes")
        records[tag] = data[i + 2 : end]
        i = end
    return records


def append_record(s: Session, cmd: Command) -> bytes:
    """00 E2 00 <SFI<<3> record: the newest record of a cyclic file (DF04/EF08); no key, no PIN."""
    s.require_personalised()
    require(cmd.p1 == 0 and cmd.p2 & 0x07 == 0 and cmd.p2 >> 3 != 0, sw.WRONG_P1P2, "P1 P2 must be 00 SFI<<3")
    ref, ef = lookup(s, cmd.p2 >> 3)
    require(ef.appendable, sw.CONDITIONS_NOT_SATISFIED, "this file takes no APPEND RECORD")
    require_length(cmd.data, ef.size)
    s.journal.write(s.state.logs, ref, (cmd.data,) + s.state.logs.get(ref, ())[: ef.count - 1])
    s.journal.commit()
    return b""
