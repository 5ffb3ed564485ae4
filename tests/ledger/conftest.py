"""A fresh copy of one initialised world per test (initialising once per session keeps this fast)."""

import pytest
from ledger_helpers import card_holder
from world_template import clock, home, template_home, world  # noqa: F401  (this folder's fixtures)

from sbcard.services.accounts import ledger
from sbcard.services.outlets.operators import add_operator
from sbcard.store.world import open_world

BANK = "TJ-120103-02"  # 中国建设银行天津河西支行社保卡服务网点


@pytest.fixture
def empty_account_card(home, clock):
    """An active Tianjin card with an open, empty account, and a counter operator."""
    with open_world(home) as opened:
        tj = opened.region("tj")
        add_operator(tj, code="tj-op", name="王芳", role="counter", region="120103", now=clock.now())
        cid, number = card_holder(tj, "tj", clock)
        ledger.open_holder_account(tj, citizen_id=cid, card_number=number, node="tj", now=clock.now())
    return number
