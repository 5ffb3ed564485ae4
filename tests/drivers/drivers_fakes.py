"""Fakes and constants shared by the driver tests (the fake card implements the card's interface)."""

from __future__ import annotations

from pathlib import Path

SELECT_SSSE = bytes.fromhex("00A404000F" + "7378312E73682EC9E7BBE1B1A3D5CF")
FAKE_ATR = bytes.fromhex("3B6C0000" + "53424333" + "0102030405060708")


class FakeCard:
    """The smallest card: answers SELECT with 9000 and echoes any other command's data.

    ``tear_on`` (an INS byte) makes that command tear the card, if the emulator's
    ``CardTorn`` exists; ``log`` records what happened, for the tests to look at.
    """

    def __init__(self, path: Path | None = None, faults: object = None, *, tear_on: int | None = None) -> None:
        self.path = path
        self.faults = faults
        self.tear_on = tear_on
        self.powered = False
        self.log: list[str] = []

    def power_on(self) -> bytes:
        self.powered = True
        self.log.append("on")
        return FAKE_ATR

    def power_off(self) -> None:
        self.powered = False
        self.log.append("off")

    def process(self, apdu: bytes) -> bytes:
        self.log.append(apdu.hex())
        if len(apdu) < 4:
            return b"\x67\x00"
        if self.tear_on is not None and apdu[1] == self.tear_on:
            from terminals.emulator.card import CardTorn

            raise CardTorn("fault injection")
        if apdu[1] == 0xA4:
            return b"\x90\x00"
        data = apdu[5 : 5 + apdu[4]] if len(apdu) > 5 else b""
        return data + b"\x90\x00"


CARD_ID_CODE = "110105D156000005AD932A48BDC3B9E9"


def personalisation_inputs():
    """One person's card data and its keys (a test key set), for personalising a card."""
    import datetime as dt

    from sbcard.chip.crypto import Algorithm, kdf
    from sbcard.chip.keys import IssuerMasterKeys, card_keys
    from sbcard.chip.personalisation import CardData

    data = CardData(
        card_number="188347080",
        card_id_code=CARD_ID_CODE,
        region_code="110105",
        citizen_id="320223195302147992",
        name="张三",
        ethnicity=1,
        birth_place="320223",
        issue_date=dt.date(2024, 3, 1),
        app_serial="03101000000000000042",
        insurance_type="employee",
        initial_pin="123456",
    )
    k = lambda label: kdf(b"sbcard drivers tests", label)  # noqa: E731
    masters = IssuerMasterKeys(k("MK"), k("DPK"), k("DLK"), k("DTK"), k("DAMK"), algorithm=Algorithm.SM4)
    return data, card_keys(masters, data.card_unique, data.app_serial_bytes)
