"""A blank in the card factory's personalisation machine.

At a counter the blank is a card file in the outlet's stock, and every command the card
commits is written to that file at once (a tear can strike between any two). In the
factory the chip sits in the machine for the whole run and leaves it only when it is
done: ``MachineCard`` is a ``VirtualCard`` on a fresh blank whose commits stay in the
image the card holds, and ``release`` writes the finished image to its file in one go.
The card OS is the same (every command runs through ``VirtualCard.process``); only the
file is written once instead of after each commit. A card that never leaves the machine
(a refused or failed run) leaves no file behind.
"""

from __future__ import annotations

from pathlib import Path

from terminals.emulator import card_file
from terminals.emulator.blank import blank_state
from terminals.emulator.card import VirtualCard
from terminals.emulator.image import CardState
from terminals.emulator.session import RandomSource


class _InTheMachine:
    """The card file's stand-in while the chip is in the machine: commits stay in the image."""

    def save(self, state: CardState, *, durable: bool = False) -> None:
        del state, durable

    def close(self) -> None:
        pass


class MachineCard(VirtualCard):
    """A new blank (chip ``chip_serial``) in the personalisation machine, to become the card file ``path``."""

    def __init__(self, path: Path | str, chip_serial: bytes, rng: RandomSource | None = None) -> None:
        super().__init__(path, blank_state(chip_serial), rng=rng, file=_InTheMachine())  # type: ignore[arg-type]
        self.name = f"factory:{chip_serial.hex().upper()}"

    def release(self) -> Path:
        """The card leaves the machine: its image is written to its file (never over another card)."""
        self.power_off()
        card_file.create(self.state, self.path)
        return self.path

    # The machine's contacts (``sbcard.chip.reader.Reader``): the chip never leaves them during the run.

    def card_present(self) -> bool:
        return not self.torn

    def transmit_raw(self, apdu: bytes) -> bytes:
        return self.process(apdu)
