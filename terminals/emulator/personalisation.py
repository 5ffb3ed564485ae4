"""The card's life cycle: chip data, ERASE, WRITE KEY and SET STATUS.

blank → (ERASE under TK) → personalising → (SET STATUS, once complete) → personalised.
A torn or abandoned personalisation leaves the card ``personalising``: unusable (reads
answer 6985) and ready for the issuer to run the whole script again from ERASE.
"""

from __future__ import annotations

from sbcard.chip import profile as P
from sbcard.chip import sw as SW
from sbcard.chip.apdu import Command
from sbcard.chip.crypto import Algorithm
from sbcard.chip.profile import CARD_KEY_INDEX, KeyUsage, LifeState
from sbcard.chip.sw import CardStatus
from terminals.emulator.session import KEY_DF, Session, require, require_length, require_p1p2
from terminals.emulator.state import SSSE, TU, KeyEntry, Purse

KEY_LENGTH = 16
WRITE_KEY_DATA = 2 + KEY_LENGTH  # algorithm id ‖ version ‖ key
ALGORITHM_IDS = {alg.id_byte for alg in Algorithm}

# What SET STATUS insists on before the card may leave the factory's hands.
MANDATORY_KEYS = (KeyUsage.MAINTENANCE, KeyUsage.PURCHASE, KeyUsage.LOAD, KeyUsage.TAC)
MANDATORY_RECORDS = {(SSSE, P.SFI_EF05): P.EF05_TAGS, (SSSE, P.SFI_EF06): P.EF06_TAGS}
MANDATORY_BINARIES = ((TU, P.SFI_TU_ISSUER),)


def get_data(s: Session, cmd: Command) -> bytes:
    """80 CA 00 C1: chip serial (8) ‖ life state (1) ‖ OS version (2), in every state."""
    require((cmd.p1, cmd.p2) == P.GET_DATA_CHIP_INFO, SW.KEY_NOT_FOUND, "GET DATA knows only 00 C1")
    return s.state.chip_serial + bytes((s.state.life_state,)) + s.state.os_version


def erase(s: Session, cmd: Command) -> bytes:
    """80 0E 00 00: back to an empty card that keeps only its transport key."""
    require(s.state.life_state is not LifeState.PERSONALISED, SW.CONDITIONS_NOT_SATISFIED, "a personalised card is not erased")
    require(s.authenticated is KeyUsage.TRANSPORT, SW.SECURITY_NOT_SATISFIED, "ERASE needs EXTERNAL AUTHENTICATE with TK")
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
    return b""


def write_key(s: Session, cmd: Command) -> bytes:
    """80 D4 <usage> <index> 12 alg ‖ version ‖ key; the usage decides the key's DF."""
    s.require_write_access()
    try:
        usage = KeyUsage(cmd.p1)
    except ValueError:
        raise CardStatus(SW.WRONG_P1P2, f"unknown key usage {cmd.p1:02X}") from None
    require(usage is not KeyUsage.TRANSPORT, SW.WRONG_P1P2, "the transport key is the factory's")
    require_length(cmd.data, WRITE_KEY_DATA)
    alg_id, version, key = cmd.data[0], cmd.data[1], cmd.data[2:]
    require(alg_id in ALGORITHM_IDS, SW.WRONG_DATA, f"unknown algorithm id {alg_id:02X}")
    s.journal.write(s.state.keys, (KEY_DF[usage], usage, cmd.p2), KeyEntry(alg_id, version, key))
    s.journal.commit()
    return b""


def set_status(s: Session, cmd: Command) -> bytes:
    """80 F0 00 03: personalising → personalised, if every mandatory key and record is there."""
    require(s.state.life_state is LifeState.PERSONALISING, SW.CONDITIONS_NOT_SATISFIED, "the card is not being personalised")
    require(s.authenticated is KeyUsage.TRANSPORT, SW.SECURITY_NOT_SATISFIED, "SET STATUS needs EXTERNAL AUTHENTICATE with TK")
    require_p1p2(cmd.p1, cmd.p2, (0x00, LifeState.PERSONALISED))
    require_length(cmd.data, 0)
    missing = missing_for_personalised(s)
    require(not missing, SW.CONDITIONS_NOT_SATISFIED, f"personalisation incomplete: {', '.join(missing)}")
    s.journal.write(s.state, "life_state", LifeState.PERSONALISED)
    s.journal.commit()
    return b""


def missing_for_personalised(s: Session) -> list[str]:
    state = s.state
    missing = [u.name for u in MANDATORY_KEYS if s.key(u, CARD_KEY_INDEX) is None]
    for ref, tags in MANDATORY_RECORDS.items():
        present = state.records.get(ref, {})
        missing += [f"{ref[0]}/EF{ref[1]:02X} tag {t:02X}" for t in tags if t not in present]
    missing += [f"{df}/{sfi:04X}" for df, sfi in MANDATORY_BINARIES if (df, sfi) not in state.binaries]
    return missing

