"""The card image (``image.CardState``) as bytes and back: JSON today, one object (compact, keys sorted).

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

``dumps`` makes the text of a state from memoised parts (a card saves its whole image at
every commit); ``loads`` reads it back, refusing (``ValueError``) anything that is not a
valid image. ``card_file`` stores these bytes.
"""

from __future__ import annotations

import functools
import json
import operator
from typing import Any

import attrs

from sbcard.chip.crypto import Algorithm, algorithm_from_id
from sbcard.chip.profile import EXT_AUTH_TRIES, PIN_TRIES, KeyUsage, LifeState
from terminals.emulator.image import (
    DF_NAMES,
    CardState,
    FileRef,
    KeyEntry,
    KeyRef,
    Pin,
    Prove,
    Purse,
)

FORMAT = "sbcard-virtual-card"
VERSION = 1

LIFE_STATE_NAMES = {
    LifeState.BLANK: "blank",
    LifeState.PERSONALISING: "personalising",
    LifeState.PERSONALISED: "personalised",
}
_LIFE_STATE_BY_NAME = {name: state for state, name in LIFE_STATE_NAMES.items()}


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
