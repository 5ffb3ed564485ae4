"""One tap through the real PC/SC stack: the card served by ``sbcard reader serve`` into vpcd.

The validator talks to pcscd through pyscard exactly as to a card in a physical reader;
the bridge writes every change to the card file, which is read back in-process after.
"""

from __future__ import annotations

import pytest
from validator_helpers import rig, validator_template  # noqa: F401

from terminals.apps.terminal_state import TerminalState

pytestmark = pytest.mark.pcsc


def test_a_tianjin_card_tapped_on_a_beijing_bus_through_pcsc(rig, sbcard, served_card):
    card = rig.card("tj", balance_fen=1000)
    code, out, err, added = sbcard("terminal", "add", "--operator", "bj-bus", "--area", "city", "--json")
    assert code == 0, err
    bridge = served_card(card)

    code, out, err, ride = sbcard("transit", "tap", "--reader", f"pcsc:{bridge.reader}", "--terminal",
                                  added["terminal"], "--km", "3", "--json")
    assert code == 0, err
    assert (ride["result"], ride["fare_fen"], ride["balance_fen"], ride["issuer_node"]) == ("ok", 100, 900, "tj")
    bridge.stop()

    assert rig.balance(card) == 900 and rig.counter(card) == 1  # what PC/SC wrote is on the card
    with TerminalState.open(rig.home / "terminals" / added["terminal"]) as state:
        [record] = state.records()
        assert (record["counter"], record["amount_fen"], record["status"]) == (0, 100, "ok")
        assert record["tac"] and record["mac2"]
