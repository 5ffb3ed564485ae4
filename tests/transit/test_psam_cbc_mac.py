"""The MACs the PSAM and the card compute: the hand-chained CBC-MAC over a cached ECB
encryptor (``sbcard.chip.crypto``) equals a CBC encryption's last block, for both ciphers."""

from __future__ import annotations

import random
import threading

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from sbcard.chip import crypto
from sbcard.chip.crypto import Algorithm


def _reference_mac(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    enc = Cipher(crypto._algo(alg, key), modes.CBC(bytes(alg.block))).encryptor()
    out = enc.update(crypto.pad_m2(data, alg.block)) + enc.finalize()
    return out[-alg.block:]


@pytest.mark.parametrize("alg", list(Algorithm))
def test_cbc_mac_is_the_last_cbc_block(alg):
    rng = random.Random(alg.value)
    for n in range(0, 66):
        key, data = rng.randbytes(16), rng.randbytes(n)
        assert crypto.cbc_mac(alg, key, data, alg.block) == _reference_mac(alg, key, data)
        assert crypto.cbc_mac(alg, key, data) == _reference_mac(alg, key, data)[:4]


@pytest.mark.parametrize("alg", list(Algorithm))
def test_the_cached_ecb_encryptor_keeps_no_state_between_calls(alg):
    rng = random.Random(7)
    key = rng.randbytes(16)
    blocks = [rng.randbytes(alg.block * k) for k in (1, 3, 2, 1)]
    for data in blocks + blocks:
        fresh = Cipher(crypto._algo(alg, key), modes.ECB()).encryptor()
        assert crypto.encrypt_ecb(alg, key, data) == fresh.update(data) + fresh.finalize()


def test_threads_do_not_share_an_encryptor():
    key, data = bytes(range(16)), bytes(40)
    expected = _reference_mac(Algorithm.SM4, key, data)[:4]
    results: list[bytes] = []

    def work() -> None:
        for _ in range(300):
            results.append(crypto.cbc_mac(Algorithm.SM4, key, data))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(results) == {expected}
