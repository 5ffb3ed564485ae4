"""Blank cards, as the card factory delivers them to an issuer.

A blank card holds only its chip serial and its transport key (diversified from the
factory's transport master key by that serial); its life state is ``blank``. The
issuer's personalisation authenticates with the transport key, ERASEs the card and
writes everything else.
"""

from __future__ import annotations

import random
from pathlib import Path

from sbcard.chip.crypto import Algorithm
from sbcard.chip.keys import transport_key
from sbcard.chip.profile import TRANSPORT_KEY_INDEX, KeyUsage, LifeState
from terminals.emulator import card_file
from terminals.emulator.image import MF, CardState, KeyEntry
from terminals.emulator.session import RandomSource

CHIP_SERIAL_BYTES = 8
TRANSPORT_KEY_VERSION = 0x01


def blank_state(chip_serial: bytes) -> CardState:
    if len(chip_serial) != CHIP_SERIAL_BYTES:
        raise ValueError(f"a chip serial is {CHIP_SERIAL_BYTES} bytes, got {len(chip_serial)}")
    alg = Algorithm.SM4
    tk = KeyEntry(alg.id_byte, TRANSPORT_KEY_VERSION, transport_key(bytes(chip_serial), alg))
    return CardState(
        chip_serial=bytes(chip_serial),
        life_state=LifeState.BLANK,
        keys={(MF, KeyUsage.TRANSPORT, TRANSPORT_KEY_INDEX): tk},
    )


def create_blank(path: Path | str, chip_serial: bytes | None = None, rng: RandomSource | None = None) -> Path:
    """Write a blank card file; the serial is drawn from ``rng`` when not given.

    Refuses to overwrite an existing file (``FileExistsError``): a card file is a card.
    """
    path = Path(path)
    if chip_serial is None:
        chip_serial = bytes((rng if rng is not None else random.SystemRandom()).randbytes(CHIP_SERIAL_BYTES))
    card_file.create(blank_state(chip_serial), path)
    return path
