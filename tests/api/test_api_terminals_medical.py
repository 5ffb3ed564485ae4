"""A hospital's point of sale settles a claim online over the host API, signed as its registered POS."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from api_world import start_server
from world_template import cli, copy_world

_MEDICAL = str(Path(__file__).resolve().parents[1] / "medical")
if _MEDICAL not in sys.path:
    sys.path.append(_MEDICAL)

from medical_world import NOW, MedicalWorld, medical_template  # noqa: E402, F401

from sbcard.clock import SimClock, SystemClock  # noqa: E402
from sbcard.cli.terminals import terminal_dir  # noqa: E402
from sbcard.domain.errors import SbcardError  # noqa: E402
from sbcard.store.world import open_world  # noqa: E402
from terminals.apps.http_host import HttpHost  # noqa: E402
from terminals.apps.terminal_state import TerminalState  # noqa: E402

LINES = [["XJ01CAA040", 30, 1250]]  # 30 × ¥12.50


def _terminal(home: Path, *args: str) -> tuple[str, bytes]:
    code, _, err, added = cli(home, "terminal", "add", *args, "--json")
    assert code == 0, err
    with TerminalState.open(terminal_dir(home, added["terminal"])) as state:
        return added, state.host_credential()


def _claim(w: MedicalWorld, holder: str, claim_id: str, hospital: str, at: dt.datetime) -> dict:
    card = w.cards[holder]
    [row] = w.query(card.node, "SELECT card_id_code FROM cards WHERE card_number = ?", (card.number,))
    return {"claim_id": claim_id, "hospital": hospital, "card_number": card.number,
            "card_id_code": row["card_id_code"], "citizen_id": card.citizen_id, "insured_region": "130102",
            "insurance_type": "employee", "retired": False, "lines": LINES, "at": at.isoformat(),
            "use_account": True}


def test_a_pos_settles_online_once_and_only_for_its_own_hospital(medical_template, tmp_path):
    template, cards = medical_template
    w = MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)
    clock = SimClock(SystemClock().now())  # the CLI's terminal add runs on the wall clock
    server = start_server(w.home, clock)
    try:
        added, key = _terminal(w.home, "--operator", "BJH003")
        assert (added["node"], added["operator"], added["terminal"]) == ("bj", "BJH003", "BJH003-0001")
        other, other_key = _terminal(w.home, "--operator", "BJH001")
        gate, gate_key = _terminal(w.home, "--operator", "bj-subway", "--station", "西直门")
        code, _, err, _ = cli(w.home, "terminal", "add", "--operator", "BJH003", "--line", "1", "--json")
        assert code == 2, err
        code, _, err, listed = cli(w.home, "terminal", "list", "--operator", "bjh003", "--json")
        assert code == 0 and [t["terminal"] for t in listed] == ["BJH003-0001"], err

        with HttpHost(server.url, added["terminal"], key, clock=clock.now) as pos:
            issued = pos.request("POST", "/medical/claims")
            assert issued["hospital"] == "BJH003" and issued["claim_id"].startswith("BJH003-")
            claim = _claim(w, "zhao", issued["claim_id"], "BJH003", clock.now())
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
