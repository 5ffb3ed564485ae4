"""A hospital's POS over the host API settles only claim ids issued to its own hospital; the hub never replays
another request's answer under a claim id; the claim's time is bounded by the host's clock."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import pytest
from api_pos_world import online_claim, pos_terminal
from api_world import start_server
from world_template import copy_world

_MEDICAL = str(Path(__file__).resolve().parents[1] / "medical")
if _MEDICAL not in sys.path:
    sys.path.append(_MEDICAL)

from medical_world import MedicalWorld, medical_template  # noqa: E402, F401

from sbcard.clock import SimClock, SystemClock  # noqa: E402
from sbcard.domain.errors import SbcardError  # noqa: E402
from terminals.apps.http_host import HttpHost  # noqa: E402





def _refusal(host: HttpHost, body: dict, key: str) -> tuple[str, int | None]:
    with pytest.raises(SbcardError) as refused:
        host.request("POST", "/medical/settle", body=body, idempotency_key=key)
    return refused.value.code, getattr(refused.value, "status", None)


def test_a_pos_cannot_settle_or_read_another_hospitals_claim(medical_template, tmp_path):
    template, cards = medical_template
    w = MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)
    clock = SimClock(SystemClock().now())
    server = start_server(w.home, clock)
    try:
        a, akey = pos_terminal(w.home, "--operator", "BJH003")
        b, bkey = pos_terminal(w.home, "--operator", "BJH001")
        with HttpHost(server.url, a["terminal"], akey, clock=clock.now) as pos, \
                HttpHost(server.url, b["terminal"], bkey, clock=clock.now) as other:
            issued = pos.request("POST", "/medical/claims")
            claim = online_claim(w, "zhao", issued["claim_id"], "BJH003", clock.now())
            settled = pos.request("POST", "/medical/settle", body=claim, idempotency_key="a-1")
            # BJH001's POS names BJH003's claim id under its own hospital: refused, nothing of the claim shown
            assert _refusal(other, {**claim, "hospital": "BJH001"}, "b-1")[0] == "medical.claim_id"
            # nor may it take BJH003's next claim id, nor one of its own not issued yet, nor a malformed one
            serial = int(issued["claim_id"].split("-")[1])
            for n, claim_id in enumerate([f"BJH003-{serial + 1:08d}", "BJH001-99999999", "BJH001-x1",
                                          "BJH001-1"]):
                assert _refusal(other, {**claim, "hospital": "BJH001", "claim_id": claim_id},
                                f"b-2-{n}")[0] == "medical.claim_id"
            nxt = pos.request("POST", "/medical/claims")
            own = pos.request("POST", "/medical/settle", body=online_claim(w, "zhao", nxt["claim_id"], "BJH003",
                                                                     clock.now()), idempotency_key="a-2")
            assert own["claim_id"] == nxt["claim_id"] and own["hospital"] == "BJH003"
            # the same claim id again with another request (another key): the hub does not replay the first answer
            changed = {**claim, "lines": [["XJ01CAA040", 1, 1250]]}
            assert _refusal(pos, changed, "a-3") == ("medical.claim.exists", None)
            # the same request again is answered as the first time
            assert pos.request("POST", "/medical/settle", body=claim, idempotency_key="a-4") == settled
    finally:
        server.stop()


def test_an_online_claims_time_is_bounded_by_the_hosts_clock(medical_template, tmp_path):
    template, cards = medical_template
    w = MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)
    clock = SimClock(SystemClock().now())
    server = start_server(w.home, clock)
    try:
        a, akey = pos_terminal(w.home, "--operator", "BJH003")
        with HttpHost(server.url, a["terminal"], akey, clock=clock.now) as pos:
            now = clock.now()
            for n, at in enumerate([dt.datetime(2099, 1, 1, tzinfo=now.tzinfo), now + dt.timedelta(seconds=601),
                                    now - dt.timedelta(days=400), now - dt.timedelta(seconds=601)]):
                issued = pos.request("POST", "/medical/claims")
                with pytest.raises(SbcardError) as refused:
                    pos.request("POST", "/medical/settle", body=online_claim(w, "zhao", issued["claim_id"], "BJH003", at),
                                idempotency_key=f"t-{n}")
                assert (refused.value.code, refused.value.field) == ("medical.claim_time", "at")
            issued = pos.request("POST", "/medical/claims")
            settled = pos.request("POST", "/medical/settle", idempotency_key="t-ok", body=online_claim(
                w, "zhao", issued["claim_id"], "BJH003", now - dt.timedelta(seconds=590)))
            assert settled["claim_id"] == issued["claim_id"]
        assert len(w.query("he", "SELECT * FROM medical_claims")) == 1
    finally:
        server.stop()
