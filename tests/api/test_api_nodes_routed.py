"""Exchanges routed through the hub, one node per process: transit uploads to the card's issuer, medical
claims to the holder's insured region — over HTTP between four servers, each over a home holding only
its own node's files (``docs/api/nodes.md``).

The worlds are the transit and medical tests' templates (cards issued, money paid in), split into
four homes as on four servers. The use cases are driven in a region's process's own world
(``worlds.writing()``, what a route uses), so what crosses to the hub and the other region is what a
route's use case sends: over HTTP, never through another node's file (no stray ``*.db`` appears).
"""

from __future__ import annotations

import datetime as dt
import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest
from freezegun import freeze_time

from sbcard.clock import SimClock
from sbcard.domain import medical
from sbcard.reference import medical as ref
from sbcard.services.exchange import routed
from sbcard.services.exchange.peers import PeerUnavailable
from sbcard.services.medical.routing import PosHost
from sbcard.services.transit import host as transit_host
from sbcard.store.world import NODES, exchange_keys
from terminals.apps.medical import PointOfSale
from terminals.drivers.emulator import EmulatorReader

for _folder in ("transit", "medical"):
    _path = str(Path(__file__).resolve().parents[1] / _folder)
    if _path not in sys.path:
        sys.path.append(_path)

from medical_world import MedicalWorld, circumstances, medical_template  # noqa: E402,F401
from purse_world import METRO_TERMINAL, NOW, PurseWorld, purse_template  # noqa: E402,F401
from api_pos_world import online_claim, pos_terminal  # noqa: E402
from api_nodes_world import Nodes, node_home, stray_databases, wait_for  # noqa: E402
from api_world import pair_keys_of  # noqa: E402
from sbcard.domain.errors import SbcardError  # noqa: E402
from terminals.apps.http_host import HttpHost  # noqa: E402
from world_template import copy_world  # noqa: E402

if TYPE_CHECKING:
    from api_world import LiveServer

TERMINAL = METRO_TERMINAL[0]
LATER = NOW + dt.timedelta(hours=2)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]





def split(world: Path, root: Path, start_server: Callable[..., LiveServer]) -> Nodes:
    exchange_keys(world, NODES)  # every pair's key, made in the shared home; each node's home gets its own
    homes = {node: node_home(world, node, root) for node in NODES}
    return Nodes(homes, SimClock(LATER), start_server, ports={node: free_port() for node in NODES})


def stop_all(nodes: Nodes) -> None:
    for node in list(nodes.servers):
        nodes.stop(node)
    for node, home in nodes.homes.items():
        assert stray_databases(home, node) == [], f"the {node} process opened another node's database"


# ----------------------------------------------------------------------------- transit


@attrs.frozen
class Taps:
    tianjin: list  # a Tianjin card's two good taps on the Beijing validator
    forged: object  # a third, its TAC not the card's
    beijing: list  # a Beijing card's tap on the same validator (its issuer is the uploading region itself)


@pytest.fixture
def transit(tmp_path: Path, purse_template, server_starter) -> Iterator[tuple[Nodes, PurseWorld, Taps]]:
    template, cards = purse_template
    pw = PurseWorld(copy_world(template, tmp_path), dict(cards))
    with freeze_time(NOW):
        for holder in ("chen", "liu"):
            code, _, err, _ = pw.load(holder, "100")
            assert code == 0, err
        pw.register_terminal()
        tianjin = [pw.purchase("chen", fare, serial=1 + i, when=NOW + dt.timedelta(minutes=10 * i))
                   for i, fare in enumerate([300, 600])]
        forged = attrs.evolve(pw.purchase("chen", 200, serial=3, when=NOW + dt.timedelta(minutes=30)),
                              tac="00000000")
        beijing = [pw.purchase("liu", 400, serial=4, when=NOW + dt.timedelta(minutes=40))]
    nodes = split(pw.home, tmp_path / "nodes", server_starter)
    try:
        yield nodes, pw, Taps(tianjin, forged, beijing)
    finally:
        stop_all(nodes)


def upload_at_beijing(nodes: Nodes, pw: PurseWorld, records: list) -> transit_host.UploadResult:
    mac = pw.batch_mac(records)  # the PSAM's MAC (the template world's keys: the same as Beijing's)
    with nodes.service("bj").worlds.writing() as world:
        assert world.nodes == ("bj",)
        return transit_host.upload(world, TERMINAL, records, now=LATER, mac=mac)


def test_a_tianjin_cards_taps_uploaded_in_beijing_are_checked_by_tianjin_over_http(transit):
    nodes, pw, taps = transit
    nodes.start("hub", "bj", "tj", "he")
    records = [*taps.tianjin, taps.forged, *taps.beijing]
    result = upload_at_beijing(nodes, pw, records)
    assert (result.sent, result.accepted, result.rejected, result.duplicates, result.awaiting) == (4, 3, 1, 0, 0)
    [bad] = result.records
    assert bad["status"] == "rejected" and "bad TAC" in bad["reason"] and bad["counter"] == taps.forged.counter

    # Tianjin checked its card's records (the forged one set aside), Beijing its own; each once
    tj = nodes.query("tj", "SELECT counter, status FROM purse_purchases ORDER BY counter")
    assert tj == [{"counter": 0, "status": "cleared"}, {"counter": 1, "status": "cleared"},
                  {"counter": 2, "status": "rejected"}]
    assert [p["status"] for p in nodes.query("bj", "SELECT status FROM purse_purchases")] == ["cleared"]
    exchanges = nodes.query("hub", "SELECT from_node, to_node, payload, result FROM messages "
                                   "WHERE kind = 'transit.clear' ORDER BY to_node")
    assert [(m["from_node"], m["to_node"]) for m in exchanges] == [("bj", "bj"), ("bj", "tj")]
    assert json.loads(exchanges[1]["payload"])["records"] == 3
    assert json.loads(exchanges[1]["result"])["rejected"] == 1
    rows = nodes.query("bj", "SELECT issuer_node, status FROM transit_records ORDER BY counter, issuer_node")
    assert sorted((r["issuer_node"], r["status"]) for r in rows) == [
        ("bj", "accepted"), ("tj", "accepted"), ("tj", "accepted"), ("tj", "rejected")]

    # a retried upload: duplicates at Beijing, nothing reaches Tianjin again
    again = upload_at_beijing(nodes, pw, records)
    assert (again.accepted, again.duplicates) == (0, 4)
    # the chunk itself sent again (the operator's answer lost): the hub gives back its recorded answer
    with nodes.service("bj").worlds.writing() as world:
        answer = transit_host.exchange(world, from_node="bj", to_node="tj", records=[*taps.tianjin, taps.forged],
                                       now=LATER)
    assert answer["rejected"] == 1 and answer["verdicts"]["2"]["status"] == "rejected"
    assert len(nodes.query("tj", "SELECT * FROM purse_purchases")) == 3
    assert len(nodes.query("hub", "SELECT * FROM messages WHERE kind = 'transit.clear'")) == 2


def test_a_beijing_validator_syncs_its_lists_at_beijings_process_over_http(transit):
    """The lists and ``/host/synced`` at a region's own process: the hub's version is asked of the hub's process
    over HTTP (no 421); a version the hub never published is refused."""
    from sbcard.services.terminals import credentials
    from sbcard.store.world import open_world

    nodes, _pw, _taps = transit
    with open_world(nodes.homes["bj"], nodes=("bj",)) as world:
        key = credentials.credential(world, TERMINAL)
    nodes.start("hub", "bj")
    with HttpHost(nodes.url("bj"), TERMINAL, key, clock=nodes.clock.now) as host:
        version = host.lists().version
        host.synced(TERMINAL, version=version, now=nodes.clock.now())
        with pytest.raises(SbcardError) as unknown:
            host.synced(TERMINAL, version=version + 1, now=nodes.clock.now())
        assert unknown.value.code == "blacklist.version"
    [row] = nodes.query("bj", "SELECT blacklist_version, synced_at FROM terminals WHERE id = ?", [TERMINAL])
    assert row["synced_at"] is not None and row["blacklist_version"] == version


def test_with_tianjins_process_down_the_records_wait_then_are_routed_once_it_is_up(transit):
    nodes, pw, taps = transit
    nodes.start("hub", "bj")  # Tianjin's process is not running
    result = upload_at_beijing(nodes, pw, [*taps.tianjin, *taps.beijing])
    assert (result.sent, result.accepted, result.awaiting) == (3, 1, 2)
    assert len(nodes.query("bj", "SELECT * FROM transit_awaiting")) == 2
    assert nodes.query("hub", "SELECT * FROM messages WHERE to_node = 'tj'") == []
    with nodes.service("bj").worlds.writing() as world:
        assert transit_host.route_awaiting(world, "bj", now=LATER) == {}  # still down: they keep waiting
        assert transit_host.awaiting_count(world, "bj") == 2

    nodes.start("tj")  # up again where the others expect it: Beijing's courier routes what waited
    def routed_all() -> bool:
        with nodes.service("bj").worlds.writing() as world:
            return transit_host.awaiting_count(world, "bj") == 0
    wait_for(routed_all)
    assert [p["status"] for p in nodes.query("tj", "SELECT status FROM purse_purchases")] == ["cleared", "cleared"]
    rows = nodes.query("bj", "SELECT status FROM transit_records WHERE issuer_node = 'tj'")
    assert [r["status"] for r in rows] == ["accepted", "accepted"]
    [routing] = nodes.query("bj", "SELECT issuer_node, records FROM transit_routings")
    assert (routing["issuer_node"], routing["records"]) == ("tj", 2)


def test_with_the_hubs_process_down_every_record_waits_and_the_upload_is_taken(transit):
    nodes, pw, taps = transit
    nodes.start("bj")  # neither the hub's process nor Tianjin's: even Beijing's own card's record goes through the hub
    result = upload_at_beijing(nodes, pw, [*taps.tianjin, *taps.beijing])
    assert (result.sent, result.accepted, result.awaiting) == (3, 0, 3)
    assert len(nodes.query("bj", "SELECT * FROM transit_awaiting")) == 3
    nodes.start("hub", "tj")
    def routed_all() -> bool:
        with nodes.service("bj").worlds.writing() as world:
            return transit_host.awaiting_count(world, "bj") == 0
    wait_for(routed_all)
    statuses = nodes.query("bj", "SELECT issuer_node, status FROM transit_records ORDER BY issuer_node")
    assert [(r["issuer_node"], r["status"]) for r in statuses] == [("bj", "accepted"), ("tj", "accepted"),
                                                                   ("tj", "accepted")]


def test_a_link_marked_down_at_the_hub_keeps_the_records_waiting(transit):
    nodes, pw, taps = transit
    nodes.start("hub", "bj", "tj")
    with nodes.service("hub").worlds.writing() as world:
        from sbcard.services.exchange import links
        links.set_link(world.hub(), "tj", up=False, note="test", now=LATER)
    result = upload_at_beijing(nodes, pw, taps.tianjin)
    assert result.awaiting == 2
    with nodes.service("bj").worlds.writing() as world:
        assert routed.link_up(world, "tj") is False and routed.link_up(world, "bj") is True


def test_a_tianjin_cards_purse_is_loaded_at_a_beijing_counter_by_tianjins_process(transit):
    """圈存 of another region's card: each step at the issuer's process, asked straight (not through the hub)."""
    from sbcard.services.transit.purse_host import PurseHost
    from terminals.apps import loader

    nodes, pw, _taps = transit
    nodes.start("hub", "bj", "tj")
    card = nodes.homes["bj"] / pw.cards["chen"].relative_path
    [before] = nodes.query("tj", "SELECT COUNT(*) AS n FROM purse_loads")
    with nodes.service("bj").worlds.writing() as world:
        host = PurseHost(world, operator="BJ-C1", outlet="BJ-110105-01", now=LATER)
        with EmulatorReader(card) as reader:
            done = loader.load(reader, host, 5000, bytes.fromhex("110105010001"))
    assert done.to_dict(paid="account", terminal_no=b"", corrections=[])["amount_fen"] == 5000
    loads = nodes.query("tj", "SELECT status, amount_fen FROM purse_loads ORDER BY created_at")
    assert len(loads) == before["n"] + 1 and loads[-1] == {"status": "confirmed", "amount_fen": 5000}
    assert nodes.query("bj", "SELECT * FROM purse_loads WHERE app_serial = ?", [pw.cards["chen"].app_serial]) == []
    assert nodes.query("hub", "SELECT * FROM messages WHERE kind LIKE 'purse.%'") == []

    nodes.stop("tj")  # the issuer's process down: refused before any money moves (503), nothing pending
    with nodes.service("bj").worlds.writing() as world:
        host = PurseHost(world, operator="BJ-C1", outlet="BJ-110105-01", now=LATER)
        with EmulatorReader(card) as reader, pytest.raises(PeerUnavailable):
            loader.load(reader, host, 1000, bytes.fromhex("110105010001"))


def test_a_beijing_kiosk_loading_a_tianjin_card_is_held_to_the_daily_limit_by_tianjin(transit):
    """Red-team: one node per process, the kiosk's ¥800 a day was never checked for another region's card (the
    remote branch returned before the check). The issuer is told the load is a kiosk's and checks it with the
    card's loads of the day, which are in its database."""
    from sbcard.domain import kiosk_load
    from sbcard.services.transit.kiosk_host import KioskHost
    from terminals.apps import loader
    from purse_world import PIN

    nodes, pw, _taps = transit
    nodes.start("hub", "bj", "tj")
    card = nodes.homes["bj"] / pw.cards["chen"].relative_path
    kiosk_row = {"id": "BJ-110105-01-0009", "operator": "BJ-110105-01", "node": "bj", "terminal_no": "110105010009"}
    with nodes.service("bj").worlds.writing() as world:
        host = KioskHost(world, kiosk_row, now=LATER)
        with EmulatorReader(card) as reader:
            loader.load(reader, host, kiosk_load.MAX_LOAD_FEN, bytes.fromhex(kiosk_row["terminal_no"]), pin=PIN)
        with EmulatorReader(card) as reader, pytest.raises(SbcardError) as refused:
            loader.load(reader, host.at(LATER), 40_000, bytes.fromhex(kiosk_row["terminal_no"]), pin=PIN)
    assert refused.value.code == "kiosk.daily_limit"
    loads = nodes.query("tj", "SELECT status, amount_fen, operator FROM purse_loads WHERE app_serial = ? "
                        "AND operator LIKE 'terminal:%'",
                        [pw.cards["chen"].app_serial])
    assert loads == [{"status": "confirmed", "amount_fen": 50_000, "operator": "terminal:BJ-110105-01-0009"}]


def _tianjin_init(card: Path, amount: int):  # type: ignore[no-untyped-def]
    """The Tianjin card's answer to INITIALIZE FOR LOAD at a Beijing counter, as a ``LoadRequest``."""
    from sbcard.chip import profile
    from sbcard.chip.commands import InitializeForLoad
    from sbcard.domain.purse_load import LoadRequest
    from terminals.apps import loader

    with EmulatorReader(card) as reader:
        app_serial = loader.select_purse(reader)
        init = InitializeForLoad(profile.CARD_KEY_INDEX, amount, bytes.fromhex("110105010001")).send(reader)
    return LoadRequest(app_serial=app_serial, amount_fen=amount, terminal_no="110105010001", balance_fen=init.balance,
                       online_counter=init.online_counter, key_version=init.key_version,
                       algorithm_id=init.algorithm.id_byte, random=init.random, mac1=init.mac1)


def test_a_begin_asked_again_after_its_answer_was_lost_gets_the_same_grant_from_the_issuer(transit):
    """Red-team: Tianjin debits and records the pending load, the answer is lost, Beijing answers 503 and releases
    the Idempotency-Key; the retry (the same card answer) used to get ``load.pending`` for good. Now the issuer's
    begin is idempotent by the card's answer: the same load, the same MAC2, one debit; a new INITIALIZE while it is
    pending is still refused."""
    from sbcard.domain.errors import RuleRefused
    from sbcard.services.transit.purse_host import PurseHost

    nodes, pw, _taps = transit
    nodes.start("hub", "bj", "tj")
    card = nodes.homes["bj"] / pw.cards["chen"].relative_path
    request = _tianjin_init(card, 1_500)
    with nodes.service("bj").worlds.writing() as world:
        host = PurseHost(world, operator="BJ-C1", outlet="BJ-110105-01", now=LATER)
        first = host.begin_load(request)
        again = host.at(LATER).begin_load(request)
        assert again == first
        with pytest.raises(RuleRefused) as refused:  # another INITIALIZE (another random): still one at a time
            host.begin_load(_tianjin_init(card, 1_500))
    assert refused.value.code == "load.pending"
    [debit] = nodes.query("tj", "SELECT sum(amount_fen) AS s FROM ledger_entries WHERE txn_id = ? AND "
                          "account_no != 'FLOAT-PURSE'", [first.load_id])
    assert debit["s"] == -1_500
    assert len(nodes.query("tj", "SELECT * FROM purse_loads WHERE status = 'pending'")) == 1


def test_the_direct_purse_kinds_act_on_the_receiving_region_and_check_the_sender(transit):
    """Red-team: the direct kinds acted on ``payload["node"]``; an outlet or a kiosk of another region than the
    signed sender's was taken as given."""
    from sbcard.domain.errors import InvalidInput, RuleRefused
    from sbcard.services.transit import purse_host

    nodes, pw, _taps = transit
    nodes.start("hub", "bj", "tj")
    card = nodes.homes["bj"] / pw.cards["chen"].relative_path
    request = _tianjin_init(card, 1_000)
    base = {"request": request, "operator": "BJ-C1", "outlet": "BJ-110105-01", "cash": False,
            "outlet_node": "bj", "channel": "counter"}
    with nodes.service("bj").worlds.writing() as world:
        def begin(**changes):  # type: ignore[no-untyped-def]
            return routed.call(world, purse_host.BEGIN, from_node="bj", to_node="tj", payload={**base, **changes},
                               now=LATER)

        with pytest.raises(InvalidInput) as wrong_node:
            begin(node="he")
        with pytest.raises(RuleRefused) as other_outlet:
            begin(node="tj", outlet="TJ-120103-01", outlet_node="tj")
        with pytest.raises(RuleRefused) as other_kiosk:
            begin(node="tj", operator="terminal:TJ-120103-01-0001", channel="kiosk")
        # ``purse.card`` tells another region what a load needs, not the holder's personal data (red-team)
        from sbcard.services.exchange import peers
        answer = peers.ask(world, "tj", "purse.card", app_serial=request.app_serial)
    assert wrong_node.value.code == "purse.node"
    assert (other_outlet.value.code, other_kiosk.value.code) == ("purse.sender", "purse.sender")
    assert nodes.query("tj", "SELECT * FROM purse_loads WHERE status = 'pending'") == []
    assert set(answer) == {"card_number", "app_serial", "status"} and answer["status"] == "active"


# ----------------------------------------------------------------------------- medical


LINES = (medical.ClaimLine("XJ01CAA040", 40, 1250), medical.ClaimLine("002103000010000", 2, 22000))
HOSPITAL = "HEH001"  # a Hebei hospital; wang is a retired employee insured in Tianjin


@attrs.frozen
class Pos:
    terminal: str
    credential: bytes


@pytest.fixture
def hospital_nodes(tmp_path: Path, medical_template, server_starter) -> Iterator[tuple[Nodes, MedicalWorld, Pos]]:
    template, cards = medical_template
    mw = MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)
    added, credential = pos_terminal(mw.home, "--operator", HOSPITAL)  # the Hebei hospital's POS, before the split
    nodes = split(mw.home, tmp_path / "nodes", server_starter)
    try:
        yield nodes, mw, Pos(added["terminal"], credential)
    finally:
        stop_all(nodes)


def settle_at_hebei(nodes: Nodes, mw: MedicalWorld, holder: str = "wang") -> dict:
    card = nodes.homes["he"] / mw.cards[holder].relative_path
    with nodes.service("he").worlds.writing() as world:
        assert world.nodes == ("he",)
        pos = PointOfSale(PosHost(world, now=LATER), ref, nodes.clock, HOSPITAL)
        with EmulatorReader(card) as reader:
            return pos.settle(reader, LINES)


def tianjin_split(year: medical.YearToDate) -> medical.Settlement:
    h = ref.hospital(HOSPITAL)
    return medical.settle(list(LINES), ref.catalogue("130000"), ref.policy("120000", "employee", True), year,
                          circumstances(h, "120000"))


def test_a_hebei_claim_for_a_tianjin_insured_holder_is_settled_by_tianjin_over_http(hospital_nodes):
    nodes, mw, _pos = hospital_nodes
    nodes.start("hub", "tj", "he")
    done = settle_at_hebei(nodes, mw)
    want = tianjin_split(medical.YearToDate(LATER.year))
    assert (done["mode"], done["insured_node"]) == ("online", "tj")
    assert (done["fund_fen"], done["self_fen"]) == (want.fund_fen, want.self_fen)
    [claim] = nodes.query("tj", "SELECT claim_id, hospital, fund_fen FROM medical_claims")
    assert (claim["claim_id"], claim["hospital"], claim["fund_fen"]) == (done["claim_id"], HOSPITAL, want.fund_fen)
    assert nodes.query("he", "SELECT * FROM medical_claims") == []
    [message] = nodes.query("hub", "SELECT from_node, to_node FROM messages WHERE kind = 'medical.settle'")
    assert (message["from_node"], message["to_node"]) == ("he", "tj")

    # the same request again: the hub's recorded answer, Tianjin does nothing; another request under its id: refused
    with nodes.service("he").worlds.writing() as world:
        request = json.loads(nodes.query("hub", "SELECT payload FROM messages WHERE kind = 'medical.settle'")[0]
                             ["payload"])
        from sbcard.domain.medical_claim import ClaimRequest
        from sbcard.services.medical import routing
        same = routing.settle(world, ClaimRequest.from_json(request), hospital_node="he", now=LATER)
        assert same["claim_id"] == done["claim_id"] and same["fund_fen"] == want.fund_fen
        changed = ClaimRequest.from_json({**request, "lines": [["XJ01CAA040", 1, 1250]]})
        with pytest.raises(Exception) as refused:
            routing.settle(world, changed, hospital_node="he", now=LATER)
        assert getattr(refused.value, "code", None) == "medical.claim.exists"
    assert len(nodes.query("tj", "SELECT * FROM medical_claims")) == 1

    # 退费 at Tianjin's process (its insured's claim): through the hub, which records it, and back to Tianjin
    with nodes.service("tj").worlds.writing() as world:
        refunded = routing.refund(world, done["claim_id"], None, now=LATER)
    assert refunded["refunded"]["status"] == "refunded"
    [claim] = nodes.query("tj", "SELECT status FROM medical_claims")
    assert claim["status"] == "refunded"
    [message] = nodes.query("hub", "SELECT from_node, to_node FROM messages WHERE kind = 'medical.refund'")
    assert (message["from_node"], message["to_node"]) == ("he", "tj")


def test_with_tianjins_process_down_the_claim_is_settled_offline_then_reconciled(hospital_nodes):
    nodes, mw, _pos = hospital_nodes
    nodes.start("hub", "he")  # Tianjin's process is not running
    done = settle_at_hebei(nodes, mw)
    assert (done["mode"], done["status"]) == ("offline", "queued")
    [queued] = nodes.query("he", "SELECT claim_id, status, insured_node FROM medical_offline_queue")
    assert (queued["claim_id"], queued["status"], queued["insured_node"]) == (done["claim_id"], "queued", "tj")
    with nodes.service("he").worlds.writing() as world:
        from sbcard.services.medical import routing
        assert routing.reconcile(world, now=LATER)["waiting"] == [{"claim_id": done["claim_id"],
                                                                    "insured_node": "tj"}]
        with pytest.raises(PeerUnavailable):  # asked directly while Tianjin is down: 503, nothing recorded
            routed.exchange(world, "medical.settle", "medical.settle/TEST", from_node="he", to_node="tj",
                            payload={}, record="{}", now=LATER)
    assert nodes.query("hub", "SELECT * FROM messages WHERE kind = 'medical.settle'") == []

    nodes.start("tj")  # up again: Hebei's courier reconciles its hospitals' queue through the hub
    wait_for(lambda: nodes.query("he", "SELECT status FROM medical_offline_queue")[0]["status"] == "reconciled")
    [claim] = nodes.query("tj", "SELECT claim_id, mode, fund_fen FROM medical_claims")
    want = tianjin_split(medical.YearToDate(LATER.year))
    assert (claim["claim_id"], claim["mode"], claim["fund_fen"]) == (done["claim_id"], "offline", want.fund_fen)
    [message] = nodes.query("hub", "SELECT from_node, to_node FROM messages WHERE kind = 'medical.settle'")
    assert (message["from_node"], message["to_node"]) == ("he", "tj")


def test_the_hebei_processs_host_api_settles_a_tianjin_claim_over_http_and_refuses_while_tianjin_is_down(
        hospital_nodes):
    nodes, mw, pos = hospital_nodes
    nodes.start("hub", "tj", "he")
    lines = [[line.code, line.quantity, line.unit_price_fen] for line in LINES]

    def claim(claim_id: str) -> dict:
        return {**online_claim(mw, "wang", claim_id, HOSPITAL, nodes.clock.now(), lines=lines),
                "insured_region": "120103", "retired": True, "use_account": False}

    with HttpHost(nodes.url("he"), pos.terminal, pos.credential, clock=nodes.clock.now) as host:
        first = claim(host.request("POST", "/medical/claims")["claim_id"])
        settled = host.request("POST", "/medical/settle", body=first, idempotency_key="he-1")
        want = tianjin_split(medical.YearToDate(LATER.year))
        assert (settled["claim_id"], settled["fund_fen"]) == (first["claim_id"], want.fund_fen)
        assert [c["claim_id"] for c in nodes.query("tj", "SELECT claim_id FROM medical_claims")] == [first["claim_id"]]

        nodes.stop("tj")
        second = claim(host.request("POST", "/medical/claims")["claim_id"])
        with pytest.raises(SbcardError) as down:  # Tianjin's process does not answer: the POS settles offline
            host.request("POST", "/medical/settle", body=second, idempotency_key="he-2")
        assert down.value.code == "link.down" and "does not answer" in str(down.value)
        nodes.start("tj")
        again = host.request("POST", "/medical/settle", body=second, idempotency_key="he-3")
        assert again["claim_id"] == second["claim_id"]
    assert len(nodes.query("tj", "SELECT * FROM medical_claims")) == 2
    assert len(nodes.query("hub", "SELECT * FROM messages WHERE kind = 'medical.settle'")) == 2


def test_a_hebei_pos_asks_a_tianjin_cards_status_of_the_hubs_process_over_http(hospital_nodes):
    """``GET /host/cards/{n}`` at a region's own process reads the hub's directory over HTTP (no 421)."""
    nodes, mw, pos = hospital_nodes
    nodes.start("hub", "he")
    card = mw.cards["wang"]
    with HttpHost(nodes.url("he"), pos.terminal, pos.credential, clock=nodes.clock.now) as host:
        status = host.card_status(card.number)
        assert (status["card_number"], status["issuing_region"], status["blacklisted"]) == (card.number, "120000", False)
        with pytest.raises(SbcardError) as unknown:
            host.card_status("0" * len(card.number))
        assert unknown.value.code == "card.unknown"
        nodes.stop("hub")
        with pytest.raises(SbcardError) as down:  # a read of the hub cannot wait: try again later
            host.card_status(card.number)
        assert down.value.code == "node.unavailable"


# ----------------------------------------------------------------------------- who may ask whom


def test_a_routed_request_is_answered_only_as_the_mechanism_sends_it(transit):
    """Signed with the pair's key, still refused (422) unless it is the hub forwarding to a region, a region
    asking the hub for itself (or, a refund, for the claim it insures), or a region asking another straight for a
    direct kind (a purse load's step). Unsigned: 401."""
    import httpx

    from sbcard.api import peers as wire

    nodes, _pw, taps = transit
    nodes.start("hub", "tj")
    secret = pair_keys_of(nodes.homes)  # the test signs as any node, with that pair's key
    records = transit_host._records_to_wire({"records": taps.tianjin, "operators": {}})

    def post(to: str, sender: str, body: dict) -> httpx.Response:
        raw = json.dumps(body).encode()
        with httpx.Client(timeout=30) as client:
            return client.post(nodes.url(to) + wire.ROUTED, content=raw, headers=wire.signed_headers(
                secret, method="POST", path=wire.ROUTED, from_node=sender, to_node=to, body=raw))

    asked = routed.wire_request("transit.clear", "transit.clear/bj/tj/x", from_node="bj", to_node="tj",
                                payload=records, record="{}", now=LATER)
    with httpx.Client(timeout=30) as client:
        bare = client.post(nodes.url("tj") + wire.ROUTED, json=asked)
    assert bare.status_code == 401
    assert post("tj", "bj", asked).status_code == 422  # a region does not take a hub exchange from another region
    assert post("hub", "he", asked).status_code == 422  # Hebei cannot ask the hub in Beijing's name
    purse = routed.wire_request("purse.confirm", "", from_node="he", to_node="tj", payload={}, record="", now=LATER)
    assert post("tj", "bj", purse).status_code == 422  # a direct kind is asked by its sender for itself
    assert post("hub", "bj", {**purse, "from_node": "bj"}).status_code == 422  # and never through the hub
    assert nodes.query("tj", "SELECT * FROM purse_purchases") == []
    assert nodes.query("hub", "SELECT * FROM messages WHERE kind = 'transit.clear'") == []

    answered = post("hub", "bj", asked)  # the mechanism's own request: the hub forwards, Tianjin answers
    assert answered.status_code == 200, answered.text
    assert answered.json()["answer"]["cleared"] == 2 and answered.json()["before"] is False
    assert post("hub", "bj", asked).json()["before"] is True


# ----------------------------------------------------------------------------- no answer: refused or in doubt


def _hebei_host_claims(nodes: Nodes, mw: MedicalWorld, pos: Pos):
    lines = [[line.code, line.quantity, line.unit_price_fen] for line in LINES]

    def claim(host: HttpHost) -> dict:
        claim_id = host.request("POST", "/medical/claims")["claim_id"]
        return {**online_claim(mw, "wang", claim_id, HOSPITAL, nodes.clock.now(), lines=lines),
                "insured_region": "120103", "retired": True, "use_account": False}

    return claim


def test_a_hub_busy_writing_refuses_a_settle_before_doing_anything(hospital_nodes):
    """The hub waits for its write lock a bounded time (shorter than the asker's timeout), then refuses: the
    point of sale's 503 then means nothing was settled anywhere (it may settle offline safely)."""
    import threading

    nodes, mw, pos = hospital_nodes
    nodes.start("hub", "tj", "he")
    claim = _hebei_host_claims(nodes, mw, pos)
    held, release = threading.Event(), threading.Event()

    def busy_hub() -> None:
        with nodes.service("hub").worlds.write_lock("hub"):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=busy_hub)
    holder.start()
    try:
        held.wait(5)
        with HttpHost(nodes.url("he"), pos.terminal, pos.credential, clock=nodes.clock.now) as host:
            body = claim(host)
            started = time.monotonic()
            with pytest.raises(SbcardError) as refused:
                host.request("POST", "/medical/settle", body=body, idempotency_key="he-busy")
            assert refused.value.code == "node.unavailable"
            assert time.monotonic() - started < routed.HUB_LOCK_WAIT + 3
    finally:
        release.set()
        holder.join()
    assert nodes.query("tj", "SELECT * FROM medical_claims") == []
    assert nodes.query("hub", "SELECT * FROM messages WHERE kind = 'medical.settle'") == []
    assert nodes.query("he", "SELECT * FROM medical_offline_queue") == []


def test_a_settle_whose_answer_is_lost_is_in_doubt_not_unavailable_and_reconcile_settles_it_once(
        hospital_nodes, monkeypatch):
    """Tianjin settles but answers the hub too late: the point of sale gets 504 ``exchange.in_doubt`` (not "settle
    offline"), the claim id is kept in doubt at Hebei, and ``reconcile`` settles it by its key — one claim at
    Tianjin, the hub's record completed. Meanwhile the hub holds no lock nor transaction, and the same exchange
    asked again is told it is in progress (or, the hub having given up, in doubt)."""
    import threading

    from sbcard.api import peers as wire
    from sbcard.services.medical import host as medical_host, routing

    nodes, mw, pos = hospital_nodes
    nodes.start("hub", "tj", "he")
    claim = _hebei_host_claims(nodes, mw, pos)
    monkeypatch.setattr(wire, "ANSWER_TIMEOUT", 2.0)
    answering, slow = threading.Event(), threading.Event()
    settle_now = medical_host.settle

    def slow_settle(uow, request, *, now):
        view = settle_now(uow, request, now=now)
        answering.set()
        slow.wait(4)  # past the hub's wait for Tianjin
        return view

    monkeypatch.setattr(medical_host, "settle", slow_settle)
    failure: list[BaseException] = []

    with HttpHost(nodes.url("he"), pos.terminal, pos.credential, clock=nodes.clock.now) as host:
        body = claim(host)

        def settle() -> None:
            try:
                host.request("POST", "/medical/settle", body=body, idempotency_key="he-doubt")
            except BaseException as exc:  # noqa: BLE001 - looked at below
                failure.append(exc)

        asking = threading.Thread(target=settle)
        asking.start()
        assert answering.wait(20)
        # the hub asks Tianjin with nothing held: its write lock is free, its claim of the key committed
        with nodes.service("hub").worlds.write_lock("hub", wait=0.5):
            [claimed] = nodes.query("hub", "SELECT result FROM messages WHERE kind = 'medical.settle'")
            assert claimed["result"] is None
        with nodes.service("he").worlds.writing() as world, pytest.raises(routed.ExchangeInDoubt):
            routing._exchange(world, routing.SETTLE, body["claim_id"], from_node="he", to_node="tj",
                              payload=json.loads(nodes.query("hub", "SELECT payload FROM messages WHERE kind = "
                                                           "'medical.settle'")[0]["payload"]),
                              now=LATER)  # the same exchange meanwhile: in progress, or in doubt
        asking.join(30)
    [doubt] = failure
    assert getattr(doubt, "code", None) == "exchange.in_doubt", doubt
    assert [c["claim_id"] for c in nodes.query("tj", "SELECT claim_id FROM medical_claims")] == [body["claim_id"]]
    [kept] = nodes.query("he", "SELECT claim_id, status, offline FROM medical_offline_queue")
    assert (kept["claim_id"], kept["status"]) == (body["claim_id"], "queued")
    assert json.loads(kept["offline"])["in_doubt"] is True
    from sbcard.services.medical import claims as medical_claims
    from sbcard.store.unit_of_work import UnitOfWork
    with nodes.service("he").worlds.writing() as world:
        [entry] = medical_claims.entries(UnitOfWork(world.region("he")))
    assert entry["in_doubt"] is True and entry["fund_fen"] is None  # listed in doubt (status in_doubt), no split

    # asked again while the hub cannot reach Tianjin at all: still in doubt (an earlier try may have settled it)
    hub_link = nodes.service("hub").worlds.link
    tianjin = hub_link.peers["tj"]
    hub_link.peers["tj"] = "http://127.0.0.1:9"
    try:
        with nodes.service("he").worlds.writing() as world, pytest.raises(routed.ExchangeInDoubt):
            routing._exchange(world, routing.SETTLE, body["claim_id"], from_node="he", to_node="tj",
                              payload=json.loads(nodes.query("hub", "SELECT payload FROM messages WHERE kind = "
                                                               "'medical.settle'")[0]["payload"]), now=LATER)
    finally:
        hub_link.peers["tj"] = tianjin
    [claimed] = nodes.query("hub", "SELECT result FROM messages WHERE kind = 'medical.settle'")
    assert claimed["result"] is None  # still claimed, not let go

    # (while Tianjin stays slow, Hebei's courier's reconciliations are in doubt too: the claim stays kept)
    monkeypatch.setattr(medical_host, "settle", settle_now)
    slow.set()
    def reconciled() -> bool:  # by Hebei's courier, or by asking now (whichever comes first)
        with nodes.service("he").worlds.writing() as world:
            routing.reconcile(world, now=LATER)
        return nodes.query("he", "SELECT status FROM medical_offline_queue")[0]["status"] == "reconciled"
    wait_for(reconciled)
    assert len(nodes.query("tj", "SELECT * FROM medical_claims")) == 1  # the fund paid once
    [recorded] = nodes.query("hub", "SELECT result FROM messages WHERE kind = 'medical.settle'")
    assert json.loads(recorded["result"])["claim_id"] == body["claim_id"]


def test_the_hub_takes_the_answering_regions_signature_for_a_refund_only_and_keeps_its_own_record(
        hospital_nodes):
    """A settle signed by the insured region (not the asker) is refused; the hub records the payload it forwards
    (not the request's ``record``) and its own clock (not the request's ``now``)."""
    import httpx

    from sbcard.api import peers as wire

    nodes, mw, pos = hospital_nodes
    nodes.start("hub", "tj", "he")
    secret = pair_keys_of(nodes.homes)  # the test signs as Tianjin and as Hebei, each with its pair's key
    claim = _hebei_host_claims(nodes, mw, pos)
    with HttpHost(nodes.url("he"), pos.terminal, pos.credential, clock=nodes.clock.now) as host:
        body = claim(host)
    from sbcard.api.routes.terminal_host import MedicalClaim
    from sbcard.domain.medical_claim import ClaimRequest
    request = ClaimRequest.from_json(MedicalClaim(**body).model_dump())
    asked = routed.wire_request("medical.settle", f"medical.settle/{request.claim_id}", from_node="he",
                                to_node="tj", payload=request.to_json(), record="{}",
                                now=LATER + dt.timedelta(days=400))

    def post(sender: str) -> httpx.Response:
        raw = json.dumps(asked).encode()
        with httpx.Client(timeout=30) as client:
            return client.post(nodes.url("hub") + wire.ROUTED, content=raw, headers=wire.signed_headers(
                secret, method="POST", path=wire.ROUTED, from_node=sender, to_node="hub", body=raw))

    assert post("tj").status_code == 422  # Tianjin cannot ask the hub in Hebei's name, but for a refund
    assert nodes.query("tj", "SELECT * FROM medical_claims") == []
    answered = post("he")
    assert answered.status_code == 200, answered.text
    [kept] = nodes.query("hub", "SELECT payload, received_at FROM messages WHERE kind = 'medical.settle'")
    assert json.loads(kept["payload"])["claim_id"] == request.claim_id  # not the "{}" the request said
    assert kept["received_at"] == LATER.isoformat()  # the hub's clock, not the request's


def test_a_regions_courier_holds_no_lock_while_it_reconciles_over_http(hospital_nodes, monkeypatch):
    """Hebei's courier reconciles its queued claim through the hub while Tianjin is slow to answer: meanwhile
    Hebei's write lock is free (a clerk's use case is not held up behind another process's answer)."""
    import threading

    from sbcard.api import peers as wire
    from sbcard.services.medical import host as medical_host

    nodes, mw, _pos = hospital_nodes
    nodes.start("hub", "he")  # Tianjin down: the claim is settled offline, queued at Hebei
    done = settle_at_hebei(nodes, mw)
    assert done["mode"] == "offline"
    monkeypatch.setattr(wire, "ANSWER_TIMEOUT", 3.0)
    answering, slow = threading.Event(), threading.Event()
    settle_now = medical_host.settle

    def slow_settle(uow, request, *, now):
        answering.set()
        slow.wait(2)
        return settle_now(uow, request, now=now)

    monkeypatch.setattr(medical_host, "settle", slow_settle)
    nodes.start("tj")
    try:
        assert answering.wait(20)  # Hebei's courier is waiting for the hub, which waits for Tianjin
        with nodes.service("he").worlds.write_lock(wait=0.5):
            pass
    finally:
        slow.set()
    wait_for(lambda: nodes.query("he", "SELECT status FROM medical_offline_queue")[0]["status"] == "reconciled")
    assert len(nodes.query("tj", "SELECT * FROM medical_claims")) == 1
