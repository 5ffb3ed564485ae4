"""The card factory's personalisation machine (批量制卡), one chip after another.

For each card of a production batch the machine takes a new blank and personalises it
with the data and keys the issuing region prepared: transport-key authentication, then
``sbcard.chip.personalisation.build_factory_script`` — ERASE and a STORE DATA per group
of files (GlobalPlatform's way, a whole file per command), which makes exactly the card
the counter's ``build_script`` makes with a command per record, in 8 APDUs instead of
33 — each one's status word checked, and at the end the chip's life state and PIN try
counter. A counter also reads the whole card back and compares it field by field,
because a card in the field can be torn or a reader faulty; the machine holds the chip
in its contacts from the first command to the last, and the region's
``sbcard.chip.personalisation.differences`` check is left to the counter that hands the
card over. For a card handed to its holder before it leaves (the cards a simulation's
population already holds) it then sets the holder's PIN under the card maintenance key,
as activation at a counter does (``counter.set_pin``). Only a card that passed all of it
is written out (``MachineCard.release``).
"""

from __future__ import annotations

from pathlib import Path

from sbcard.chip import profile
from sbcard.chip.commands import GetChipInfo, PinTriesLeft, external_authenticate
from sbcard.chip.crypto import Algorithm
from sbcard.chip.keys import CardKeys, transport_key
from sbcard.chip.personalisation import CardData, PersonalisationMismatch, build_factory_script
from sbcard.chip.reader import transmit
from terminals.apps.counter import set_pin
from terminals.emulator.factory import MachineCard

TRANSPORT_ALG = Algorithm.SM4


def produce_card(path: Path | str, chip_serial: bytes, card: CardData, keys: CardKeys, pin: str | None = None) -> Path:
    """Personalise a new blank as ``card`` (and set ``pin``); the card file written."""
    script = build_factory_script(card, keys)
    chip = MachineCard(path, chip_serial)
    try:
        external_authenticate(chip, transport_key(chip_serial, TRANSPORT_ALG), profile.TRANSPORT_KEY_INDEX, TRANSPORT_ALG)
        for command in script:
            transmit(chip, command).check()
        if GetChipInfo().send(chip).life_state is not profile.LifeState.PERSONALISED:
            raise PersonalisationMismatch(("life_state",))
        if PinTriesLeft().send(chip) != profile.PIN_TRIES:
            raise PersonalisationMismatch(("pin_tries",))
        if pin is not None:
            set_pin(chip, keys, pin)
        return chip.release()
    finally:
        chip.close()
