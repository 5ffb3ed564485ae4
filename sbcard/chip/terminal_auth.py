"""How a terminal signs its requests to the host API, and how the host checks them.

Shared by both sides (``terminals.apps.http_host`` signs, ``sbcard.api.terminal_auth``
checks): it lives in the chip layer, which the terminals may import (``.importlinter``).
docs/api/terminals.md describes the scheme; in short:

- **The credential** is a 32-byte key per terminal, ``credential_key(UMK master, terminal
  number)``: the terminal's region's upload master (UMK) run through the SM3 KDF with the
  label ``CREDENTIAL_LABEL`` and the terminal number. Derived, like the upload key, so the
  region stores no copy (a stolen region database signs no terminal in), and a terminal
  made before credentials existed has one already: ``sbcard terminal credential`` loads it.
  The terminal keeps it sealed under the KEK with its PSAM's keys.
- **The MAC** is HMAC-SM3 (``cryptography``'s ``hashes.SM3``) over ``string_to_sign``:
  the scheme's name, the method, the path as sent (percent-encoded, the server's
  ``raw_path``), the canonical query (a key given twice is refused), the terminal id, the
  timestamp (Unix seconds), the nonce, the SM3 of the body and the ``Idempotency-Key``
  (empty without one), one per line. It travels
  in ``X-Sbcard-Mac`` (64 hex digits) beside ``X-Sbcard-Terminal``,
  ``X-Sbcard-Timestamp`` and ``X-Sbcard-Nonce``.
- **Freshness**: the host refuses a timestamp more than ``MAX_SKEW_SECONDS`` from its own
  clock either way, and a nonce the same terminal already used (nonces are kept for
  ``NONCE_TTL_SECONDS``, longer than the window, so a replay is refused by its nonce or by
  its age).
"""

from __future__ import annotations

import datetime as dt
import hmac
import re
import secrets
from collections.abc import Mapping
from urllib.parse import parse_qsl, quote, urlencode

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac

from sbcard.chip.crypto import Algorithm, decrypt_ecb, encrypt_ecb, kdf, sm3

SCHEME = "SBCARD-HMAC-SM3"
CREDENTIAL_LABEL = "sbcard terminal host credential v1 "
WRAP_LABEL = "sbcard upload key wrap v1"  # the upload key's wrapping keys, from the credential
KEY_LEN = 32
MAC_HEX_LEN = 64
MAX_SKEW_SECONDS = 300  # a terminal's clock may be 5 minutes off the host's, either way
NONCE_TTL_SECONDS = 2 * MAX_SKEW_SECONDS + 60  # a nonce is remembered beyond any timestamp the window takes

HEADER_TERMINAL = "X-Sbcard-Terminal"
HEADER_TIMESTAMP = "X-Sbcard-Timestamp"
HEADER_NONCE = "X-Sbcard-Nonce"
HEADER_MAC = "X-Sbcard-Mac"
HEADERS = (HEADER_TERMINAL, HEADER_TIMESTAMP, HEADER_NONCE, HEADER_MAC)

NONCE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
TIMESTAMP_PATTERN = re.compile(r"[0-9]{1,12}")
MAC_PATTERN = re.compile(r"[0-9A-Fa-f]{64}")


def credential_key(master: bytes, terminal_no: str) -> bytes:
    """The terminal's host credential: its region's UMK master, KDF'd with the label and its terminal number."""
    if len(terminal_no) != 12:
        raise ValueError("a terminal number has 12 hex digits")
    return kdf(master, CREDENTIAL_LABEL + terminal_no.upper(), KEY_LEN)


def _wrap_keys(credential: bytes) -> tuple[bytes, bytes]:
    """(SM4 key, HMAC key) for handing over the upload key: derived from the credential, never the credential."""
    keys = kdf(credential, WRAP_LABEL, 48)
    return keys[:16], keys[16:]


def _wrap_check(mac_key: bytes, terminal_id: str, algorithm: str, wrapped: bytes) -> str:
    mac = crypto_hmac.HMAC(mac_key, hashes.SM3())
    mac.update("\n".join((WRAP_LABEL, terminal_id, algorithm, wrapped.hex().upper())).encode())
    return mac.finalize().hex()


def wrap_upload_key(credential: bytes, terminal_id: str, algorithm: str, key: bytes) -> tuple[str, str]:
    """(wrapped key, check): SM4-ECB under a key derived from the credential, and HMAC-SM3 over the terminal,
    the algorithm and the wrapped key under another (the terminal takes no key the host did not send it)."""
    enc_key, mac_key = _wrap_keys(credential)
    wrapped = encrypt_ecb(Algorithm.SM4, enc_key, key)
    return wrapped.hex().upper(), _wrap_check(mac_key, terminal_id, algorithm, wrapped)


def unwrap_upload_key(credential: bytes, terminal_id: str, algorithm: str, wrapped_hex: str, check: str) -> bytes:
    """The upload key from ``wrap_upload_key``'s answer; ValueError if its check does not verify."""
    enc_key, mac_key = _wrap_keys(credential)
    wrapped = bytes.fromhex(wrapped_hex)
    if not (isinstance(check, str) and MAC_PATTERN.fullmatch(check)
            and hmac.compare_digest(_wrap_check(mac_key, terminal_id, algorithm, wrapped), check.lower())):
        raise ValueError("the wrapped upload key's check does not verify under this terminal's credential")
    return decrypt_ecb(Algorithm.SM4, enc_key, wrapped)


def canonical_query(query: str) -> str:
    """The query as signed: its pairs sorted (key, then value), each percent-encoded (RFC 3986 unreserved kept).

    ValueError for a key given twice: the host reads one value of a key, so a query with two
    could be signed over one and read as the other (``?since=1&since=0``).
    """
    pairs = sorted(parse_qsl(query, keep_blank_values=True))
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a query key is given twice")
    return urlencode(pairs, quote_via=quote, safe="-_.~")


def body_digest(body: bytes) -> str:
    """SM3 of the body's bytes exactly as sent (an empty body too), 64 hex digits."""
    return sm3(body).hex()


def string_to_sign(method: str, path: str, query: str, terminal_id: str, timestamp: str, nonce: str,
                   body: bytes, idempotency_key: str = "") -> bytes:
    lines = (SCHEME, method.upper(), path, canonical_query(query), terminal_id, timestamp, nonce, body_digest(body),
             idempotency_key)
    return "\n".join(lines).encode("utf-8")


def request_mac(key: bytes, method: str, path: str, query: str, terminal_id: str, timestamp: str, nonce: str,
                body: bytes, idempotency_key: str = "") -> str:
    """HMAC-SM3 of ``string_to_sign`` under the terminal's credential, 64 hex digits (lower case)."""
    mac = crypto_hmac.HMAC(key, hashes.SM3())
    mac.update(string_to_sign(method, path, query, terminal_id, timestamp, nonce, body, idempotency_key))
    return mac.finalize().hex()


def mac_matches(key: bytes, given: str, method: str, path: str, query: str, terminal_id: str, timestamp: str,
                nonce: str, body: bytes, idempotency_key: str = "") -> bool:
    given = given.strip()
    if not MAC_PATTERN.fullmatch(given):  # compare_digest takes ASCII text only: anything else is no MAC
        return False
    expected = request_mac(key, method, path, query, terminal_id, timestamp, nonce, body, idempotency_key)
    return hmac.compare_digest(expected, given.lower())


def unix_seconds(now: dt.datetime) -> int:
    if now.tzinfo is None:
        raise ValueError("a timestamp needs its time zone")
    return int(now.timestamp())


def sign(key: bytes, terminal_id: str, method: str, path: str, query: str, body: bytes, *, now: dt.datetime,
         nonce: str | None = None, idempotency_key: str = "") -> dict[str, str]:
    """The headers that authenticate one request of ``terminal_id`` made at ``now``."""
    nonce = nonce or secrets.token_hex(16)
    timestamp = str(unix_seconds(now))
    return {
        HEADER_TERMINAL: terminal_id,
        HEADER_TIMESTAMP: timestamp,
        HEADER_NONCE: nonce,
        HEADER_MAC: request_mac(key, method, path, query, terminal_id, timestamp, nonce, body, idempotency_key),
    }


def skew_seconds(timestamp: str, now: dt.datetime) -> int:
    """How far the request's timestamp is from ``now`` (positive: in the future)."""
    return int(timestamp) - unix_seconds(now)


def headers_of(headers: Mapping[str, str]) -> dict[str, str | None]:
    """The four headers of the scheme from a request's (case-insensitive) headers."""
    return {name: headers.get(name) for name in HEADERS}
