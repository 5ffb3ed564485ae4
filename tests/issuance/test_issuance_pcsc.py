"""One issuance through the real PC/SC stack: the blank served by ``sbcard reader serve``.

The counter talks to pcscd through pyscard exactly as to a card in a physical reader;
the bridge writes every change to the card file, which is read back in-process after.
"""

from __future__ import annotations

import pytest
from issuance_world import ZHANG

from sbcard.chip.commands import Verify
from sbcard.chip.reading import read_card
from sbcard.services.exchange import directory as hub_directory
from sbcard.store.world import open_world
from terminals.drivers.emulator import EmulatorReader

pytestmark = pytest.mark.pcsc


def test_apply_issue_activate_through_pcsc(sbcard, receive, served_card, home):
    [blank] = receive("TJ-120103-01")
    code, out, err, application = sbcard("card", "apply", "--citizen-id", ZHANG, "--outlet", "TJ-120103-01",
                                         "--operator", "TJ-C1", "--json")
    assert code == 0, err
    bridge = served_card(blank)
    reader = f"pcsc:{bridge.reader}"

    code, out, err, issued = sbcard("card", "issue", application["application_id"], "--reader", reader,
                                    "--operator", "TJ-C1", "--json")
    assert code == 0, err
    assert issued["status"] == "issued" and issued["region"] == "120000" and issued["apdus"] > 40
    code, out, err, active = sbcard("card", "activate", issued["card_number"], "--pin", "147258",
                                    "--operator", "TJ-C1", "--reader", reader, "--json")
    assert code == 0, err
    assert active["status"] == "active"
    bridge.stop()

    with open_world(home) as world:
        assert hub_directory.valid_card_of(world.hub(), ZHANG)["status"] == "active"
        assert world.region("tj")["blank_cards"].get(issued["chip_serial"])["status"] == "used"
    with EmulatorReader(blank) as r:  # what PC/SC wrote is on the card
        snapshot = read_card(r)
        assert (snapshot.card_number, snapshot.card_id_code, snapshot.citizen_id) == (
            issued["card_number"], issued["card_id_code"], ZHANG)
        Verify("147258").send(r)
