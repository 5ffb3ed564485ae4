"""Anti-tearing: a purchase or a load torn at each of its persistent writes.

Torn at a journal write, the card keeps exactly its old image (the file is untouched);
torn at the commit write, exactly the image an untorn run gives, and GET TRANSACTION
PROVE hands the terminal the MAC2 and TAC it never received. Either way the card leaves
the field: it answers nothing more until loaded from its file again.
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from emulator_helpers import TEMPLATE_BALANCE
from emulator_helpers import SELECT_TU, ok, run, sw

from sbcard.chip.purse import EP_PURCHASE
from sbcard.chip.reader import CardIOError, NoCard
from terminals.drivers.emulator import EmulatorReader
from terminals.emulator import testing
from terminals.emulator.card import CardTorn, VirtualCard
from terminals.emulator.faults import Faults

SEED = 11
SERIAL = bytes.fromhex("00000042")


def _purchase(card: VirtualCard):
    p = testing.start_purchase(card, 1_234)
    return p, lambda: testing.finish_purchase(card, p, SERIAL)


def _load(card: VirtualCard):
    p = testing.start_load(card, 4_321)
    return p, lambda: testing.finish_load(card, p)


def _reference(template: Path, tmp_path: Path, start) -> tuple[int, bytes]:
    """An untorn run: how many writes since power-on it takes, and the image it leaves."""
    path = Path(shutil.copyfile(template, tmp_path / "reference.json"))
    card = VirtualCard.load(path, rng=random.Random(SEED))
    card.power_on()
    _, finish = start(card)
    finish()
    return card.writes_since_power_on, path.read_bytes()


@pytest.mark.parametrize(("start", "kind"), [(_purchase, "purchase"), (_load, "load")])
def test_torn_at_every_write(template: Path, tmp_path: Path, start, kind: str) -> None:
    writes, new_image = _reference(template, tmp_path, start)
    assert writes == 4  # purse, log record, prove; commit
    old_image = template.read_bytes()
    path = tmp_path / "card.json"
    for n in range(1, writes + 1):
        path.write_bytes(old_image)
        card = VirtualCard.load(path, Faults(tear_at_write=n), random.Random(SEED))
        card.power_on()
        pending, finish = start(card)
        with pytest.raises(CardTorn):
            finish()
        for again in (lambda: card.process(bytes.fromhex(SELECT_TU)), card.power_on):
            with pytest.raises(CardTorn):
                again()

        committed = n == writes
        assert path.read_bytes() == (new_image if committed else old_image), f"{kind} torn at write {n}"
        retap = VirtualCard.load(path)
        if kind == "purchase":
            expected = pending.expected_prove(SERIAL, testing.TEST_WHEN)
            assert testing.balance(retap) == TEMPLATE_BALANCE - (1_234 if committed else 0)
            prove = run(retap, "805A000602000008")  # counter 0
        else:
            expected = (pending.mac2(testing.TEST_WHEN), pending.expected_tac(testing.TEST_WHEN))
            assert testing.balance(retap) == TEMPLATE_BALANCE + (4_321 if committed else 0)
            prove = run(retap, "805A000202000108")  # counter 1 (the template's load was 0)
        if committed:
            assert prove.sw == 0x9000 and (prove.data[:4], prove.data[4:]) == expected
        else:
            assert prove.sw == 0x9406


def test_a_terminal_completes_a_torn_purchase_from_the_prove(card_path: Path) -> None:
    """CARD-PROFILE "Tearing": the balance already dropped, so ask for the prove, not again."""
    card = VirtualCard.load(card_path, Faults(tear_at_write=4), random.Random(SEED))
    p = testing.start_purchase(card, 500)
    with pytest.raises(CardTorn):
        testing.finish_purchase(card, p, SERIAL)
    card = VirtualCard.load(card_path)
    ok(card, SELECT_TU)
    assert testing.balance(card) == p.balance - p.amount  # debited: do not debit again…
    assert testing.transaction_prove(card, EP_PURCHASE, p.counter) == p.expected_prove(SERIAL, testing.TEST_WHEN)  # …prove it


def test_the_tear_point_counts_writes_since_power_on(card_path: Path) -> None:
    card = VirtualCard.load(card_path, Faults(tear_at_write=5), random.Random(SEED))
    card.power_on()
    testing.purchase(card, 1)  # writes 1-4
    assert card.writes_since_power_on == 4
    card.power_on()  # a new session counts from zero again
    testing.purchase(card, 1)
    with pytest.raises(CardTorn):
        testing.purchase(card, 1)  # write 5 of the session is this purchase's purse write


def test_commands_without_writes_never_tear(card_path: Path) -> None:
    card = VirtualCard.load(card_path, Faults(tear_at_write=1))
    for _ in range(3):
        ok(card, SELECT_TU)
        ok(card, "805C000204")
        testing.start_purchase(card, 1)
    assert card.writes_since_power_on == 0


def test_a_verify_torn_after_its_decrement_keeps_the_try_spent(card_path: Path) -> None:
    """Tearing cannot buy PIN tries: the decrement commits before the comparison."""
    card = VirtualCard.load(card_path, Faults(tear_at_write=2))  # the decrement's commit
    with pytest.raises(CardTorn):
        run(card, "0020000003111111")
    assert VirtualCard.load(card_path).state.pin.tries_left == 2

    card = VirtualCard.load(card_path, Faults(tear_at_write=3))  # the restore's journal write
    with pytest.raises(CardTorn):
        run(card, "0020000003123456")
    assert VirtualCard.load(card_path).state.pin.tries_left == 1

    card = VirtualCard.load(card_path)
    ok(card, "0020000003123456")
    assert card.state.pin.tries_left == 3


def test_the_in_process_reader_reports_a_torn_card(card_path: Path) -> None:
    reader = EmulatorReader(card_path, Faults(tear_at_write=1))
    assert reader.transmit_raw(bytes.fromhex(SELECT_TU))[-2:] == b"\x90\x00"
    with pytest.raises(CardIOError):
        reader.transmit_raw(bytes.fromhex("0020000003111111"))
    with pytest.raises(NoCard):
        reader.transmit_raw(bytes.fromhex(SELECT_TU))
    reader.close()  # a new tap: the card is loaded from its file again
    assert sw(VirtualCard.load(card_path), "00200000") == 0x63C3  # torn at the journal write: no try spent
