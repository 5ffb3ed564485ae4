"""A card torn at any write of its personalisation is never recorded as issued.

``card issue --reader emulator:PATH?tear=N`` cuts the card's power at its N-th persistent
write, for N = 1, 2, … until an issuance goes through untorn. After each tear: not one
database changed (no card, the application still open, the blank still in stock, the
hub unaware); the card is recognisably unusable — blank or personalising, its
application data unreadable — unless the tear hit the very last commit, which leaves a
complete card; and running ``card issue`` again issues it.
"""

from __future__ import annotations

from issuance_world import NOW

from sbcard.chip import profile
from sbcard.chip.reading import read_card
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


def test_a_tear_at_every_write_leaves_nothing_recorded_and_the_card_can_be_issued_again(sbcard, receive, state, home):
    people, blanks = register(home, MAX_WRITES), receive("TJ-120103-01", MAX_WRITES)
    torn_complete = 0
    n = 0
    while True:
        n += 1
        assert n < MAX_WRITES, "issuance never went through"
        citizen_id, blank = people[n - 1], blanks[n - 1]
        code, out, err, application = sbcard("card", "apply", "--citizen-id", citizen_id, "--outlet", "TJ-120103-01",
                                             "--operator", "TJ-C1", "--json")
        assert code == 0, err
        issue = ["card", "issue", application["application_id"], "--operator", "TJ-C1", "--json", "--reader"]

        before = state()
        code, out, err, _ = sbcard(*issue, f"emulator:{blank}?tear={n}")
        if code == 0:
            break
        assert code == 3 and "torn" in err and err.count("\n") == 1, (n, err)
        assert state() == before, f"tear at write {n} changed a database"

        with EmulatorReader(blank) as reader:
            card = read_card(reader)
        if card.life_state is profile.LifeState.PERSONALISED:  # torn at SET STATUS's commit: complete, unrecorded
            torn_complete += 1
            assert card.citizen_id == citizen_id and not card.warnings
        else:
            assert (card.card_number, card.citizen_id, card.balance_fen) == (None, None, None), n

        code, out, err, issued = sbcard(*issue, f"emulator:{blank}")
        assert code == 0, (n, err)
        assert issued["resumed"] == (card.life_state is profile.LifeState.PERSONALISED)
        with open_world(home) as world:
            row = world.region("tj")["cards"].get(issued["card_number"])
            assert row["chip_serial"] == issued["chip_serial"] and row["status"] == "issued"
            assert world.region("tj")["blank_cards"].get(issued["chip_serial"])["status"] == "used"
    assert n > 30  # every command of the script was torn at least once
    assert torn_complete == 1
