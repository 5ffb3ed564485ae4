"""Routing through the hub: a message applied once; settle then refund leaves every ledger as it was."""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from medical_world import NOW, clock, medical_template, medical_world  # noqa: F401

from sbcard.reference import medical as ref
from sbcard.domain import medical
from sbcard.domain.errors import RuleRefused
from sbcard.domain.medical_claim import ClaimRequest
from sbcard.services.medical import routing as route
from sbcard.services.medical import claims as medical_claims, host as medical_host
from sbcard.store.unit_of_work import UnitOfWork

HOLDERS = {"liu": ("110105", "employee", False), "zhao": ("130102", "employee", False),
           "sun": ("130102", "resident", False), "wang": ("120103", "employee", True)}


def _request(w, holder: str, hospital: medical.Hospital, lines, **more) -> ClaimRequest:
    card = w.cards[holder]
    with w.world() as world:
        [row] = world.region(card.node).query("SELECT card_id_code FROM cards WHERE card_number = ?", [card.number])
        claim_id, _ = medical_claims.new_claim_id(UnitOfWork(world.region(route.hospital_node(hospital))), hospital.code)
    region, kind, retired = HOLDERS[holder]
    return ClaimRequest(claim_id=claim_id, hospital=hospital.code, card_number=card.number,
                        card_id_code=row["card_id_code"], citizen_id=card.citizen_id, insured_region=region,
                        insurance_type=kind, retired=retired, lines=lines, at=dt.datetime.now(NOW.tzinfo), **more)


def test_a_settle_sent_twice_is_applied_once(medical_world):
    hospital = ref.hospital("BJH003")
    request = _request(medical_world, "zhao", hospital, [medical.ClaimLine("XJ01CAA040", 30, 1250)], use_account=True)
    with medical_world.world() as world:
        first = route.settle(world, request, hospital_node="bj", now=dt.datetime.now(NOW.tzinfo))
        state = medical_world.state()
        second = route.settle(world, request, hospital_node="bj", now=dt.datetime.now(NOW.tzinfo))
        third = medical_host.settle(UnitOfWork(world.region("he")), request, now=dt.datetime.now(NOW.tzinfo))  # behind the hub
    assert first == second
    assert third["claim_id"] == first["claim_id"] and third["total_fen"] == first["total_fen"]
    assert medical_world.state() == state
    assert [m["idempotency_key"] for m in medical_world.hub_messages("medical.settle")] == [
        f"medical.settle/{request.claim_id}"]
    assert len(medical_world.query("he", "SELECT * FROM medical_claims")) == 1


def test_a_region_behind_a_down_link_is_unreachable(medical_world):
    medical_world.link("tj", "down")
    hospital = ref.hospital("BJH001")
    request = _request(medical_world, "wang", hospital, [medical.ClaimLine("XJ01CAA040", 1, 1250)])
    with medical_world.world() as world:
        try:
            route.settle(world, request, hospital_node="bj", now=dt.datetime.now(NOW.tzinfo))
        except route.Unreachable as e:
            assert e.code == "link.down"
        else:
            raise AssertionError("settled through a down link")
    assert medical_world.hub_messages("medical.settle") == []


def test_the_host_refuses_a_card_whose_chip_is_not_its_record(medical_world):
    hospital = ref.hospital("BJH003")
    request = _request(medical_world, "liu", hospital, [medical.ClaimLine("XJ01CAA040", 1, 1250)])
    forged = ClaimRequest.from_json({**request.to_json(), "citizen_id": "110108199003071238"})
    with medical_world.world() as world:
        try:
            medical_host.settle(UnitOfWork(world.region("bj")), forged, now=dt.datetime.now(NOW.tzinfo))
        except RuleRefused as e:
            assert e.code == "card.mismatch"
        else:
            raise AssertionError("settled for another person")


def test_a_claim_request_travels_as_json():
    at = dt.datetime(2025, 3, 3, 9, 0, tzinfo=NOW.tzinfo)
    request = ClaimRequest(claim_id="BJH003-00000001", hospital="BJH003", card_number="B00000019",
                           card_id_code="0" * 32, citizen_id="110105198506151236", insured_region="110105",
                           insurance_type="employee", retired=False, lines=[medical.ClaimLine("X1", 2, 100)], at=at,
                           mode="offline", offline_self_fen=200)
    assert ClaimRequest.from_json(request.to_json()) == request


# ----------------------------------------------------------------------------- property


CODES = sorted(set(ref.catalogue("110000")) & set(ref.catalogue("120000")) & set(ref.catalogue("130000")))
line = st.builds(medical.ClaimLine, st.sampled_from(CODES), st.integers(1, 30), st.integers(1, 200_000))


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(holder=st.sampled_from(["liu", "zhao", "wang"]), hospital=st.sampled_from(["BJH003", "TJH006", "HEH008"]),
       lines=st.lists(line, min_size=1, max_size=5), use_account=st.booleans(),
       self_pay=st.sampled_from(["cash", "account"]), registered=st.booleans())
def test_settle_then_refund_is_as_if_nothing_happened(medical_world, holder, hospital, lines, use_account, self_pay,
                                                      registered):
    h = ref.hospital(hospital)
    warm = _request(medical_world, holder, h, [medical.ClaimLine(CODES[0], 1, 100)])
    with medical_world.world() as world:
        route.settle(world, warm, hospital_node=route.hospital_node(h), now=dt.datetime.now(NOW.tzinfo))
    before = medical_world.state()
    request = _request(medical_world, holder, h, lines, use_account=use_account, self_pay=self_pay,
                       registered=registered)
    with medical_world.world() as world:
        try:
            route.settle(world, request, hospital_node=route.hospital_node(h), now=dt.datetime.now(NOW.tzinfo))
        except RuleRefused as e:  # a self-pay the financial account cannot take: refused, nothing written
            assert e.code == "account.insufficient"
            assert medical_world.state() == before
            return
        route.refund(world, request.claim_id, None, now=dt.datetime.now(NOW.tzinfo))
    assert medical_world.state() == before
