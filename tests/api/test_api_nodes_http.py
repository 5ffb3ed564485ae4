"""One node per process: four servers (bj, tj, he, hub), each over a home holding only its own files.

Every node's home is a copy of one world with the other nodes' databases and keys left
out — as on four servers — so a process that reached another node's file would find it
missing (and SQLite would leave an empty file behind, which the tests look for). The
nodes reach each other only over HTTP: the outbox's messages, the lookups, the hub's lists.

Issuing and reporting a card lost have no routes here (they are the cards API's); the
tests drive them in the Beijing process's own world (``worlds.writing()``, what a route
uses), so what crosses to the hub is what a route's use case sends.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import httpx
import pytest

import api_cards_world as cards_world
from api_nodes_world import Nodes, node_home, stray_databases, wait_for
from api_world import PASSWORD
from sbcard.api import peers as wire
from sbcard.clock import SimClock
from sbcard.domain.citizen_id import compute_check_char
from sbcard.services.cards import issuance, lifecycle
from sbcard.services.cards.activation import ActivationDesk
from sbcard.services.exchange import outbox, peers
from sbcard.services.exchange.peers import PeerUnavailable
from sbcard.services.people import registry
from sbcard.store.world import NODES, REGION_NODES, NodeElsewhere, World, exchange_keys, open_world
from terminals.apps import counter
from terminals.drivers.emulator import EmulatorReader
from world_template import COUNTER_OUTLETS, NOW, receive_blanks

if TYPE_CHECKING:  # only for the annotations: at run time ``conftest`` may be another folder's
    from api_world import LiveServer

OUTLET = COUNTER_OUTLETS["bj"]
FIRST17 = "110105198001011" + "23"
HOLDER = FIRST17 + compute_check_char(FIRST17)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]




@pytest.fixture
def nodes(api_home: Path, tmp_path: Path, server_starter: Callable[..., LiveServer]) -> Iterator[Nodes]:
    """The four nodes' homes, with a Beijing resident registered and two blanks at the Beijing outlet; no server yet."""
    with open_world(api_home) as world:
        registry.add_person(world.region("bj"), citizen_id=HOLDER, name="张伟", region="110105",
                            insurance="resident", now=NOW)
    receive_blanks(api_home, {"BJ-C1": ("王芳", "counter", "110105", "bj")}, OUTLET, 2, NOW)
    exchange_keys(api_home, NODES)  # every pair's key, made in the shared home; each node's home gets its own
    homes = {node: node_home(api_home, node, tmp_path / "nodes") for node in NODES}
    made = Nodes(homes, SimClock(NOW), server_starter, ports={node: free_port() for node in NODES})
    try:
        yield made
    finally:
        for node in list(made.servers):
            made.stop(node)
        for node, home in homes.items():
            assert stray_databases(home, node) == [], f"the {node} process opened another node's database"


def sign_in(server: LiveServer, code: str) -> httpx.Client:
    return server.signed_in(code)



def issue_in_beijing(nodes: Nodes) -> str:
    """Apply, issue and activate a card to the Beijing resident at the Beijing outlet, in the Beijing process's world."""
    worlds = nodes.service("bj").worlds
    blank = sorted((nodes.homes["bj"] / "cards" / "stock" / OUTLET).glob("*.card"))[0]
    with worlds.writing() as world:
        assert world.nodes == ("bj",)
        applied = issuance.apply(world, citizen_id=HOLDER, outlet=OUTLET, operator="BJ-C1", now=NOW)
        desk = issuance.IssuanceDesk(world, applied["application_id"], operator="BJ-C1", now=NOW)
        with EmulatorReader(blank) as reader:
            number = counter.issue(reader, desk).record["card_number"]
        activation = ActivationDesk(world, number, operator="BJ-C1", now=NOW)
        with EmulatorReader(blank) as reader:
            assert counter.activate(reader, activation, "482915").record["status"] == "active"
    return number


def test_a_card_issued_in_beijing_reaches_the_hub_process_over_http_and_a_loss_waits_while_the_hub_is_down(nodes):
    hub = nodes.start("hub", peers=())
    bj = nodes.start("bj", peers=("hub",))

    clerk = sign_in(bj, "BJ-C1")  # a region's staff sign in at their own node
    assert clerk.get("/api/v1/session").json()["operator"] == "BJ-C1"
    assert clerk.get("/api/v1/exchange/lists").json()["version"] == 0

    number = issue_in_beijing(nodes)
    sent = nodes.query("bj", "SELECT * FROM outbox WHERE kind = 'card.status' ORDER BY id")
    assert len(sent) == 2 and all(m["delivered_at"] for m in sent)  # delivered by the use cases, over HTTP
    for message in sent:
        [received] = nodes.query("hub", "SELECT * FROM messages WHERE idempotency_key = ?",
                                 [message["idempotency_key"]])
        assert received["from_node"] == "bj"
    [entry] = nodes.query("hub", "SELECT * FROM card_directory WHERE card_number = ?", [number])
    assert entry["status"] == "active"
    seen = clerk.get(f"/api/v1/exchange/directory/{number}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["status"] == "active" and "*" in seen.json()["citizen_id"]

    nodes.stop("hub")
    with nodes.service("bj").worlds.writing() as world:
        lost = lifecycle.report_lost(world, card_number=number, channel="counter", operator="BJ-C1", outlet=OUTLET,
                                     now=NOW)
    assert lost["event"] == "reported_lost"
    waiting = clerk.get("/api/v1/exchange/outbox").json()["pending"]
    assert [m["kind"] for m in waiting] == ["card.status", "blacklist.add"]
    assert clerk.get("/api/v1/exchange/lists").status_code == 503  # the hub cannot be asked now
    time.sleep(1.5)  # the courier tries, and the messages stay pending
    assert len(clerk.get("/api/v1/exchange/outbox").json()["pending"]) == 2

    nodes.start("hub", peers=())  # up again where Beijing expects it: the courier delivers
    wait_for(lambda: clerk.get("/api/v1/exchange/outbox").json()["pending"] == [])
    lists = clerk.get("/api/v1/exchange/lists").json()
    assert lists["version"] == 1 and lists["blacklist"] == [number]
    assert clerk.get(f"/api/v1/exchange/directory/{number}").json()["status"] == "lost"
    assert len(nodes.query("hub", "SELECT * FROM messages WHERE from_node = 'bj'")) == 4


def test_a_message_without_the_worlds_signature_is_refused_and_a_signed_one_is_applied_once(nodes, tmp_path):
    hub = nodes.start("hub", peers=())
    message = {"idempotency_key": "blacklist.add/TEST/1", "to_node": "hub", "kind": "blacklist.add",
               "payload": json.dumps({"card_number": "110105X", "reason": "test"}), "created_at": NOW.isoformat()}
    body = json.dumps({"from_node": "bj", "message": message}).encode()
    url = hub.url + wire.MESSAGES
    with httpx.Client(timeout=30) as client:
        bare = client.post(url, content=body, headers={"Content-Type": "application/json"})
        assert bare.status_code == 401 and bare.json()["error"]["code"] == "node.unauthenticated"
        other_world = os.urandom(32)  # another world's key of the pair
        forged = client.post(url, content=body, headers=wire.signed_headers(
            other_world, method="POST", path=wire.MESSAGES, from_node="bj", to_node="hub", body=body))
        assert forged.status_code == 401
        secret = wire.PairKeys(exchange_keys(nodes.homes["hub"], ("hub",)))  # the hub's copies: its three pairs
        assert secret.pairs() == [("bj", "hub"), ("he", "hub"), ("hub", "tj")]
        stale = client.post(url, content=body, headers=wire.signed_headers(
            secret, method="POST", path=wire.MESSAGES, from_node="bj", to_node="hub", body=body,
            now=time.time() - 2 * wire.MAX_SKEW))
        assert stale.status_code == 401
        changed = client.post(url, content=body.replace(b"test", b"TEST"), headers=wire.signed_headers(
            secret, method="POST", path=wire.MESSAGES, from_node="bj", to_node="hub", body=body))
        assert changed.status_code == 401
        assert nodes.query("hub", "SELECT * FROM messages") == []

        answers = [client.post(url, content=body, headers=wire.signed_headers(
            secret, method="POST", path=wire.MESSAGES, from_node="bj", to_node="hub", body=body)) for _ in range(2)]
        assert [a.status_code for a in answers] == [200, 200], answers[0].text
        assert [a.json()["applied"] for a in answers] == [True, False]
        assert answers[0].json()["result"] == {"version": 1}
        assert len(nodes.query("hub", "SELECT * FROM blacklist_versions")) == 1

        to_tj = dict(message, to_node="tj", kind="stock.used")
        body = json.dumps({"from_node": "bj", "message": to_tj}).encode()
        # a pair the hub is not an end of: the hub holds no key for it, so nothing signed for it is believed here
        bj_tj = wire.PairKeys(exchange_keys(nodes.homes["bj"], ("bj",))).secret("bj", "tj")
        elsewhere = client.post(url, content=body, headers=wire.signed_headers(
            bj_tj, method="POST", path=wire.MESSAGES, from_node="bj", to_node="tj", body=body))
        assert elsewhere.status_code == 401 and "no key for the pair bj-tj" in elsewhere.json()["error"]["message"]


def test_lookups_of_other_regions_go_over_http_and_a_node_with_no_peer_answers_421(nodes):
    nodes.start("tj", peers=())
    nodes.start("he", peers=())
    bj = nodes.start("bj", peers=("tj", "he"))  # no hub
    admin = sign_in(bj, "BJ-ADMIN")
    account = {"code": "BJ-NEW", "name": "新人", "role": "counter", "region": "110105", "password": "first-Pass-2025"}
    taken = admin.post("/api/v1/staff", json={**account, "code": "TJ-C1"}, headers={"Idempotency-Key": "k1"})
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "operator.exists"  # Tianjin asked over HTTP
    made = admin.post("/api/v1/staff", json=account, headers={"Idempotency-Key": "k2"})
    assert made.status_code == 201, made.text

    lists = admin.get("/api/v1/exchange/lists")
    assert lists.status_code == 421 and lists.json()["error"]["code"] == "node.elsewhere"
    assert "hub" in lists.json()["error"]["message"]

    nodes.stop("bj")
    alone = nodes.start("bj", peers=())
    alone.changed.add("BJ-ADMIN")  # its first password was changed at the process before
    again = sign_in(alone, "BJ-ADMIN")
    refused = again.post("/api/v1/staff", json={**account, "code": "BJ-NEW2"}, headers={"Idempotency-Key": "k3"})
    assert refused.status_code == 421 and refused.json()["error"]["code"] == "node.elsewhere"
    assert nodes.query("bj", "SELECT code FROM operators WHERE code = 'BJ-NEW2'") == []


def test_staff_sign_in_only_at_their_own_regions_node(nodes):
    tj = nodes.start("tj", peers=())
    hub = nodes.start("hub", peers=())
    assert tj.sign_in("TJ-C1", "first-Pass-2025", new_password=PASSWORD).status_code == 200
    assert tj.sign_in("BJ-C1", "first-Pass-2025", new_password=PASSWORD).status_code == 401
    assert hub.sign_in("TJ-C1", PASSWORD).status_code == 421  # the hub signs nobody in
    with httpx.Client(base_url=hub.url, timeout=30) as client:
        assert client.get("/api/v1/health").json() == {"status": "ok", "node": "hub", "serves": ["hub"]}


def test_a_world_opened_for_one_node_holds_only_its_database(api_home: Path, tmp_path: Path):
    home = node_home(api_home, "tj", tmp_path)
    with open_world(home, nodes=("tj",)) as world:
        assert world.nodes == ("tj",) and not world.whole
        assert world.region("tj")["operators"].count > 0
        for reach in (world.hub, lambda: world.region("bj")):
            with pytest.raises(NodeElsewhere) as refused:
                reach()
            assert refused.value.code == "node.elsewhere"
    assert stray_databases(home, "tj") == []


def test_the_whole_world_in_one_process_answers_in_process(live_server: LiveServer):
    clerk = live_server.signed_in("TJ-C1")
    lists = clerk.get("/api/v1/exchange/lists")
    assert lists.status_code == 200 and lists.json()["version"] == 0
    assert clerk.get("/api/v1/exchange/outbox").json() == {"node": "tj", "pending": []}
    assert live_server.server.config.app.state.service.worlds.link is None
    with open_world(live_server.home) as world:
        assert isinstance(world, World) and world.whole and set(world.nodes) == set(NODES)
    assert set(REGION_NODES) < set(NODES)


@attrs.define
class RecordingLink:
    """A link that records what it is handed, or finds its peer down."""

    down: bool = False
    delivered: list[tuple[str, dict[str, object]]] = attrs.field(factory=list)

    def deliver(self, from_node: str, message: dict[str, object]) -> dict[str, object]:
        if self.down:
            raise PeerUnavailable("hub", "down for the test")
        self.delivered.append((from_node, dict(message)))
        return {"applied": True}

    def ask(self, node: str, question: str, params: dict[str, object]) -> object:
        raise PeerUnavailable(node, "down for the test")


def test_a_one_node_world_hands_its_messages_to_its_link_and_keeps_them_pending_while_it_fails(api_home, tmp_path):
    home = node_home(api_home, "bj", tmp_path)
    with open_world(home, nodes=("bj",)) as world:
        for n in (1, 2):
            outbox.enqueue(world.region("bj"), to_node="hub", kind="blacklist.add", key=f"test/{n}",
                           payload={"card_number": f"C{n}", "reason": None}, now=NOW)
        assert outbox.deliver_pending(world, NOW) == 0  # no link: nothing leaves, nothing is lost
        world.link = RecordingLink(down=True)
        assert outbox.deliver_pending(world, NOW) == 0
        assert len(outbox.pending(world.region("bj"))) == 2
        with pytest.raises(PeerUnavailable):
            peers.ask(world, "hub", "directory.blacklist_version")
        world.link = link = RecordingLink()
        assert outbox.deliver_pending(world, NOW) == 2
        assert [(sender, m["idempotency_key"]) for sender, m in link.delivered] == [("bj", "test/1"), ("bj", "test/2")]
        assert set(link.delivered[0][1]) == set(outbox.WIRE_FIELDS) and outbox.pending(world.region("bj")) == []
        world.link = None
        with pytest.raises(NodeElsewhere):
            peers.ask(world, "tj", "registry.person", citizen_id=HOLDER)
        assert peers.ask(world, "bj", "operators.operator", code="BJ-C1")["code"] == "BJ-C1"
    assert stray_databases(home, "bj") == []


def test_an_issuance_through_the_beijing_process_api_reaches_the_hub_process(nodes):
    """The cards API, served by the Beijing process alone: apply, issue, activate, report lost, over HTTP."""
    nodes.start("hub", peers=())
    nodes.start("tj", peers=())
    nodes.start("he", peers=())
    bj = nodes.start("bj")
    clerk = sign_in(bj, "BJ-C1")
    cid = cards_world.LIU
    person = cards_world.register(clerk, cid, "刘建国")
    assert person["node"] == "bj"  # the other regions were asked over HTTP whether they hold the person
    cards_world.receive(clerk, count=1)
    card = cards_world.issue(clerk, cards_world.apply(clerk, cid)["application_id"])["card_number"]
    cards_world.activate(clerk, card)
    [entry] = nodes.query("hub", "SELECT status FROM card_directory WHERE card_number = ?", [card])
    assert entry["status"] == "active"
    shown = cards_world.ok(clerk.get(f"/api/v1/cards/{card}"))
    assert shown["status"] == "active" and shown["blacklisted"] is False

    lost = clerk.post(f"/api/v1/cards/{card}/lost", json={"channel": "counter"}, headers=cards_world.key())
    assert lost.status_code == 200, lost.text
    wait_for(lambda: clerk.get("/api/v1/exchange/lists").json()["blacklist"] == [card])
    assert cards_world.ok(clerk.get(f"/api/v1/cards/{card}"))["blacklisted"] is True
    assert clerk.get("/api/v1/exchange/outbox").json()["pending"] == []
