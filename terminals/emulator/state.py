"""The card's persistent image (its EEPROM) as plain data, and the file that holds it.

Everything the card remembers across power cycles is here; what lasts one power-on
session (selected DF, authentication, a pending purse transaction) is in ``session``.
Values inside the image are immutable (bytes, tuples, frozen records; a file's record
map is replaced whole, never changed in place) and every persistent write replaces one
of them (``journal``), so the journal can undo a commit whose save failed and nothing
aliases between the old and the new state.

The file is JSON, one object::

    {"format": "sbcard-virtual-card", "version": 1,
     "chip_serial": "0102030405060708", "life_state": "personalised", "os_version": "0301",
     "ext_auth_tries": 15,
     "keys": {"MF/01/01": {"alg": 4, "version": 1, "key": "<32 hex>"}, ...},   # DF/usage/index
     "records": {"SSSE/05": {"01": "<value hex>", ...}, "TU/1A": {"01": ...}},  # DF/SFI: tag or no.
     "binaries": {"TU/15": "<hex>"},
     "logs": {"TU/18": ["<newest>", ...], "DF04/08": [...]},                  # cyclic, newest first
     "purse": {"balance": 0, "offline_counter": 0, "online_counter": 0,
               "overdraft_limit": 0, "max_balance": 100000},
     "pin": {"value": "123456", "tries_left": 3} | null,                        # BCD as hex
     "locked": ["TU"],
     "last_purchase": {"type": 6, "counter": 0, "mac2": "..", "tac": ".."} | null,
     "last_load": ... | null}

Saving is atomic: the image is written to a temporary file beside the card's file,
flushed and moved over it with ``os.replace``, so a reader of the file sees the old
image or the new one, never half of each. There is no ``fsync`` by default: the file
stands for the chip's EEPROM, and what we guard against is the *process* dying (a
killed simulator, a torn card) — after ``os.replace`` the new image is in the kernel
and survives that. Pass ``durable=True`` to survive a machine crash as well.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip.crypto import algorithm_from_id
from sbcard.chip.profile import (
    EXT_AUTH_TRIES,
    MAX_BALANCE_FEN,
    OS_VERSION,
    PIN_TRIES,
    KeyUsage,
    LifeState,
)

FORMAT = "sbcard-virtual-card"
VERSION = 1
CARD_FILE_SUFFIX = ".card"  # a virtual card's file: world/cards/<card number>.card

# The card's directories by the names the image uses.
MF = "MF"
SSSE = "SSSE"
TU = "TU"  # the T-Union (交通一卡通) application
DF_NAMES = (MF, SSSE, "DF01", "DF02", "DF03", "DF04", "DF05", TU)

LIFE_STATE_NAMES = {
    LifeState.BLANK: "blank",
    LifeState.PERSONALISING: "personalising",
    LifeState.PERSONALISED: "personalised",
}
_LIFE_STATE_BY_NAME = {name: state for state, name in LIFE_STATE_NAMES.items()}

KeyRef = tuple[str, KeyUsage, int]  # (DF, usage, index)
FileRef = tuple[str, int]  # (DF, SFI)


@attrs.frozen
class KeyEntry:
    alg_id: int
    version: int
    key: bytes


@attrs.frozen
class Purse:
    """The e-purse: balance and counters in fen / transactions, big-endian on the card."""

    balance: int = 0
    offline_counter: int = 0  # purchases
    online_counter: int = 0  # loads
    overdraft_limit: int = 0
    max_balance: int = MAX_BALANCE_FEN


@attrs.frozen
class Pin:
    value: bytes  # 3 BCD bytes
    tries_left: int = PIN_TRIES


@attrs.frozen
class Prove:
    """What GET TRANSACTION PROVE answers for one committed transaction."""

    txn_type: int
    counter: int  # the transaction's counter (the value INITIALIZE returned)
    mac2: bytes
    tac: bytes


@attrs.define
class CardState:
    """The card's EEPROM. Containers are replaced value by value through the journal."""

    chip_serial: bytes
    life_state: LifeState = LifeState.BLANK
    os_version: bytes = OS_VERSION
    ext_auth_tries: int = EXT_AUTH_TRIES
    keys: dict[KeyRef, KeyEntry] = attrs.Factory(dict)
    records: dict[FileRef, dict[int, bytes]] = attrs.Factory(dict)  # TLV by tag, others by number
    binaries: dict[FileRef, bytes] = attrs.Factory(dict)
    logs: dict[FileRef, tuple[bytes, ...]] = attrs.Factory(dict)  # cyclic files, newest first
    purse: Purse = Purse()
    pin: Pin | None = None
    locked: frozenset[str] = frozenset()  # applications blocked by APPLICATION BLOCK
    last_purchase: Prove | None = None
    last_load: Prove | None = None


# --- (de)serialisation -------------------------------------------------------------------


def _file_id(ref: FileRef) -> str:
    return f"{ref[0]}/{ref[1]:02X}"


def _prove_to_json(prove: Prove | None) -> dict[str, Any] | None:
    if prove is None:
        return None
    return {"type": prove.txn_type, "counter": prove.counter, "mac2": prove.mac2.hex(), "tac": prove.tac.hex()}


def to_json(state: CardState) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": VERSION,
        "chip_serial": state.chip_serial.hex(),
        "life_state": LIFE_STATE_NAMES[state.life_state],
        "os_version": state.os_version.hex(),
        "ext_auth_tries": state.ext_auth_tries,
        "keys": {
            f"{df}/{usage:02X}/{index:02X}": {"alg": e.alg_id, "version": e.version, "key": e.key.hex()}
            for (df, usage, index), e in state.keys.items()
        },
        "records": {
            _file_id(ref): {f"{n:02X}": value.hex() for n, value in recs.items()} for ref, recs in state.records.items()
        },
        "binaries": {_file_id(ref): data.hex() for ref, data in state.binaries.items()},
        "logs": {_file_id(ref): [r.hex() for r in recs] for ref, recs in state.logs.items()},
        "purse": attrs.asdict(state.purse),
        "pin": None if state.pin is None else {"value": state.pin.value.hex(), "tries_left": state.pin.tries_left},
        "locked": sorted(state.locked),
        "last_purchase": _prove_to_json(state.last_purchase),
        "last_load": _prove_to_json(state.last_load),
    }


def dumps(state: CardState) -> bytes:
    """The file's bytes: compact, keys sorted, so one state has exactly one image."""
    return json.dumps(to_json(state), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


class _Bad(Exception):
    """A structural problem in a card file, reported as ValueError with its path."""


def _hex(text: Any, what: str, length: int | None = None) -> bytes:
    if not isinstance(text, str):
        raise _Bad(f"{what}: expected a hex string")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise _Bad(f"{what}: not hex") from None
    if length is not None and len(raw) != length:
        raise _Bad(f"{what}: {len(raw)} bytes, expected {length}")
    return raw


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(f"{what}: expected an integer {low}..{high}, got {value!r}")
    return value


def _algorithm_id(value: Any, what: str) -> int:
    value = _int(value, what, 0, 0xFF)
    try:
        algorithm_from_id(value)
    except ValueError:
        raise _Bad(f"{what}: unknown algorithm id {value:02X}") from None
    return value


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what}: expected an object")
    return value


def _df(name: str, what: str) -> str:
    if name not in DF_NAMES:
        raise _Bad(f"{what}: unknown DF {name!r}")
    return name


def _byte_id(text: str, what: str, low: int = 0, high: int = 0xFF) -> int:
    """A two-hex-digit identifier (SFI, usage, index, record number or tag)."""
    if len(text) != 2 or not all(c in "0123456789abcdefABCDEF" for c in text):
        raise _Bad(f"{what}: expected two hex digits, got {text!r}")
    return _int(int(text, 16), what, low, high)


def _file_ref(text: str) -> FileRef:
    df, _, sfi = text.partition("/")
    return _df(df, text), _byte_id(sfi, f"{text}: SFI", 1, 30)


def _key_ref(text: str) -> KeyRef:
    parts = text.split("/")
    if len(parts) != 3:
        raise _Bad(f"key {text!r}: expected DF/usage/index")
    try:
        usage = KeyUsage(_byte_id(parts[1], f"key {text!r}: usage"))
    except ValueError:
        raise _Bad(f"key {text!r}: unknown usage") from None
    return _df(parts[0], f"key {text!r}"), usage, _byte_id(parts[2], f"key {text!r}: index")


def _prove(value: Any, what: str) -> Prove | None:
    if value is None:
        return None
    d = _dict(value, what)
    return Prove(
        txn_type=_int(d.get("type"), f"{what}.type", 0, 0xFF),
        counter=_int(d.get("counter"), f"{what}.counter", 0, 0xFFFF),
        mac2=_hex(d.get("mac2"), f"{what}.mac2", 4),
        tac=_hex(d.get("tac"), f"{what}.tac", 4),
    )


def _purse(value: Any) -> Purse:
    d = _dict(value, "purse")
    max_balance = _int(d.get("max_balance"), "purse.max_balance", 0, 0xFFFFFFFF)
    return Purse(
        balance=_int(d.get("balance"), "purse.balance", 0, max_balance),
        offline_counter=_int(d.get("offline_counter"), "purse.offline_counter", 0, 0xFFFF),
        online_counter=_int(d.get("online_counter"), "purse.online_counter", 0, 0xFFFF),
        overdraft_limit=_int(d.get("overdraft_limit"), "purse.overdraft_limit", 0, 0xFFFFFF),
        max_balance=max_balance,
    )


def from_json(doc: Any) -> CardState:
    """The state in a parsed card file; ``_Bad`` names the first thing that is wrong."""
    d = _dict(doc, "file")
    if d.get("format") != FORMAT:
        raise _Bad(f"no format marker {FORMAT!r}")
    if d.get("version") != VERSION:
        raise _Bad(f"format version {d.get('version')!r}, this card OS reads version {VERSION}")
    life = d.get("life_state")
    if life not in _LIFE_STATE_BY_NAME:
        raise _Bad(f"life_state: unknown {life!r}")
    keys = {}
    for ref, e in _dict(d.get("keys"), "keys").items():
        e = _dict(e, f"key {ref}")
        keys[_key_ref(ref)] = KeyEntry(
            alg_id=_algorithm_id(e.get("alg"), f"key {ref}.alg"),
            version=_int(e.get("version"), f"key {ref}.version", 0, 0xFF),
            key=_hex(e.get("key"), f"key {ref}.key", 16),
        )
    records = {
        _file_ref(ref): {
            _byte_id(n, f"{ref} record"): _hex(v, f"{ref}/{n}")
            for n, v in _dict(recs, ref).items()
        }
        for ref, recs in _dict(d.get("records"), "records").items()
    }
    binaries = {_file_ref(ref): _hex(v, ref) for ref, v in _dict(d.get("binaries"), "binaries").items()}
    logs = {}
    for ref, recs in _dict(d.get("logs"), "logs").items():
        if not isinstance(recs, list):
            raise _Bad(f"{ref}: expected a list of records")
        logs[_file_ref(ref)] = tuple(_hex(r, f"{ref} record") for r in recs)
    pin = d.get("pin")
    if pin is not None:
        p = _dict(pin, "pin")
        pin = Pin(_hex(p.get("value"), "pin.value", 3), _int(p.get("tries_left"), "pin.tries_left", 0, PIN_TRIES))
    locked = d.get("locked")
    if not isinstance(locked, list):
        raise _Bad("locked: expected a list of DF names")
    return CardState(
        chip_serial=_hex(d.get("chip_serial"), "chip_serial", 8),
        life_state=_LIFE_STATE_BY_NAME[life],
        os_version=_hex(d.get("os_version"), "os_version", 2),
        ext_auth_tries=_int(d.get("ext_auth_tries"), "ext_auth_tries", 0, EXT_AUTH_TRIES),
        keys=keys,
        records=records,
        binaries=binaries,
        logs=logs,
        purse=_purse(d.get("purse")),
        pin=pin,
        locked=frozenset(_df(n, "locked") for n in locked),
        last_purchase=_prove(d.get("last_purchase"), "last_purchase"),
        last_load=_prove(d.get("last_load"), "last_load"),
    )


def loads(raw: bytes, source: str = "card file") -> CardState:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{source} is not an sbcard virtual card (not a JSON card image)") from None
    try:
        return from_json(doc)
    except _Bad as e:
        raise ValueError(f"{source} is not a valid sbcard virtual card: {e}") from None


def load(path: Path) -> CardState:
    """Read and validate a card file (``FileNotFoundError`` if there is none)."""
    path = Path(path)
    return loads(path.read_bytes(), str(path))


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def save(state: CardState, path: Path, *, durable: bool = False) -> None:
    """Replace the file's image atomically (see the module docstring)."""
    write_image(dumps(state), path, durable=durable)


def write_image(image: bytes, path: Path, *, durable: bool = False) -> None:
    path = Path(path)
    tmp = _temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(image)
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create(state: CardState, path: Path) -> None:
    """Write a new card file; ``FileExistsError`` if one is there (never overwrites)."""
    path = Path(path)
    tmp = _temp_path(path)
    with open(tmp, "wb") as f:
        f.write(dumps(state))
        f.flush()
    try:
        os.link(tmp, path)  # atomic, and refuses an existing target
    finally:
        tmp.unlink(missing_ok=True)
