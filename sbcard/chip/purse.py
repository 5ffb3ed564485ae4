"""The e-purse's cryptograms, computed the same way by the card, the PSAM and the issuer.

Formulas from CARD-PROFILE (PBOC / JT/T 978 structure). All amounts are 4-byte
big-endian fen, counters 2 bytes, terminal numbers 6 bytes, terminal serials 4 bytes,
date 4 bytes BCD (YYYYMMDD) and time 3 bytes BCD (hhmmss); ``date_time`` is the 7 bytes.
"""

from __future__ import annotations

import hmac

from sbcard.chip.crypto import Algorithm, MacKey, cbc_mac, session_key, tac_key

EP_LOAD = 0x02
EP_PURCHASE = 0x06
CAPP_PURCHASE = 0x09


_BYTE = [bytes((i,)) for i in range(256)]  # one byte as bytes, made once


def u32(value: int) -> bytes:
    return value.to_bytes(4, "big")


def u16(value: int) -> bytes:
    return value.to_bytes(2, "big")


def purchase_session_key(alg: Algorithm, dpk: bytes, random4: bytes, offline_counter: int, terminal_serial: bytes) -> bytes:
    return session_key(alg, dpk, random4 + u16(offline_counter) + terminal_serial[-2:])


def purchase_mac1(alg: Algorithm, sk: bytes, amount: int, txn_type: int, terminal_no: bytes, date_time: bytes) -> bytes:
    return cbc_mac(alg, sk, u32(amount) + bytes((txn_type,)) + terminal_no + date_time)


def purchase_mac2(alg: Algorithm, sk: bytes, amount: int) -> bytes:
    return cbc_mac(alg, sk, u32(amount))


def purchase_tac_input(amount: int, txn_type: int, terminal_no: bytes, terminal_serial: bytes,
                       date_time: bytes) -> bytes:
    """What a purchase's TAC is the MAC of: amount (4) ‖ type (1) ‖ terminal no (6) ‖ serial (4) ‖ date-time (7)."""
    return amount.to_bytes(4, "big") + _BYTE[txn_type] + terminal_no + terminal_serial + date_time


def purchase_tac(
    alg: Algorithm, dtk: bytes, amount: int, txn_type: int, terminal_no: bytes, terminal_serial: bytes, date_time: bytes
) -> bytes:
    """The TAC the card gives a purchase (under its DTK's TAC key); ``PurchaseTacKey`` for many of one card."""
    data = purchase_tac_input(amount, txn_type, terminal_no, terminal_serial, date_time)
    return cbc_mac(alg, tac_key(alg, dtk), data)


class PurchaseTacKey:
    """One card's purchase TACs, as ``purchase_tac`` computes them, its TAC key folded and its cipher made once.

    What the card's issuer checks an uploaded purchase with (``sbcard.services.transit``):
    the same input (``purchase_tac_input``) and the same CBC-MAC (``crypto.MacKey``) as the
    card's, kept for every record of the card — 1,000,000 records clear in seconds.
    """

    __slots__ = ("_mac",)

    def __init__(self, alg: Algorithm, dtk: bytes) -> None:
        self._mac = MacKey(alg, tac_key(alg, dtk))

    def tac(self, amount: int, txn_type: int, terminal_no: bytes, terminal_serial: int, date_time: bytes) -> bytes:
        """The purchase's TAC (4 bytes); ``terminal_serial`` as a number."""
        return self._mac.mac(purchase_tac_input(amount, txn_type, terminal_no, terminal_serial.to_bytes(4, "big"),
                                                date_time))

    def verify(self, tac: bytes, amount: int, txn_type: int, terminal_no: bytes, terminal_serial: int,
               date_time: bytes) -> bool:
        """Whether ``tac`` is this card's TAC of that purchase."""
        return hmac.compare_digest(tac, self.tac(amount, txn_type, terminal_no, terminal_serial, date_time))


def load_session_key(alg: Algorithm, dlk: bytes, random4: bytes, online_counter: int) -> bytes:
    return session_key(alg, dlk, random4 + u16(online_counter) + b"\x80\x00")


def load_mac1(alg: Algorithm, sk: bytes, old_balance: int, amount: int, txn_type: int, terminal_no: bytes) -> bytes:
    return cbc_mac(alg, sk, u32(old_balance) + u32(amount) + bytes((txn_type,)) + terminal_no)


def load_mac2(alg: Algorithm, sk: bytes, amount: int, txn_type: int, terminal_no: bytes, date_time: bytes) -> bytes:
    return cbc_mac(alg, sk, u32(amount) + bytes((txn_type,)) + terminal_no + date_time)


def load_tac(
    alg: Algorithm,
    dtk: bytes,
    new_balance: int,
    online_counter: int,
    amount: int,
    txn_type: int,
    terminal_no: bytes,
    date_time: bytes,
) -> bytes:
    data = u32(new_balance) + u16(online_counter) + u32(amount) + bytes((txn_type,)) + terminal_no + date_time
    return cbc_mac(alg, tac_key(alg, dtk), data)
