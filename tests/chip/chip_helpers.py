"""Values the chip tests share: one person's card data and a region's keys."""

from __future__ import annotations

import datetime as dt

from sbcard.chip.crypto import Algorithm, kdf
from sbcard.chip.keys import CardKeys, IssuerMasterKeys, card_keys
from sbcard.chip.personalisation import CardData


def masters(region: str = "110000", alg: Algorithm = Algorithm.SM4) -> IssuerMasterKeys:
    k = lambda label: kdf(region.encode(), label)  # noqa: E731
    return IssuerMasterKeys(k("MK"), k("DPK"), k("DLK"), k("DTK"), k("DAMK"), algorithm=alg)


def make_card_data(**changes) -> CardData:
    fields = dict(
        card_number="188347080",
        card_id_code="110105D156000005AD932A48BDC3B9E9",
        region_code="110105",
        citizen_id="320223195302147992",
        name="张三",
        ethnicity=1,
        birth_place="320223",
        issue_date=dt.date(2024, 3, 1),
        app_serial="03101000000000000042",
        insurance_type="employee",
        retired=True,
        initial_pin="123456",
        offline_limit_fen=20_000,
    )
    return CardData(**(fields | changes))


def keys_for(card: CardData, alg: Algorithm = Algorithm.SM4) -> CardKeys:
    return card_keys(masters(card.region_code, alg), card.card_unique, card.app_serial_bytes)
