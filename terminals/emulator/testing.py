"""Test cards and test transactions, run through the card's real commands.

``personalised_card`` makes a card the way an issuer's counter does: EXTERNAL
AUTHENTICATE with the transport key, then the issuer's own script
(``sbcard.chip.personalisation.build_script``), sent straight to the card's ``process``
so that a torn card raises ``CardTorn`` here. No back door into the card's image is
used. ``card_data`` fills in test defaults and derives the card-unique fields from the
card number. ``purchase`` and ``load`` act as the terminal, its PSAM and the host on the
far side of the purse commands. The ``start_*``/``finish_*`` halves let a test tear the
card in between and still know which MAC2 and TAC the card must prove. Every APDU is
one of the command values in ``sbcard.chip.commands``.

The keys are fixed test keys (``TEST_MASTER_KEYS``): never use them for anything else.
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import TypeVar

import attrs

from sbcard.chip import profile
from sbcard.chip import purse as formulas
from sbcard.chip.apdu import Command, Response
from sbcard.chip.codec import bcd_datetime, to_bcd
from sbcard.chip.commands import (
    ApduCommand,
    CreditForLoad,
    DebitForPurchase,
    ExternalAuthenticate,
    GetBalance,
    GetChallenge,
    GetTransactionProve,
    InitializeForLoad,
    InitializeForPurchase,
    UpdateCappDataCache,
    authentication_cryptogram,
    select_tunion,
)
from sbcard.chip.crypto import Algorithm, sm3
from sbcard.chip.keys import CardKeys, IssuerMasterKeys, card_keys, transport_key
from sbcard.chip.personalisation import CardData, build_script
from sbcard.chip.purse import CAPP_PURCHASE, EP_LOAD, EP_PURCHASE
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.citizen_id import CitizenId
from terminals.emulator.blank import create_blank
from terminals.emulator.card import VirtualCard
from terminals.emulator.faults import Faults
from terminals.emulator.session import RandomSource

R = TypeVar("R")

TEST_MASTER_KEYS = IssuerMasterKeys(
    maintenance=b"SBCARD TEST MK  ",
    purchase=b"SBCARD TEST DPK ",
    load=b"SBCARD TEST DLK ",
    tac=b"SBCARD TEST DTK ",
    app_maintenance=b"SBCARD TEST DAMK",
)
TEST_CARD_NUMBER = "188347080"
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


def run(card: VirtualCard, command: ApduCommand[R]) -> R:
    """One command value of ``sbcard.chip.commands``, sent as it is: its parsed answer."""
    return command.parse(send(card, command.command()))


def external_authenticate(card: VirtualCard, key: bytes, key_index: int, alg: Algorithm = Algorithm.SM4) -> None:
    challenge = run(card, GetChallenge())
    run(card, ExternalAuthenticate(key_index, authentication_cryptogram(alg, key, challenge)))


# --- personalisation --------------------------------------------------------------------------


def _derived(label: bytes, card_number: str, n: int = 8) -> bytes:
    return sm3(label + card_number.encode())[:n]


def chip_serial_of(card_number: str) -> bytes:
    """The chip serial a test card with this number gets unless one is given."""
    return _derived(b"chip ", card_number)


def card_data(
    card_number: str = TEST_CARD_NUMBER,
    *,
    citizen_id: str = "320223195302147992",
    name: str = "张三",
    region: str = "110000",
    issue_date: dt.date = dt.date(2024, 1, 2),
    pin: str = TEST_PIN,
    ethnicity: int = 0x01,  # 汉
    city: str = "1000",  # T-Union city code in the application serial
) -> CardData:
    """The issuer's ``CardData`` for a test card: the 卡识别码's card-unique bytes and the
    application serial's sequence derive from the card number, the rest from the holder."""
    sequence = int.from_bytes(_derived(b"purse ", card_number), "big") % 10**12
    return CardData(
        card_number=card_number,
        card_id_code=CardIdCode.make(region, _derived(b"card ", card_number)).value,
        region_code=region,
        citizen_id=citizen_id,
        name=name,
        ethnicity=ethnicity,
        birth_place=CitizenId.parse(citizen_id).region_code,
        issue_date=issue_date,
        app_serial=f"{profile.APP_SERIAL_PREFIX}{city}{sequence:012d}",
        insurance_type="employee",
        initial_pin=pin,
    )


def keys_of(card: CardData, masters: IssuerMasterKeys = TEST_MASTER_KEYS) -> CardKeys:
    """The card's keys, diversified from ``masters`` as the issuer does."""
    return card_keys(masters, card.card_unique, card.app_serial_bytes)


def personalise(card: VirtualCard, data: CardData, keys: CardKeys) -> None:
    """Run the issuer's whole script on a blank (or half-personalised) card, from power-on."""
    card.power_on()
    external_authenticate(card, transport_key(card.chip_serial), profile.TRANSPORT_KEY_INDEX)
    for command in build_script(data, keys):
        send(card, command)


def personalised_card(
    path: Path | str,
    *,
    chip_serial: bytes | None = None,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    balance_fen: int = 0,
    rng: RandomSource | None = None,
    faults: Faults | None = None,
    **fields: object,
) -> VirtualCard:
    """A new card file at ``path``, personalised through its commands, powered on.

    ``fields`` go to ``card_data``. The chip serial derives from the card number unless
    given, and the keys from ``masters``. An initial balance goes on through a real load.
    """
    data = card_data(**fields)  # type: ignore[arg-type]
    keys = keys if keys is not None else keys_of(data, masters)
    create_blank(path, chip_serial if chip_serial is not None else chip_serial_of(data.card_number))
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
    fci = run(card, select_tunion())
    if keys is not None:
        return keys
    if fci.tunion is None:
        raise ValueError("the T-Union FCI has no issuer data (9F0C): is the card personalised?")
    # A PSAM holds the purse masters only: a terminal never knows the card's MK.
    return attrs.evolve(card_keys(masters, b"", to_bcd(fci.tunion.app_serial)), maintenance=b"")


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
        return formulas.purchase_session_key(self.alg, self.keys.purchase, self.random, self.counter, terminal_serial)

    def mac1(self, terminal_serial: bytes, date_time: bytes) -> bytes:
        sk = self.session_key(terminal_serial)
        return formulas.purchase_mac1(self.alg, sk, self.amount, self.txn_type, self.terminal_no, date_time)

    def expected_prove(self, terminal_serial: bytes, when: dt.datetime) -> tuple[bytes, bytes]:
        """(MAC2, TAC) the card must give for this purchase: the PSAM's and the issuer's view."""
        mac2 = formulas.purchase_mac2(self.alg, self.session_key(terminal_serial), self.amount)
        tac = formulas.purchase_tac(
            self.alg, self.keys.tac, self.amount, self.txn_type, self.terminal_no, terminal_serial, bcd_datetime(when)
        )
        return mac2, tac


def start_purchase(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    *,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    capp_records: Mapping[int, bytes] | None = None,
    key_index: int = profile.CARD_KEY_INDEX,
) -> PurchaseInProgress:
    keys = _purse_keys(card, keys, masters)
    capp = bool(capp_records)
    init = run(card, InitializeForPurchase(key_index, amount, terminal_no, capp=capp))
    for record, content in (capp_records or {}).items():
        run(card, UpdateCappDataCache(record, profile.SFI_TU_CAPP, content))
    return PurchaseInProgress(
        keys=keys,
        txn_type=CAPP_PURCHASE if capp else EP_PURCHASE,
        amount=amount,
        terminal_no=terminal_no,
        balance=init.balance,
        counter=init.offline_counter,
        alg=init.algorithm,
        random=init.random,
    )


def finish_purchase(
    card: VirtualCard, p: PurchaseInProgress, terminal_serial: bytes = TEST_TERMINAL_SERIAL, when: dt.datetime = TEST_WHEN
) -> Receipt:
    """DEBIT FOR PURCHASE; the PSAM checks MAC2 and, standing in for the issuer, the TAC."""
    date_time = bcd_datetime(when)
    r = run(card, DebitForPurchase(terminal_serial, date_time, p.mac1(terminal_serial, date_time)))
    if (r.mac2, r.tac) != p.expected_prove(terminal_serial, when):
        raise BadCryptogram(f"purchase {p.counter}: MAC2 {r.mac2.hex()} / TAC {r.tac.hex()} do not verify")
    return Receipt(p.txn_type, p.counter, p.amount, p.balance, r.mac2, r.tac)


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
        return formulas.load_mac2(self.alg, self.session_key, self.amount, EP_LOAD, self.terminal_no, bcd_datetime(when))

    def expected_tac(self, when: dt.datetime) -> bytes:
        balance = self.balance + self.amount
        return formulas.load_tac(
            self.alg, self.keys.tac, balance, self.counter, self.amount, EP_LOAD, self.terminal_no, bcd_datetime(when)
        )


def start_load(
    card: VirtualCard,
    amount: int,
    terminal_no: bytes = TEST_TERMINAL_NO,
    *,
    keys: CardKeys | None = None,
    masters: IssuerMasterKeys = TEST_MASTER_KEYS,
    key_index: int = profile.CARD_KEY_INDEX,
) -> LoadInProgress:
    keys = _purse_keys(card, keys, masters)
    init = run(card, InitializeForLoad(key_index, amount, terminal_no))
    alg, counter = init.algorithm, init.online_counter
    sk = formulas.load_session_key(alg, keys.load, init.random, counter)
    if not hmac.compare_digest(init.mac1, formulas.load_mac1(alg, sk, init.balance, amount, EP_LOAD, terminal_no)):
        raise BadCryptogram(f"load {counter}: MAC1 {init.mac1.hex()} does not verify")
    return LoadInProgress(keys, amount, terminal_no, init.balance, counter, alg, sk)


def finish_load(card: VirtualCard, p: LoadInProgress, when: dt.datetime = TEST_WHEN) -> Receipt:
    mac2 = p.mac2(when)
    tac = run(card, CreditForLoad(bcd_datetime(when), mac2))
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
    run(card, select_tunion())
    return run(card, GetBalance())


def transaction_prove(card: VirtualCard, txn_type: int, counter: int) -> tuple[bytes, bytes]:
    """(MAC2, TAC) from GET TRANSACTION PROVE."""
    run(card, select_tunion())
    prove = run(card, GetTransactionProve(txn_type, counter))
    return prove.mac2, prove.tac
