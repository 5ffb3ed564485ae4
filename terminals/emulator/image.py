"""The card's persistent image (its EEPROM) as plain values.

Everything the card remembers across power cycles is here; what lasts one power-on
session (selected DF, authentication, a pending purse transaction) is in ``session``.
Values inside the image are immutable (bytes, tuples, frozen records; a file's record
map is replaced whole, never changed in place) and every persistent write replaces one
of them (``journal``), so the journal can undo a commit whose save failed and nothing
aliases between the old and the new state. How an image is written as bytes is
``image_codec``'s; the file that holds it, ``card_file``'s.
"""

from __future__ import annotations

from typing import Any

import attrs

from sbcard.chip.profile import (
    EXT_AUTH_TRIES,
    MAX_BALANCE_FEN,
    OS_VERSION,
    PIN_TRIES,
    KeyUsage,
    LifeState,
)

# The card's directories by the names the image uses.
MF = "MF"
SSSE = "SSSE"
TU = "TU"  # the T-Union (交通一卡通) application
DF_NAMES = (MF, SSSE, "DF01", "DF02", "DF03", "DF04", "DF05", TU)

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
    # ``image_codec.dumps``'s memo: each part of the image's text with the value it was made from (not
    # part of the state: no init, no comparison, not copied by ``attrs.evolve``).
    _text: dict[Any, Any] = attrs.field(factory=dict, init=False, repr=False, eq=False)
