"""The day's clearing with one node per process: the hub's process runs it over the regions' processes.

A purse world (``tests/transit/purse_world.py``: a Beijing and a Tianjin card, each loaded,
tapped at a Beijing metro terminal, the records uploaded in process) is copied twice: one
copy is cleared in process (the CLI's way, the whole world), the other split into four homes
each holding only its own node's files, served by four servers. A supervisor signed in at
Beijing's process runs the clearing; the hub's process runs it, asking each region's process
for its part and delivering each payee's receipt over HTTP. Both must give the same answer.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from freezegun import freeze_time

sys.path.append(str(Path(__file__).resolve().parents[1] / "transit"))  # the purse world's helper module

from api_world import FIRST_PASSWORD, free_port, not_for_node  # noqa: E402
from purse_world import NOW, PurseWorld, purse_template  # noqa: E402,F401 - purse_template: a fixture
from world_template import copy_world  # noqa: E402

from sbcard.clock import SimClock  # noqa: E402
from sbcard.services.clearing import purse_records, settlement  # noqa: E402
from sbcard.services.outlets import staff as accounts  # noqa: E402
from sbcard.store.db import open_db  # noqa: E402
from sbcard.store.world import NODES, exchange_keys, open_world  # noqa: E402

if TYPE_CHECKING:
    from api_world import LiveServer

DAY = NOW.date()
NIGHT = NOW.replace(hour=23, minute=30)
NEXT_DAY, NEXT_NIGHT = DAY + dt.timedelta(days=1), NIGHT + dt.timedelta(days=1)
RUNS = "/api/v1/clearing/runs"
SUPERVISOR = "BJ-SUP"


def _world(template: tuple[Path, dict[str, Any]], root: Path) -> Path:
    """The day's purse records in a whole world: ¥100.00 loaded on each card, two taps each at the Beijing
    metro (Tianjin's card's records go to Tianjin, its issuer), uploaded; a Beijing supervisor."""
    home, cards = template
    root.mkdir(parents=True)
    with freeze_time(NOW):
        pw = PurseWorld(copy_world(home, root), dict(cards))
        for holder in ("liu", "chen"):
            code, _, err, _ = pw.load(holder, "100")
            assert code == 0, err
        pw.register_terminal()
        records = [pw.purchase("liu", fare, serial=i + 1, when=NOW + dt.timedelta(minutes=10 * i))
                   for i, fare in enumerate((300, 400))]
        records += [pw.purchase("chen", fare, serial=i + 3, when=NOW + dt.timedelta(minutes=10 * i))
                    for i, fare in enumerate((500, 600))]
        pw.upload(records, now=NOW)
        with open_world(pw.home) as world:
            accounts.add_staff(world.region("bj"), code=SUPERVISOR, name="郑伟", role="supervisor", region="110000",
                               outlet=None, password=FIRST_PASSWORD, by="cli", now=NOW)
    exchange_keys(pw.home, NODES)  # every pair's key, made in the shared home; each node's home gets its own
    return pw.home


def _node_home(world: Path, node: str, root: Path) -> Path:
    home = root / node
    shutil.copytree(world, home, ignore=lambda directory, names: not_for_node(node, directory, names))
    return home


@attrs.define
class Cluster:
    homes: dict[str, Path]
    clock: SimClock
    start_server: Callable[..., LiveServer]
    ports: dict[str, int]
    servers: dict[str, LiveServer] = attrs.field(factory=dict)

    def start(self, node: str) -> LiveServer:
        peers = {other: f"http://127.0.0.1:{self.ports[other]}" for other in NODES if other != node}
        self.servers[node] = self.start_server(self.homes[node], self.clock, node=node, port=self.ports[node],
                                               peers=peers)
        return self.servers[node]

    def stop(self, node: str) -> None:
        self.servers.pop(node).stop()

    def query(self, node: str, sql: str) -> list[dict[str, Any]]:
        db = open_db(self.homes[node] / f"{node}.db")
        try:
            return [dict(r) for r in db.query(sql)]
        finally:
            db.close()


@pytest.fixture
def cleared_world(purse_template, tmp_path: Path) -> Path:  # noqa: F811 - the fixture imported above
    return _world(purse_template, tmp_path / "whole")


@pytest.fixture
def cluster(cleared_world: Path, tmp_path: Path, server_starter) -> Iterator[Cluster]:
    homes = {node: _node_home(cleared_world, node, tmp_path / "nodes") for node in NODES}
    made = Cluster(homes, SimClock(NIGHT), server_starter, {node: free_port() for node in NODES})
    try:
        for node in NODES:
            made.start(node)
        yield made
    finally:
        for node in list(made.servers):
            made.stop(node)
        for node, home in homes.items():
            stray = sorted(p.name for p in home.glob("*.db") if p.name != f"{node}.db")
            assert stray == [], f"the {node} process opened another node's database"


def _in_process(home: Path, root: Path, *runs: tuple[dt.date, dt.datetime],
                down: str | None = None) -> tuple[Path, list[dict[str, Any]]]:
    copy = root / "in-process"
    shutil.copytree(home, copy)
    results = []
    with open_world(copy) as world:
        for i, (day, now) in enumerate(runs):
            if down is not None:
                from sbcard.services.exchange import links
                links.set_link(world.hub(), down, up=i > 0, now=now)
            results.append(purse_records.run_clearing(world, day, now=now).to_dict())
    return copy, results


def _balances(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {r["account_no"]: r["b"] for r in rows if r["b"] and not r["account_no"][0].isdigit()}


BALANCES = "SELECT account_no, sum(amount_fen) AS b FROM ledger_entries GROUP BY account_no"


def test_a_clearing_run_over_http_gives_what_the_run_in_process_gives_and_a_second_run_changes_nothing(
        cluster: Cluster, cleared_world: Path, tmp_path: Path):
    whole, [expected] = _in_process(cleared_world, tmp_path, (DAY, NIGHT))
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    answer = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got == json.loads(json.dumps(expected))
    assert got["changed"] and [r["status"] for r in got["regions"].values()] == ["cleared"] * 3
    assert [(x["payer"], x["payee"], x["count"], x["amount_fen"], x["delivered"]) for x in got["lines"]] == [
        ("bj", "bj", 2, 700, True), ("tj", "bj", 2, 1100, True)]
    assert got["settlement"]["net"] == {"bj": 1100, "tj": -1100, "he": 0}
    # the settlement files the hub's process writes are the ones the whole world writes
    for path in got["files"]:
        assert (cluster.homes["hub"] / path).read_text() == (whole / path).read_text()
    # each region's ledger is the one the whole world's run posts
    with open_world(whole) as world:
        for node in ("bj", "tj", "he"):
            assert _balances(cluster.query(node, BALANCES)) == _balances(list(world.region(node).query(BALANCES)))
    # a region's own settlement, from its own records, is the hub's file for it
    own = supervisor.get("/api/v1/settlement/region", params={"date": DAY.isoformat()})
    assert own.status_code == 200, own.text
    hub_file = json.loads((cluster.homes["hub"] / "settlement" / DAY.isoformat() / "bj.json").read_text())
    assert own.json() == {**hub_file, "cleared": True, "unsent": False}
    # the reports, read at Beijing's process, are the whole world's
    with open_world(whole) as world:
        report, day_settlement = purse_records.report(world, DAY), settlement.day_settlement(world, DAY)
    shown = supervisor.get("/api/v1/clearing/report", params={"date": DAY.isoformat()})
    assert shown.status_code == 200, shown.text
    assert shown.json() == json.loads(json.dumps(report))
    assert supervisor.get("/api/v1/settlement", params={"date": DAY.isoformat()}).json() == json.loads(
        json.dumps(day_settlement))
    # run twice = once
    before = {node: _balances(cluster.query(node, BALANCES)) for node in ("bj", "tj")}
    again = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert again.status_code == 200, again.text
    assert again.json()["changed"] is False and again.json()["settlement"] == got["settlement"]
    assert {node: _balances(cluster.query(node, BALANCES)) for node in ("bj", "tj")} == before
    assert len(cluster.query("bj", "SELECT * FROM inbox WHERE kind = 'clearing.deliver'")) == 1
    assert len(cluster.query("hub", "SELECT * FROM messages WHERE kind = 'settlement'")) == 1


def test_a_region_whose_process_is_down_waits_for_the_next_clearing_date(
        cluster: Cluster, cleared_world: Path, tmp_path: Path):
    _, [_, expected] = _in_process(cleared_world, tmp_path, (DAY, NIGHT), (NEXT_DAY, NEXT_NIGHT), down="tj")
    cluster.stop("tj")
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    answer = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert answer.status_code == 200, answer.text
    got = answer.json()
    assert got["regions"]["tj"]["status"] == "unreachable" and "node tj cannot be reached" in got["regions"]["tj"][
        "note"]
    assert got["regions"]["bj"]["status"] == "cleared"
    assert [(x["payer"], x["payee"], x["amount_fen"]) for x in got["lines"]] == [("bj", "bj", 700)]
    assert got["settlement"]["reconciliation"]["tj"]["unavailable"] is True
    assert cluster.query("tj", "SELECT * FROM clearing_lines") == []  # nothing of Tianjin's was cleared
    # Tianjin up again: the next date's run clears its purchases, as in process after an outage
    cluster.start("tj")
    cluster.clock.advance(NEXT_NIGHT - NIGHT)
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)  # the day's session has expired
    nxt = supervisor.post(RUNS, json={"date": NEXT_DAY.isoformat(), "force": True})
    assert nxt.status_code == 200, nxt.text
    later = nxt.json()
    assert later["regions"] == expected["regions"]
    assert later["lines"] == expected["lines"] and later["settlement"] == expected["settlement"]


def test_a_date_that_has_not_begun_is_refused_at_the_region(cluster: Cluster):
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    answer = supervisor.post(RUNS, json={"date": (NEXT_DAY + dt.timedelta(days=1)).isoformat()})
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "clearing.date"
    assert cluster.query("hub", "SELECT * FROM settlements") == []


# ----------------------------------------------------------------------------- the smaller lookups

LIU, CHEN = "110105198506151236", "120103197803024561"  # a Beijing card's holder, a Tianjin card's


def test_a_card_is_found_by_its_holders_citizen_id_in_another_regions_process(cluster: Cluster):
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    shown = supervisor.get(f"/api/v1/cards/{CHEN}")
    assert shown.status_code == 200, shown.text
    card = shown.json()
    assert card["issuing_node"] == "tj" and card["status"] == "active"
    assert card["citizen_id"] != CHEN and card["citizen_id"].startswith(CHEN[:3])  # masked: another region's
    by_number = supervisor.get(f"/api/v1/cards/{card['card_number']}")
    assert by_number.json() == card
    assert supervisor.get(f"/api/v1/cards/{LIU}").json()["issuing_node"] == "bj"
    nobody = supervisor.get("/api/v1/cards/110105199001011234")
    assert nobody.status_code in (404, 422)


def _batch() -> bytes:
    rows = [(1, LIU, "刘洋", "GLJT", "100.00"), (2, CHEN, "陈静", "GLJT", "200.00"),
            (3, "110105199202020011", "无名", "GLJT", "50.00")]
    lines = ["seq,citizen_id,name,card_number,item,period,amount,remark"]
    lines += [f"{seq},{cid},{name},,{item},202503,{amount}," for seq, cid, name, item, amount in rows]
    lines.append("#TOTAL,3,350.00")
    return ("\n".join(lines) + "\n").encode()


def test_a_subsidy_batch_is_checked_against_the_other_regions_and_the_hub_over_http(
        cluster: Cluster, cleared_world: Path, tmp_path: Path):
    from sbcard.services.subsidies import batch_import

    with open_world(cleared_world) as world:
        accounts.add_staff(world.region("bj"), code="BJ-FM", name="刘洋", role="finance_maker", region="110000",
                           outlet=None, password=FIRST_PASSWORD, by="cli", now=NOW)
    whole = tmp_path / "in-process-batch"
    shutil.copytree(cleared_world, whole)
    file = tmp_path / "民政局-202503.csv"
    file.write_bytes(_batch())
    with open_world(whole) as world:
        expected = batch_import.import_batch(world, file, region="110105", operator="BJ-FM", now=NIGHT)
    # the Beijing process's copy of its database has the finance maker too
    db = open_db(cluster.homes["bj"] / "bj.db")
    try:
        accounts.add_staff(db, code="BJ-FM", name="刘洋", role="finance_maker", region="110000", outlet=None,
                           password=FIRST_PASSWORD, by="cli", now=NOW)
    finally:
        db.close()
    maker = cluster.servers["bj"].signed_in("BJ-FM")
    answer = maker.post("/api/v1/subsidies/batches", files={"file": (file.name, _batch(), "text/csv")},
                        data={"region": "110105"}, headers={"Idempotency-Key": "nodes-batch-1"})
    assert answer.status_code == 201, answer.text
    got = answer.json()
    assert got["reasons"] == expected["reasons"] and got["reasons"]  # Chen found registered in Tianjin's process
    assert {k: got[k] for k in ("rows", "valid", "invalid", "valid_fen", "invalid_fen")} == {
        k: expected[k] for k in ("rows", "valid", "invalid", "valid_fen", "invalid_fen")}


def test_batch_production_checks_the_hubs_directory_over_http(cluster: Cluster, cleared_world: Path):
    from sbcard.services.cards import batch_production

    with open_world(cleared_world) as world:
        expected = batch_production._valid_cards(world, world.region("bj"), [LIU, CHEN, "not an id"])
    service = cluster.servers["bj"].server.config.app.state.service
    with service.worlds.writing() as world:
        assert not world.holds("hub")
        got = batch_production._valid_cards(world, world.region("bj"), [LIU, CHEN, "not an id"])
    assert {cid: got.get(cid) for cid in (LIU, CHEN)} == {cid: expected.get(cid) for cid in (LIU, CHEN)}
    assert got[LIU] and got[CHEN]  # Chen's Tianjin card from the hub's directory


def test_only_the_hub_sends_a_region_its_clearing_messages(cluster: Cluster):
    """A region cannot pass a receipt off as the hub's: the signed sender must be the hub, and only the hub and the
    receiver hold the key of their pair — Tianjin, with every key it holds, cannot sign as the hub to Beijing."""
    import httpx

    from sbcard.api import peers as wire
    from sbcard.domain.errors import SbcardError

    tianjin = wire.PairKeys(exchange_keys(cluster.homes["tj"], ("tj",)))  # Tianjin's copies: its three pairs
    assert tianjin.pairs() == [("bj", "tj"), ("he", "tj"), ("hub", "tj")]
    hub = wire.PairKeys(exchange_keys(cluster.homes["hub"], ("hub",)))
    rows = [{"day": DAY.isoformat(), "kind": "transit", "payer_node": "tj", "payee_node": "bj", "party": "bj-subway",
             "count": 1, "amount_fen": 100000, "flagged": 0, "refunds": 0}]
    message = {"idempotency_key": f"clearing.deliver/{DAY.isoformat()}/tj/bj", "to_node": "bj",
               "kind": "clearing.deliver", "created_at": NIGHT.isoformat(),
               "payload": json.dumps({"day": DAY.isoformat(), "payer": "tj", "payee": "bj", "lines": rows})}
    url = f"{cluster.servers['bj'].url}{wire.MESSAGES}"

    def post(sender: str, keys: wire.PairKeys | bytes | None) -> httpx.Response:
        assert keys is not None
        body = json.dumps({"from_node": sender, "message": message}).encode()
        return httpx.post(url, content=body, headers=wire.signed_headers(
            keys, method="POST", path=wire.MESSAGES, from_node=sender, to_node="bj", body=body))

    as_itself = post("tj", tianjin)  # authenticated as Tianjin: refused, only the hub sends clearing
    assert as_itself.status_code == 422 and as_itself.json()["error"]["code"] == "message.invalid"
    with pytest.raises(SbcardError):  # Tianjin holds no key of the pair bj-hub
        post("hub", tianjin)
    for stolen in (tianjin.secret("hub", "tj"), tianjin.secret("bj", "tj")):  # nor does any key it holds do
        forged = post("hub", stolen)
        assert forged.status_code == 401 and forged.json()["error"]["code"] == "node.unauthenticated"
    assert cluster.query("bj", "SELECT * FROM inbox WHERE kind = 'clearing.deliver'") == []
    answers = [post("hub", hub) for _ in range(2)]  # the hub's is applied, once
    assert [a.status_code for a in answers] == [200, 200], answers[0].text
    assert [a.json()["applied"] for a in answers] == [True, False]
    assert len(cluster.query("bj", "SELECT * FROM clearing_lines WHERE payer_node = 'tj'")) == 1


# ----------------------------------------------------------------------------- a part answered late, a refusal


def test_a_part_answered_late_keeps_the_day_unrecorded_until_a_run_knows_it_and_its_lines_reach_the_files(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch):
    """Tianjin's process holds its write lock (a long job) past the part's timeout: the hub cannot tell whether
    the part was applied, so it records nothing (503); run again once Tianjin answers, the day's files hold
    Tianjin's ¥11.00 owed to Beijing (before: Tianjin marked unreachable, its part applied late and dated that
    day, in no settlement file)."""
    from sbcard.api import peers as wire

    monkeypatch.setitem(wire.MESSAGE_TIMEOUTS, "clearing.part", 1.0)
    service = cluster.servers["tj"].server.config.app.state.service
    held, release = threading.Event(), threading.Event()

    def busy() -> None:
        with service.worlds.writing():
            held.set()
            release.wait(30)

    holder = threading.Thread(target=busy)
    holder.start()
    held.wait(10)
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    try:
        answer = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    finally:
        release.set()
        holder.join()
    assert answer.status_code == 503, answer.text
    assert "clearing.in_doubt" in answer.json()["error"]["message"]
    assert cluster.query("hub", "SELECT * FROM settlements") == []
    again = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert again.status_code == 200, again.text
    got = again.json()
    assert [r["status"] for r in got["regions"].values()] == ["cleared"] * 3
    assert got["settlement"]["net"] == {"bj": 1100, "tj": -1100, "he": 0}
    files = {node: json.loads((cluster.homes["hub"] / "settlement" / DAY.isoformat() / f"{node}.json").read_text())
             for node in ("bj", "tj")}
    assert (files["bj"]["net_fen"], files["tj"]["net_fen"]) == (1100, -1100)
    assert len(cluster.query("tj", "SELECT * FROM inbox WHERE kind = 'clearing.part'")) == 1


def test_a_peers_refusal_passes_through_as_its_own_error_and_a_node_down_stays_unavailable(cluster: Cluster):
    from sbcard.api.peers import HttpLink, PairKeys
    from sbcard.services.exchange.peers import PeerRefused, PeerUnavailable

    peers = {node: server.url for node, server in cluster.servers.items() if node != "bj"}
    link = HttpLink("bj", peers, PairKeys(exchange_keys(cluster.homes["bj"], ("bj",))))
    try:
        with pytest.raises(PeerRefused) as refused:
            link.act("hub", "clearing.run", {"date": "2025-02-30"})
        assert (refused.value.status, refused.value.code, refused.value.field) == (422, "clearing.date", "date")
        cluster.stop("tj")
        with pytest.raises(PeerUnavailable) as down:
            link.ask("tj", "node.alive", {})
        assert not isinstance(down.value, PeerRefused) and down.value.code == "node.unavailable"
        assert down.value.in_doubt is False
    finally:
        link.close()


def test_a_day_is_not_recorded_while_a_cleared_regions_lines_are_not_at_the_hub(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch):
    """Tianjin's part is cleared (its lines dated the day) and then its lines cannot be asked for: recorded then,
    the day's files would miss them for good (the next run takes them, dated the day, into no file)."""
    from sbcard.services.exchange import peers

    side, answer = peers.QUESTIONS["clearing.unsent_lines"]

    def failing(db, payer: str):
        if payer == "tj":
            raise ValueError("Tianjin's process could not answer now")
        return answer(db, payer)

    monkeypatch.setitem(peers.QUESTIONS, "clearing.unsent_lines", (side, failing))
    supervisor = cluster.servers["bj"].signed_in(SUPERVISOR)
    first = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert first.status_code == 503 and "clearing.in_doubt" in first.json()["error"]["message"], first.text
    assert cluster.query("hub", "SELECT * FROM settlements") == []
    monkeypatch.setitem(peers.QUESTIONS, "clearing.unsent_lines", (side, answer))
    again = supervisor.post(RUNS, json={"date": DAY.isoformat(), "force": True})
    assert again.status_code == 200, again.text
    assert again.json()["settlement"]["net"] == {"bj": 1100, "tj": -1100, "he": 0}
    tj_file = json.loads((cluster.homes["hub"] / "settlement" / DAY.isoformat() / "tj.json").read_text())
    assert tj_file["net_fen"] == -1100
