"""Properties of ``settle`` over random claims, years and circumstances (hypothesis).

Money is conserved per item and per claim, nothing is negative, the fund never passes
the cap, the account never passes what it was given nor pays a 丙类 item, the
deductible never passes the level's, and ``reverse`` gives the year back exactly.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sbcard.reference import medical as medical_reference
from sbcard.domain import medical

PROVINCES = medical.PROVINCES
POLICIES = medical_reference.policies()


@st.composite
def claims(draw):
    province = draw(st.sampled_from(PROVINCES))
    catalogue = medical_reference.catalogue(province)
    codes = sorted(catalogue)
    lines = draw(st.lists(
        st.builds(medical.ClaimLine, st.sampled_from(codes), st.integers(1, 50), st.integers(1, 300_000)),
        min_size=1, max_size=8))
    policy = draw(st.sampled_from(POLICIES))
    level = draw(st.sampled_from(medical.LEVELS))
    deductible = st.integers(0, max(policy.deductible_fen.values()) + 10_000)
    fund = st.integers(0, (policy.cap_fen or 5_000_000) + 10_000)
    ytd = medical.YearToDate(draw(st.integers(2020, 2030)), draw(deductible), draw(fund),
                       draw(st.integers(0, 3_000_000)), draw(deductible), draw(fund))
    c = medical.Circumstances(level, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()), episode=policy.episode)
    account = draw(st.integers(0, 300_000))
    return catalogue, lines, policy, ytd, c, account


@settings(max_examples=300, deadline=None)
@given(claims())
def test_settlement_invariants(claim):
    catalogue, lines, policy, ytd, c, account = claim
    s = medical.settle(lines, catalogue, policy, ytd, c, account_available_fen=account)

    for line, item in zip(lines, s.items):
        assert item.amount_fen == line.quantity * line.unit_price_fen
        assert item.fund_fen + item.account_fen + item.self_fen == item.amount_fen
        assert min(item.self_first_fen, item.deductible_fen, item.fund_fen, item.account_fen, item.self_fen) >= 0
        assert item.self_first_fen + item.deductible_fen + item.fund_fen <= item.amount_fen
        if item.cls == "C":
            assert (item.self_first_fen, item.deductible_fen, item.fund_fen, item.account_fen) == (
                item.amount_fen, 0, 0, 0)
        if item.cls == "A":
            assert item.self_first_fen == 0

    assert s.total_fen == sum(i.amount_fen for i in s.items) == s.fund_fen + s.account_fen + s.self_fen
    cap_left = ytd.remaining_cap_fen(policy)
    assert cap_left is None or s.fund_fen <= cap_left
    assert s.deductible_fen <= ytd.remaining_deductible_fen(policy, c.hospital_level)
    assert s.account_fen <= account
    assert s.ratio_pct == medical.effective_ratio(policy, c) <= policy.ratio_pct[c.hospital_level]
    assert s.after == ytd.plus(policy.episode, deductible=s.deductible_fen, fund=s.fund_fen,
                               eligible=s.eligible_fen)
    if s.band_ratio_pct is not None:  # part of the claim lay above the band
        assert policy.band_fen is not None and ytd.eligible_fen + s.eligible_fen > policy.band_fen
    assert medical.reverse(s.after, s) == ytd


@settings(max_examples=150, deadline=None)
@given(claims())
def test_splitting_a_claim_in_two_changes_nothing(claim):
    """Two claims in a row hold the same money as one claim with both halves, item by item.

    (Not for a per-admission deductible: two admissions pay it twice, by definition.)
    """
    catalogue, lines, policy, ytd, c, account = claim
    if policy.deductible_basis == medical.PER_ADMISSION:
        return
    whole = medical.settle(lines, catalogue, policy, ytd, c, account_available_fen=account)
    cut = len(lines) // 2 or 1
    first = medical.settle(lines[:cut], catalogue, policy, ytd, c, account_available_fen=account)
    rest = lines[cut:]
    parts = list(first.items)
    after = first.after
    if rest:
        second = medical.settle(rest, catalogue, policy, first.after, c,
                          account_available_fen=account - first.account_fen)
        parts += second.items
        after = second.after
    assert tuple(parts) == whole.items
    assert after == whole.after
