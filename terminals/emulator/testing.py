"""Test cards and test transactions, run through the card's real commands.

``personalised_card`` builds a card the way an issuer's counter does — EXTERNAL
AUTHENTICATE with the transport key, ERASE, WRITE KEY, UPDATE RECORD, UPDATE BINARY,
RESET RETRY COUNTER, SET STATUS — with no back door into the card's image, so it is
also the reference the issuer's personalisation (``sbcard.chip``) can be compared with.
``purchase`` and ``load`` play the terminal with its PSAM, and the host, on the other
side of the purse commands; the ``start_*``/``finish_*`` halves let a test tear the card
in between and still know which MAC2 and TAC the card must prove.

The keys are fixed test keys (``TEST_MASTER_KEYS``); never use them for anything else.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from pathlib import Path

import attrs

from sbcard.chip import codec
from sbcard.chip import profile as P
from sbcard.chip import tlv
from sbcard.chip.apdu import Command, Response
from sbcard.chip.crypto import Algorithm, algorithm_from_id, diversify, encrypt_ecb, sm3
from sbcard.chip.keys import CardKeys, IssuerMasterKeys, card_keys, transport_key
from sbcard.chip.purse import (
    CAPP_PURCHASE,
    EP_LOAD,
    EP_PURCHASE,
    load_mac1,
    load_mac2,
    load_session_key,
    load_tac,
    purchase_mac1,
    purchase_mac2,
    purchase_session_key,
    purchase_tac,
    u32,
)
from sbcard.domain.citizen_id import CitizenId
from terminals.emulator.blank import create_blank
from terminals.emulator.card import VirtualCard
from terminals.emulator.faults import Faults
from terminals.emulator.session import RandomSource

TEST_MASTER_KEYS = IssuerMasterKeys(
    maintenance=b"SBCARD TEST MK  ",
    purchase=b"SBCARD TEST DPK ",
    load=b"SBCARD TEST DLK ",
    tac=b"SBCARD TEST DTK ",
    app_maintenance=b"SBCARD TEST DAMK",
)
TEST_PIN = "123456"
TEST_TERMINAL_NO = bytes.fromhex("110000000001")
TEST_TERMINAL_SERIAL = bytes.fromhex("00000001")
TEST_WHEN = dt.datetime(2024, 5, 1, 8, 30, 0)


class BadCryptogram(Exception):
    """A MAC or TAC from the card does not verify: the card computes it wrongly."""


# --- the exchange -----------------------------------------------------------------------------


def transmit(card: VirtualCard, command: Command) -> Response:
    return Response.from_bytes(card.process(command.to_bytes()))


def send(card: VirtualCard, command: Command) -> bytes:
    """The response data; the typed ``CardStatus`` for any status word but 9000."""
    return transmit(card, command).check()


def select(name: bytes) -> Command:
    return Command(P.CLA_ISO, P.Ins.SELECT, 0x04, 0x00, name, le=256)


def select_mf() -> Command:
    return Command(P.CLA_ISO, P.Ins.SELECT, 0x00, 0x00, bytes.fromhex("3F00"), le=256)


def external_authenticate(card: VirtualCard, key: bytes, key_index: int, alg: Algorithm = Algorithm.SM4) -> None:
    challenge = send(card, Command(P.CLA_ISO, P.Ins.GET_CHALLENGE, 0, 0, le=8))
    cryptogram = encrypt_ecb(alg, key, challenge.ljust(alg.block, b"\x00"))
    send(card, Command(P.CLA_ISO, P.Ins.EXTERNAL_AUTHENTICATE, 0, key_index, cryptogram))


# --- personalisation --------------------------------------------------------------------------


@attrs.frozen
class CardData:
    """What the issuer writes on one test card; the derived fields default from the others."""

    card_number: str = "188347080"
    citizen_id: str = "320223195302147992"
    name: str = "张三"
    region: str = "110000"  # issuing region (GB/T 2260)
    issue_date: dt.date = dt.date(2024, 1, 2)
    ethnicity: int = 0x01  # 汉
    city: str = "1000"  # T-Union city code in the application serial
    pin: str = TEST_PIN
    chip_serial: bytes = attrs.field()
    card_unique: bytes = attrs.field()  # the 卡识别码's last 8 bytes
    app_serial: bytes = attrs.field()  # 10 BCD bytes: 0310 ‖ city ‖ 12-digit sequence

    @chip_serial.default
    def _chip_serial(self) -> bytes:
        return sm3(b"chip " + self.card_number.encode())[:8]

    @card_unique.default
    def _card_unique(self) -> bytes:
        return sm3(b"card " + self.card_number.encode())[:8]

    @app_serial.default
    def _app_serial(self) -> bytes:
        sequence = int.from_bytes(sm3(b"purse " + self.card_number.encode())[:8], "big") % 10**12
        return codec.to_bcd(f"{P.APP_SERIAL_PREFIX}{self.city}{sequence:012d}")

    @property
    def expiry_date(self) -> dt.date:
        return self.issue_date.replace(year=self.issue_date.year + P.VALIDITY_YEARS)

    @property
    def card_id_code(self) -> bytes:
        return codec.to_bcd(self.region) + bytes.fromhex(P.RID_MOHRSS) + self.card_unique

    def keys(self, masters: IssuerMasterKeys = TEST_MASTER_KEYS) -> CardKeys:
        return card_keys(masters, self.card_unique, self.app_serial)

    def issuer_data(self) -> bytes:
        """T-Union EF 0015 (30 bytes), also the FCI's 9F0C."""
        return (
            codec.to_bcd(self.region)
            + bytes(5)
            + bytes((P.TU_APP_TYPE_PURSE, P.TU_APP_VERSION))
            + self.app_serial
            + codec.bcd_date(self.issue_date)
            + codec.bcd_date(self.expiry_date)
            + bytes(2)
        )


def _update_record(sfi: int, tag: int, value: bytes) -> Command:
    return Command(P.CLA_ISO, P.Ins.UPDATE_RECORD, tag, P.record_p2(sfi), tlv.encode(tag, value))


def _write_key(usage: P.KeyUsage, key: bytes, alg: Algorithm, version: int) -> Command:
    data = bytes((alg.id_byte, version)) + key
    return Command(P.CLA_PROPRIETARY, P.Ins.WRITE_KEY, usage, P.CARD_KEY_INDEX, data)


def personalisation_script(data: CardData, keys: CardKeys) -> list[Command]:
    """Every command after EXTERNAL AUTHENTICATE with the transport key, in order."""
    holder = CitizenId.parse(data.citizen_id)
    ssse = {
        P.Tag.CARD_ID_CODE: data.card_id_code,
        P.Tag.CARD_TYPE: P.CARD_TYPE_THIRD_GEN,
        P.Tag.SPEC_VERSION: P.SPEC_VERSION_3,
        P.Tag.INIT_ORG: codec.to_bcd(data.region) + bytes(9),
        P.Tag.ISSUE_DATE: codec.bcd_date(data.issue_date),
        P.Tag.EXPIRY_DATE: codec.bcd_date(data.expiry_date),
        P.Tag.CARD_NUMBER: data.card_number.encode("ascii"),
        P.Tag.CITIZEN_ID: data.citizen_id.encode("ascii"),
        P.Tag.NAME: codec.encode_name(data.name),
        P.Tag.SEX: b"1" if holder.sex == "M" else b"2",
        P.Tag.ETHNICITY: bytes((data.ethnicity,)),
        P.Tag.BIRTH_PLACE: codec.to_bcd(holder.region_code),
        P.Tag.BIRTH_DATE: codec.bcd_date(holder.birth_date),
    }
    medical = {
        P.MedicalTag.INSURED_REGION: codec.to_bcd(data.region),
        P.MedicalTag.INSURANCE_TYPE: b"1",
        P.MedicalTag.RETIRED: b"0",
        P.MedicalTag.PERSONAL_ACCOUNT: b"1",
    }
    offline = {
        P.OfflineTag.LIMIT: u32(0),
        P.OfflineTag.USED: u32(0),
        P.OfflineTag.YEAR: codec.to_bcd(f"{data.issue_date.year:04d}"),
    }
    alg, version = keys.algorithm, keys.version
    purse_keys = (
        (P.KeyUsage.PURCHASE, keys.purchase),
        (P.KeyUsage.LOAD, keys.load),
        (P.KeyUsage.TAC, keys.tac),
        (P.KeyUsage.APP_MAINTENANCE, keys.app_maintenance),
    )
    return [
        Command(P.CLA_PROPRIETARY, P.Ins.ERASE, 0, 0),
        select_mf(),
        _write_key(P.KeyUsage.MAINTENANCE, keys.maintenance, alg, version),
        Command(P.CLA_ISO, P.Ins.RESET_RETRY_COUNTER, 0x02, 0x00, codec.to_bcd(data.pin)),
        select(P.SSSE_NAME),
        *(_update_record(P.SFI_EF05 if tag in P.EF05_TAGS else P.SFI_EF06, tag, v) for tag, v in ssse.items()),
        select(P.AID_DF04),
        *(_update_record(P.SFI_EF05, tag, v) for tag, v in medical.items()),
        *(_update_record(P.SFI_EF06, tag, v) for tag, v in offline.items()),
        select(P.AID_TUNION),
        *(_write_key(usage, key, alg, version) for usage, key in purse_keys),
        Command(P.CLA_ISO, P.Ins.UPDATE_BINARY, 0x80 | P.SFI_TU_ISSUER, 0, data.issuer_data()),
        Command(P.CLA_ISO, P.Ins.UPDATE_BINARY, 0x80 | P.SFI_TU_MANAGEMENT, 0, bytes(P.TU_MANAGEMENT_LEN)),
        Command(P.CLA_PROPRIETARY, P.Ins.SET_STATUS, 0x00, P.LifeState.PERSONALISED),
    ]


def personalise(card: VirtualCard, data: CardData, keys: CardKeys) -> None:
    """Run the whole personalisation on a blank (or half-personalised) card."""
    card.power_on()
    external_authenticate(card, transport_key(card.chip_serial), P.TRANSPORT_KEY_INDEX)
    for command in personalisation_script(data, keys):
        send(card, command)


def personalised_card(
    path: Path | str,
    *,
    card_number: str = "188347080",
    citizen_id: str = "320223195302147992",
    name: str = "张三",
    region: str = "110000",
    issue_date: dt.date = dt.date(2024, 1, 2),
    pin: str = TEST_PIN,
    chip_serial: bytes | None = None,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    balance_fen: int = 0,
    rng: RandomSource | None = None,
    faults: Faults | None = None,
) -> VirtualCard:
    """A new card file at ``path``, personalised through its commands, powered on.

    The chip serial, 卡识别码 and application serial derive from the card number unless
    given; the keys from ``masters``. An initial balance is loaded by a real load.
    """
    fields = dict(card_number=card_number, citizen_id=citizen_id, name=name, region=region, issue_date=issue_date, pin=pin)
    if chip_serial is not None:
        fields["chip_serial"] = chip_serial
    data = CardData(**fields)  # type: ignore[arg-type]
    keys = keys if keys is not None else data.keys(masters)
    create_blank(path, data.chip_serial)
    card = VirtualCard.load(path, faults, rng)
    personalise(card, data, keys)
    if balance_fen:
        load(card, balance_fen, keys=keys)
    card.power_on()
    return card


# --- purchase and load, as terminal + PSAM + host ---------------------------------------------


@attrs.frozen
class Receipt:
    """A completed transaction as the terminal records it."""

    txn_type: int
    counter: int  # the transaction's counter (INITIALIZE's)
    amount: int
    balance_before: int
    mac2: bytes
    tac: bytes

    @property
    def balance_after(self) -> int:
        sign = 1 if self.txn_type == EP_LOAD else -1
        return self.balance_before + sign * self.amount


def _purse_keys(card: VirtualCard, keys: CardKeys | None, masters: IssuerMasterKeys) -> CardKeys:
    """Select T-Union; the card's keys (a PSAM derives them from the FCI's application serial)."""
    fci = send(card, select(P.AID_TUNION))
    if keys is not None:
        return keys
    issuer = tlv.find(fci, P.TAG_TU_ISSUER_DATA)
    if issuer is None:
        raise ValueError("the T-Union FCI has no issuer data (9F0C): is the card personalised?")
    app_serial = issuer.value[10:20]
    alg = masters.algorithm
    return CardKeys(
        maintenance=b"",  # a terminal never knows the card's MK
        purchase=diversify(alg, masters.purchase, app_serial),
        load=diversify(alg, masters.load, app_serial),
        tac=diversify(alg, masters.tac, app_serial),
        app_maintenance=diversify(alg, masters.app_maintenance, app_serial),
        algorithm=alg,
        version=masters.version,
    )


@attrs.frozen
class PurchaseInProgress:
    """INITIALIZE FOR PURCHASE answered; what the terminal and its PSAM know."""

    keys: CardKeys
    txn_type: int
    amount: int
    terminal_no: bytes
    balance: int
    counter: int
    alg: Algorithm
    random: bytes

    def session_key(self, terminal_serial: bytes) -> bytes:
        return purchase_session_key(self.alg, self.keys.purchase, self.random, self.counter, terminal_serial)

    def mac1(self, terminal_serial: bytes, date_time: bytes) -> bytes:
        return purchase_mac1(self.alg, self.session_key(terminal_serial), self.amount, self.txn_type, self.terminal_no, date_time)

    def expected_prove(self, terminal_serial: bytes, when: dt.datetime) -> tuple[bytes, bytes]:
        """(MAC2, TAC) the card must give for this purchase: the PSAM's and the issuer's view."""
        date_time = codec.bcd_datetime(when)
        mac2 = purchase_mac2(self.alg, self.session_key(terminal_serial), self.amount)
        tac = purchase_tac(self.alg, self.keys.tac, self.amount, self.txn_type, self.terminal_no, terminal_serial, date_time)
        return mac2, tac


def start_purchase(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    *,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    capp_records: Mapping[int, bytes] | None = None,
    key_index: int = P.CARD_KEY_INDEX,
) -> PurchaseInProgress:
    keys = _purse_keys(card, keys, masters)
    p1, txn_type = (P.INIT_CAPP_PURCHASE, CAPP_PURCHASE) if capp_records else (P.INIT_PURCHASE, EP_PURCHASE)
    data = bytes((key_index,)) + u32(amount) + terminal_no
    r = send(card, Command(P.CLA_PROPRIETARY, P.Ins.INITIALIZE, p1, P.P2_EP, data, le=0x0F))
    for record, content in (capp_records or {}).items():
        send(card, Command(P.CLA_PROPRIETARY, P.Ins.UPDATE_CAPP_DATA_CACHE, record, P.SFI_TU_CAPP << 3, content))
    return PurchaseInProgress(
        keys=keys,
        txn_type=txn_type,
        amount=amount,
        terminal_no=terminal_no,
        balance=int.from_bytes(r[0:4], "big"),
        counter=int.from_bytes(r[4:6], "big"),
        alg=algorithm_from_id(r[10]),
        random=r[11:15],
    )


def finish_purchase(
    card: VirtualCard, p: PurchaseInProgress, terminal_serial: bytes = TEST_TERMINAL_SERIAL, when: dt.datetime = TEST_WHEN
) -> Receipt:
    """DEBIT FOR PURCHASE; the PSAM checks MAC2 and, standing in for the issuer, the TAC."""
    date_time = codec.bcd_datetime(when)
    r = send(card, Command(P.CLA_PROPRIETARY, P.Ins.DEBIT_FOR_PURCHASE, 0x01, 0x00, terminal_serial + date_time + p.mac1(terminal_serial, date_time), le=8))
    tac, mac2 = r[:4], r[4:8]
    if (mac2, tac) != p.expected_prove(terminal_serial, when):
        raise BadCryptogram(f"purchase {p.counter}: MAC2 {mac2.hex()} / TAC {tac.hex()} do not verify")
    return Receipt(p.txn_type, p.counter, p.amount, p.balance, mac2, tac)


def purchase(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    terminal_serial: bytes = TEST_TERMINAL_SERIAL,
    when: dt.datetime = TEST_WHEN,
    keys: CardKeys | None = None,
    *,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    capp_records: Mapping[int, bytes] | None = None,
) -> Receipt:
    """A whole e-purse purchase (a compound one if ``capp_records`` are given)."""
    p = start_purchase(card, amount, terminal_no, keys=keys, masters=masters, capp_records=capp_records)
    return finish_purchase(card, p, terminal_serial, when)


@attrs.frozen
class LoadInProgress:
    """INITIALIZE FOR LOAD answered and its MAC1 checked by the host."""

    keys: CardKeys
    amount: int
    terminal_no: bytes
    balance: int
    counter: int
    alg: Algorithm
    session_key: bytes

    def mac2(self, when: dt.datetime) -> bytes:
        return load_mac2(self.alg, self.session_key, self.amount, EP_LOAD, self.terminal_no, codec.bcd_datetime(when))

    def expected_tac(self, when: dt.datetime) -> bytes:
        date_time = codec.bcd_datetime(when)
        return load_tac(self.alg, self.keys.tac, self.balance + self.amount, self.counter, self.amount, EP_LOAD, self.terminal_no, date_time)


def start_load(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    *,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    key_index: int = P.CARD_KEY_INDEX,
) -> LoadInProgress:
    keys = _purse_keys(card, keys, masters)
    data = bytes((key_index,)) + u32(amount) + terminal_no
    r = send(card, Command(P.CLA_PROPRIETARY, P.Ins.INITIALIZE, P.INIT_LOAD, P.P2_EP, data, le=0x10))
    balance, counter = int.from_bytes(r[0:4], "big"), int.from_bytes(r[4:6], "big")
    alg, random, mac1 = algorithm_from_id(r[7]), r[8:12], r[12:16]
    sk = load_session_key(alg, keys.load, random, counter)
    if not hmac.compare_digest(mac1, load_mac1(alg, sk, balance, amount, EP_LOAD, terminal_no)):
        raise BadCryptogram(f"load {counter}: MAC1 {mac1.hex()} does not verify")
    return LoadInProgress(keys, amount, terminal_no, balance, counter, alg, sk)


def finish_load(card: VirtualCard, p: LoadInProgress, when: dt.datetime = TEST_WHEN) -> Receipt:
    mac2 = p.mac2(when)
    tac = send(card, Command(P.CLA_PROPRIETARY, P.Ins.CREDIT_FOR_LOAD, 0, 0, codec.bcd_datetime(when) + mac2, le=4))
    if tac != p.expected_tac(when):
        raise BadCryptogram(f"load {p.counter}: TAC {tac.hex()} does not verify")
    return Receipt(EP_LOAD, p.counter, p.amount, p.balance, mac2, tac)


def load(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    when: dt.datetime = TEST_WHEN,
    keys: CardKeys | None = None,
    *,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
) -> Receipt:
    """A whole load (圈存): the host's MAC2 computed with the card's DLK."""
    return finish_load(card, start_load(card, amount, terminal_no, keys=keys, masters=masters), when)


def balance(card: VirtualCard) -> int:
    send(card, select(P.AID_TUNION))
    return int.from_bytes(send(card, Command(P.CLA_PROPRIETARY, P.Ins.GET_BALANCE, 0, P.P2_EP, le=4)), "big")


def transaction_prove(card: VirtualCard, txn_type: int, counter: int) -> tuple[bytes, bytes]:
    """(MAC2, TAC) from GET TRANSACTION PROVE."""
    send(card, select(P.AID_TUNION))
    r = send(card, Command(P.CLA_PROPRIETARY, P.Ins.GET_TRANSACTION_PROVE, 0, txn_type, counter.to_bytes(2, "big"), le=8))
    return r[:4], r[4:]
