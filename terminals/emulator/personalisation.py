"""The card's life cycle: chip data, ERASE, WRITE KEY, SET STATUS and STORE DATA.

blank → (ERASE under TK) → personalising → (SET STATUS, once complete) → personalised.
A torn or abandoned personalisation leaves the card ``personalising``: unusable (reads
answer 6985) and ready for the issuer to run the whole script again from ERASE.

The card factory personalises with STORE DATA instead of the per-record commands: each
block carries DGIs (the keys, the PIN, whole files of the selected DF) and lands in one
commit; its last block also makes the card personalised, as SET STATUS does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Command
from sbcard.chip.crypto import Algorithm
from sbcard.chip.profile import CARD_KEY_INDEX, PIN_TRIES, KeyUsage, LifeState
from sbcard.chip.sw import CardStatus
from terminals.emulator import files
from terminals.emulator.image import SSSE, TU, FileRef, KeyEntry, KeyRef, Pin, Purse
from terminals.emulator.session import KEY_DF, Session, require, require_length, require_p1p2

KEY_LENGTH = 16
WRITE_KEY_DATA = 2 + KEY_LENGTH  # algorithm id ‖ version ‖ key
ALGORITHM_IDS = {alg.id_byte for alg in Algorithm}
PIN_BYTES = 3

# What SET STATUS insists on before the card may leave the factory's hands.
MANDATORY_KEYS = (KeyUsage.MAINTENANCE, KeyUsage.PURCHASE, KeyUsage.LOAD, KeyUsage.TAC)
MANDATORY_RECORDS = {(SSSE, profile.SFI_EF05): profile.EF05_TAGS, (SSSE, profile.SFI_EF06): profile.EF06_TAGS}
MANDATORY_BINARIES = ((TU, profile.SFI_TU_ISSUER),)


def get_data(s: Session, cmd: Command) -> bytes:
    """80 CA 00 C1: chip serial (8) ‖ life state (1) ‖ OS version (2), in every state."""
    require((cmd.p1, cmd.p2) == profile.GET_DATA_CHIP_INFO, sw.KEY_NOT_FOUND, "GET DATA knows only 00 C1")
    return s.state.chip_serial + bytes((s.state.life_state,)) + s.state.os_version


def erase(s: Session, cmd: Command) -> bytes:
    """80 0E 00 00: back to an empty card that keeps only its transport key."""
    require(s.state.life_state is not LifeState.PERSONALISED, sw.CONDITIONS_NOT_SATISFIED, "a personalised card is not erased")
    require(s.authenticated is KeyUsage.TRANSPORT, sw.SECURITY_NOT_SATISFIED, "ERASE needs EXTERNAL AUTHENTICATE with TK")
    require_p1p2(cmd.p1, cmd.p2, (0, 0))
    require_length(cmd.data, 0)
    state, write = s.state, s.journal.write
    write(state, "keys", {ref: key for ref, key in state.keys.items() if ref[1] is KeyUsage.TRANSPORT})
    write(state, "records", {})
    write(state, "binaries", {})
    write(state, "logs", {})
    write(state, "purse", Purse())
    write(state, "pin", None)
    write(state, "locked", frozenset())
    write(state, "last_purchase", None)
    write(state, "last_load", None)
    write(state, "life_state", LifeState.PERSONALISING)
    s.journal.commit()
    s.pin_verified = False
    s.store_data_block = 0
    return b""


def write_key(s: Session, cmd: Command) -> bytes:
    """80 D4 <usage> <index> 12 alg ‖ version ‖ key; the usage decides the key's DF."""
    s.require_write_access()
    try:
        usage = KeyUsage(cmd.p1)
    except ValueError:
        raise CardStatus(sw.WRONG_P1P2, f"unknown key usage {cmd.p1:02X}") from None
    require(usage is not KeyUsage.TRANSPORT, sw.WRONG_P1P2, "the transport key is the factory's")
    require_length(cmd.data, WRITE_KEY_DATA)
    alg_id, version, key = cmd.data[0], cmd.data[1], cmd.data[2:]
    require(alg_id in ALGORITHM_IDS, sw.WRONG_DATA, f"unknown algorithm id {alg_id:02X}")
    s.journal.write(s.state.keys, (KEY_DF[usage], usage, cmd.p2), KeyEntry(alg_id, version, key))
    s.journal.commit()
    return b""


def set_status(s: Session, cmd: Command) -> bytes:
    """80 F0 00 03: personalising → personalised, if every mandatory key and record is there."""
    require(s.state.life_state is LifeState.PERSONALISING, sw.CONDITIONS_NOT_SATISFIED, "the card is not being personalised")
    require(s.authenticated is KeyUsage.TRANSPORT, sw.SECURITY_NOT_SATISFIED, "SET STATUS needs EXTERNAL AUTHENTICATE with TK")
    require_p1p2(cmd.p1, cmd.p2, (0x00, LifeState.PERSONALISED))
    require_length(cmd.data, 0)
    missing = missing_for_personalised(s)
    require(not missing, sw.CONDITIONS_NOT_SATISFIED, f"personalisation incomplete: {', '.join(missing)}")
    s.journal.write(s.state, "life_state", LifeState.PERSONALISED)
    s.journal.commit()
    return b""


def missing_for_personalised(s: Session) -> list[str]:
    return _missing(s.state.keys, s.state.records, s.state.binaries)


def _missing(
    keys: Mapping[KeyRef, KeyEntry], records: Mapping[FileRef, Mapping[int, bytes]], binaries: Mapping[FileRef, bytes]
) -> list[str]:
    """What the card lacks to be personalised, given its keys, records and binaries."""
    missing = [u.name for u in MANDATORY_KEYS if (KEY_DF[u], u, CARD_KEY_INDEX) not in keys]
    for ref, tags in MANDATORY_RECORDS.items():
        present = records.get(ref, {})
        missing += [f"{ref[0]}/EF{ref[1]:02X} tag {t:02X}" for t in tags if t not in present]
    missing += [f"{df}/{sfi:04X}" for df, sfi in MANDATORY_BINARIES if (df, sfi) not in binaries]
    return missing


# --- STORE DATA ------------------------------------------------------------------------------

_CARD_KEY_USAGES = {int(u): u for u in KeyUsage if u is not KeyUsage.TRANSPORT}  # TK is the factory's


@attrs.define
class _Block:
    """What one STORE DATA block writes, gathered (and checked) before any of it is staged."""

    keys: dict[KeyRef, KeyEntry] = attrs.Factory(dict)
    records: dict[FileRef, dict[int, bytes]] = attrs.Factory(dict)
    binaries: dict[FileRef, bytes] = attrs.Factory(dict)
    pin: Pin | None = None


def store_data(s: Session, cmd: Command) -> bytes:
    """80 E2 <08|88> <block no.> DGI…: the keys, the PIN and whole files, one commit per block.

    Only while personalising, under TK, like every personalisation write. A DGI's file
    is the EF of the selected DF, and its data replace what the file held. P2 numbers
    the blocks as GlobalPlatform says: 00 for the first after ERASE or the TK's
    authentication, then one more each (6A86 for a block out of sequence, skipped or
    repeated; a refused block does not count, so it may be sent again as it was). The
    last block (P1 88) also makes the card personalised — 6985, and nothing of the
    block written, if the card would still lack something; after it no block is taken.
    """
    require(s.state.life_state is not LifeState.PERSONALISED, sw.CONDITIONS_NOT_SATISFIED,
            "a personalised card takes no STORE DATA")
    s.require_write_access()
    last = cmd.p1 & profile.STORE_DATA_LAST
    if cmd.p1 & ~profile.STORE_DATA_LAST != profile.STORE_DATA_DGI:
        raise CardStatus(sw.WRONG_P1P2, f"P1 {cmd.p1:02X}: 08 or 88 (plain DGIs) expected")
    if cmd.p2 != s.store_data_block:
        raise CardStatus(sw.WRONG_P1P2, f"STORE DATA block {cmd.p2:02X} out of sequence: "
                                        f"block {s.store_data_block:02X} expected")
    require(bool(cmd.data), sw.WRONG_LENGTH, "STORE DATA carries at least one DGI")
    block, seen = _Block(), set()
    for number, value in dgis(cmd.data):
        if number in seen:
            raise CardStatus(sw.WRONG_DATA, f"DGI {number:04X} twice in one block")
        seen.add(number)
        _take(s, block, number, value)
    if last:
        state = s.state
        missing = _missing({**state.keys, **block.keys}, {**state.records, **block.records},
                           {**state.binaries, **block.binaries})
        require(not missing, sw.CONDITIONS_NOT_SATISFIED, f"personalisation incomplete: {', '.join(missing)}")
    _stage(s, block, bool(last))
    s.journal.commit()
    s.store_data_block += 1  # past FF no P2 matches: a 257th block is refused
    if block.pin is not None:
        s.pin_verified = False
    return b""


def dgis(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(number, data) of each DGI back to back; 6700 where a header or length overruns the data."""
    i, n = 0, len(data)
    while i < n:
        if n - i < 3:
            raise CardStatus(sw.WRONG_LENGTH, f"a DGI header at offset {i} is cut short")
        number, length, i = data[i] << 8 | data[i + 1], data[i + 2], i + 3
        if length == profile.DGI_LONG_LENGTH:
            if n - i < 2:
                raise CardStatus(sw.WRONG_LENGTH, f"DGI {number:04X}: its 2-byte length is cut short")
            length, i = data[i] << 8 | data[i + 1], i + 2
        if i + length > n:
            raise CardStatus(sw.WRONG_LENGTH, f"DGI {number:04X} announces {length} bytes, {n - i} follow")
        yield number, data[i : i + length]
        i += length


def _take(s: Session, block: _Block, number: int, value: bytes) -> None:
    """Check one DGI and add what it writes to ``block``; 6A88 for a DGI the card does not know."""
    if number == profile.DGI_KEYS:
        for ref, entry in _key_entries(value):
            if ref in block.keys:
                raise CardStatus(sw.WRONG_DATA, f"DGI 8000: key {ref[1].name} {ref[2]:02X} twice")
            block.keys[ref] = entry
    elif number == profile.DGI_PIN:
        require_length(value, PIN_BYTES)
        require(value.hex().isdigit(), sw.WRONG_DATA, "DGI 8010: a PIN is 6 BCD digits")
        block.pin = Pin(value, PIN_TRIES)
    elif number & 0xFF == 0:  # 'SS00': the EF with SFI SS of the selected DF
        ref, kind, content = files.whole_file(s, number >> 8, value)
        if kind is files.Kind.TLV:
            block.records[ref] = content  # type: ignore[assignment]
        else:
            block.binaries[ref] = content  # type: ignore[assignment]
    else:
        raise CardStatus(files.DGI_NOT_FOUND, f"no DGI {number:04X} on this card")


def _key_entries(value: bytes) -> Iterator[tuple[KeyRef, KeyEntry]]:
    """DGI 8000: usage ‖ index ‖ algorithm id ‖ version ‖ key per key; the usage decides the DF."""
    size = profile.DGI_KEY_ENTRY_LEN
    if not value or len(value) % size:
        raise CardStatus(sw.WRONG_LENGTH, f"DGI 8000: {len(value)} bytes, not whole {size}-byte key entries")
    for at in range(0, len(value), size):
        usage_byte, index, alg_id, version = value[at : at + 4]
        usage = _CARD_KEY_USAGES.get(usage_byte)
        if usage is None:
            raise CardStatus(sw.WRONG_DATA, f"DGI 8000: key usage {usage_byte:02X} is not one of the issuer's keys")
        if alg_id not in ALGORITHM_IDS:
            raise CardStatus(sw.WRONG_DATA, f"DGI 8000: unknown algorithm id {alg_id:02X}")
        yield (KEY_DF[usage], usage, index), KeyEntry(alg_id, version, value[at + 4 : at + size])


def _stage(s: Session, block: _Block, personalised: bool) -> None:
    """One journal write per key, file and PIN (each a persistent write a tear can strike)."""
    state, write = s.state, s.journal.write
    for ref, entry in block.keys.items():
        write(state.keys, ref, entry)
    for ref, records in block.records.items():
        write(state.records, ref, records)
    for ref, data in block.binaries.items():
        write(state.binaries, ref, data)
    if block.pin is not None:
        write(state, "pin", block.pin)
    if personalised:
        write(state, "life_state", LifeState.PERSONALISED)

