"""An issuing region's keys, and what it derives from them for one card.

The masters live in the region's ``issuer_keys`` table (in production: its HSM). From
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

from collections.abc import Mapping
from typing import Any

import sqlite_utils

from sbcard.chip.codec import to_bcd
from sbcard.chip.crypto import Algorithm, kdf
from sbcard.chip.keys import CardKeys, IssuerMasterKeys, card_keys
from sbcard.domain.card_id_code import CardIdCode
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.domain.pin import check_new_pin

UNIQUE_LABEL = "sbcard card-unique bytes "
PIN_LABEL = "sbcard initial PIN "


# The masters made from each set of ``issuer_keys`` rows: the rows are read at every use (one
# small query), the keys' values and checks are made once per set (a few per process).
_MASTERS: dict[tuple[tuple[str, str, int, str], ...], IssuerMasterKeys] = {}
_MASTERS_KEPT = 64


def issuer_masters(db: sqlite_utils.Database) -> IssuerMasterKeys:
    """The region's master keys; an error if ``sbcard init`` has not made them."""
    found = tuple(db.execute("SELECT purpose, algorithm, key_version, key_hex FROM issuer_keys "
                             "ORDER BY purpose").fetchall())
    masters = _MASTERS.get(found)
    if masters is None:
        masters = _masters_of({purpose: {"purpose": purpose, "algorithm": algorithm, "key_version": version,
                                         "key_hex": key_hex} for purpose, algorithm, version, key_hex in found})
        if len(_MASTERS) < _MASTERS_KEPT:
            _MASTERS[found] = masters
    return masters


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
