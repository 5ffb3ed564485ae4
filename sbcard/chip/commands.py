"""The terminal's side of every APDU in the card profile, as values.

One small frozen class per APDU kind (STYLE.md, "Commands and responses as values"):
``command()`` builds the ``Command``, ``parse(data)`` turns the response data into a
frozen value, and ``send(reader)`` does both around ``sbcard.chip.reader.transmit``.
A failed status word raises the typed ``sbcard.chip.sw.CardStatus`` subclass; data
that does not fit the profile after a ``9000`` raises ``MalformedResponse``. The byte
layouts are those of docs/card-profile.md; the byte values come from
``sbcard.chip.profile``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip import tlv
from sbcard.chip.apdu import Command
from sbcard.chip.codec import bcd_date, from_bcd, parse_bcd_date, parse_bcd_datetime, to_bcd
from sbcard.chip.crypto import Algorithm, algorithm_from_id, cbc_mac, encrypt_ecb
from sbcard.chip.purse import CAPP_PURCHASE, EP_LOAD, EP_PURCHASE
from sbcard.chip.reader import Reader, transmit
from sbcard.domain.errors import InvalidInput

T = TypeVar("T")

LE_ANY = 256  # Le 00: "whatever the card has"
CHALLENGE_LEN = 8
CHIP_INFO_LEN = 11  # chip serial (8) ‖ life state (1) ‖ OS version (2)
TERMINAL_NO_LEN = 6
TERMINAL_SERIAL_LEN = 4
DATE_TIME_LEN = 7
MAC_LEN = 4
TXN_TYPE_NAMES = {EP_LOAD: "load", EP_PURCHASE: "purchase", CAPP_PURCHASE: "capp_purchase"}


class MalformedResponse(ValueError):
    """The card answered 9000 but its data does not have the profile's shape."""


def _expect_len(what: str, data: bytes, n: int) -> bytes:
    if len(data) != n:
        raise MalformedResponse(f"{what}: expected {n} bytes, got {len(data)}: {data.hex().upper()}")
    return data


def _check_len(name: str, value: bytes, n: int) -> None:
    if len(value) != n:
        raise ValueError(f"{name} must be {n} bytes, got {len(value)}")


def _u(data: bytes) -> int:
    return int.from_bytes(data, "big")


def encode_pin(pin: str, field: str = "pin") -> bytes:
    """A PIN as the card stores it: exactly 6 decimal digits, 3 BCD bytes."""
    if not isinstance(pin, str) or len(pin) != profile.PIN_DIGITS or not (pin.isascii() and pin.isdigit()):
        raise InvalidInput("pin.format", f"a PIN is {profile.PIN_DIGITS} digits 0-9", field)
    return to_bcd(pin)


class ApduCommand(Generic[T]):
    """Base of the command values: subclasses define ``command`` and, if they answer data, ``parse``."""

    __slots__ = ()

    def command(self) -> Command:
        raise NotImplementedError

    def parse(self, data: bytes) -> T:
        """Most writes answer no data; a write that does is a card bug worth seeing."""
        if data:
            raise MalformedResponse(f"{type(self).__name__}: unexpected data {data.hex().upper()}")
        return None  # type: ignore[return-value]

    def send(self, reader: Reader) -> T:
        return self.parse(transmit(reader, self.command()).check())


def run(reader: Reader, cmd: ApduCommand[T]) -> T:
    """Send one command value and return its parsed response (typed exception on failure)."""
    return cmd.send(reader)


# --------------------------------------------------------------------------- selection


@attrs.frozen
class TUnionIssuerData:
    """T-Union EF 0015, also the FCI's 9F0C: the 30 bytes a transit terminal identifies a card by."""

    issuer_id: str  # 16 hex digits: BCD region code ‖ 0000000000
    app_type: int
    version: int
    app_serial: str  # 20 digits, "0310" ‖ city ‖ sequence
    start_date: dt.date
    expiry_date: dt.date
    discretionary: bytes = bytes(2)

    @classmethod
    def parse(cls, data: bytes) -> "TUnionIssuerData":
        _expect_len("T-Union issuer data", data, profile.TU_ISSUER_LEN)
        try:
            return cls(
                issuer_id=data[0:8].hex().upper(),
                app_type=data[8],
                version=data[9],
                app_serial=from_bcd(data[10:20]),
                start_date=parse_bcd_date(data[20:24]),
                expiry_date=parse_bcd_date(data[24:28]),
                discretionary=bytes(data[28:30]),
            )
        except ValueError as e:
            raise MalformedResponse(f"T-Union issuer data {data.hex().upper()}: {e}") from None

    def to_bytes(self) -> bytes:
        out = (
            bytes.fromhex(self.issuer_id)
            + bytes((self.app_type, self.version))
            + to_bcd(self.app_serial)
            + bcd_date(self.start_date)
            + bcd_date(self.expiry_date)
            + self.discretionary
        )
        _check_len("T-Union issuer data", out, profile.TU_ISSUER_LEN)
        return out


@attrs.frozen
class Fci:
    """The File Control Information a SELECT answers: ``6F [84 name] [A5 proprietary]``."""

    df_name: bytes | None = None
    proprietary: bytes | None = None
    tunion: TUnionIssuerData | None = None

    @classmethod
    def parse(cls, data: bytes) -> "Fci":
        """The FCI in ``data``; an FCI seen lately is not decoded again (the SSSE's is the same
        on every card, a card's T-Union FCI the same at each of its taps; an Fci is frozen)."""
        key = (cls, bytes(data))
        fci = _FCI_SEEN.get(key)
        if fci is None:
            fci = cls._decode(data)
            if len(_FCI_SEEN) >= _FCI_SEEN_MAX:
                _FCI_SEEN.clear()
            _FCI_SEEN[key] = fci
        return fci

    @classmethod
    def _decode(cls, data: bytes) -> "Fci":
        if not data:
            return cls()
        try:
            items = tlv.decode(data)
            if len(items) != 1 or items[0].tag != profile.TAG_FCI:
                raise MalformedResponse(f"FCI must be one 6F template: {data.hex().upper()}")
            name = tlv.find(items, profile.TAG_DF_NAME)
            prop = tlv.find(items, profile.TAG_FCI_PROPRIETARY)
            issuer = tlv.find(items, profile.TAG_TU_ISSUER_DATA)
        except tlv.TlvError as e:
            raise MalformedResponse(f"FCI {data.hex().upper()}: {e}") from None
        return cls(
            df_name=name.value if name else None,
            proprietary=prop.value if prop else None,
            tunion=TUnionIssuerData.parse(issuer.value) if issuer else None,
        )


_FCI_SEEN: dict[tuple[type, bytes], Fci] = {}
_FCI_SEEN_MAX = 4096


@attrs.frozen
class SelectByName(ApduCommand[Fci]):
    """``00 A4 04 00 Lc name 00``: select an application (DF) by its AID or name."""

    name: bytes

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.SELECT, 0x04, 0x00, self.name, le=LE_ANY)

    def parse(self, data: bytes) -> Fci:
        return Fci.parse(data)


@attrs.frozen
class SelectMF(ApduCommand[Fci]):
    """``00 A4 00 00 02 3F00 00``: back to the master file, where the PIN and keys live."""

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.SELECT, 0x00, 0x00, profile.MF_FID, le=LE_ANY)

    def parse(self, data: bytes) -> Fci:
        return Fci.parse(data)


def select_ssse() -> SelectByName:
    return SelectByName(profile.SSSE_NAME)


def select_medical() -> SelectByName:
    return SelectByName(profile.AID_DF04)


def select_tunion() -> SelectByName:
    return SelectByName(profile.AID_TUNION)


# --------------------------------------------------------------------------- files


@attrs.frozen
class ReadRecord(ApduCommand[tlv.Tlv | bytes]):
    """``00 B2 rec (SFI<<3|4) 00``. With ``by_tag`` the record is one TLV whose tag is ``record``."""

    sfi: int
    record: int
    by_tag: bool = True

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.READ_RECORD, self.record, profile.record_p2(self.sfi), le=LE_ANY)

    def parse(self, data: bytes) -> tlv.Tlv | bytes:
        if not self.by_tag:
            return data
        try:
            items = tlv.decode(data)
        except tlv.TlvError as e:
            raise MalformedResponse(f"record {self.record:02X} of SFI {self.sfi:02X}: {e}") from None
        if len(items) != 1 or items[0].tag != self.record:
            raise MalformedResponse(
                f"record {self.record:02X} of SFI {self.sfi:02X} is not one TLV with tag {self.record:02X}: "
                f"{data.hex().upper()}"
            )
        return items[0]


@attrs.frozen
class ReadBinary(ApduCommand[bytes]):
    """``00 B0 (80|SFI) offset Le``."""

    sfi: int
    offset: int
    length: int

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.READ_BINARY, 0x80 | self.sfi, self.offset, le=self.length)

    def parse(self, data: bytes) -> bytes:
        return data


@attrs.frozen
class UpdateRecord(ApduCommand[None]):
    """``00 DC tag (SFI<<3|4) Lc TLV``: the record named by its tag is replaced by the TLV."""

    sfi: int
    record: tlv.Tlv

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.UPDATE_RECORD, self.record.tag, profile.record_p2(self.sfi), self.record.to_bytes())


@attrs.frozen
class UpdateBinary(ApduCommand[None]):
    """``00 D6 (80|SFI) offset Lc data``."""

    sfi: int
    offset: int
    data: bytes

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.UPDATE_BINARY, 0x80 | self.sfi, self.offset, self.data)


@attrs.frozen
class AppendRecord(ApduCommand[None]):
    """``00 E2 00 (SFI<<3) Lc data``: a new newest record of a cyclic file (record 1)."""

    sfi: int
    data: bytes

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.APPEND_RECORD, 0x00, self.sfi << 3, self.data)


# --------------------------------------------------------------------------- security


@attrs.frozen
class GetChallenge(ApduCommand[bytes]):
    """``00 84 00 00 08`` → 8 random bytes, valid for one authentication."""

    length: int = CHALLENGE_LEN

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.GET_CHALLENGE, 0x00, 0x00, le=self.length)

    def parse(self, data: bytes) -> bytes:
        return _expect_len("challenge", data, self.length)


@attrs.frozen
class ExternalAuthenticate(ApduCommand[None]):
    """``00 82 00 <key index> Lc cryptogram``."""

    key_index: int
    cryptogram: bytes

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.EXTERNAL_AUTHENTICATE, 0x00, self.key_index, self.cryptogram)


def authentication_cryptogram(alg: Algorithm, key: bytes, challenge: bytes) -> bytes:
    """E(key, challenge ‖ 00…00 to one block), ECB: what EXTERNAL AUTHENTICATE carries."""
    return encrypt_ecb(alg, key, challenge + bytes(-len(challenge) % alg.block))


def external_authenticate(reader: Reader, key: bytes, key_index: int, alg: Algorithm = Algorithm.SM4) -> None:
    """GET CHALLENGE, then prove knowledge of ``key``; opens the card's writes for this session.

    A wrong key costs one of the card's 15 tries (``WrongPin`` carries 63Cx's count).
    """
    challenge = GetChallenge().send(reader)
    ExternalAuthenticate(key_index, authentication_cryptogram(alg, key, challenge)).send(reader)


@attrs.frozen
class Verify(ApduCommand[None]):
    """``00 20 00 00 03 PIN``; a wrong PIN raises ``WrongPin`` (63Cx), a blocked one ``AuthenticationBlocked``."""

    pin: str = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        encode_pin(self.pin)

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.VERIFY, 0x00, 0x00, encode_pin(self.pin))


@attrs.frozen
class PinTriesLeft(ApduCommand[int]):
    """VERIFY without data asks how many tries are left; costs none."""

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.VERIFY, 0x00, 0x00)

    def send(self, reader: Reader) -> int:
        # The answer is a "failing" SW by design: 63Cx → x; 6983 → blocked. 9000 means the PIN
        # was verified in this session, and a match restores the counter, so all tries are left.
        resp = transmit(reader, self.command())
        if resp.sw & 0xFFF0 == 0x63C0:
            return resp.sw & 0x0F
        if resp.sw == sw.AUTH_BLOCKED:
            return 0
        resp.check()
        return profile.PIN_TRIES


@attrs.frozen
class ChangePin(ApduCommand[None]):
    """``00 24 00 00 06 old ‖ new`` (CHANGE REFERENCE DATA)."""

    old: str = attrs.field(repr=False)
    new: str = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        encode_pin(self.old, "old_pin")
        encode_pin(self.new, "new_pin")

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.CHANGE_REFERENCE_DATA, 0x00, 0x00, encode_pin(self.old) + encode_pin(self.new))


@attrs.frozen
class ResetRetryCounter(ApduCommand[None]):
    """``00 2C 02 00 03 new PIN``: sets the PIN and its counter to 3; needs MK (or TK while personalising)."""

    new_pin: str = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        encode_pin(self.new_pin, "new_pin")

    def command(self) -> Command:
        return Command(profile.CLA_ISO, profile.Ins.RESET_RETRY_COUNTER, 0x02, 0x00, encode_pin(self.new_pin))


# --------------------------------------------------------------------------- life cycle and keys


@attrs.frozen
class ChipInfo:
    chip_serial: bytes
    life_state: profile.LifeState
    os_version: bytes


@attrs.frozen
class GetChipInfo(ApduCommand[ChipInfo]):
    """``80 CA 00 C1 0B`` → chip serial (8) ‖ life state (1) ‖ OS version (2); works in every state."""

    def command(self) -> Command:
        p1, p2 = profile.GET_DATA_CHIP_INFO
        return Command(profile.CLA_PROPRIETARY, profile.Ins.GET_DATA, p1, p2, le=CHIP_INFO_LEN)

    def parse(self, data: bytes) -> ChipInfo:
        _expect_len("chip info", data, CHIP_INFO_LEN)
        try:
            state = profile.LifeState(data[8])
        except ValueError:
            raise MalformedResponse(f"unknown life state {data[8]:02X}") from None
        return ChipInfo(bytes(data[:8]), state, bytes(data[9:11]))


@attrs.frozen
class Erase(ApduCommand[None]):
    """``80 0E 00 00``: every key but TK, every record, the purse and the PIN cleared; → personalising."""

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.Ins.ERASE, 0x00, 0x00)


@attrs.frozen
class WriteKey(ApduCommand[None]):
    """``80 D4 usage index 12`` algorithm id ‖ version ‖ key (16)."""

    usage: profile.KeyUsage = attrs.field(converter=profile.KeyUsage)
    index: int
    alg: Algorithm
    version: int
    key: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        _check_len("key", self.key, 16)

    def command(self) -> Command:
        data = bytes((self.alg.id_byte, self.version)) + self.key
        return Command(profile.CLA_PROPRIETARY, profile.Ins.WRITE_KEY, int(self.usage), self.index, data)


@attrs.frozen
class SetStatus(ApduCommand[None]):
    """``80 F0 00 <state>``: personalising → personalised once every mandatory key and record is there."""

    state: profile.LifeState = attrs.field(default=profile.LifeState.PERSONALISED, converter=profile.LifeState)

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.Ins.SET_STATUS, 0x00, int(self.state))


def _check_dgi_number(_i: Any, _a: Any, value: Any) -> None:
    if type(value) is not int or not 0 <= value <= 0xFFFF:
        raise ValueError(f"a DGI is 2 bytes, got {value!r}")


@attrs.frozen
class Dgi:
    """One DGI of STORE DATA: number (2) ‖ length (1, or FF and 2) ‖ data, as EMV CPS lays it out."""

    number: int = attrs.field(validator=_check_dgi_number)
    data: bytes = attrs.field(repr=False)

    def __attrs_post_init__(self) -> None:
        if len(self.data) > 0xFFFF:
            raise ValueError(f"DGI {self.number:04X}: {len(self.data)} bytes do not fit a 2-byte length")

    def to_bytes(self) -> bytes:
        n = len(self.data)
        length = bytes((n,)) if n < profile.DGI_LONG_LENGTH else bytes((profile.DGI_LONG_LENGTH,)) + n.to_bytes(2, "big")
        return self.number.to_bytes(2, "big") + length + self.data


@attrs.frozen
class StoreData(ApduCommand[None]):
    """``80 E2 08|88 <block> Lc DGI…``: whole files, keys and the PIN, one block per command.

    The factory's way to personalise (GlobalPlatform STORE DATA): one command carries a
    DF's whole record set where the counter's script needs an UPDATE RECORD per record.
    The ``last`` block (P1 88) also makes the card personalised, in the same commit.
    """

    block: int
    dgis: tuple[Dgi, ...] = attrs.field(converter=tuple)
    last: bool = False

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.block <= 0xFF:
            raise ValueError(f"block number {self.block} is not one byte")
        if not self.dgis:
            raise ValueError("a STORE DATA block carries at least one DGI")

    def command(self) -> Command:
        p1 = profile.STORE_DATA_DGI | (profile.STORE_DATA_LAST if self.last else 0)
        data = b"".join(d.to_bytes() for d in self.dgis)
        return Command(profile.CLA_PROPRIETARY, profile.Ins.STORE_DATA, p1, self.block, data)


# --------------------------------------------------------------------------- e-purse


@attrs.frozen
class GetBalance(ApduCommand[int]):
    """``80 5C 00 02 04`` → balance in fen."""

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.Ins.GET_BALANCE, 0x00, profile.P2_EP, le=4)

    def parse(self, data: bytes) -> int:
        return _u(_expect_len("balance", data, 4))


@attrs.frozen
class PurchaseInit:
    """What INITIALIZE FOR (CAPP) PURCHASE tells the terminal and its PSAM."""

    balance: int
    offline_counter: int
    overdraft: int
    key_version: int
    algorithm: Algorithm
    random: bytes


def _init_data(key_index: int, amount: int, terminal_no: bytes) -> bytes:
    _check_len("terminal_no", terminal_no, TERMINAL_NO_LEN)
    if not 0 <= amount <= 0xFFFFFFFF:
        raise ValueError(f"amount {amount} does not fit 4 bytes")
    return bytes((key_index,)) + amount.to_bytes(4, "big") + terminal_no


def _algorithm(byte: int) -> Algorithm:
    try:
        return algorithm_from_id(byte)
    except ValueError as e:
        raise MalformedResponse(str(e)) from None


@attrs.frozen
class InitializeForPurchase(ApduCommand[PurchaseInit]):
    """``80 50 01|03 02 0B`` key index ‖ amount ‖ terminal no, Le 0F. ``capp`` for a compound purchase."""

    key_index: int
    amount: int
    terminal_no: bytes
    capp: bool = False

    def command(self) -> Command:
        p1 = profile.INIT_CAPP_PURCHASE if self.capp else profile.INIT_PURCHASE
        data = _init_data(self.key_index, self.amount, self.terminal_no)
        return Command(profile.CLA_PROPRIETARY, profile.Ins.INITIALIZE, p1, profile.P2_EP, data, le=15)

    def parse(self, data: bytes) -> PurchaseInit:
        _expect_len("INITIALIZE FOR PURCHASE", data, 15)
        return PurchaseInit(
            balance=_u(data[0:4]),
            offline_counter=_u(data[4:6]),
            overdraft=_u(data[6:9]),
            key_version=data[9],
            algorithm=_algorithm(data[10]),
            random=bytes(data[11:15]),
        )


@attrs.frozen
class UpdateCappDataCache(ApduCommand[None]):
    """``80 DC record (SFI<<3) 30`` 48 bytes: staged, written with the compound purchase's DEBIT."""

    record: int
    sfi: int
    data: bytes

    def __attrs_post_init__(self) -> None:
        _check_len("capp record", self.data, profile.TU_CAPP_RECORD_LEN)

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.Ins.UPDATE_CAPP_DATA_CACHE, self.record, self.sfi << 3, self.data)


@attrs.frozen
class PurchaseResult:
    tac: bytes
    mac2: bytes


@attrs.frozen
class DebitForPurchase(ApduCommand[PurchaseResult]):
    """``80 54 01 00 0F`` terminal serial ‖ date ‖ time ‖ MAC1, Le 08 → TAC ‖ MAC2 (the profile's order)."""

    terminal_serial: bytes
    date_time: bytes
    mac1: bytes

    def __attrs_post_init__(self) -> None:
        _check_len("terminal_serial", self.terminal_serial, TERMINAL_SERIAL_LEN)
        _check_len("date_time", self.date_time, DATE_TIME_LEN)
        _check_len("mac1", self.mac1, MAC_LEN)

    def command(self) -> Command:
        data = self.terminal_serial + self.date_time + self.mac1
        return Command(profile.CLA_PROPRIETARY, profile.Ins.DEBIT_FOR_PURCHASE, 0x01, 0x00, data, le=8)

    def parse(self, data: bytes) -> PurchaseResult:
        _expect_len("DEBIT FOR PURCHASE", data, 8)
        return PurchaseResult(tac=bytes(data[:4]), mac2=bytes(data[4:]))


@attrs.frozen
class LoadInit:
    balance: int
    online_counter: int
    key_version: int
    algorithm: Algorithm
    random: bytes
    mac1: bytes


@attrs.frozen
class InitializeForLoad(ApduCommand[LoadInit]):
    """``80 50 00 02 0B`` key index ‖ amount ‖ terminal no, Le 10 → balance … MAC1 for the host."""

    key_index: int
    amount: int
    terminal_no: bytes

    def command(self) -> Command:
        data = _init_data(self.key_index, self.amount, self.terminal_no)
        return Command(profile.CLA_PROPRIETARY, profile.Ins.INITIALIZE, profile.INIT_LOAD, profile.P2_EP, data, le=16)

    def parse(self, data: bytes) -> LoadInit:
        _expect_len("INITIALIZE FOR LOAD", data, 16)
        return LoadInit(
            balance=_u(data[0:4]),
            online_counter=_u(data[4:6]),
            key_version=data[6],
            algorithm=_algorithm(data[7]),
            random=bytes(data[8:12]),
            mac1=bytes(data[12:16]),
        )


@attrs.frozen
class CreditForLoad(ApduCommand[bytes]):
    """``80 52 00 00 0B`` date ‖ time ‖ MAC2, Le 04 → TAC."""

    date_time: bytes
    mac2: bytes

    def __attrs_post_init__(self) -> None:
        _check_len("date_time", self.date_time, DATE_TIME_LEN)
        _check_len("mac2", self.mac2, MAC_LEN)

    def command(self) -> Command:
        return Command(profile.CLA_PROPRIETARY, profile.Ins.CREDIT_FOR_LOAD, 0x00, 0x00, self.date_time + self.mac2, le=4)

    def parse(self, data: bytes) -> bytes:
        return bytes(_expect_len("CREDIT FOR LOAD", data, 4))


@attrs.frozen
class Prove:
    mac2: bytes
    tac: bytes


@attrs.frozen
class GetTransactionProve(ApduCommand[Prove]):
    """``80 5A 00 <type> 02 <counter>`` Le 08 → MAC2 ‖ TAC; ``MacNotAvailable`` (9406) if none."""

    txn_type: int
    counter: int

    def command(self) -> Command:
        return Command(
            profile.CLA_PROPRIETARY, profile.Ins.GET_TRANSACTION_PROVE, 0x00, self.txn_type, self.counter.to_bytes(2, "big"), le=8
        )

    def parse(self, data: bytes) -> Prove:
        _expect_len("GET TRANSACTION PROVE", data, 8)
        return Prove(mac2=bytes(data[:4]), tac=bytes(data[4:]))


class _AppLock(ApduCommand[None]):
    """APPLICATION BLOCK / UNBLOCK: the same shape, told apart by INS."""

    __slots__ = ()
    INS: ClassVar[int]
    mac: bytes

    def __attrs_post_init__(self) -> None:
        _check_len("mac", self.mac, MAC_LEN)

    @classmethod
    def header(cls) -> bytes:
        """CLA INS P1 P2 Lc: the MAC covers them, so a block MAC cannot serve as an unblock."""
        return Command(profile.CLA_SECURE, cls.INS, 0x00, 0x00, bytes(MAC_LEN)).to_bytes()[:5]

    @classmethod
    def mac_for(cls, alg: Algorithm, damk: bytes, challenge: bytes) -> bytes:
        return cbc_mac(alg, damk, challenge + cls.header())

    def command(self) -> Command:
        return Command(profile.CLA_SECURE, self.INS, 0x00, 0x00, self.mac)


@attrs.frozen
class ApplicationBlock(_AppLock):
    """``84 1E 00 00 04 MAC``: the T-Union purse answers 9303 until unblocked."""

    INS: ClassVar[int] = profile.Ins.APPLICATION_BLOCK
    mac: bytes


@attrs.frozen
class ApplicationUnblock(_AppLock):
    """``84 18 00 00 04 MAC``."""

    INS: ClassVar[int] = profile.Ins.APPLICATION_UNBLOCK
    mac: bytes


def _app_lock(reader: Reader, cls: Any, damk: bytes, alg: Algorithm) -> None:
    challenge = GetChallenge().send(reader)
    cls(cls.mac_for(alg, damk, challenge)).send(reader)


def block_application(reader: Reader, damk: bytes, alg: Algorithm = Algorithm.SM4) -> None:
    """Block the selected T-Union application: GET CHALLENGE, then the DAMK-MACed command."""
    _app_lock(reader, ApplicationBlock, damk, alg)


def unblock_application(reader: Reader, damk: bytes, alg: Algorithm = Algorithm.SM4) -> None:
    _app_lock(reader, ApplicationUnblock, damk, alg)


# --------------------------------------------------------------------------- transaction log


@attrs.frozen
class TransactionLogRecord:
    """One 23-byte record of T-Union SFI 18: what the card itself remembers of a transaction."""

    counter: int
    overdraft: int
    amount: int
    txn_type: int
    terminal_no: bytes
    at: dt.datetime

    @property
    def type_name(self) -> str:
        return TXN_TYPE_NAMES.get(self.txn_type, f"{self.txn_type:02X}")

    @classmethod
    def parse(cls, data: bytes) -> "TransactionLogRecord":
        _expect_len("transaction log record", data, profile.TU_LOG_RECORD_LEN)
        try:
            at = parse_bcd_datetime(data[16:23])
        except ValueError as e:
            raise MalformedResponse(f"transaction log record date {data[16:23].hex().upper()}: {e}") from None
        return cls(
            counter=_u(data[0:2]),
            overdraft=_u(data[2:5]),
            amount=_u(data[5:9]),
            txn_type=data[9],
            terminal_no=bytes(data[10:16]),
            at=at,
        )


def read_transaction_log(reader: Reader) -> list[TransactionLogRecord]:
    """The T-Union log, newest first. The T-Union application must be selected.

    Reading stops at the first missing record (6A83) or an all-zero (never written) one.
    """
    out: list[TransactionLogRecord] = []
    for n in range(1, profile.TU_LOG_RECORDS + 1):
        try:
            raw = ReadRecord(profile.SFI_TU_LOG, n, by_tag=False).send(reader)
        except sw.RecordNotFound:
            break
        assert isinstance(raw, bytes)
        if not any(raw):
            break
        out.append(TransactionLogRecord.parse(raw))
    return out
