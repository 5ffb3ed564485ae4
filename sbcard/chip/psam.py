"""The terminal's side of the PSAM's APDUs, as values (the PSAM itself: ``terminals/psam.py``).

A transit validator holds a PSAM (the terminal's secure access module) in a SAM slot.
The PSAM knows the purchase master keys of every issuer (the national key system's
consumer keys) and derives each card's purchase key inside, so the terminal never sees
a card key. Layouts in docs/card-profile.md, "The PSAM"; byte values in
``sbcard.chip.profile``.

| command | APDU | data | response |
|---|---|---|---|
| READ TERMINAL NUMBER | ``00 B0 96 00 06`` | — | terminal number (6) |
| INIT SAM FOR PURCHASE | ``80 70 00 00 24`` | random (4) ‖ counter (2) ‖ amount (4) ‖ type (1) ‖ date time (7) ‖ key version (1) ‖ algorithm id (1) ‖ card serial (8) ‖ issuer id (8) | terminal serial (4) ‖ MAC1 (4) |
| INIT SAM FOR PURCHASE, again | ``80 70 01 00 28`` | the same ‖ terminal serial (4) | the same, for a serial already used |
| VERIFY MAC2 | ``80 72 00 00 04`` | MAC2 (4) | ``9000`` or ``9302`` |
| APPLICATION BLOCK MAC | ``80 7C 00 00 1D`` | card serial (8) ‖ issuer id (8) ‖ challenge (8) ‖ header (5) | MAC (4) |
| BATCH MAC | ``80 7E 00 00 2A`` | terminal number (6) ‖ record count (4) ‖ batch digest (32) | MAC (8) under the upload key |
"""

from __future__ import annotations

import attrs

from sbcard.chip import profile
from sbcard.chip.apdu import Command
from sbcard.chip import upload_batch
from sbcard.chip.codec import to_bcd
from sbcard.chip.commands import (
    MAC_LEN,
    TERMINAL_NO_LEN,
    TERMINAL_SERIAL_LEN,
    ApduCommand,
    ApplicationBlock,
    MalformedResponse,
)

CARD_SERIAL_LEN = 8
ISSUER_ID_LEN = 8
CHALLENGE_LEN = 8
INIT_SAM_LEN = 36  # 0x24
INIT_SAM_AGAIN_LEN = INIT_SAM_LEN + TERMINAL_SERIAL_LEN
BLOCK_MAC_LEN = CARD_SERIAL_LEN + ISSUER_ID_LEN + CHALLENGE_LEN + 5


def card_serial(app_serial: str) -> bytes:
    """The 8 bytes a PSAM diversifies a card's keys by: the application serial's rightmost 8 (BCD)."""
    return to_bcd(app_serial)[-CARD_SERIAL_LEN:]


def _check(name: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise ValueError(f"{name} must be {n} bytes, got {len(value)}")


@attrs.frozen
class ReadTerminalNumber(ApduCommand[bytes]):
    """``00 B0 96 00 06`` → the terminal number the PSAM was issued for."""

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.PsamIns.READ_BINARY, 0x80 | profile.SFI_PSAM_TERMINAL_NO, 0x00, le=TERMINAL_NO_LEN)

    def parse(self, data: bytes) -> bytes:
        if len(data) != TERMINAL_NO_LEN:
            raise MalformedResponse(f"terminal number: {data.hex().upper()}")
        return bytes(data)


@attrs.frozen
class SamPurchase:
    terminal_serial: bytes
    mac1: bytes

    @property
    def serial(self) -> int:
        return int.from_bytes(self.terminal_serial, "big")


@attrs.frozen
class InitSamForPurchase(ApduCommand[SamPurchase]):
    """``80 70 00 00 24``: the PSAM takes the next terminal serial and computes MAC1.

    With ``again`` (a serial already used) it opens the same session again without a new
    serial: how a validator verifies the MAC2 of a purchase it completes after a tear.
    """

    random: bytes
    counter: int
    amount: int
    txn_type: int
    date_time: bytes
    key_version: int
    algorithm_id: int
    card_serial: bytes
    issuer_id: bytes
    again: bytes | None = None  # the terminal serial of the earlier session

    def __attrs_post_init__(self) -> None:
        _check("random", self.random, 4)
        _check("date_time", self.date_time, 7)
        _check("card_serial", self.card_serial, CARD_SERIAL_LEN)
        _check("issuer_id", self.issuer_id, ISSUER_ID_LEN)
        if self.again is not None:
            _check("terminal serial", self.again, TERMINAL_SERIAL_LEN)

    def command(self) -> Command:
        data = (
            self.random
            + self.counter.to_bytes(2, "big")
            + self.amount.to_bytes(4, "big")
            + bytes((self.txn_type,))
            + self.date_time
            + bytes((self.key_version, self.algorithm_id))
            + self.card_serial
            + self.issuer_id
        )
        p1 = profile.PSAM_INIT_NEW
        if self.again is not None:
            data, p1 = data + self.again, profile.PSAM_INIT_AGAIN
        return Command(profile.CLA_PROPRIETARY, profile.PsamIns.INIT_SAM_FOR_PURCHASE, p1, 0x00, data, le=8)

    def parse(self, data: bytes) -> SamPurchase:
        if len(data) != TERMINAL_SERIAL_LEN + MAC_LEN:
            raise MalformedResponse(f"INIT SAM FOR PURCHASE: {data.hex().upper()}")
        return SamPurchase(bytes(data[:4]), bytes(data[4:]))


@attrs.frozen
class VerifyMac2(ApduCommand[None]):
    """``80 72 00 00 04 MAC2``: ``9000`` when the card's MAC2 is right, ``9302`` (``MacError``) if not."""

    mac2: bytes

    def __attrs_post_init__(self) -> None:
        _check("mac2", self.mac2, MAC_LEN)

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.PsamIns.VERIFY_MAC2, 0x00, 0x00, self.mac2)


@attrs.frozen
class ApplicationBlockMac(ApduCommand[bytes]):
    """``80 7C 00 00 1D``: the MAC of APPLICATION BLOCK for one card, under its DAMK.

    A terminal's PSAM blocks blacklisted cards; it MACs the block command only (its header
    is part of the data and checked), never an unblock: that stays with the issuer.
    """

    card_serial: bytes
    issuer_id: bytes
    challenge: bytes
    header: bytes = attrs.field(factory=ApplicationBlock.header)

    def __attrs_post_init__(self) -> None:
        _check("card_serial", self.card_serial, CARD_SERIAL_LEN)
        _check("issuer_id", self.issuer_id, ISSUER_ID_LEN)
        _check("challenge", self.challenge, CHALLENGE_LEN)
        _check("header", self.header, 5)

    def command(self) -> Command:
        data = self.card_serial + self.issuer_id + self.challenge + self.header
        return Command(profile.CLA_PROPRIETARY, profile.PsamIns.APPLICATION_BLOCK_MAC, 0x00, 0x00, data, le=MAC_LEN)

    def parse(self, data: bytes) -> bytes:
        if len(data) != MAC_LEN:
            raise MalformedResponse(f"APPLICATION BLOCK MAC: {data.hex().upper()}")
        return bytes(data)


@attrs.frozen
class BatchMac(ApduCommand[bytes]):
    """``80 7E 00 00 2A``: the MAC of an upload batch under the terminal's upload key.

    The data is ``upload_batch.batch_mac_input``: the PSAM answers only for its own
    terminal number, so a log can be sent as this terminal's only through this PSAM.
    """

    terminal_no: bytes
    count: int
    digest: bytes

    def command(self) -> Command:
        data = upload_batch.batch_mac_input(self.terminal_no, self.count, self.digest)
        return Command(profile.CLA_PROPRIETARY, profile.PsamIns.BATCH_MAC, 0x00, 0x00, data, le=upload_batch.MAC_LEN)

    def parse(self, data: bytes) -> bytes:
        if len(data) != upload_batch.MAC_LEN:
            raise MalformedResponse(f"BATCH MAC: {data.hex().upper()}")
        return bytes(data)


__all__ = [
    "ApplicationBlockMac",
    "BatchMac",
    "InitSamForPurchase",
    "ReadTerminalNumber",
    "SamPurchase",
    "VerifyMac2",
    "card_serial",
]
