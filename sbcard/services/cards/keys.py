"""An issuing region's keys, and what it derives from them for one card.

The masters live in the region's key store, ``<home>/<node>.keys``, sealed under a
key-encryption key (``sbcard/store/keystore.py``; in production: its HSM). From
them the issuer derives, per card:

- the card keys written into the chip (``sbcard.chip.keys.card_keys``: MK by the 卡识别码's
  card-unique bytes, the purse keys by the application serial);
- the 卡识别码's 8 card-unique bytes and the initial PIN the card leaves personalisation
  with: ``kdf(MK master, label ‖ card number)``. They are unpredictable to anyone without
  the masters, and the same world (same ``init --seed``) gives the same cards in every
  run, with no clock and no unseeded randomness involved. The initial PIN is never
  stored: the issuer can derive it again, nobody else can.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlite_utils

from sbcard.chip.codec import to_bcd
from sbcard.chip.crypto import Algorithm, kdf
from sbcard.chip.keys import CardKeys, IssuerMasterKeys, card_keys
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.pin import check_new_pin
from sbcard.store import keystore
from sbcard.store.paths import home_of
from sbcard.store.world import REGION_NODES, node_of_db

UNIQUE_LABEL = "sbcard card-unique bytes "
PIN_LABEL = "sbcard initial PIN "


# The masters made from each set of key rows: the key store is looked at on every use (one
# stat; it is unsealed once per process and version of the file), the keys' values and checks
# are made once per set (a few per process).
_MASTERS: dict[tuple[tuple[str, str, int, str], ...], IssuerMasterKeys] = {}
_MASTERS_KEPT = 64
_SEEN: dict[tuple[Any, ...], IssuerMasterKeys] = {}  # (store, its stat, the KEK settings) -> masters
_STORE_OF_DB: weakref.WeakKeyDictionary[sqlite_utils.Database, tuple[Path, str, str]] = weakref.WeakKeyDictionary()


def issuer_masters(db: sqlite_utils.Database) -> IssuerMasterKeys:
    """The master keys of the region whose database is ``db``, from its key store beside it;
    an error if ``sbcard init`` has not made them, a wrong KEK is bad input (exit 2)."""
    store, seen = _STORE_OF_DB.get(db), None
    if store is not None:
        try:
            st = os.stat(store[0])  # one stat per use: a store sealed again is read again
        except OSError:
            pass
        else:  # the same file under the same KEK settings: the masters made from it before
            environ = os.environ
            seen = (store[0], st.st_ino, st.st_size, st.st_mtime_ns, environ.get(keystore.ENV_KEK),
                    environ.get(keystore.ENV_KEK_FILE))
            masters = _SEEN.get(seen)
            if masters is not None:
                return masters
    rows = issuer_key_rows(db)
    found = tuple((purpose, row["algorithm"], row["key_version"], row["key_hex"])
                  for purpose, row in sorted(rows.items()))
    masters = _MASTERS.get(found)
    if masters is None:
        masters = _masters_of(dict(rows))
        if len(_MASTERS) < _MASTERS_KEPT:
            _MASTERS[found] = masters
    if seen is not None and len(_SEEN) < _MASTERS_KEPT:
        _SEEN[seen] = masters
    return masters


def issuer_key_rows(db: sqlite_utils.Database) -> Mapping[str, Mapping[str, Any]]:
    """purpose -> {purpose, algorithm, key_version, key_hex, created_at}: the region's sealed keys, unsealed."""
    store = _STORE_OF_DB.get(db)
    if store is None:
        home = home_of(db)
        if home is None:
            raise SbcardError("keys.no_store", "an in-memory region database has no key store")
        node = node_of_db(db)
        store = _STORE_OF_DB[db] = (keystore.keystore_path(home, node), node, REGION_NODES[node])
    path, node, code = store
    return keystore.read_keys(path, node=node, region_code=code)


def _masters_of(rows: dict[str, dict[str, Any]]) -> IssuerMasterKeys:
    missing = {"MK", "DPK", "DLK", "DTK", "DAMK"} - set(rows)
    if missing:
        raise SbcardError("keys.missing", f"issuer master keys {sorted(missing)} are missing: run `sbcard init`")
    algorithms = {row["algorithm"] for row in rows.values()}
    versions = {row["key_version"] for row in rows.values()}
    if len(algorithms) != 1 or len(versions) != 1:
        raise SbcardError("keys.mixed", "the issuer master keys do not share one algorithm and version")

    def key(purpose: str) -> bytes:
        return bytes.fromhex(rows[purpose]["key_hex"])

    return IssuerMasterKeys(
        maintenance=key("MK"),
        purchase=key("DPK"),
        load=key("DLK"),
        tac=key("DTK"),
        app_maintenance=key("DAMK"),
        upload=key("UMK") if "UMK" in rows else None,
        algorithm=Algorithm(algorithms.pop()),
        version=versions.pop(),
    )


def upload_master(db: sqlite_utils.Database) -> tuple[Algorithm, bytes]:
    """The region's UMK master, from which its terminals' upload keys are diversified."""
    masters = issuer_masters(db)
    if masters.upload is None:
        raise SbcardError("keys.missing", "the issuer master key UMK is missing: run `sbcard init`")
    return masters.algorithm, masters.upload


def card_unique_bytes(masters: IssuerMasterKeys, card_number: str) -> bytes:
    """The 卡识别码's 8 card-unique bytes of the card with this number."""
    return kdf(masters.maintenance, UNIQUE_LABEL + card_number, 8)


def initial_pin(masters: IssuerMasterKeys, card_number: str) -> str:
    """The PIN a card leaves personalisation with (never one a holder may not choose)."""
    for attempt in range(100):
        seed = kdf(masters.maintenance, f"{PIN_LABEL}{card_number} {attempt}", 8)
        pin = f"{int.from_bytes(seed, 'big') % 10**6:06d}"
        try:
            return check_new_pin(pin)
        except InvalidInput:
            continue
    raise AssertionError("no acceptable initial PIN in 100 draws")  # about 1e-300 likely


def keys_of_card(masters: IssuerMasterKeys, card_id_code: str, app_serial: str) -> CardKeys:
    """The keys of one card, from the values that diversify them."""
    return card_keys(masters, CardIdCode.parse(card_id_code).unique_bytes, to_bcd(app_serial))


def keys_for_card(db: sqlite_utils.Database, card: Mapping[str, Any]) -> CardKeys:
    """The keys of a card this region issued (a ``cards`` row): for PIN reset, blocking, …"""
    return keys_of_card(issuer_masters(db), card["card_id_code"], card["app_serial"])
