"""A region's key store: its master keys, sealed in a file beside its database.

The keys never sit in clear in a region's database (where ``datasette`` or ``sqlite-utils``
would show them to anyone who may read it): ``<home>/<node>.keys`` holds them, sealed with
AES-SIV (RFC 5297, ``cryptography``'s AEAD made for key wrapping) under a key derived by
HKDF-SHA256 from the key-encryption key (KEK). The file is a small JSON document: a header
(format, node, region code, which KEK sealed it) that is authenticated as the associated
data, and the sealed list of keys (``purpose``, ``algorithm``, ``key_version``, ``key_hex``,
``created_at``). AES-SIV needs no nonce and is deterministic: the same keys under the same
KEK make the same file, so a seeded world is reproducible byte for byte, and no nonce can
ever repeat.

The KEK (``sbcard/chip/sealing.py``), 32 bytes written as 64 hex digits, is taken from:

- ``SBCARD_KEK`` (the hex itself), or
- ``SBCARD_KEK_FILE`` (a file holding the hex; keep it readable only by the service);
- neither: ``SIMULATION_KEK``, a fixed key published in sbcard's source, **for
  simulation only** — anyone with sbcard can open a key store sealed under it.

A KEK that is malformed, given twice, or that does not open the store is refused as bad
input (``InvalidInput``, exit 2, field ``SBCARD_KEK``/``SBCARD_KEK_FILE``); a store that is
missing or damaged is an error of the world (``SbcardError``, exit 3). Files are replaced
atomically (written beside, fsynced, renamed), so a crash leaves the old store or the new.
"""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag

from sbcard.chip.sealing import (  # noqa: F401 - the KEK's names, for whoever imports them from here
    ENV_KEK,
    ENV_KEK_FILE,
    GIVEN,
    SIMULATION,
    SIMULATION_KEK,
    cipher,
    kek,
    kek_field,
)
from sbcard.domain.errors import InvalidInput, SbcardError

FORMAT = "sbcard-keystore/1"
SUFFIX = ".keys"

Row = dict[str, Any]  # one key: purpose, algorithm, key_version, key_hex, created_at

# (path, inode, size, mtime_ns, KEK) -> the rows the file held: a store is opened once per
# process and version of the file, then each use costs one stat.
_OPENED: dict[tuple[str, int, int, int, bytes], dict[str, Row]] = {}
_OPENED_KEPT = 64


def keystore_path(home: str | os.PathLike[str], node: str) -> Path:
    """Where a region's key store lives: beside its database, ``<home>/<node>.keys``."""
    return Path(home) / f"{node}{SUFFIX}"


def read_keys(path: Path, *, node: str, region_code: str) -> Mapping[str, Row]:
    """purpose -> key row, from the store at ``path``; {} when there is no store yet (read-only: shared)."""
    key, source = kek()
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise SbcardError("keys.unreadable", f"cannot read key store {path}: {e.strerror}") from None
    cache_key = (str(path), st.st_ino, st.st_size, st.st_mtime_ns, key)
    rows = _OPENED.get(cache_key)
    if rows is None:
        rows = _unseal(path, key, source, node=node, region_code=region_code)
        if len(_OPENED) >= _OPENED_KEPT:
            _OPENED.clear()
        _OPENED[cache_key] = rows
    return rows


def add_keys(path: Path, new: Iterable[Row], *, node: str, region_code: str) -> None:
    """Seal ``new`` keys into the store (made if absent); a purpose it holds already is never replaced."""
    current = read_keys(path, node=node, region_code=region_code)
    added = {row["purpose"]: dict(row) for row in new}
    clash = sorted(p for p in added if p in current and current[p]["key_hex"] != added[p]["key_hex"])
    if clash:
        raise SbcardError("keys.conflict", f"key store {path} already holds other {', '.join(clash)} keys: "
                          "an existing key is never replaced")
    merged = {**added, **current}
    if merged == current:
        return
    key, source = kek()
    header = {"format": FORMAT, "node": node, "region_code": region_code, "kek": source}
    plain = json.dumps([merged[p] for p in sorted(merged)], sort_keys=True).encode("utf-8")
    sealed = cipher(key).encrypt(plain, [_aad(header)])
    document = {**header, "sealed": _b64(sealed)}
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _unseal(path: Path, key: bytes, source: str, *, node: str, region_code: str) -> dict[str, Row]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        header = {name: document[name] for name in ("format", "node", "region_code", "kek")}
        sealed = base64.b64decode(document["sealed"], validate=True)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SbcardError("keys.damaged", f"key store {path} is not a readable sbcard key store ({e})") from None
    if header["format"] != FORMAT:
        raise SbcardError("keys.damaged", f"key store {path} has format {header['format']!r}, expected {FORMAT}")
    if (header["node"], header["region_code"]) != (node, region_code):
        raise SbcardError("keys.wrong_region", f"key store {path} belongs to {header['node']} "
                          f"({header['region_code']}), not {node} ({region_code})")
    try:
        plain = cipher(key).decrypt(sealed, [_aad(header)])
    except (InvalidTag, ValueError):
        if header["kek"] == SIMULATION and source == GIVEN:
            hint = f"it was sealed under the simulation default: unset {ENV_KEK} and {ENV_KEK_FILE}"
        elif header["kek"] == GIVEN and source == SIMULATION:
            hint = f"it was sealed under a key-encryption key of your own: set {ENV_KEK} or {ENV_KEK_FILE}"
        else:
            hint = "the key is not the one it was sealed under, or the file was altered"
        raise InvalidInput("keys.wrong_kek", f"the key-encryption key does not open key store {path}: {hint}",
                           kek_field()) from None
    return {row["purpose"]: row for row in json.loads(plain)}


def _aad(header: Mapping[str, str]) -> bytes:
    return json.dumps(dict(header), sort_keys=True).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
