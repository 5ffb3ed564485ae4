"""Security state: challenges, external authentication and the cardholder's PIN.

Both try counters (external authentication, 15; PIN, 3) are decremented persistently
*before* the comparison and restored to the maximum after a match, each in its own
commit: a terminal that tears the card as soon as it guessed wrong gains no extra try.
"""

from __future__ import annotations

import hmac

import attrs

from sbcard.chip import sw
from sbcard.chip.apdu import Command
from sbcard.chip.commands import authentication_cryptogram
from sbcard.chip.crypto import algorithm_from_id
from sbcard.chip.profile import (
    CARD_KEY_INDEX,
    EXT_AUTH_TRIES,
    PIN_TRIES,
    TRANSPORT_KEY_INDEX,
    KeyUsage,
    LifeState,
)
from sbcard.chip.sw import CardStatus
from terminals.emulator.image import Pin
from terminals.emulator.session import Session, require, require_length, require_p1p2

CHALLENGE_LENGTHS = (4, 8)
PIN_BYTES = 3

# EXTERNAL AUTHENTICATE's P2 names the key: 00 the transport key, 01 the maintenance key.
AUTH_KEYS = {TRANSPORT_KEY_INDEX: KeyUsage.TRANSPORT, CARD_KEY_INDEX: KeyUsage.MAINTENANCE}


def get_challenge(s: Session, cmd: Command) -> bytes:
    """00 84 00 00 08: random bytes for one EXTERNAL AUTHENTICATE or APPLICATION (UN)BLOCK."""
    require_p1p2(cmd.p1, cmd.p2, (0, 0))
    require(not cmd.data and cmd.le in CHALLENGE_LENGTHS, sw.WRONG_LENGTH, "Le must be 04 or 08")
    s.challenge = bytes(s.rng.randbytes(cmd.le))
    return s.challenge


def external_authenticate(s: Session, cmd: Command) -> bytes:
    """00 82 00 <key> Lc E(key, challenge ‖ 00…): the issuer proves it holds TK or MK."""
    require(cmd.p1 == 0, sw.WRONG_P1P2, "P1 must be 00")
    usage = AUTH_KEYS.get(cmd.p2)
    entry = s.key(usage, cmd.p2) if usage is not None else None
    if entry is None or (usage is KeyUsage.TRANSPORT and s.state.life_state is LifeState.PERSONALISED):
        raise CardStatus(sw.KEY_NOT_FOUND, f"no key {cmd.p2:02X} for EXTERNAL AUTHENTICATE")
    require(s.state.ext_auth_tries > 0, sw.AUTH_BLOCKED, "external authentication is blocked")
    s.authenticated = None
    challenge = s.take_challenge()
    alg = algorithm_from_id(entry.alg_id)
    require_length(cmd.data, alg.block)
    expected = authentication_cryptogram(alg, entry.key, challenge)
    tries = s.state.ext_auth_tries - 1
    s.journal.write(s.state, "ext_auth_tries", tries)  # spent before comparing
    s.journal.commit()
    if not hmac.compare_digest(cmd.data, expected):
        raise _tries_left(tries)
    s.journal.write(s.state, "ext_auth_tries", EXT_AUTH_TRIES)
    s.journal.commit()
    s.authenticated = usage
    s.store_data_block = 0  # a new authentication starts a new sequence of STORE DATA blocks
    return b""


def _tries_left(tries: int) -> CardStatus:
    return CardStatus(0x63C0 | tries, f"wrong, {tries} tries left")


# --- PIN -------------------------------------------------------------------------------------


def _pin(s: Session, cmd: Command) -> Pin:
    """VERIFY and CHANGE REFERENCE DATA: a personalised card, P1 P2 00 00, a PIN that is not blocked."""
    s.require_personalised()
    require_p1p2(cmd.p1, cmd.p2, (0, 0))
    pin = s.state.pin
    require(pin is not None, sw.KEY_NOT_FOUND, "no PIN on this card")
    require(pin.tries_left > 0, sw.AUTH_BLOCKED, "the PIN is blocked: RESET RETRY COUNTER under MK")
    return pin


def _bcd_pin(data: bytes) -> bytes:
    require(data.hex().isdigit(), sw.WRONG_DATA, "a PIN is 6 BCD digits")
    return data


def _store_pin(s: Session, pin: Pin) -> None:
    s.journal.write(s.state, "pin", pin)
    s.journal.commit()


def _check_pin(s: Session, pin: Pin, presented: bytes) -> None:
    """Spend a try persistently, then compare: 63Cx on a mismatch (the caller restores on a match)."""
    s.pin_verified = False
    tries = pin.tries_left - 1
    _store_pin(s, attrs.evolve(pin, tries_left=tries))
    if not hmac.compare_digest(presented, pin.value):
        raise _tries_left(tries)


def verify(s: Session, cmd: Command) -> bytes:
    """00 20 00 00 03 PIN; with no data: 63Cx, the tries left."""
    pin = _pin(s, cmd)
    if not cmd.data:
        raise _tries_left(pin.tries_left)
    require_length(cmd.data, PIN_BYTES)
    _check_pin(s, pin, _bcd_pin(cmd.data))
    _store_pin(s, attrs.evolve(pin, tries_left=PIN_TRIES))
    s.pin_verified = True
    return b""


def change_reference_data(s: Session, cmd: Command) -> bytes:
    """00 24 00 00 06 old ‖ new: the holder changes the PIN by presenting the old one."""
    pin = _pin(s, cmd)
    require_length(cmd.data, 2 * PIN_BYTES)
    old, new = _bcd_pin(cmd.data[:PIN_BYTES]), _bcd_pin(cmd.data[PIN_BYTES:])
    _check_pin(s, pin, old)
    _store_pin(s, Pin(new, PIN_TRIES))
    s.pin_verified = True
    return b""


def reset_retry_counter(s: Session, cmd: Command) -> bytes:
    """00 2C 02 00 03 new PIN: personalisation (TK) or unblocking at an outlet (MK)."""
    s.require_write_access()
    require_p1p2(cmd.p1, cmd.p2, (0x02, 0x00))
    require_length(cmd.data, PIN_BYTES)
    _store_pin(s, Pin(_bcd_pin(cmd.data), PIN_TRIES))
    s.pin_verified = False
    return b""
