"""The factory machine's cost per card: STORE DATA, a whole file per command.

The batch's card is the counter's byte for byte (test_batch_production.py); here, what
the machine sends for it, and that a chip refusing a block leaves no card file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sbcard.chip import profile
from sbcard.chip import sw
from sbcard.chip.apdu import Command
from terminals.apps import factory
from terminals.emulator import testing
from terminals.emulator.factory import MachineCard

DATA = testing.card_data()
KEYS = testing.keys_of(DATA)
SERIAL = bytes.fromhex("5342000000000042")


def _recording(monkeypatch: pytest.MonkeyPatch) -> list[Command]:
    sent: list[Command] = []
    transmit_raw = MachineCard.transmit_raw

    def record(self: MachineCard, apdu: bytes) -> bytes:
        sent.append(Command.parse(apdu))
        return transmit_raw(self, apdu)

    monkeypatch.setattr(MachineCard, "transmit_raw", record)
    return sent


def test_the_machine_sends_16_apdus_per_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _recording(monkeypatch)
    factory.produce_card(tmp_path / "card.card", SERIAL, DATA, KEYS, "147258")
    assert len(sent) == 16  # the counter's script made it 41
    assert [(c.cla, c.ins) for c in sent].count((profile.CLA_PROPRIETARY, profile.Ins.STORE_DATA)) == 4
    assert not [c for c in sent if c.ins in (profile.Ins.UPDATE_RECORD, profile.Ins.WRITE_KEY, profile.Ins.SET_STATUS)]


def test_a_refused_block_leaves_no_card(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A chip answering 6A80 to a STORE DATA: the run stops there, no file is written."""
    sent = _recording(monkeypatch)
    process = MachineCard.process

    def refuse_ssse_block(self: MachineCard, apdu: bytes) -> bytes:
        if apdu[:4] == bytes.fromhex("80E20801"):
            return sw.WRONG_DATA.to_bytes(2, "big")
        return process(self, apdu)

    monkeypatch.setattr(MachineCard, "process", refuse_ssse_block)
    with pytest.raises(sw.CardStatus) as refused:
        factory.produce_card(tmp_path / "card.card", SERIAL, DATA, KEYS, "147258")
    assert refused.value.sw == sw.WRONG_DATA
    assert sent[-1].to_bytes()[:4] == bytes.fromhex("80E20801") and not list(tmp_path.iterdir())
