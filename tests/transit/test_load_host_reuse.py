"""One counter's purse host serves load after load (``PurseHost.at``): each load is stamped with its own
time, goes to the card's own issuing region, and the operator and outlet stay those the host was opened for."""

from __future__ import annotations

import datetime as dt

import pytest
from purse_world import NOW, OUTLETS, clock, purse_template, purse_world  # noqa: F401

from sbcard.domain.errors import NotFound
from sbcard.domain.purse_load import LoadRequest
from sbcard.services.transit.purse_host import PurseHost
from sbcard.store.world import open_world
from terminals.apps import loader
from terminals.drivers.emulator import EmulatorReader

TERMINAL_NO = bytes.fromhex("110105010001")


def _load(purse_world, host: PurseHost, holder: str, amount_fen: int) -> loader.LoadOutcome:
    with EmulatorReader(purse_world.path(holder)) as reader:
        return loader.load(reader, host, amount_fen, TERMINAL_NO)


def test_a_host_reused_later_stamps_each_load_with_its_own_time_and_region(purse_world):
    later = NOW + dt.timedelta(hours=2)
    with open_world(purse_world.home) as world:
        host = PurseHost(world, operator="BJ-C1", outlet=OUTLETS["bj"], now=NOW)
        first = _load(purse_world, host, "liu", 3000)
        second = _load(purse_world, host.at(later), "liu", 2000)
        tianjin = _load(purse_world, host.at(later), "chen", 1000)  # a Tianjin card at the Beijing counter
    assert (first.balance_fen, second.balance_fen, tianjin.balance_fen) == (3000, 5000, 1000)
    liu = purse_world.loads("liu")
    assert [(row["amount_fen"], row["status"]) for row in liu] == [(3000, "confirmed"), (2000, "confirmed")]
    assert liu[0]["created_at"] < liu[1]["created_at"]
    assert liu[1]["created_at"].startswith(later.strftime("%Y-%m-%dT%H:%M"))
    assert {(row["operator"], row["outlet"]) for row in liu} == {("BJ-C1", OUTLETS["bj"])}
    [chen] = purse_world.loads("chen")
    assert chen["id"].startswith("TJ-LOAD-") and chen["status"] == "confirmed" and chen["outlet"] == OUTLETS["bj"]
    assert host.now == NOW  # ``at`` leaves the host it was made from as it was


def test_a_card_no_region_issued_has_nothing_pending_and_is_refused_a_load(purse_world):
    unknown = "03101000009999999999"  # a Beijing T-Union serial that no region holds
    request = LoadRequest(app_serial=unknown, amount_fen=1000, terminal_no=TERMINAL_NO.hex().upper(), balance_fen=0,
                          online_counter=0, key_version=1, algorithm_id=4, random=bytes(4), mac1=bytes(4))
    with open_world(purse_world.home) as world:
        host = PurseHost(world, operator="BJ-C1", outlet=OUTLETS["bj"], now=NOW)
        assert host.pending_loads(unknown) == []
        with pytest.raises(NotFound) as refused:
            host.at(NOW + dt.timedelta(minutes=1)).begin_load(request)
    assert refused.value.code == "card.unknown_purse"
    assert purse_world.float_balance("bj") == 0
