"""Properties of ``settle`` over random claims, years and circumstances (hypothesis).

Money is conserved per item and per claim, nothing is negative, the fund never passes
the cap, the account never passes what it was given nor pays a 丙类 item, the
deductible never passes the level's, and ``reverse`` gives the year back exactly.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from sbcard import medical_reference as R
from sbcard.domain import medical as M

PROVINCES = M.PROVINCES
POLICIES = R.policies()


@st.composite
def claims(draw):
    province = draw(st.sampled_from(PROVINCES))
    catalogue = R.catalogue(province)
    codes = sorted(catalogue)
    lines = draw(st.lists(
        st.builds(M.ClaimLine, st.sampled_from(codes), st.integers(1, 50), st.integers(1, 300_000)),
        min_size=1, max_size=8))
    policy = draw(st.sampled_from(POLICIES))
    level = draw(st.sampled_from(M.LEVELS))
    ytd = M.YearToDate(
        draw(st.integers(2020, 2030)),
        draw(st.integers(0, max(policy.deductible_fen.values()) + 10_000)),
        draw(st.integers(0, policy.cap_fen + 10_000)),
    )
    c = M.Circumstances(level, draw(st.booleans()), draw(st.booleans()), draw(st.booleans()))
    account = draw(st.integers(0, 300_000))
    return catalogue, lines, policy, ytd, c, account


@settings(max_examples=300, deadline=None)
@given(claims())
def test_settlement_invariants(claim):
    catalogue, lines, policy, ytd, c, account = claim
    s = M.settle(lines, catalogue, policy, ytd, c, account_available_fen=account)

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
    assert s.fund_fen <= ytd.remaining_cap_fen(policy)
    assert s.deductible_fen <= ytd.remaining_deductible_fen(policy, c.hospital_level)
    assert s.account_fen <= account
    assert s.ratio_pct == M.effective_ratio(policy, c) <= policy.ratio_pct[c.hospital_level]
    assert s.after == M.YearToDate(ytd.year, ytd.deductible_paid_fen + s.deductible_fen,
                                   ytd.fund_paid_fen + s.fund_fen)
    assert M.reverse(s.after, s) == ytd


@settings(max_examples=150, deadline=None)
@given(claims())
def test_splitting_a_claim_in_two_changes_nothing(claim):
    """Two claims in a row hold the same money as one claim with both halves, item by item."""
    catalogue, lines, policy, ytd, c, account = claim
    whole = M.settle(lines, catalogue, policy, ytd, c, account_available_fen=account)
    cut = len(lines) // 2 or 1
    first = M.settle(lines[:cut], catalogue, policy, ytd, c, account_available_fen=account)
    rest = lines[cut:]
    parts = list(first.items)
    after = first.after
    if rest:
        second = M.settle(rest, catalogue, policy, first.after, c,
                          account_available_fen=account - first.account_fen)
        parts += second.items
        after = second.after
    assert tuple(parts) == whole.items
    assert after == whole.after
