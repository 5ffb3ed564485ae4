"""Node-to-node keys per pair of nodes, held only by the pair's two ends (docs/api/nodes.md).

Found by the red team: every node held the one ``exchange.key`` all directions' keys were derived from, so any
region could sign as the hub (a ``clearing.deliver`` receipt posting ledger entries). Now each pair has its own
secret file, a process loads only the pairs it is an end of, and the world-wide file is never used.
"""

from __future__ import annotations

import os
import shutil
import stat
import time

import pytest
from api_world import not_for_node

from sbcard.api import peers as wire
from sbcard.api.config import ServiceConfig, Worlds
from sbcard.clock import SimClock
from sbcard.domain.errors import SbcardError
from sbcard.store.world import NODES, exchange_keys, exchange_pair_path
from world_template import NOW


def test_a_shared_home_makes_each_pair_s_key_once_private_and_a_process_loads_only_its_pairs(api_home):
    bj = exchange_keys(api_home, ("bj",))
    assert sorted(bj) == [("bj", "he"), ("bj", "hub"), ("bj", "tj")]
    path = exchange_pair_path(api_home, "hub", "bj")
    assert path.name == "bj-hub.key" and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(set(bj.values())) == 3  # one secret per pair, not one derived for all
    assert exchange_keys(api_home, ("hub",))[("bj", "hub")] == bj[("bj", "hub")]  # both ends read the same file
    assert ("bj", "tj") not in exchange_keys(api_home, ("hub",))


def test_a_node_s_own_home_makes_no_key_for_a_pair_whose_other_end_is_elsewhere(api_home, tmp_path):
    exchange_keys(api_home, NODES)
    home = tmp_path / "tj"
    shutil.copytree(api_home, home, ignore=lambda directory, names: not_for_node("tj", directory, names))
    (home / "exchange" / "bj-tj.key").unlink()  # not copied here
    keys = exchange_keys(home, ("tj",))
    assert sorted(keys) == [("he", "tj"), ("hub", "tj")] and not (home / "exchange" / "bj-tj.key").exists()


def test_a_process_without_a_peer_s_pair_key_refuses_to_start_and_names_the_old_secret(api_home, tmp_path):
    home = tmp_path / "bj"
    shutil.copytree(api_home, home, ignore=lambda directory, names: not_for_node("bj", directory, names))
    (home / "exchange.key").write_text(os.urandom(32).hex() + "\n")  # a world of before: one secret for all
    with pytest.raises(SbcardError) as refused:
        Worlds(ServiceConfig(home=home, node="bj", clock=SimClock(NOW), peers={"hub": "http://127.0.0.1:9"}))
    assert refused.value.code == "world.exchange_key"
    assert "bj-hub.key" in refused.value.message and "no longer used" in refused.value.message


def test_a_receiver_believes_a_sender_only_by_their_pair_s_key(api_home):
    hub = wire.PairKeys(exchange_keys(api_home, ("hub",)))
    tianjin = wire.PairKeys(exchange_keys(api_home, ("tj",)))
    beijing = wire.PairKeys(exchange_keys(api_home, ("bj",)))
    body = b"{}"

    def check(keys: wire.PairKeys, signed_with: wire.PairKeys | bytes | None, sender: str, to: str):  # type: ignore[no-untyped-def]
        assert signed_with is not None
        headers = wire.signed_headers(signed_with, method="POST", path=wire.MESSAGES, from_node=sender, to_node=to,
                                      body=body)
        return wire.verify(keys, method="POST", path=wire.MESSAGES, headers=headers, body=body, now=time.time())

    assert check(beijing, hub, "hub", "bj") == ("hub", "bj")
    assert check(beijing, tianjin, "tj", "bj") == ("tj", "bj")
    for stolen in (tianjin.secret("hub", "tj"), tianjin.secret("bj", "tj")):  # Tianjin signing as the hub
        assert "does not match" in check(beijing, stolen, "hub", "bj")
    with pytest.raises(SbcardError):
        check(beijing, tianjin, "hub", "bj")  # Tianjin holds no key of the pair bj-hub
    assert "no key for the pair bj-tj" in check(hub, beijing, "bj", "tj")  # the hub is no end of bj-tj
