"""The emulated PSAM's APDUs, against the formulas and against a real (emulated) card."""

from __future__ import annotations

import random

import pytest

from sbcard.chip import profile
from sbcard.chip import purse as formulas
from sbcard.chip import sw as status_words
from sbcard.chip.codec import bcd_datetime
from sbcard.chip.commands import ApplicationBlock, ApplicationUnblock, DebitForPurchase, GetChallenge, select_tunion
from sbcard.chip.crypto import Algorithm, diversify
from sbcard.chip.psam import ApplicationBlockMac, InitSamForPurchase, ReadTerminalNumber, VerifyMac2, card_serial
from sbcard.chip.purse import EP_PURCHASE
from terminals.emulator import testing
from terminals.psam import MemorySerials, Psam, PsamKeySet

TERMINAL_NO = bytes.fromhex("110000000042")
KEYS = testing.TEST_MASTER_KEYS


def _psam(serial: int = 0, *, purchase: bytes = KEYS.purchase, version: int = 1) -> Psam:
    sets = [PsamKeySet(f"{p}00000000000000", purchase, KEYS.app_maintenance, Algorithm.SM4, version)
            for p in ("11", "12", "13")]
    return Psam(TERMINAL_NO, sets, MemorySerials(serial), psam_id="test")


def _raw(psam: Psam, hex_apdu: str) -> str:
    return psam.transmit_raw(bytes.fromhex(hex_apdu.replace(" ", ""))).hex().upper()


@pytest.fixture
def card(tmp_path):
    c = testing.personalised_card(tmp_path / "c.card", balance_fen=1000, rng=random.Random(3))
    yield c
    c.close()


def _init(card, psam, amount=120, **kw):
    p = testing.start_purchase(card, amount, TERMINAL_NO)
    data = testing.card_data()
    when = bcd_datetime(testing.TEST_WHEN)
    sam = InitSamForPurchase(p.random, p.counter, amount, p.txn_type, when, 1, Algorithm.SM4.id_byte,
                             card_serial(data.app_serial), bytes.fromhex("1100000000000000"), **kw).send(psam)
    return p, sam, when


def test_read_terminal_number():
    psam = _psam()
    assert ReadTerminalNumber().command().to_bytes().hex().upper() == "00B0960006"
    assert ReadTerminalNumber().send(psam) == TERMINAL_NO
    assert _raw(psam, "00B0970006") == "6A86"


def test_init_sam_takes_the_next_serial_and_its_mac1_opens_the_card(card):
    psam = _psam(serial=41)
    p, sam, when = _init(card, psam)
    assert sam.serial == 42 and psam._serials.last_serial() == 42
    assert InitSamForPurchase(bytes(4), 0, 1, 6, bytes(7), 1, 4, bytes(8), bytes(8)).command().to_bytes()[:5] == \
        bytes.fromhex("8070000024")
    assert sam.mac1 == p.mac1(sam.terminal_serial, when)  # the formulas' MAC1, without the card's key
    result = testing.run(card, DebitForPurchase(sam.terminal_serial, when, sam.mac1))
    VerifyMac2(result.mac2).send(psam)  # the card is genuine
    assert testing.balance(card) == 880


def test_verify_mac2_refuses_a_wrong_mac_and_needs_a_session(card):
    psam = _psam()
    p, sam, when = _init(card, psam)
    with pytest.raises(status_words.MacError):
        VerifyMac2(b"\x00\x01\x02\x03").send(psam)
    with pytest.raises(status_words.ConditionsNotSatisfied):  # the session ended with the failure
        VerifyMac2(b"\x00\x01\x02\x03").send(psam)


def test_init_again_reopens_a_used_serial_only(card):
    psam = _psam()
    p, sam, when = _init(card, psam)
    result = testing.run(card, DebitForPurchase(sam.terminal_serial, when, sam.mac1))
    again = InitSamForPurchase(p.random, p.counter, 120, EP_PURCHASE, when, 1, 4, card_serial(testing.card_data().app_serial),
                               bytes.fromhex("1100000000000000"), again=sam.terminal_serial)
    assert again.command().to_bytes()[:5] == bytes.fromhex("8070010028")
    assert again.send(psam) == sam and psam._serials.last_serial() == 1  # no new serial
    VerifyMac2(result.mac2).send(psam)
    unused = InitSamForPurchase(p.random, p.counter, 120, EP_PURCHASE, when, 1, 4, bytes(8), bytes.fromhex(
        "1100000000000000"), again=(5).to_bytes(4, "big"))
    with pytest.raises(status_words.ConditionsNotSatisfied):
        unused.send(psam)


def test_the_psam_finds_every_region_by_province_and_refuses_others():
    psam = _psam()
    common = dict(random=bytes(4), counter=0, amount=1, txn_type=6, date_time=bcd_datetime(testing.TEST_WHEN),
                  key_version=1, algorithm_id=4, card_serial=bytes(8))
    for issuer in ("1100000000000000", "1201000000000000", "1310000000000000"):
        InitSamForPurchase(issuer_id=bytes.fromhex(issuer), **common).send(psam)
    with pytest.raises(status_words.CardStatus) as e:
        InitSamForPurchase(issuer_id=bytes.fromhex("3100000000000000"), **common).send(psam)  # Shanghai
    assert e.value.sw == status_words.KEY_NOT_FOUND
    with pytest.raises(status_words.CardStatus) as e:
        InitSamForPurchase(issuer_id=bytes.fromhex("1100000000000000"), **{**common, "key_version": 2}).send(psam)
    assert e.value.sw == status_words.KEY_INDEX_NOT_SUPPORTED
    assert psam._serials.last_serial() == 3  # refused commands take no serial


@pytest.mark.parametrize(
    ("apdu", "sw"),
    [
        ("80700000230000", "6700"),  # INIT SAM with 35 bytes
        ("8070020024" + "00" * 36, "6A86"),
        ("80720000030000AA", "6700"),
        ("807C00001C" + "00" * 28, "6700"),
        ("80990000", "6D00"),
        ("A0B0960006", "6E00"),
        ("80", "6700"),
    ],
)
def test_malformed_psam_commands(apdu, sw):
    assert _raw(_psam(), apdu) == sw


def test_the_psam_blocks_a_card_and_never_unblocks_one(card):
    psam = _psam()
    data = testing.card_data()
    testing.run(card, select_tunion())
    challenge = testing.run(card, GetChallenge())
    mac = ApplicationBlockMac(card_serial(data.app_serial), bytes.fromhex("1100000000000000"), challenge).send(psam)
    testing.run(card, ApplicationBlock(mac))
    assert "TU" in card.state.locked
    with pytest.raises(status_words.ApplicationLocked):
        testing.balance(card)
    challenge = testing.run(card, GetChallenge())
    unblock = ApplicationBlockMac(card_serial(data.app_serial), bytes.fromhex("1100000000000000"), challenge,
                                  header=ApplicationUnblock.header())
    with pytest.raises(status_words.ConditionsNotSatisfied):
        unblock.send(psam)


def test_a_psam_with_other_keys_cannot_make_a_mac1_the_card_takes(card):
    psam = _psam(purchase=b"NOT THE DPK KEY!")
    p, sam, when = _init(card, psam)
    with pytest.raises(status_words.MacError):
        testing.run(card, DebitForPurchase(sam.terminal_serial, when, sam.mac1))
    assert testing.balance(card) == 1000


def test_the_psam_derives_the_cards_purchase_key_as_the_issuer_does():
    data = testing.card_data()
    assert diversify(Algorithm.SM4, KEYS.purchase, card_serial(data.app_serial)) == testing.keys_of(data).purchase
    sk = formulas.purchase_session_key(Algorithm.SM4, testing.keys_of(data).purchase, bytes(4), 0, bytes(4))
    assert len(sk) == 16 and profile.PSAM_INIT_AGAIN == 1
