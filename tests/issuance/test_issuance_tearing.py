"""A card torn at any write of its personalisation is never recorded as issued.

``card issue --reader emulator:PATH?tear=N`` cuts the card's power at its N-th persistent
write, for N = 1, 2, … until an issuance goes through untorn. After each tear: not one
database changed but the sequences (no card, the application still open, the blank still
in stock, the hub unaware), and the card number and application serial sent to the chip
are never given again; the card is recognisably unusable — blank or personalising, its
application data unreadable — and running ``card issue`` again issues it; unless the tear
hit the very last commit, which leaves a complete card with its number, unrecorded: that
chip is refused as not blank (it is spoiled) and the application is issued on another
blank, under another number.
"""

from __future__ import annotations

from issuance_world import NOW, WorldState

from sbcard.chip import profile
from sbcard.chip.reading import read_card
from sbcard.domain import allocation
from sbcard.domain.citizen_id import compute_check_char
from sbcard.services.people import registry
from sbcard.store.world import open_world
from terminals.drivers.emulator import EmulatorReader


MAX_WRITES = 100


def register(home, count: int) -> list[str]:
    """``count`` Tianjin residents, one per torn issuance."""
    ids = []
    with open_world(home) as world:
        for n in range(1, count + 1):
            first17 = f"12010319900101{n:03d}"
            ids.append(first17 + compute_check_char(first17))
            registry.add_person(world.region("tj"), citizen_id=ids[-1], name=f"测试{n}", region="120103",
                                insurance="resident", now=NOW)
    return ids


def _sequences(home) -> dict[str, int]:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        return {r["name"]: r["value"] for r in world.region("tj")["sequences"].rows}


def test_a_tear_at_every_write_leaves_nothing_recorded_and_the_card_can_be_issued_again(sbcard, receive, home):
    people, blanks = register(home, MAX_WRITES), receive("TJ-120103-01", MAX_WRITES + 1)
    spare = blanks[-1]
    torn_complete = 0
    numbers_sent: set[str] = set()
    n = 0
    while True:
        n += 1
        assert n < MAX_WRITES, "issuance never went through"
        citizen_id, blank = people[n - 1], blanks[n - 1]
        code, out, err, application = sbcard("card", "apply", "--citizen-id", citizen_id, "--outlet", "TJ-120103-01",
                                             "--operator", "TJ-C1", "--json")
        assert code == 0, err
        issue = ["card", "issue", application["application_id"], "--operator", "TJ-C1", "--json", "--reader"]

        before, numbers = WorldState.take(home, [], but_sequences=True), _sequences(home)
        code, out, err, _ = sbcard(*issue, f"emulator:{blank}?tear={n}")
        if code == 0:
            break
        assert code == 3 and "torn" in err and err.count("\n") == 1, (n, err)
        assert WorldState.take(home, [], but_sequences=True) == before, f"tear at write {n} changed a database"
        moved = {k: v - numbers.get(k, 0) for k, v in _sequences(home).items() if v != numbers.get(k, 0)}
        assert moved == {allocation.SEQ_CARD_NUMBER: 1, allocation.SEQ_APP_SERIAL: 1}  # reserved, never again

        with EmulatorReader(blank) as reader:
            card = read_card(reader)
        if card.life_state is profile.LifeState.PERSONALISED:  # torn at SET STATUS's commit: complete, unrecorded
            torn_complete += 1
            assert card.citizen_id == citizen_id and not card.warnings
            numbers_sent.add(card.card_number)
            code, out, err, _ = sbcard(*issue, f"emulator:{blank}")
            assert code == 1 and "already personalised" in err, (n, err)
            blank = spare  # the torn chip is spoiled; the application is issued on another blank
        else:
            assert (card.card_number, card.citizen_id, card.balance_fen) == (None, None, None), n

        code, out, err, issued = sbcard(*issue, f"emulator:{blank}")
        assert code == 0, (n, err)
        assert issued["resumed"] is False and issued["card_number"] not in numbers_sent
        numbers_sent.add(issued["card_number"])
        with open_world(home) as world:
            row = world.region("tj")["cards"].get(issued["card_number"])
            assert row["chip_serial"] == issued["chip_serial"] and row["status"] == "issued"
            assert world.region("tj")["blank_cards"].get(issued["chip_serial"])["status"] == "used"
    assert n > 30  # every command of the script was torn at least once
    assert torn_complete == 1
