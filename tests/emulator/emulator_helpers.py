"""Helpers for the emulated card's tests: APDUs as hex, responses as ``Response``."""

from __future__ import annotations

from sbcard.chip import profile
from sbcard.chip.apdu import Response
from terminals.emulator.card import VirtualCard

SELECT_MF = "00A40000023F00"
SELECT_SSSE = "00A404000F" + profile.SSSE_NAME.hex()
SELECT_DF04 = "00A4040006" + profile.AID_DF04.hex()
SELECT_TU = "00A4040008" + profile.AID_TUNION.hex()
TERMINAL_NO = "110000000001"

BLANK_SERIAL = bytes.fromhex("5342000000000001")
TEMPLATE_BALANCE = 10_000  # fen on the template card


def run(card: VirtualCard, apdu: str) -> Response:
    """Send an APDU written as hex (spaces allowed); the parsed response."""
    return Response.from_bytes(card.process(bytes.fromhex(apdu.replace(" ", ""))))


def sw(card: VirtualCard, apdu: str) -> int:
    return run(card, apdu).sw


def ok(card: VirtualCard, apdu: str) -> bytes:
    r = run(card, apdu)
    assert r.sw == 0x9000, f"{apdu} -> {r.sw:04X}"
    return r.data
