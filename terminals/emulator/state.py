"""The card's persistent image (its EEPROM) as plain data, and the file that holds it.

Everything the card remembers across power cycles is here; what lasts one power-on
session (selected DF, authentication, a pending purse transaction) is in ``session``.
Values inside the image are immutable (bytes, tuples, frozen records; a file's record
map is replaced whole, never changed in place) and every persistent write replaces one
of them (``journal``), so the journal can undo a commit whose save failed and nothing
aliases between the old and the new state.

The image is JSON, one object (compact, keys sorted)::

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

The card file (``world/cards/<card number>.card``) is the chip's EEPROM with two banks,
as cards do it, so that a save is one write and no directory operation::

    0      file header (16 bytes): magic "SBCARDVC", format version (u16) = 1,
           reserved (u16) = 0, bank size (u32) = 32768
    4096   bank A: sequence (u64) | length (u32) | CRC-32 (u32) | image (length bytes)
    4096 + bank size
           bank B: the same

Integers are big-endian; the CRC-32 covers sequence, length and image. A save writes the
whole image into the bank that does *not* hold the current one, sequence + 1, with one
``os.pwrite`` on a descriptor the card keeps open (``CardFile``). Loading takes the
intact bank with the higher sequence; a bank torn by a process killed mid-write (short,
checksum wrong) is ignored, so the file yields the old image or the new one, never half
of each. There is no ``fsync`` by default: the file stands for the chip's EEPROM, and
what we guard against is the *process* dying (a killed simulator, a torn card) — after
``pwrite`` the image is in the kernel and survives that. Pass ``durable=True`` to survive
a machine crash as well (``fdatasync`` after each write; no directory entry changes).

``read_state(path)`` (or ``python -m terminals.emulator.state FILE.card``) shows the
current image. A card file from before the banks (the image alone) is still read, and
rewritten in the two-bank format when a card opens it to write.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import operator
import os
import struct
import sys
import zlib
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip.crypto import Algorithm, algorithm_from_id
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
    # ``dumps``'s memo: each part of the image's text with the value it was made from (not
    # part of the state: no init, no comparison, not copied by ``attrs.evolve``).
    _text: dict[Any, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)


# --- (de)serialisation -------------------------------------------------------------------


def _file_id(ref: FileRef) -> str:
    return f"{ref[0]}/{ref[1]:02X}"


def _prove_to_json(prove: Prove | None) -> dict[str, Any] | None:
    if prove is None:
        return None
    return {"type": prove.txn_type, "counter": prove.counter, "mac2": prove.mac2.hex(), "tac": prove.tac.hex()}


def _purse_to_json(purse: Purse) -> dict[str, Any]:
    """``attrs.asdict(purse)``, field by field (a card writes it at every commit)."""
    if type(purse) is not Purse:
        return attrs.asdict(purse)
    return {
        "balance": purse.balance,
        "offline_counter": purse.offline_counter,
        "online_counter": purse.online_counter,
        "overdraft_limit": purse.overdraft_limit,
        "max_balance": purse.max_balance,
    }


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
        "purse": _purse_to_json(state.purse),
        "pin": None if state.pin is None else {"value": state.pin.value.hex(), "tries_left": state.pin.tries_left},
        "locked": sorted(state.locked),
        "last_purchase": _prove_to_json(state.last_purchase),
        "last_load": _prove_to_json(state.last_load),
    }


# One encoder for every image (``json.dumps`` with options builds a new one per call).
_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def dumps(state: CardState) -> bytes:
    """The file's bytes: compact, keys sorted, so one state has exactly one image.

    ``_ENCODER.encode(to_json(state))``, made from memoised parts: a card saves its whole
    image at every commit, and a commit replaces a few of its values (the purse, a log,
    the prove) while the keys and most records stay. The image's values are immutable and
    replaced whole (module doc), so a part made from a value object still held (``is``)
    is that value's text. ``tests/emulator/test_emulator_state_text.py`` checks the two
    agree.
    """
    memo = state._text
    keys = _section(memo, "keys", state.keys, _key_text)
    records = _section(memo, "records", state.records, _records_text)
    binaries = _section(memo, "binaries", state.binaries, _binary_text)
    logs = _section(memo, "logs", state.logs, _log_text)
    locked = _value(memo, "locked", state.locked, _locked_text)
    pin = _value(memo, "pin", state.pin, _pin_text)
    purse = _value(memo, "purse", state.purse, _purse_text)
    last_purchase = _value(memo, "last_purchase", state.last_purchase, _prove_text)
    last_load = _value(memo, "last_load", state.last_load, _prove_text)
    ext_auth_tries = state.ext_auth_tries
    text = "".join((
        '{"binaries":', binaries,
        ',"chip_serial":"', state.chip_serial.hex(),
        '","ext_auth_tries":', str(ext_auth_tries) if type(ext_auth_tries) is int else _ENCODER.encode(ext_auth_tries),
        ',"format":', _FORMAT_TEXT,
        ',"keys":', keys,
        ',"last_load":', last_load,
        ',"last_purchase":', last_purchase,
        ',"life_state":', _encode_str(LIFE_STATE_NAMES[state.life_state]),
        ',"locked":', locked,
        ',"logs":', logs,
        ',"os_version":"', state.os_version.hex(),
        '","pin":', pin,
        ',"purse":', purse,
        ',"records":', records,
        ',"version":', _VERSION_TEXT, "}",
    ))
    return text.encode("ascii")


_encode_str = json.encoder.encode_basestring_ascii  # what ``_ENCODER`` (ensure_ascii) makes of a str
_FORMAT_TEXT = _ENCODER.encode(FORMAT)
_VERSION_TEXT = _ENCODER.encode(VERSION)


def _value(memo: dict[Any, Any], name: str, value: Any, text: Any) -> str:
    """``text(value)``, made again only when the state holds another value object."""
    kept = memo.get(name)
    if kept is not None and kept[0] is value:
        return kept[1]
    made = text(value)
    memo[name] = (value, made)
    return made


def _section(memo: dict[Any, Any], name: str, section: dict[Any, Any], entry: Any) -> str:
    """One of the image's maps (keys, records, binaries, logs) as JSON text, keys sorted.

    ``entry(ref, value)`` makes one member's ``"id":value`` text, kept per ref with the
    value it was made from. The members sort as their ids do: an id (a DF name, hex
    digits, ``/``) holds no character below the closing ``"`` that follows it.
    """
    kept = memo.get(name)
    if kept is not None:
        refs, values, made = kept
        if len(values) == len(section) and all(map(operator.is_, section.values(), values)) and refs == tuple(section):
            return made
    members = memo.get((name, "members"))
    if members is None:
        members = memo[(name, "members")] = {}
    parts = []
    for ref, value in section.items():
        m = members.get(ref)
        if m is None or m[0] is not value:
            m = members[ref] = (value, entry(ref, value))
        parts.append(m[1])
    parts.sort()
    made = "{" + ",".join(parts) + "}"
    memo[name] = (tuple(section), tuple(section.values()), made)
    return made


# The members are written directly where their shape is the usual one (ints, bytes: hex
# needs no escaping), else by ``_ENCODER`` (whose ``encode`` of a container makes a new C
# encoder at each call, which costs more than the text of a member).


@functools.lru_cache(maxsize=256)
def _key_name(ref: KeyRef) -> str:
    df, usage, index = ref
    return _encode_str(f"{df}/{usage:02X}/{index:02X}")


@functools.lru_cache(maxsize=256)
def _file_name(ref: FileRef) -> str:
    return _encode_str(_file_id(ref))


_RECORD_NAMES = ['"%02X":"' % n for n in range(256)]  # a record's '"NN":"' by its number or tag


def _key_text(ref: KeyRef, e: KeyEntry) -> str:
    if type(e.alg_id) is int and type(e.version) is int:
        return '%s:{"alg":%d,"key":"%s","version":%d}' % (_key_name(ref), e.alg_id, e.key.hex(), e.version)
    return _key_name(ref) + ":" + _ENCODER.encode({"alg": e.alg_id, "version": e.version, "key": e.key.hex()})


def _records_text(ref: FileRef, recs: dict[int, bytes]) -> str:
    names = _RECORD_NAMES
    try:
        numbers = sorted(recs)
        if numbers[0] >= 0 and all(type(n) is int for n in numbers):  # two hex digits sort as the numbers do
            return _file_name(ref) + ":{" + '",'.join([names[n] + recs[n].hex() for n in numbers]) + '"}'
    except (IndexError, TypeError):  # none (or numbers past 0xFF): the encoder writes them
        pass
    return _file_name(ref) + ":" + _ENCODER.encode({f"{n:02X}": value.hex() for n, value in recs.items()})


def _binary_text(ref: FileRef, data: bytes) -> str:
    return _file_name(ref) + ':"' + data.hex() + '"'


def _log_text(ref: FileRef, recs: tuple[bytes, ...]) -> str:
    body = '["' + '","'.join([r.hex() for r in recs]) + '"]' if recs else "[]"
    return _file_name(ref) + ":" + body


def _locked_text(locked: frozenset[str]) -> str:
    return _ENCODER.encode(sorted(locked))


def _pin_text(pin: Pin | None) -> str:
    return _ENCODER.encode(None if pin is None else {"value": pin.value.hex(), "tries_left": pin.tries_left})


def _purse_text(purse: Purse) -> str:
    d = _purse_to_json(purse)
    if type(purse) is Purse and all(type(v) is int for v in d.values()):  # the text the encoder makes of it
        return _PURSE_TEXT % (purse.balance, purse.max_balance, purse.offline_counter, purse.online_counter,
                              purse.overdraft_limit)
    return _ENCODER.encode(d)


_PURSE_TEXT = '{"balance":%d,"max_balance":%d,"offline_counter":%d,"online_counter":%d,"overdraft_limit":%d}'


def _prove_text(prove: Prove | None) -> str:
    if prove is not None and type(prove.txn_type) is int and type(prove.counter) is int:
        return '{"counter":%d,"mac2":"%s","tac":"%s","type":%d}' % (
            prove.counter, prove.mac2.hex(), prove.tac.hex(), prove.txn_type)
    return _ENCODER.encode(_prove_to_json(prove))


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


def _record_hex(value: Any, what: str, n: str | None = None) -> bytes:
    """``_hex`` for the many records of a card: the message (``what/n``) is built only when wrong."""
    if isinstance(value, str):
        try:
            return bytes.fromhex(value)
        except ValueError:
            pass
    return _hex(value, what if n is None else f"{what}/{n}")


def _int(value: Any, what: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _Bad(f"{what}: expected an integer {low}..{high}, got {value!r}")
    return value


def _algorithm_id(value: Any, what: str) -> int:
    value = _int(value, what, 0, 0xFF)
    if value not in _ALGORITHM_IDS:
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


_ALGORITHM_IDS = frozenset(a.id_byte for a in Algorithm)
_HEX2 = {f"{i:02X}": i for i in range(256)} | {f"{i:02x}": i for i in range(256)}


def _byte_id(text: str, what: str, low: int = 0, high: int = 0xFF) -> int:
    """A two-hex-digit identifier (SFI, usage, index, record number or tag)."""
    value = _HEX2.get(text) if isinstance(text, str) else None
    if value is None:
        raise _Bad(f"{what}: expected two hex digits, got {text!r}")
    return _int(value, what, low, high)


def _record_id(text: str, ref: str) -> int:
    """A record's number or tag (the message is built only when it is wrong: a card loads often)."""
    value = _HEX2.get(text) if isinstance(text, str) else None
    return value if value is not None else _byte_id(text, f"{ref} record")


@functools.lru_cache(maxsize=256)
def _file_ref(text: str) -> FileRef:
    df, _, sfi = text.partition("/")
    return _df(df, text), _byte_id(sfi, f"{text}: SFI", 1, 30)


@functools.lru_cache(maxsize=256)
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
    """The state in a parsed card file; ``_Bad`` names the first thing that is wrong.

    A card is loaded at every tap: a well-formed image is read by ``_from_json_plain``,
    which checks the same things in a few expressions; anything it does not take (it
    raises) is read again by ``_from_json_checked``, which names what is wrong.
    """
    try:
        return _from_json_plain(doc)
    except Exception:  # noqa: BLE001 - not plainly valid: the careful reading decides
        pass
    return _from_json_checked(doc)


def _u(value: Any, high: int) -> int:
    """``value`` if it is an int in 0..high (never a bool), else an exception."""
    if type(value) is not int or not 0 <= value <= high:
        raise _Bad("")
    return value


def _sized(data: bytes, length: int) -> bytes:
    if len(data) != length:
        raise _Bad("")
    return data


def _prove_plain(value: Any) -> Prove | None:
    if value is None:
        return None
    return Prove(_u(value["type"], 0xFF), _u(value["counter"], 0xFFFF), _sized(bytes.fromhex(value["mac2"]), 4),
                 _sized(bytes.fromhex(value["tac"]), 4))


_DF_SET = frozenset(DF_NAMES)


def _from_json_plain(d: Any) -> CardState:
    """``_from_json_checked`` for an image with nothing wrong; any exception when there may be.

    Accepts only what ``_from_json_checked`` accepts (stricter is allowed: it falls back)
    and builds the same state; JSON gives only dict, list, str, int, float, bool and None,
    so ``.items()`` is a dict's, ``bytes.fromhex`` refuses all but a hex str, and a bool is
    refused as an int by ``_u``.
    """
    if type(d) is not dict or d["format"] != FORMAT or d["version"] != VERSION:
        raise _Bad("")
    fromhex = bytes.fromhex
    keys = {}
    for ref, e in d["keys"].items():
        alg = e["alg"]
        if type(alg) is not int or alg not in _ALGORITHM_IDS:
            raise _Bad("")
        keys[_key_ref(ref)] = KeyEntry(alg, _u(e["version"], 0xFF), _sized(fromhex(e["key"]), 16))
    hex2 = _HEX2
    records = {
        _file_ref(ref): {hex2[n]: fromhex(v) for n, v in recs.items()} for ref, recs in d["records"].items()
    }
    binaries = {_file_ref(ref): fromhex(v) for ref, v in d["binaries"].items()}
    logs = {}
    for ref, recs in d["logs"].items():
        if type(recs) is not list:
            raise _Bad("")
        logs[_file_ref(ref)] = tuple([fromhex(r) for r in recs])
    pin = d["pin"]
    if pin is not None:
        pin = Pin(_sized(fromhex(pin["value"]), 3), _u(pin["tries_left"], PIN_TRIES))
    locked = d["locked"]
    if type(locked) is not list:
        raise _Bad("")
    locked = frozenset(locked)
    if not locked <= _DF_SET:
        raise _Bad("")
    p = d["purse"]
    max_balance = _u(p["max_balance"], 0xFFFFFFFF)
    return CardState(
        chip_serial=_sized(fromhex(d["chip_serial"]), 8),
        life_state=_LIFE_STATE_BY_NAME[d["life_state"]],
        os_version=_sized(fromhex(d["os_version"]), 2),
        ext_auth_tries=_u(d["ext_auth_tries"], EXT_AUTH_TRIES),
        keys=keys,
        records=records,
        binaries=binaries,
        logs=logs,
        purse=Purse(
            balance=_u(p["balance"], max_balance),
            offline_counter=_u(p["offline_counter"], 0xFFFF),
            online_counter=_u(p["online_counter"], 0xFFFF),
            overdraft_limit=_u(p["overdraft_limit"], 0xFFFFFF),
            max_balance=max_balance,
        ),
        pin=pin,
        locked=locked,
        last_purchase=_prove_plain(d["last_purchase"]),
        last_load=_prove_plain(d["last_load"]),
    )


def _from_json_checked(doc: Any) -> CardState:
    """``from_json`` the careful way: every field checked on its own, the first wrong one named."""
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
        _file_ref(ref): {_record_id(n, ref): _record_hex(v, ref, n) for n, v in _dict(recs, ref).items()}
        for ref, recs in _dict(d.get("records"), "records").items()
    }
    binaries = {_file_ref(ref): _hex(v, ref) for ref, v in _dict(d.get("binaries"), "binaries").items()}
    logs = {}
    for ref, recs in _dict(d.get("logs"), "logs").items():
        if not isinstance(recs, list):
            raise _Bad(f"{ref}: expected a list of records")
        what = f"{ref} record"
        logs[_file_ref(ref)] = tuple(_record_hex(r, what) for r in recs)
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



# --- the card file: a header and two EEPROM banks ----------------------------------------

MAGIC = b"SBCARDVC"
FILE_VERSION = 1
BANK_SIZE = 32 * 1024  # bytes per bank, its 16-byte header included; written in the file header
BANK_A = 4096  # bank A's offset: banks are page-aligned and share no page with the header
_FILE_HEADER = struct.Struct(">8sHHI")  # magic, file format version, reserved (0), bank size
_BANK_HEADER = struct.Struct(">QII")  # sequence, image length, CRC-32 of sequence ‖ length ‖ image
_SEQ_LEN = struct.Struct(">QI")
_MIN_BANK, _MAX_BANK = 4096, 1 << 24
_BANK_NAMES = "AB"


class CardImageTooLarge(ValueError):
    """The serialised image does not fit an EEPROM bank (the card's memory is full)."""


def _file_header(bank_size: int = BANK_SIZE) -> bytes:
    return _FILE_HEADER.pack(MAGIC, FILE_VERSION, 0, bank_size)


def _bank_record(seq: int, image: bytes) -> bytes:
    """What one save writes into a bank: its header, then the image."""
    head = _SEQ_LEN.pack(seq, len(image))
    return head + zlib.crc32(image, zlib.crc32(head)).to_bytes(4, "big") + image


def _bank_offset(bank: int, bank_size: int) -> int:
    return BANK_A + bank * bank_size


_CHUNK = 4096  # read with a bank's header: a card image is ~2 KB, so one pread most often takes it all


def _bank_head(fd: int, bank: int, bank_size: int, chunk: bytes | None = None) -> tuple[int, int, int, bytes] | str:
    """``(sequence, length, CRC, what was read of the image)`` from a bank's header, else why it is unusable.

    ``chunk``: the bank's first bytes, when the caller has read them already.
    """
    if chunk is None:
        chunk = os.pread(fd, _CHUNK, _bank_offset(bank, bank_size))
    head = chunk[: _BANK_HEADER.size]
    if not head.strip(b"\0"):
        return "empty"
    if len(head) < _BANK_HEADER.size:
        return "torn (short header)"
    seq, length, crc = _BANK_HEADER.unpack(head)
    if length > bank_size - _BANK_HEADER.size:
        return f"torn (length {length} exceeds the bank)"
    return seq, length, crc, chunk[_BANK_HEADER.size : _BANK_HEADER.size + length]


def _bank_image(fd: int, bank: int, bank_size: int, head: tuple[int, int, int, bytes]) -> bytes | str:
    """The bank's image if it is intact (all there, checksum right), else why not."""
    seq, length, crc, image = head
    if len(image) < length and len(image) == _CHUNK - _BANK_HEADER.size:  # a large image: read the rest
        image += os.pread(fd, length - len(image), _bank_offset(bank, bank_size) + _CHUNK)
    if len(image) < length:
        return f"torn (short: {len(image)} of {length} bytes)"
    if zlib.crc32(image, zlib.crc32(_SEQ_LEN.pack(seq, length))) != crc:
        return "torn (checksum mismatch)"
    return image


def _scan(fd: int, source: str) -> tuple[int, int, int, bytes]:
    """``(bank size, bank, sequence, image)`` of the newest intact bank.

    ``ValueError`` naming ``source`` if the file is no card file or neither bank is intact.
    A legacy single-image file (plain JSON) comes back as bank -1.

    A card is loaded at every tap, so this reads little: the file header with bank A's
    first bytes in one ``pread``, bank B's in another (most images are whole in them), and
    checks the checksum of the bank with the higher sequence first — the other matters
    only if that one is torn.
    """
    first = os.pread(fd, BANK_A + _CHUNK, 0)
    header = first[: _FILE_HEADER.size]
    if header[:1] == b"{":  # a card file from before the two banks: one JSON image
        return 0, -1, 0, first + _read_all(fd, len(first))
    if len(header) < _FILE_HEADER.size or header[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{source} is not an sbcard virtual card (no {MAGIC.decode()} card-file header)")
    _, version, _, bank_size = _FILE_HEADER.unpack(header)
    if version != FILE_VERSION:
        raise ValueError(f"{source}: card file format version {version}, this card OS reads version {FILE_VERSION}")
    if not _MIN_BANK <= bank_size <= _MAX_BANK:
        raise ValueError(f"{source}: damaged card-file header (bank size {bank_size})")
    heads = [_bank_head(fd, 0, bank_size, first[BANK_A:]), _bank_head(fd, 1, bank_size)]
    why: list[str | None] = [h if isinstance(h, str) else None for h in heads]
    order = [bank for bank in (0, 1) if why[bank] is None]
    if len(order) == 2 and heads[1][0] > heads[0][0]:  # type: ignore[index]
        order.reverse()  # the newest first; on a tie (never written so) bank A
    for bank in order:
        head = heads[bank]
        assert not isinstance(head, str)
        image = _bank_image(fd, bank, bank_size, head)
        if not isinstance(image, str):
            return bank_size, bank, head[0], image
        why[bank] = image
    reasons = "; ".join(f"bank {name}: {w}" for name, w in zip(_BANK_NAMES, why))
    raise ValueError(f"{source}: neither EEPROM bank holds an intact card image ({reasons}); the card file is damaged")


def _read_all(fd: int, offset: int) -> bytes:
    chunks = []
    while chunk := os.pread(fd, 1 << 16, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)


_PATH = type(Path())  # PosixPath or WindowsPath: what Path(...) makes here


def as_path(path: Path | str) -> Path:
    """``Path(path)``, without making a new one of a path that is one (a card is opened at every tap)."""
    return path if type(path) is _PATH else Path(path)  # type: ignore[return-value]


def _open(path: Path, flags: int) -> int:
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0), 0o666)


def _current_image(path: Path) -> bytes:
    fd = _open(path, os.O_RDONLY)
    try:
        return _scan(fd, str(path))[3]
    finally:
        os.close(fd)


def load(path: Path | str) -> CardState:
    """Read and validate a card file (``FileNotFoundError`` if there is none)."""
    path = Path(path)
    return loads(_current_image(path), str(path))


def read_state(path: Path | str) -> dict[str, Any]:
    """The card's current image as JSON data, for tests, tools and debugging.

    ``python -m terminals.emulator.state FILE.card`` prints it.
    """
    path = Path(path)
    raw = _current_image(path)
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ValueError(f"{path} is not an sbcard virtual card (not a JSON card image)") from None


class CardFile:
    """A card file as its card uses it: a file descriptor and the bank holding the current image.

    ``save`` writes the whole image into the *other* bank with one ``os.pwrite`` and a
    sequence number one higher; nothing else is written, no directory is touched. The
    descriptor is opened on first use and kept until ``close`` (the card's power-off);
    opening scans both banks, so a card file is always continued from its newest intact
    image. One card object writes a card file at a time, as one reader holds one card.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = as_path(path)
        self._fd: int | None = None
        self._bank_size = BANK_SIZE
        self._bank = 0  # holds the current image
        self._seq = 0
        self._read = False  # bank and sequence are the file's (read, written or vouched for by ``at``)
        self._vouched = False  # ``at``: the next open takes them without scanning

    @classmethod
    def at(cls, path: Path | str, place: tuple[int, int, int]) -> CardFile:
        """A card file whose current image the caller knows is at ``place``: its first save
        opens the file and writes, without scanning the banks.

        ``place`` is ``CardFile.place`` of the file object that last read or wrote this
        card file (e.g. a simulator keeping a card's image between taps keeps that object
        too); anything else that may have written the file since calls for ``open``.
        """
        bank_size, bank, seq = place
        if not _MIN_BANK <= bank_size <= _MAX_BANK or bank not in (0, 1) or seq < 0:
            raise ValueError(f"{path}: no card-file place {place!r}")
        f = cls(path)
        f._bank_size, f._bank, f._seq = bank_size, bank, seq
        f._read = f._vouched = True
        return f

    @property
    def place(self) -> tuple[int, int, int] | None:
        """``(bank size, bank, sequence)`` of the current image (kept after ``close``); None
        while the file has not been read."""
        return (self._bank_size, self._bank, self._seq) if self._read else None

    @classmethod
    def open(cls, path: Path | str) -> tuple[CardFile, CardState]:
        """Open a card file and read its state (``FileNotFoundError``, ``ValueError``)."""
        f = cls(path)
        image = f._open()
        try:
            return f, loads(image, str(f.path))
        except BaseException:
            f.close()
            raise

    def __repr__(self) -> str:
        where = "closed" if self._fd is None else f"bank {_BANK_NAMES[self._bank]}, sequence {self._seq}"
        return f"CardFile({str(self.path)!r}, {where})"

    @property
    def closed(self) -> bool:
        return self._fd is None

    def _open(self) -> bytes:
        fd = _open(self.path, os.O_RDWR)
        try:
            bank_size, bank, seq, image = _scan(fd, str(self.path))
            if bank < 0:  # a legacy file: rewrite it in two banks, once, atomically
                os.close(fd)
                fd = -1
                loads(image, str(self.path))  # only a valid card is upgraded
                _write_new(self.path, image, replace=True)
                fd = _open(self.path, os.O_RDWR)
                bank_size, bank, seq, image = _scan(fd, str(self.path))
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        self._fd, self._bank_size, self._bank, self._seq = fd, bank_size, bank, seq
        self._read = True
        return image

    def save(self, state: CardState, *, durable: bool = False) -> None:
        self.write_image(dumps(state), durable=durable)

    def write_image(self, image: bytes, *, durable: bool = False) -> None:
        """Make ``image`` the card's current image: all of it, or (torn) none of it.

        On any error the file still holds the previous image as its current one.
        """
        if self._fd is None:
            if self._vouched:  # ``at``: the caller knows the banks
                self._fd = _open(self.path, os.O_RDWR)
                self._vouched = False
            else:
                self._open()
        fd = self._fd
        assert fd is not None
        capacity = self._bank_size - _BANK_HEADER.size
        if len(image) > capacity:
            raise CardImageTooLarge(
                f"{self.path}: a card image of {len(image):,} bytes does not fit an EEPROM bank ({capacity:,} bytes)"
            )
        bank, seq = 1 - self._bank, self._seq + 1
        offset = _bank_offset(bank, self._bank_size)
        record = _bank_record(seq, image)
        written = os.pwrite(fd, record, offset)
        if written != len(record):  # a bank torn by the system, not by us: the old one stays current
            raise OSError(f"{self.path}: short write to bank {_BANK_NAMES[bank]} ({written} of {len(record)} bytes)")
        if durable:
            try:
                getattr(os, "fdatasync", os.fsync)(fd)
            except BaseException:
                # The new image may or may not reach the disk: withdraw it, so the file
                # keeps the old image the caller falls back to.
                with contextlib.suppress(OSError):
                    os.pwrite(fd, bytes(_BANK_HEADER.size), offset)
                raise
        self._bank, self._seq = bank, seq

    def close(self) -> None:
        """Close the descriptor; the next save reopens the file (and rescans it)."""
        fd, self._fd = self._fd, None
        self._vouched = False
        if fd is not None:
            os.close(fd)

    def __del__(self) -> None:  # a card object dropped without power-off
        try:
            self.close()
        except Exception:  # noqa: BLE001 - e.g. at interpreter shutdown
            pass


def save(state: CardState, path: Path | str, *, durable: bool = False) -> None:
    """Write a new current image into a card file (see ``CardFile.save``)."""
    f = CardFile(path)
    try:
        f.save(state, durable=durable)
    finally:
        f.close()


def _temp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


# An unnamed file is named through its descriptor's entry in /proc (``linkat`` with AT_SYMLINK_FOLLOW).
_O_TMPFILE = getattr(os, "O_TMPFILE", 0) if os.path.isdir("/proc/self/fd") else 0
_NO_TMPFILE = (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL)  # this file system (or kernel) makes none


def _write_new(path: Path, image: bytes, *, replace: bool = False) -> None:
    """A new card file whose bank A holds ``image`` (sequence 1), put at ``path`` atomically:
    by ``os.link``, which refuses an existing file, or (``replace``) ``os.replace``.

    Where the system has them (Linux), a new card is written into an unnamed file
    (``O_TMPFILE``) that is then given its name: one write and one link, and no temporary
    name to make and remove (a set-up makes a card file for each of 100,000 people).
    """
    if len(image) > BANK_SIZE - _BANK_HEADER.size:
        raise CardImageTooLarge(f"{path}: a card image of {len(image):,} bytes does not fit an EEPROM bank")
    if not replace and _O_TMPFILE and _write_unnamed(path, image):
        return
    tmp = _temp_path(path)
    try:
        fd = _open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        try:
            os.pwrite(fd, _file_header(), 0)
            os.pwrite(fd, _bank_record(1, image), _bank_offset(0, BANK_SIZE))
        finally:
            os.close(fd)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)  # atomic, and refuses an existing target
    finally:
        tmp.unlink(missing_ok=True)


def _write_unnamed(path: Path, image: bytes) -> bool:
    """``_write_new`` by an unnamed file; False if this file system makes none (nothing written)."""
    try:
        fd = os.open(path.parent, os.O_WRONLY | _O_TMPFILE | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        if e.errno in _NO_TMPFILE and path.parent.is_dir():
            return False
        raise
    try:
        header = _file_header()
        os.pwrite(fd, b"".join((header, bytes(BANK_A - len(header)), _bank_record(1, image))), 0)
        # linkat(…, AT_SYMLINK_FOLLOW): atomic, and refuses an existing target. Python asks for it only
        # with a directory descriptor given; the source path is absolute, so the kernel ignores that one.
        os.link(f"/proc/self/fd/{fd}", path, src_dir_fd=fd, follow_symlinks=True)
    finally:
        os.close(fd)
    return True


def create(state: CardState, path: Path | str) -> None:
    """Write a new card file; ``FileExistsError`` if one is there (never overwrites)."""
    _write_new(Path(path), dumps(state))


def _main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m terminals.emulator.state FILE.card   (prints the card's current image)", file=sys.stderr)
        return 2
    try:
        doc = read_state(argv[0])
    except (OSError, ValueError) as e:
        print(e, file=sys.stderr)
        return 1
    print(json.dumps(doc, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(_main(sys.argv[1:]))
