"""What the clearing tests share: a loaded purse world, taps, uploads, clearing runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from purse_world import NOW

from sbcard.services.clearing import purse_records as clearing, settlement
from sbcard.store.world import open_world

DAY = NOW.date()
NIGHT = NOW.replace(hour=23, minute=30)


@pytest.fixture
def loaded(purse_world):
    """Both holders (liu: Beijing card, chen: Tianjin card) with ¥100.00 in their purses; the Beijing
    metro terminal registered."""
    for holder in ("liu", "chen"):
        code, _, err, _ = purse_world.load(holder, "100")
        assert code == 0, err
    purse_world.register_terminal()
    return purse_world


def taps(pw, holder: str, fares: list[int], *, first_serial: int = 1, start: dt.datetime = NOW) -> list:
    return [pw.purchase(holder, fare, serial=first_serial + i, when=start + dt.timedelta(minutes=10 * i))
            for i, fare in enumerate(fares)]


def run(pw, day: dt.date = DAY, now: dt.datetime = NIGHT) -> dict[str, Any]:
    with open_world(pw.home) as world:
        return clearing.run_clearing(world, day, now=now).to_dict()


def settle_day(pw, day: dt.date = DAY) -> dict[str, Any]:
    with open_world(pw.home) as world:
        return settlement.day_settlement(world, day)


def report(pw, day: dt.date = DAY) -> dict[str, Any]:
    with open_world(pw.home) as world:
        return clearing.report(world, day)


def balances(pw, node: str) -> dict[str, int]:
    rows = pw.query(node, "SELECT account_no, sum(amount_fen) AS b FROM ledger_entries GROUP BY account_no")
    return {r["account_no"]: r["b"] for r in rows if r["b"] and not r["account_no"][0].isdigit()}


def set_link(pw, node: str, up: bool) -> None:
    code, _, err, _ = pw.run("hub", "link", node, "--up" if up else "--down", "--json")
    assert code == 0, err
