"""A hospital's point of sale settles a claim online over the host API, signed as its registered POS."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from api_pos_world import online_claim, pos_terminal
from api_world import start_server
from world_template import cli, copy_world

_MEDICAL = str(Path(__file__).resolve().parents[1] / "medical")
if _MEDICAL not in sys.path:
    sys.path.append(_MEDICAL)

from medical_world import MedicalWorld, medical_template  # noqa: E402, F401

from sbcard.clock import SimClock, SystemClock  # noqa: E402
from sbcard.domain.errors import SbcardError  # noqa: E402
from sbcard.store.world import open_world  # noqa: E402
from terminals.apps.http_host import HttpHost  # noqa: E402





def test_a_pos_settles_online_once_and_only_for_its_own_hospital(medical_template, tmp_path):
    template, cards = medical_template
    w = MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)
    clock = SimClock(SystemClock().now())  # the CLI's terminal add runs on the wall clock
    server = start_server(w.home, clock)
    try:
        added, key = pos_terminal(w.home, "--operator", "BJH003")
        assert (added["node"], added["operator"], added["terminal"]) == ("bj", "BJH003", "BJH003-0001")
        other, other_key = pos_terminal(w.home, "--operator", "BJH001")
        gate, gate_key = pos_terminal(w.home, "--operator", "bj-subway", "--station", "西直门")
        code, _, err, _ = cli(w.home, "terminal", "add", "--operator", "BJH003", "--line", "1", "--json")
        assert code == 2, err
        code, _, err, listed = cli(w.home, "terminal", "list", "--operator", "bjh003", "--json")
        assert code == 0 and [t["terminal"] for t in listed] == ["BJH003-0001"], err

        with HttpHost(server.url, added["terminal"], key, clock=clock.now) as pos:
            issued = pos.request("POST", "/medical/claims")
            assert issued["hospital"] == "BJH003" and issued["claim_id"].startswith("BJH003-")
            claim = online_claim(w, "zhao", issued["claim_id"], "BJH003", clock.now())
            with pytest.raises(SbcardError) as unkeyed:
                pos.request("POST", "/medical/settle", body=claim)
            assert unkeyed.value.code == "idempotency.missing"
            settled = pos.request("POST", "/medical/settle", body=claim, idempotency_key="claim-1")
            assert settled["claim_id"] == issued["claim_id"] and settled["total_fen"] == 30 * 1250
            again = pos.request("POST", "/medical/settle", body=claim, idempotency_key="claim-1")
            assert again == settled
            assert len(w.query("he", "SELECT * FROM medical_claims")) == 1
            assert pos.card_status(w.cards["zhao"].number)["status"] == "active"

        with HttpHost(server.url, other["terminal"], other_key, clock=clock.now) as elsewhere:
            with pytest.raises(SbcardError) as refused:
                elsewhere.request("POST", "/medical/settle", body={**claim, "claim_id": "BJH003-99999999"},
                                  idempotency_key="claim-2")
            assert (refused.value.code, refused.value.status) == ("medical.hospital", 403)
        with HttpHost(server.url, gate["terminal"], gate_key, clock=clock.now) as bus:
            with pytest.raises(SbcardError) as not_pos:
                bus.request("POST", "/medical/claims")
            assert (not_pos.value.code, not_pos.value.status) == ("terminal.not_pos", 403)
        with open_world(w.home) as world:
            assert len(list(world.region("he").query("SELECT * FROM medical_claims"))) == 1
    finally:
        server.stop()
