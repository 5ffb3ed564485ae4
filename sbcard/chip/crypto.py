"""Block ciphers, CBC-MAC and key derivation for the card profile.

Third-generation cards use SM4 (16-byte blocks); older PBOC/JT/T cards use 3DES with the
same structure. The sources leave some SM4 details open; this project's choices (also in
docs/card-profile.md):

- MAC: CBC-MAC with a zero IV over the data padded by ISO/IEC 9797-1 method 2
  (80 00 …) to the cipher's block size; the MAC is the first 4 bytes of the last block.
- Diversification of a card key from a master key and 8 bytes of the application
  serial number (the rightmost 8 bytes): 3DES as PBOC, left = E(MK, d), right = E(MK, ~d);
  SM4 in one block, DK = E(MK, d ‖ ~d).
- Session keys from 8 bytes of input: 3DES gives a single-DES key E(K, d) (8 bytes);
  SM4 gives E(K, d ‖ 00…00) (16 bytes).
- TAC key: 3DES uses DTK-left ⊕ DTK-right (single DES); SM4 keeps the structure and uses
  (left ⊕ right) ‖ (left ⊕ right) as the 16-byte key.
"""

from __future__ import annotations

import enum
import hashlib
import threading
import warnings
from functools import lru_cache
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES


class Algorithm(enum.Enum):
    SM4 = "SM4"
    DES3 = "3DES"

    @property
    def block(self) -> int:
        return 16 if self is Algorithm.SM4 else 8

    @property
    def id_byte(self) -> int:
        """Algorithm identifier returned by INITIALIZE FOR PURCHASE/LOAD."""
        return 0x04 if self is Algorithm.SM4 else 0x00


def algorithm_from_id(value: int) -> Algorithm:
    alg = _BY_ID.get(value)
    if alg is None:
        raise ValueError(f"unknown algorithm id {value:02X}")
    return alg


_BY_ID = {alg.id_byte: alg for alg in Algorithm}  # INITIALIZE's algorithm byte → the algorithm


def _des_key(key: bytes) -> bytes:
    # 8-byte keys are single DES (K1=K2=K3); 16-byte keys are 2-key 3DES (K1 K2 K1).
    if len(key) == 8:
        return key * 3
    if len(key) == 16:
        return key + key[:8]
    if len(key) == 24:
        return key
    raise ValueError(f"3DES key of {len(key)} bytes")


@lru_cache(maxsize=4096)
def _algo(alg: Algorithm, key: bytes):
    if alg is Algorithm.SM4:
        if len(key) != 16:
            raise ValueError(f"SM4 key of {len(key)} bytes")
        return algorithms.SM4(key)
    return TripleDES(_des_key(key))


_local = threading.local()
_ECB = modes.ECB()  # a mode object holds no state: one serves every cipher
_ECB_CACHE_MAX = 1024


def _ecb(alg: Algorithm, key: bytes) -> Any:
    """A reusable ECB encryptor for ``key`` (per thread). ECB keeps no state between blocks,
    so one context serves every whole-block ``update``; making a context costs more than
    the block itself, and a purchase uses its session key four times (MAC1 made and checked,
    MAC2 made and checked)."""
    cache = getattr(_local, "ecb", None)
    if cache is None:
        cache = _local.ecb = {}
    enc = cache.get((alg, key))
    if enc is None:
        if len(cache) >= _ECB_CACHE_MAX:
            cache.clear()
        enc = cache[(alg, key)] = Cipher(_algo(alg, key), _ECB).encryptor()
    return enc


def encrypt_ecb(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    if len(data) % alg.block:
        raise ValueError(f"data of {len(data)} bytes is not a multiple of {alg.block}")
    return _ecb(alg, bytes(key)).update(data)


def decrypt_ecb(alg: Algorithm, key: bytes, data: bytes) -> bytes:
    if len(data) % alg.block:
        raise ValueError(f"data of {len(data)} bytes is not a multiple of {alg.block}")
    dec = Cipher(_algo(alg, bytes(key)), modes.ECB()).decryptor()
    return dec.update(data) + dec.finalize()


def pad_m2(data: bytes, block: int) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80, then zeros to a whole block (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % block)


def cbc_mac(alg: Algorithm, key: bytes, data: bytes, length: int = 4) -> bytes:
    """CBC-MAC, zero IV, padding method 2; the first ``length`` bytes of the last block.

    ``MacKey.mac`` under the key, its cipher kept per thread (``_ecb``): the same result as a
    CBC encryption's last block (tests/transit/test_psam_cbc_mac.py checks the two agree)."""
    key = bytes(key)  # a bytearray is a key too (and the cache's key must be hashable)
    cache = getattr(_local, "mac", None)
    if cache is None:
        cache = _local.mac = {}
    mac_key = cache.get((alg, key))
    if mac_key is None:
        if len(cache) >= _ECB_CACHE_MAX:
            cache.clear()
        mac_key = cache[(alg, key)] = MacKey(alg, key)
    return mac_key.mac(data, length)


class MacKey:
    """The CBC-MAC of the profile under one key, its cipher made once: ``cbc_mac`` is this.

    Kept by a caller that MACs much under one key — an issuer checking every TAC of one card
    (``sbcard.chip.purse.PurchaseTacKey``) — rather than looked up in ``cbc_mac``'s
    per-thread cache at every call. Chained by hand over the ECB encryptor (ECB keeps no
    state between blocks).
    """

    __slots__ = ("block", "_update")

    def __init__(self, alg: Algorithm, key: bytes) -> None:
        self.block = alg.block
        self._update = Cipher(_algo(alg, bytes(key)), _ECB).encryptor().update

    def mac(self, data: bytes, length: int = 4) -> bytes:
        block = self.block
        update = self._update
        padded = data + _PADDING[-(len(data) + 1) % block]  # method 2: 80, then zeros to a whole block
        chain = update(padded[:block])  # the first block: XOR with the zero IV changes nothing
        for i in range(block, len(padded), block):
            chain = update((int.from_bytes(chain, "big") ^ int.from_bytes(padded[i : i + block], "big"))
                           .to_bytes(block, "big"))
        return chain[:length]


_PADDING = [b"\x80" + bytes(n) for n in range(16)]  # padding method 2 by the zeros it needs


def _invert(data: bytes) -> bytes:
    return bytes(b ^ 0xFF for b in data)


def diversify(alg: Algorithm, master_key: bytes, data: bytes) -> bytes:
    """A card key from the master key and the rightmost 8 bytes of ``data``."""
    d = bytes(data)[-8:].rjust(8, b"\x00")
    if alg is Algorithm.SM4:
        return encrypt_ecb(alg, master_key, d + _invert(d))
    return encrypt_ecb(alg, master_key, d) + encrypt_ecb(alg, master_key, _invert(d))


class Diversifier:
    """``diversify`` of many card keys from one master key, its cipher made once (an issuer's batch)."""

    __slots__ = ("_sm4", "_update")

    def __init__(self, alg: Algorithm, master_key: bytes) -> None:
        self._sm4 = alg is Algorithm.SM4
        self._update = Cipher(_algo(alg, bytes(master_key)), _ECB).encryptor().update

    def key(self, data: bytes) -> bytes:
        """The card key of the rightmost 8 bytes of ``data`` (``diversify``'s)."""
        d = bytes(data)[-8:].rjust(8, b"\x00")
        if self._sm4:
            return self._update(d + _invert(d))
        return self._update(d) + self._update(_invert(d))


def session_key(alg: Algorithm, key: bytes, data8: bytes) -> bytes:
    if len(data8) != 8:
        raise ValueError("session key input must be 8 bytes")
    if alg is Algorithm.SM4:
        return encrypt_ecb(alg, key, data8 + bytes(8))
    return encrypt_ecb(alg, key, data8)


def tac_key(alg: Algorithm, dtk: bytes) -> bytes:
    half = len(dtk) // 2
    folded = bytes(a ^ b for a, b in zip(dtk[:half], dtk[half:]))
    return folded + folded if alg is Algorithm.SM4 else folded


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def kdf(secret: bytes, label: str, length: int = 16) -> bytes:
    """Derive a key from a secret and a label (SM3 in counter mode); for test key sets."""
    out = b""
    counter = 1
    while len(out) < length:
        out += sm3(counter.to_bytes(4, "big") + secret + label.encode())
        counter += 1
    return out[:length]


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()
