"""The e-purse cryptograms: the card, the PSAM and the issuer compute the same values.

The card holds keys diversified onto it; the PSAM and the issuer hold the masters and
diversify by the application serial themselves. They must agree, and every input a
MAC covers must change it.
"""

from __future__ import annotations

import pytest

from sbcard.chip import purse
from sbcard.chip.crypto import Algorithm, diversify, kdf
from sbcard.chip.keys import IssuerMasterKeys, card_keys

H = bytes.fromhex
APP_SERIAL = H("03101000000000000042")
CARD_UNIQUE = H("AD932A48BDC3B9E9")


def masters(alg: Algorithm) -> IssuerMasterKeys:
    k = lambda label: kdf(b"test-region", label)  # noqa: E731
    return IssuerMasterKeys(k("mk"), k("dpk"), k("dlk"), k("dtk"), k("damk"), algorithm=alg)


PURCHASE = dict(
    random4=H("A1B2C3D4"),
    offline_counter=5,
    terminal_serial=H("00000102"),
    amount=300,
    txn_type=purse.EP_PURCHASE,
    terminal_no=H("110000000001"),
    date_time=H("20250109070503"),
)


def purchase_values(alg, dpk, dtk, random4, offline_counter, terminal_serial, amount, txn_type, terminal_no, date_time):
    sk = purse.purchase_session_key(alg, dpk, random4, offline_counter, terminal_serial)
    return (
        purse.purchase_mac1(alg, sk, amount, txn_type, terminal_no, date_time),
        purse.purchase_mac2(alg, sk, amount),
        purse.purchase_tac(alg, dtk, amount, txn_type, terminal_no, terminal_serial, date_time),
    )


@pytest.mark.parametrize("alg", list(Algorithm))
def test_card_psam_and_issuer_agree_on_a_purchase(alg):
    m = masters(alg)
    card = card_keys(m, CARD_UNIQUE, APP_SERIAL)
    on_card = purchase_values(alg, card.purchase, card.tac, **PURCHASE)
    psam_dpk = diversify(alg, m.purchase, APP_SERIAL)  # the PSAM derives DPK inside
    issuer_dtk = diversify(alg, m.tac, APP_SERIAL)  # clearing checks the TAC with the issuer's master
    assert purchase_values(alg, psam_dpk, issuer_dtk, **PURCHASE) == on_card
    assert all(len(v) == 4 for v in on_card)


@pytest.mark.parametrize("alg", list(Algorithm))
@pytest.mark.parametrize(
    "field, other",
    [
        ("random4", H("A1B2C3D5")),
        ("offline_counter", 6),
        ("terminal_serial", H("00000103")),
        ("amount", 301),
        ("txn_type", purse.CAPP_PURCHASE),
        ("terminal_no", H("110000000002")),
        ("date_time", H("20250109070504")),
    ],
)
def test_any_changed_purchase_input_changes_what_it_covers(alg, field, other):
    keys = card_keys(masters(alg), CARD_UNIQUE, APP_SERIAL)
    mac1, mac2, tac = purchase_values(alg, keys.purchase, keys.tac, **PURCHASE)
    mac1b, mac2b, tacb = purchase_values(alg, keys.purchase, keys.tac, **(PURCHASE | {field: other}))
    # Session-key inputs change all three MACs; MAC1 covers every field; the TAC every field but random and counter.
    assert mac1b != mac1
    if field in ("random4", "offline_counter", "terminal_serial", "amount"):
        assert mac2b != mac2
    if field not in ("random4", "offline_counter"):
        assert tacb != tac


def test_only_the_low_two_bytes_of_the_terminal_serial_enter_the_session_key():
    alg, dpk = Algorithm.SM4, H("00" * 16)
    a = purse.purchase_session_key(alg, dpk, H("01020304"), 1, H("AAAA0102"))
    assert a == purse.purchase_session_key(alg, dpk, H("01020304"), 1, H("BBBB0102"))


LOAD = dict(
    random4=H("0F0E0D0C"),
    online_counter=2,
    old_balance=1000,
    amount=5000,
    txn_type=purse.EP_LOAD,
    terminal_no=H("110000000009"),
    date_time=H("20250109120000"),
)


def load_values(alg, dlk, dtk, random4, online_counter, old_balance, amount, txn_type, terminal_no, date_time):
    sk = purse.load_session_key(alg, dlk, random4, online_counter)
    return (
        purse.load_mac1(alg, sk, old_balance, amount, txn_type, terminal_no),
        purse.load_mac2(alg, sk, amount, txn_type, terminal_no, date_time),
        purse.load_tac(alg, dtk, old_balance + amount, online_counter, amount, txn_type, terminal_no, date_time),
    )


@pytest.mark.parametrize("alg", list(Algorithm))
def test_card_and_load_host_agree_on_a_load(alg):
    m = masters(alg)
    card = card_keys(m, CARD_UNIQUE, APP_SERIAL)
    host = load_values(alg, diversify(alg, m.load, APP_SERIAL), diversify(alg, m.tac, APP_SERIAL), **LOAD)
    assert load_values(alg, card.load, card.tac, **LOAD) == host


@pytest.mark.parametrize("alg", list(Algorithm))
@pytest.mark.parametrize("field", ["random4", "online_counter", "old_balance", "amount", "terminal_no", "date_time"])
def test_any_changed_load_input_changes_the_load_cryptograms(alg, field):
    keys = card_keys(masters(alg), CARD_UNIQUE, APP_SERIAL)
    bump = {
        "random4": H("0F0E0D0D"),
        "online_counter": 3,
        "old_balance": 1001,
        "amount": 5001,
        "terminal_no": H("110000000008"),
        "date_time": H("20250109120001"),
    }
    before = load_values(alg, keys.load, keys.tac, **LOAD)
    after = load_values(alg, keys.load, keys.tac, **(LOAD | {field: bump[field]}))
    covered = {
        "random4": (0, 1),
        "online_counter": (0, 1, 2),
        "old_balance": (0, 2),
        "amount": (0, 1, 2),
        "terminal_no": (0, 1, 2),
        "date_time": (1, 2),
    }[field]
    for i in covered:
        assert after[i] != before[i], ("mac1", "mac2", "tac")[i]


def test_another_cards_keys_give_other_macs():
    alg = Algorithm.SM4
    m = masters(alg)
    ours = card_keys(m, CARD_UNIQUE, APP_SERIAL)
    theirs = card_keys(m, CARD_UNIQUE, H("03101000000000000043"))
    assert purchase_values(alg, ours.purchase, ours.tac, **PURCHASE) != purchase_values(
        alg, theirs.purchase, theirs.tac, **PURCHASE
    )
