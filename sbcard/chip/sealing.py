"""Key material sealed under the key-encryption key (KEK): how keys rest on disk.

Used by each region's key store (``sbcard/store/keystore.py``) and by a terminal's PSAM
keys (``terminals/apps/terminal_state.py``), so that no key is ever in clear in a database.
The cipher is AES-256-SIV (RFC 5297, ``cryptography``'s AEAD made for key wrapping): its
64-byte key is drawn from the KEK with HKDF-SHA256; it takes no nonce and is
deterministic, so a seeded world is reproducible byte for byte and no nonce can repeat.
The associated data names what is sealed (whose key, which purpose): a sealed value moved
to another place does not open.

The KEK, 32 bytes written as 64 hex digits, is taken from ``SBCARD_KEK`` (the hex), or
``SBCARD_KEK_FILE`` (a file holding it), or else ``SIMULATION_KEK`` — a fixed key published
here, **for simulation only**. A KEK that is malformed, given twice, or that does not open
what it should is bad input (``InvalidInput``, exit 2).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import os
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sbcard.domain.errors import InvalidInput

ENV_KEK = "SBCARD_KEK"
ENV_KEK_FILE = "SBCARD_KEK_FILE"
KEK_LENGTH = 32
SIV_KEY_LENGTH = 64  # AES-256-SIV: two 256-bit keys
# For simulation only: published here, so it protects nothing but a world's casual reader.
SIMULATION_KEK = hashlib.sha256(b"sbcard simulation-only key-encryption key").digest()
SIMULATION = "simulation-default"
GIVEN = "given"
PREFIX = "siv1:"  # a sealed value as text: PREFIX + base64


def kek(environ: Mapping[str, str] | None = None) -> tuple[bytes, str]:
    """The KEK to use and where it came from (``given`` or ``simulation-default``).

    Read once per process for each setting of the two variables (a KEK file is read once)."""
    env = os.environ if environ is None else environ
    return _kek(env.get(ENV_KEK), env.get(ENV_KEK_FILE))


def kek_field() -> str:
    """The variable a KEK error names: the one the KEK was taken from."""
    return ENV_KEK_FILE if os.environ.get(ENV_KEK_FILE) else ENV_KEK


@functools.lru_cache(maxsize=8)
def _kek(text: str | None, file: str | None) -> tuple[bytes, str]:
    if text and file:
        raise InvalidInput("keys.kek_twice", f"give the key-encryption key once: {ENV_KEK} or {ENV_KEK_FILE}, "
                           "not both", ENV_KEK)
    field = ENV_KEK
    if file:
        field = ENV_KEK_FILE
        try:
            text = Path(file).read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise InvalidInput("keys.kek_unreadable", f"cannot read the key-encryption key file {file}: "
                               f"{getattr(e, 'strerror', None) or e}", ENV_KEK_FILE) from None
    if not text:
        return SIMULATION_KEK, SIMULATION
    try:
        value = bytes.fromhex(text.strip())
    except ValueError:
        value = b""
    if len(value) != KEK_LENGTH:
        raise InvalidInput("keys.kek_malformed", f"the key-encryption key must be {KEK_LENGTH} bytes written as "
                           f"{2 * KEK_LENGTH} hex digits", field)
    return value, GIVEN


@functools.lru_cache(maxsize=8)
def cipher(kek_value: bytes) -> AESSIV:
    """The AES-256-SIV cipher of a KEK: its 64-byte key drawn from the KEK with HKDF-SHA256."""
    key = HKDF(algorithm=hashes.SHA256(), length=SIV_KEY_LENGTH, salt=None,
               info=b"sbcard keystore AES-SIV").derive(kek_value)
    return AESSIV(key)


def seal(plain: bytes, context: bytes) -> str:
    """``plain`` sealed under the KEK in force, bound to ``context``, as text (``siv1:…``)."""
    return PREFIX + base64.b64encode(cipher(kek()[0]).encrypt(plain, [context])).decode("ascii")


def unseal(text: str, context: bytes, *, what: str) -> bytes:
    """The bytes ``seal`` sealed; a KEK that does not open them is bad input naming ``what``."""
    try:
        sealed = base64.b64decode(text.removeprefix(PREFIX), validate=True)
        return cipher(kek()[0]).decrypt(sealed, [context])
    except (InvalidTag, ValueError):
        raise InvalidInput("keys.wrong_kek", f"the key-encryption key does not open {what}: it is not the key it "
                           "was sealed under, or the value was altered", kek_field()) from None


def is_sealed(text: str) -> bool:
    return text.startswith(PREFIX)
