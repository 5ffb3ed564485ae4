"""Key sets and their diversification onto one card.

In a real service the masters live in the issuer's HSM and in the PSAMs; here a region's
masters live in its key store beside its database (``<home>/<node>.keys``, sealed under a
key-encryption key: ``sbcard/store/keystore.py``) and the card factory's transport master
is a published test key, like the test keys payment schemes hand to terminal vendors.
"""

from __future__ import annotations

import attrs

from sbcard.chip.crypto import Algorithm, diversify
from sbcard.chip.profile import KeyUsage

# The card factory's transport master key (test material; never a production key).
FACTORY_TRANSPORT_MASTER_KEY = bytes.fromhex("5342434152442D5452414E53504F5254")  # "SBCARD-TRANSPORT"


def transport_key(chip_serial: bytes, alg: Algorithm = Algorithm.SM4) -> bytes:
    """A blank card's transport key, derived from its chip serial."""
    return diversify(alg, FACTORY_TRANSPORT_MASTER_KEY, chip_serial)


@attrs.frozen
class IssuerMasterKeys:
    """One region's master keys, from which every card key of that region is derived."""

    maintenance: bytes  # MK master
    purchase: bytes  # DPK master (also in the PSAMs of every operator)
    load: bytes  # DLK master
    tac: bytes  # DTK master
    app_maintenance: bytes  # DAMK master
    algorithm: Algorithm = Algorithm.SM4
    version: int = 1
    upload: bytes | None = None  # UMK master: terminals' upload keys (sbcard.chip.upload_batch); an operator region's


@attrs.frozen
class CardKeys:
    """The keys written into one card."""

    maintenance: bytes
    purchase: bytes
    load: bytes
    tac: bytes
    app_maintenance: bytes
    algorithm: Algorithm = Algorithm.SM4
    version: int = 1

    def by_usage(self) -> dict[KeyUsage, bytes]:
        return {
            KeyUsage.MAINTENANCE: self.maintenance,
            KeyUsage.PURCHASE: self.purchase,
            KeyUsage.LOAD: self.load,
            KeyUsage.TAC: self.tac,
            KeyUsage.APP_MAINTENANCE: self.app_maintenance,
        }


def card_keys(masters: IssuerMasterKeys, card_unique: bytes, app_serial: bytes) -> CardKeys:
    """Diversify: MK by the 卡识别码's card-unique 8 bytes, purse keys by the application serial."""
    alg = masters.algorithm
    return CardKeys(
        maintenance=diversify(alg, masters.maintenance, card_unique),
        purchase=diversify(alg, masters.purchase, app_serial),
        load=diversify(alg, masters.load, app_serial),
        tac=diversify(alg, masters.tac, app_serial),
        app_maintenance=diversify(alg, masters.app_maintenance, app_serial),
        algorithm=alg,
        version=masters.version,
    )
