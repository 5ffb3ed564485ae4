"""The emulated PSAM: the terminal's secure access module, in a SAM slot of the validator.

It holds, for every issuing province of the national key system, the purchase master
key (DPK master) and the application maintenance master (DAMK master), and derives one
card's keys inside from the card's serial (``sbcard.chip.keys.card_keys`` does the same
for the issuer), so the terminal application never sees a key. It keeps a persistent
terminal transaction serial: every INIT SAM FOR PURCHASE takes the next one, saved
through a ``SerialStore`` before MAC1 leaves the PSAM (a serial is never given twice; a
crash can leave a gap, never a repeat).

The PSAM speaks APDUs, like the card (``Psam`` implements the ``Reader`` port, so the
command values of ``sbcard.chip.psam`` are sent to it as to a card in a reader). Inside,
a failed check raises ``CardStatus(sw)``; ``transmit_raw`` turns it into the two status
bytes. Commands (docs/card-profile.md, "The PSAM"):

- ``00 B0 96 00 06`` READ TERMINAL NUMBER → the terminal number (6);
- ``80 70 00 00 24`` INIT SAM FOR PURCHASE → terminal serial (4) ‖ MAC1 (4); P1 ``01``
  with the serial appended (``28`` bytes) opens the session of a serial already used,
  to verify a MAC2 the card gives again by GET TRANSACTION PROVE after a tear;
- ``80 72 00 00 04`` VERIFY MAC2 → ``9000``, or ``9302`` (and the session is closed);
- ``80 7C 00 00 1D`` APPLICATION BLOCK MAC → the MAC of the card's APPLICATION BLOCK
  (a PSAM may block a blacklisted card, never unblock one);
- ``80 7E 00 00 2A`` BATCH MAC → the MAC (8) of an upload batch (terminal number ‖ record
  count ‖ digest, ``sbcard.chip.upload_batch``) under the terminal's upload key, which its
  operator's region diversified from its upload master by the terminal number. The PSAM
  MACs batches of its own terminal number only (``6985`` otherwise) and answers ``6A88``
  when it holds no upload key (a PSAM made before upload keys).

A card's issuer id (EF 0015: BCD region ‖ 00…) is looked up by its province (the first
BCD byte: 11 Beijing, 12 Tianjin, 13 Hebei), so a Hebei city's cards find Hebei's keys.
Status words: ``6A88`` no key for this issuer, ``9403`` key version or algorithm other
than the PSAM holds, ``6985`` VERIFY MAC2 without a session or INIT AGAIN for a serial
not yet used, ``6A86`` wrong P1/P2, ``6700`` wrong length, ``6D00``/``6E00`` unknown.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from typing import Protocol

import attrs

from sbcard.chip import profile
from sbcard.chip import sw as status_words
from sbcard.chip import upload_batch
from sbcard.chip.apdu import Command
from sbcard.chip.commands import ApplicationBlock
from sbcard.chip.crypto import Algorithm, cbc_mac, diversify
from sbcard.chip.purse import purchase_mac1, purchase_mac2, purchase_session_key
from sbcard.chip.sw import CardStatus

MAX_SERIAL = 0xFFFFFFFF
_OK = status_words.OK.to_bytes(2, "big")


@attrs.frozen
class PsamKeySet:
    """One issuing province's consumer keys, as the national key system loads them into PSAMs."""

    issuer_id: str  # 16 hex digits: the province's BCD code ‖ 0000000000, e.g. 1200000000000000
    purchase_master: bytes = attrs.field(repr=False)
    app_maintenance_master: bytes = attrs.field(repr=False)
    algorithm: Algorithm = Algorithm.SM4
    version: int = 1

    @property
    def province(self) -> int:
        return bytes.fromhex(self.issuer_id)[0]


@attrs.frozen
class PsamUploadKey:
    """The terminal's upload key (its operator region's UMK master diversified by the terminal number)."""

    algorithm: Algorithm
    key: bytes = attrs.field(repr=False)


def psam_upload_key(value: object | None) -> PsamUploadKey | None:
    """The PSAM's form of an upload key the host handed over (anything with ``algorithm`` and ``key``)."""
    if value is None:
        return None
    return PsamUploadKey(Algorithm(getattr(value, "algorithm")), bytes(getattr(value, "key")))


class SerialStore(Protocol):
    """Where the PSAM keeps its terminal transaction serial (its own EEPROM)."""

    def last_serial(self) -> int:
        """The last serial given out (0 before the first)."""
        ...

    def take_serial(self) -> int:
        """Persist last + 1 and return it."""
        ...


class MemorySerials:
    """A serial store in memory: for tests and tools."""

    def __init__(self, last: int = 0) -> None:
        self.last = last

    def last_serial(self) -> int:
        return self.last

    def take_serial(self) -> int:
        self.last += 1
        return self.last


@attrs.define
class _Session:
    alg: Algorithm
    session_key: bytes
    amount: int


def _require(condition: bool, sw: int, message: str | None = None) -> None:
    if not condition:
        raise CardStatus(sw, message)


class Psam:
    """One emulated PSAM, issued for ``terminal_no``, with the key sets of every issuer it serves."""

    def __init__(
        self, terminal_no: bytes, key_sets: Iterable[PsamKeySet], serials: SerialStore, *, psam_id: str = "psam",
        upload_key: PsamUploadKey | None = None,
    ) -> None:
        if len(terminal_no) != 6:
            raise ValueError("a terminal number has 6 bytes")
        self.terminal_no = bytes(terminal_no)
        self.name = f"psam:{psam_id}"
        self.psam_id = psam_id
        self._keys = {k.province: k for k in key_sets}
        self._serials = serials
        self._upload_key = upload_key
        self._session: _Session | None = None
        self._dpk_cache: dict[tuple[int, bytes], bytes] = {}
        self._commands = {
            (profile.CLA_ISO, profile.PsamIns.READ_BINARY): self._read_binary,
            (profile.CLA_PROPRIETARY, profile.PsamIns.INIT_SAM_FOR_PURCHASE): self._init_sam_for_purchase,
            (profile.CLA_PROPRIETARY, profile.PsamIns.VERIFY_MAC2): self._verify_mac2,
            (profile.CLA_PROPRIETARY, profile.PsamIns.APPLICATION_BLOCK_MAC): self._application_block_mac,
            (profile.CLA_PROPRIETARY, profile.PsamIns.BATCH_MAC): self._batch_mac,
        }

    def __repr__(self) -> str:
        return f"Psam({self.psam_id!r}, terminal {self.terminal_no.hex().upper()})"

    # --- the Reader port ------------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        return profile.PSAM_ATR_PREFIX + self.terminal_no + b"\x00\x00"

    def card_present(self) -> bool:
        return True

    def transmit_raw(self, apdu: bytes) -> bytes:
        try:
            cmd = Command.parse(bytes(apdu))
            handler = self._commands.get((cmd.cla, cmd.ins))
            if handler is None:
                known = {cla for cla, _ in self._commands}
                raise CardStatus(status_words.INS_NOT_SUPPORTED if cmd.cla in known else status_words.CLA_NOT_SUPPORTED)
            return handler(cmd) + _OK
        except CardStatus as e:
            sw = e.sw if 0x6000 <= e.sw <= 0x9FFF else status_words.NO_PRECISE_DIAGNOSIS
            return sw.to_bytes(2, "big")

    def close(self) -> None:
        self._session = None

    # --- commands -------------------------------------------------------------------------

    def _read_binary(self, cmd: Command) -> bytes:
        _require((cmd.p1, cmd.p2) == (0x80 | profile.SFI_PSAM_TERMINAL_NO, 0), status_words.WRONG_P1P2, "only the terminal number")
        _require(not cmd.data, status_words.WRONG_LENGTH)
        _require(cmd.le in (None, 6, 256), 0x6C06, "the terminal number has 6 bytes")
        return self.terminal_no

    def _key_set(self, issuer_id: bytes, key_version: int, alg_id: int) -> PsamKeySet:
        keys = self._keys.get(issuer_id[0])
        if keys is None:  # (messages are made only for a refusal: every purchase comes here)
            raise CardStatus(status_words.KEY_NOT_FOUND, f"no keys for issuer {issuer_id.hex().upper()}")
        if keys.version != key_version or keys.algorithm.id_byte != alg_id:
            raise CardStatus(status_words.KEY_INDEX_NOT_SUPPORTED,
                             f"the card's key version {key_version:02X} / algorithm {alg_id:02X} is not the PSAM's")
        return keys

    def _dpk(self, keys: PsamKeySet, card_serial: bytes) -> bytes:
        ref = (keys.province, card_serial)
        dpk = self._dpk_cache.get(ref)
        if dpk is None:
            if len(self._dpk_cache) > 4096:
                self._dpk_cache.clear()
            dpk = self._dpk_cache[ref] = diversify(keys.algorithm, keys.purchase_master, card_serial)
        return dpk

    def _init_sam_for_purchase(self, cmd: Command) -> bytes:
        self._session = None
        _require(cmd.p2 == 0 and cmd.p1 in (profile.PSAM_INIT_NEW, profile.PSAM_INIT_AGAIN), status_words.WRONG_P1P2)
        again = cmd.p1 == profile.PSAM_INIT_AGAIN
        d = cmd.data
        _require(len(d) == (40 if again else 36), status_words.WRONG_LENGTH)
        random4, counter, amount, txn_type = d[0:4], int.from_bytes(d[4:6], "big"), int.from_bytes(d[6:10], "big"), d[10]
        date_time, key_version, alg_id, card_serial, issuer_id = d[11:18], d[18], d[19], d[20:28], d[28:36]
        keys = self._key_set(issuer_id, key_version, alg_id)
        if again:
            serial = int.from_bytes(d[36:40], "big")
            _require(1 <= serial <= self._serials.last_serial(), status_words.CONDITIONS_NOT_SATISFIED, "serial not used yet")
        else:
            _require(self._serials.last_serial() < MAX_SERIAL, status_words.CONDITIONS_NOT_SATISFIED, "serials exhausted")
            serial = self._serials.take_serial()
        terminal_serial = serial.to_bytes(4, "big")
        alg = keys.algorithm
        sk = purchase_session_key(alg, self._dpk(keys, card_serial), random4, counter, terminal_serial)
        mac1 = purchase_mac1(alg, sk, amount, txn_type, self.terminal_no, date_time)
        self._session = _Session(alg, sk, amount)
        return terminal_serial + mac1

    def _verify_mac2(self, cmd: Command) -> bytes:
        _require((cmd.p1, cmd.p2) == (0, 0), status_words.WRONG_P1P2)
        _require(len(cmd.data) == 4, status_words.WRONG_LENGTH)
        session, self._session = self._session, None
        _require(session is not None, status_words.CONDITIONS_NOT_SATISFIED, "no INIT SAM FOR PURCHASE")
        assert session is not None
        expected = purchase_mac2(session.alg, session.session_key, session.amount)
        _require(hmac.compare_digest(expected, cmd.data), status_words.MAC_ERROR, "MAC2 does not verify")
        return b""

    def _application_block_mac(self, cmd: Command) -> bytes:
        _require((cmd.p1, cmd.p2) == (0, 0), status_words.WRONG_P1P2)
        d = cmd.data
        _require(len(d) == 29, status_words.WRONG_LENGTH)
        card_serial, issuer_id, challenge, header = d[0:8], d[8:16], d[16:24], d[24:29]
        _require(header == ApplicationBlock.header(), status_words.CONDITIONS_NOT_SATISFIED, "a PSAM MACs APPLICATION BLOCK only")
        keys = self._keys.get(issuer_id[0])
        _require(keys is not None, status_words.KEY_NOT_FOUND, f"no keys for issuer {issuer_id.hex().upper()}")
        assert keys is not None
        damk = diversify(keys.algorithm, keys.app_maintenance_master, card_serial)
        return cbc_mac(keys.algorithm, damk, challenge + header)

    def _batch_mac(self, cmd: Command) -> bytes:
        _require((cmd.p1, cmd.p2) == (0, 0), status_words.WRONG_P1P2)
        _require(len(cmd.data) == upload_batch.INPUT_LEN, status_words.WRONG_LENGTH)
        _require(cmd.le in (None, upload_batch.MAC_LEN, 256), status_words.WRONG_LENGTH)
        _require(cmd.data[:6] == self.terminal_no, status_words.CONDITIONS_NOT_SATISFIED, "a PSAM MACs its own terminal's batches")
        key = self._upload_key
        _require(key is not None, status_words.KEY_NOT_FOUND, "no upload key in this PSAM")
        assert key is not None
        return upload_batch.batch_mac(key.algorithm, key.key, cmd.data)
