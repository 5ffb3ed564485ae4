"""Known-answer tests for the ciphers, and the project's documented SM4 choices (crypto.py)."""

from __future__ import annotations

import pytest

from sbcard.chip import crypto
from sbcard.chip.crypto import Algorithm

H = bytes.fromhex
SM4, DES3 = Algorithm.SM4, Algorithm.DES3


def xor(a: bytes, b: bytes) -> bytes:
    return bytes(x ^ y for x, y in zip(a, b))


def inv(a: bytes) -> bytes:
    return bytes(x ^ 0xFF for x in a)


# ------------------------------------------------------------------ known answers


def test_sm4_gbt_32907_example():
    key = plaintext = H("0123456789ABCDEFFEDCBA9876543210")
    ciphertext = H("681EDF34D206965E86B3E94F536E4246")
    assert crypto.encrypt_ecb(SM4, key, plaintext) == ciphertext
    assert crypto.decrypt_ecb(SM4, key, ciphertext) == plaintext


@pytest.mark.parametrize(
    "key, plaintext, ciphertext",
    [
        ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),  # FIPS 46 worked example
        ("0123456789ABCDEF", "4E6F772069732074", "3FA40E8A984D4815"),  # "Now is t"
    ],
)
def test_des_known_answers_through_the_3des_path(key, plaintext, ciphertext):
    # An 8-byte key is single DES (K1 = K2 = K3), as PBOC session keys are.
    assert crypto.encrypt_ecb(DES3, H(key), H(plaintext)) == H(ciphertext)
    # A 2-key 3DES key whose halves are equal degenerates to the same single DES.
    assert crypto.encrypt_ecb(DES3, H(key) * 2, H(plaintext)) == H(ciphertext)


def test_two_key_3des_is_encrypt_decrypt_encrypt():
    k1, k2, block = H("0123456789ABCDEF"), H("FEDCBA9876543210"), H("1122334455667788")
    ede = crypto.encrypt_ecb(DES3, k1, crypto.decrypt_ecb(DES3, k2, crypto.encrypt_ecb(DES3, k1, block)))
    assert crypto.encrypt_ecb(DES3, k1 + k2, block) == ede


@pytest.mark.parametrize("alg, key", [(SM4, bytes(8)), (DES3, bytes(12))])
def test_keys_of_the_wrong_length_are_refused(alg, key):
    with pytest.raises(ValueError):
        crypto.encrypt_ecb(alg, key, bytes(alg.block))


def test_ecb_refuses_partial_blocks():
    with pytest.raises(ValueError):
        crypto.encrypt_ecb(SM4, bytes(16), bytes(15))


# ------------------------------------------------------------------ padding and MAC


@pytest.mark.parametrize(
    "length, block, padded",
    [(0, 16, 16), (15, 16, 16), (16, 16, 32), (17, 16, 32), (8, 8, 16), (7, 8, 8)],
)
def test_padding_method_2_always_adds_80_and_a_block_when_aligned(length, block, padded):
    data = b"\x11" * length
    out = crypto.pad_m2(data, block)
    assert len(out) == padded
    assert out[:length] == data and out[length] == 0x80 and not any(out[length + 1 :])


@pytest.mark.parametrize("alg", [SM4, DES3])
@pytest.mark.parametrize("length", [0, 4, 8, 16, 23])
def test_cbc_mac_is_the_first_bytes_of_a_zero_iv_cbc_chain(alg, length):
    key = H("0123456789ABCDEFFEDCBA9876543210")
    data = bytes(range(length))
    chain = bytes(alg.block)
    padded = crypto.pad_m2(data, alg.block)
    for i in range(0, len(padded), alg.block):
        chain = crypto.encrypt_ecb(alg, key, xor(chain, padded[i : i + alg.block]))
    assert crypto.cbc_mac(alg, key, data) == chain[:4]
    assert crypto.cbc_mac(alg, key, data, length=8) == chain[:8]


# ------------------------------------------------------------------ diversification, session and TAC keys

MASTER = H("00112233445566778899AABBCCDDEEFF")
SERIAL = H("03101000000000000001")  # a 10-byte application serial


def test_sm4_diversification_is_one_block_of_d_and_not_d():
    d = SERIAL[-8:]
    assert crypto.diversify(SM4, MASTER, SERIAL) == crypto.encrypt_ecb(SM4, MASTER, d + inv(d))


def test_3des_diversification_is_pboc_left_and_right_halves():
    d = SERIAL[-8:]
    expected = crypto.encrypt_ecb(DES3, MASTER, d) + crypto.encrypt_ecb(DES3, MASTER, inv(d))
    assert crypto.diversify(DES3, MASTER, SERIAL) == expected


@pytest.mark.parametrize("alg", [SM4, DES3])
def test_diversification_gives_a_16_byte_key_that_depends_only_on_the_rightmost_8_bytes(alg):
    key = crypto.diversify(alg, MASTER, SERIAL)
    assert len(key) == 16
    assert crypto.diversify(alg, MASTER, SERIAL) == key  # deterministic
    assert crypto.diversify(alg, MASTER, H("9999") + SERIAL[-8:]) == key
    assert crypto.diversify(alg, MASTER, SERIAL[:-1] + b"\x02") != key
    assert crypto.diversify(alg, MASTER[::-1], SERIAL) != key


def test_short_diversification_data_is_left_padded_with_zeros():
    assert crypto.diversify(SM4, MASTER, H("0102")) == crypto.diversify(SM4, MASTER, H("0000000000000102"))


def test_session_keys():
    key, d = MASTER, H("A1B2C3D4" "0005" "0102")
    assert crypto.session_key(SM4, key, d) == crypto.encrypt_ecb(SM4, key, d + bytes(8))
    assert crypto.session_key(DES3, key, d) == crypto.encrypt_ecb(DES3, key, d)
    assert len(crypto.session_key(DES3, key, d)) == 8
    with pytest.raises(ValueError):
        crypto.session_key(SM4, key, d[:7])


def test_tac_key_folds_the_halves_of_dtk():
    dtk = H("0102030405060708" "F0E0D0C0B0A09080")
    folded = xor(dtk[:8], dtk[8:])
    assert crypto.tac_key(DES3, dtk) == folded
    assert crypto.tac_key(SM4, dtk) == folded + folded


def test_algorithm_ids_are_those_initialize_answers():
    assert (SM4.id_byte, DES3.id_byte) == (0x04, 0x00)
    assert (SM4.block, DES3.block) == (16, 8)
    assert crypto.algorithm_from_id(0x04) is SM4 and crypto.algorithm_from_id(0x00) is DES3
    with pytest.raises(ValueError):
        crypto.algorithm_from_id(0x99)
