"""Self-service loads (自助圈存) at a kiosk over the host API: the loader app against a live service.

A kiosk registered at an outlet signs ``/api/v1/host/purse/…``; the loader drives the card
(VERIFY PIN, INITIALIZE FOR LOAD, CREDIT FOR LOAD) through ``HttpLoadHost`` exactly as in
process; the holder's account pays, once, whatever is torn or retried (docs/api/terminals.md).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import httpx
import pytest
from api_cards_world import API, BANK, LIU, OUTLET, PIN, active_card, key, ok, receive
from api_world import start_server
from world_template import cli

from sbcard.chip import terminal_auth as ta
from sbcard.chip.reader import CardIOError
from sbcard.cli.readers import reader_for
from sbcard.cli.terminals import install_terminal, terminal_dir
from sbcard.clock import SimClock, SystemClock
from sbcard.domain import kiosk_load
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.services.medical import pos
from sbcard.services.terminals import credentials, kiosk, register
from sbcard.store.world import open_world
from terminals.apps import loader
from terminals.apps.http_host import HostUnreachable, HttpLoadHost
from terminals.apps.terminal_state import TerminalState
from terminals.emulator.card_file import read_state

DEPOSIT = 100_000
VERIFY_WRITES = 4  # a VERIFY that matches stores the PIN's tries again: its journal and commit writes come first
HOST = f"{API}/host/purse"


def _add(home: Path, now, make) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    with open_world(home) as world:
        row = make(world, install_terminal(home, "normal"))
    with TerminalState.open(terminal_dir(home, row["id"])) as state:
        return row, state.host_credential()


def add_kiosk(home: Path, now, outlet: str = OUTLET) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    return _add(home, now, lambda world, install: kiosk.add_kiosk(world, outlet, now=now, install=install))


def _card_file(home: Path, card: str) -> str:
    with open_world(home) as world:
        return str(world.paths.resolve(world.region("bj")["cards"].get(card)["virtual_path"]))


def _purse(home: Path, card: str) -> int:
    return read_state(_card_file(home, card))["purse"]["balance"]


def _loads(home: Path, card: str) -> list[dict]:
    with open_world(home) as world:
        return list(world.region("bj").query("SELECT * FROM purse_loads WHERE card_number = ? ORDER BY id", [card]))


def _sum(home: Path, where: str, args: list) -> int:  # type: ignore[type-arg]
    with open_world(home) as world:
        return world.region("bj").execute(f"SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE {where}",
                                          args).fetchone()[0]


def _float(home: Path) -> int:
    return _sum(home, "account_no = 'FLOAT-PURSE'", [])


def _account(client: httpx.Client, card: str) -> int:
    return ok(client.get(f"{API}/accounts/{card}"))["balance_fen"]


def _balanced(home: Path) -> None:
    with open_world(home) as world:
        bad = list(world.region("bj").query("SELECT txn_id, sum(amount_fen) AS s FROM ledger_entries GROUP BY txn_id "
                                            "HAVING s != 0"))
    assert bad == []


@pytest.fixture
def kiosk_world(live_server, signed_in):  # type: ignore[no-untyped-def]
    """(clerk, an active Beijing card with ¥1,000.00 in its account, the kiosk's row, its HttpLoadHost)."""
    clerk = signed_in("BJ-C1")
    receive(clerk, count=2)
    card = active_card(clerk, LIU, "刘建国")
    banker = signed_in("BJ-C2")
    ok(banker.post(f"{API}/accounts/{card}/deposit", json={"amount_fen": DEPOSIT, "outlet": BANK}, headers=key()))
    row, credential = add_kiosk(live_server.home, live_server.clock.now())
    with HttpLoadHost(live_server.url, row["id"], credential, clock=live_server.clock.now) as host:
        yield clerk, card, row, host


def _load(home: Path, card: str, host, amount: int, row: dict, pin: str | None = PIN,  # type: ignore[no-untyped-def]
          tear: int | None = None):
    spec = f"emulator:{_card_file(home, card)}" + (f"?tear={tear}" if tear else "")
    with reader_for(spec, False) as reader:
        return loader.load(reader, host, amount, bytes.fromhex(row["terminal_no"]), pin=pin)


def test_a_kiosk_loads_a_card_from_its_account_over_http(live_server, kiosk_world):
    clerk, card, row, host = kiosk_world
    home = live_server.home
    assert row["id"] == f"{OUTLET}-0001" and row["operator"] == OUTLET and kiosk.outlet_of(row) == OUTLET
    assert credentials.operator_node(row["id"]) == "bj"

    outcome = _load(home, card, host, 5_000, row)
    assert (outcome.card_number, outcome.amount_fen, outcome.balance_fen) == (card, 5_000, 5_000)
    assert outcome.account_balance_fen == DEPOSIT - 5_000 == _account(clerk, card)
    assert outcome.confirmed["status"] == "confirmed" and outcome.confirmed["how"] == "tac"
    assert _purse(home, card) == 5_000 == _float(home)
    [load] = _loads(home, card)
    assert (load["status"], load["operator"], load["outlet"], load["terminal_no"]) == \
        ("confirmed", f"terminal:{row['id']}", OUTLET, row["terminal_no"])
    assert _sum(home, "txn_id = ? AND account_no != 'FLOAT-PURSE'", [load["txn_id"]]) == -5_000
    _balanced(home)
    with open_world(home) as world:
        [audit] = list(world.region("bj").query("SELECT operator, outlet FROM audit_log WHERE action = 'purse.load'"))
    assert (audit["operator"], audit["outlet"]) == (f"terminal:{row['id']}", OUTLET)


def test_a_wrong_or_revoked_credential_is_401(live_server, kiosk_world):
    _clerk, card, row, host = kiosk_world
    forged = HttpLoadHost(live_server.url, row["id"], bytes(32), clock=live_server.clock.now)
    with forged, pytest.raises(Exception) as refused:
        forged.pending_loads("0" * 20)
    assert (refused.value.status, refused.value.code) == (401, "terminal.bad_mac")  # type: ignore[attr-defined]

    with open_world(live_server.home) as world:
        credentials.revoke(world, row["id"], now=live_server.clock.now(), by="cli", reason="stolen")
    with pytest.raises(Exception) as refused:
        _load(live_server.home, card, host, 1_000, row)
    assert (refused.value.status, refused.value.code) == (401, "terminal.revoked")  # type: ignore[attr-defined]
    assert _loads(live_server.home, card) == [] and _purse(live_server.home, card) == 0


def test_other_kinds_of_terminal_are_403(live_server, kiosk_world):
    _clerk, card, row, _host = kiosk_world
    home, now = live_server.home, live_server.clock.now()
    gate, gate_key = _add(home, now, lambda world, install: register.add_terminal(
        world, operator="bj-subway", station="西直门", now=now, install=install))
    till, till_key = _add(home, now, lambda world, install: pos.add_pos(world, "BJH003", now=now, install=install))
    for other, credential in ((gate, gate_key), (till, till_key)):
        with HttpLoadHost(live_server.url, other["id"], credential, clock=live_server.clock.now) as host:
            with pytest.raises(Exception) as refused:
                _load(home, card, host, 1_000, other)
            error = refused.value
            assert (error.status, error.code) == (403, "terminal.not_kiosk")  # type: ignore[attr-defined]
    assert _loads(home, card) == []


def test_the_unattended_limits_and_the_pin(live_server, kiosk_world):
    clerk, card, row, host = kiosk_world
    home = live_server.home
    with pytest.raises(RuleRefused) as refused:
        _load(home, card, host, kiosk_load.MAX_LOAD_FEN + 1, row)
    assert (refused.value.code, refused.value.field) == ("kiosk.load_limit", "amount_fen")
    with pytest.raises(RuleRefused) as refused:  # a wrong PIN ends it on the card: the host is never asked
        _load(home, card, host, 1_000, row, pin="000000")
    assert refused.value.code == "pin.wrong"
    with pytest.raises(RuleRefused) as refused:  # no PIN: the kiosk does not attest it, the host refuses
        _load(home, card, host, 1_000, row, pin=None)
    assert (refused.value.code, refused.value.field) == ("kiosk.pin_unverified", "pin_verified")
    assert _loads(home, card) == [] and _account(clerk, card) == DEPOSIT

    _load(home, card, host, kiosk_load.MAX_LOAD_FEN, row)
    _load(home, card, host, kiosk_load.MAX_DAY_FEN - kiosk_load.MAX_LOAD_FEN, row)
    with pytest.raises(RuleRefused) as refused:
        _load(home, card, host, 1, row)
    assert (refused.value.code, refused.value.field) == ("kiosk.daily_limit", "amount_fen")
    assert _purse(home, card) == kiosk_load.MAX_DAY_FEN == DEPOSIT - _account(clerk, card)

    live_server.clock.advance(dt.timedelta(days=1))  # a new day in Beijing
    _load(home, card, host, 1, row)
    assert _purse(home, card) == kiosk_load.MAX_DAY_FEN + 1 == _float(home)
    _balanced(home)


class _Twice(HttpLoadHost):
    """Asks ``begin`` twice with the same key, as a kiosk whose first answer was lost does."""

    def begin_load(self, request):  # type: ignore[no-untyped-def]
        first = super().begin_load(request)
        assert super().begin_load(request) == first
        return first


def test_a_retry_with_the_same_key_gets_the_first_answer_and_never_a_second_debit(live_server, kiosk_world):
    clerk, card, row, host = kiosk_world
    with _Twice(live_server.url, row["id"], host._credential, clock=live_server.clock.now) as twice:
        outcome = _load(live_server.home, card, twice, 3_000, row)
    assert outcome.balance_fen == 3_000 == _purse(live_server.home, card)
    assert _account(clerk, card) == DEPOSIT - 3_000
    assert len(_loads(live_server.home, card)) == 1

    begin = {"app_serial": outcome.app_serial, "amount_fen": 1, "terminal_no": row["terminal_no"],
             "balance_fen": 0, "online_counter": 0, "key_version": 1, "algorithm_id": 4, "random": "00" * 4,
             "mac1": "00" * 4, "pin_verified": True}
    with pytest.raises(Exception) as refused:  # begin moves money: no key, no load
        host.request("POST", "/purse/begin", body=begin)
    assert (refused.value.status, refused.value.code) == (400, "idempotency.missing")  # type: ignore[attr-defined]
    with pytest.raises(RuleRefused) as other:  # another kiosk's number on the card's INITIALIZE
        host.request("POST", "/purse/begin", body={**begin, "terminal_no": "110000999999"}, idempotency_key="x1")
    assert (other.value.code, other.value.field) == ("kiosk.terminal_no", "terminal_no")
    with pytest.raises(InvalidInput) as bad:
        host.request("POST", "/purse/begin", body={**begin, "amount_fen": "1"}, idempotency_key="x2")
    assert (bad.value.code, bad.value.field) == ("request.invalid", "amount_fen")  # strict integers


@pytest.mark.parametrize("write", [1, 4])
def test_a_torn_load_is_settled_by_the_next_attempt(live_server, kiosk_world, write):
    """The card taken out during CREDIT FOR LOAD (never credited, or credited with no answer): the load is
    pending, the money in the float; the next load at the kiosk settles it first, nothing lost or doubled."""
    clerk, card, row, host = kiosk_world
    home = live_server.home
    with pytest.raises(CardIOError):
        _load(home, card, host, 3_000, row, tear=VERIFY_WRITES + write)
    credited = write == 4
    [pending] = _loads(home, card)
    assert pending["status"] == "pending" and _account(clerk, card) == DEPOSIT - 3_000
    assert _purse(home, card) == (3_000 if credited else 0)

    outcome = _load(home, card, host, 2_000, row)
    [settled] = outcome.settled
    assert settled["status"] == ("confirmed" if credited else "reversed")
    purse = 2_000 + (3_000 if credited else 0)
    assert outcome.balance_fen == purse == _purse(home, card) == _float(home)
    assert _account(clerk, card) == DEPOSIT - purse
    assert [r["status"] for r in _loads(home, card)] == [settled["status"], "confirmed"]
    _balanced(home)


def test_the_cli_registers_a_kiosk_and_loads_at_it_against_a_running_service(api_home):
    # The CLI's clock is the wall clock: the service's is set to it, within the signatures' window.
    clock = SimClock(SystemClock().now())
    server = start_server(api_home, clock)
    try:
        clerk = server.signed_in("BJ-C1")
        receive(clerk, count=2)
        card = active_card(clerk, LIU, "刘建国")
        ok(server.signed_in("BJ-C2").post(f"{API}/accounts/{card}/deposit",
                                          json={"amount_fen": DEPOSIT, "outlet": BANK}, headers=key()))
        code, _, err, added = cli(api_home, "terminal", "add", "--kind", "kiosk", "--outlet", OUTLET.lower(),
                                  "--json")
        assert code == 0, err
        kiosk_id = added["terminal"]
        assert (kiosk_id, added["operator"], added["node"]) == (f"{OUTLET}-0001", OUTLET, "bj")
        reader = f"emulator:{_card_file(api_home, card)}"
        way = ("--terminal", kiosk_id, "--host", server.url)
        code, _, err, done = cli(api_home, "transit", "load", "--reader", reader, "--amount", "20", *way,
                                 "--pin", PIN, "--json")
        assert code == 0, err
        assert (done["amount_fen"], done["balance_fen"], done["paid"], done["terminal_no"]) == \
            (2_000, 2_000, "account", added["terminal_no"])
        assert done["account_balance_fen"] == DEPOSIT - 2_000 == _account(clerk, card)
        code, _, err, recovered = cli(api_home, "transit", "recover", "--reader", reader, *way, "--json")
        assert code == 0 and recovered["settled"] == [] and recovered["balance_fen"] == 2_000, err

        refusals = [
            (("transit", "load", "--reader", reader, "--amount", "20", *way), "pin.missing"),
            (("transit", "load", "--reader", reader, "--amount", "20", *way, "--pin", PIN, "--operator", "BJ-C1"),
             "load.kiosk_options"),
            (("transit", "load", "--reader", reader, "--amount", "20", *way, "--pin", PIN, "--cash"),
             "load.kiosk_cash"),
            (("transit", "load", "--reader", reader, "--amount", "20", "--terminal", kiosk_id, "--pin", PIN),
             "terminal.host_missing"),
            (("terminal", "add", "--kind", "kiosk", "--outlet", OUTLET, "--operator", "bj-subway"), "terminal.kiosk"),
            (("terminal", "add", "--outlet", OUTLET), "terminal.outlet"),
        ]
        for args, wanted in refusals:
            code, _, err, _ = cli(api_home, *args, "--json")
            assert code == 2 and json.loads(err)["error"]["code"] == wanted, (args, err)
        code, _, err, _ = cli(api_home, "transit", "load", "--reader", reader, "--amount", "600", *way, "--pin", PIN,
                              "--json")
        assert code == 1 and json.loads(err)["error"]["code"] == "kiosk.load_limit", err
        assert _purse(api_home, card) == 2_000
    finally:
        server.stop()


def test_two_tears_at_the_same_counter_are_each_settled(live_server, kiosk_world):
    """The card shows the same thing after each tear (same counter, same balance): the second torn load is
    settled all the same, never answered with the first settling's kept answer."""
    clerk, card, row, host = kiosk_world
    home = live_server.home
    for _ in range(2):
        with pytest.raises(CardIOError):
            _load(home, card, host, 3_000, row, tear=VERIFY_WRITES + 1)
    assert [r["status"] for r in _loads(home, card)] == ["reversed", "pending"]
    outcome = _load(home, card, host, 1_000, row)
    assert [s["status"] for s in outcome.settled] == ["reversed"]
    assert [r["status"] for r in _loads(home, card)] == ["reversed", "reversed", "confirmed"]
    assert _purse(home, card) == 1_000 == _float(home) == DEPOSIT - _account(clerk, card)
    _balanced(home)


class _LostAnswer(HttpLoadHost):
    """The host acts on ``lose`` (begin or confirm), but its answer never reaches the kiosk, which gives up."""

    lose = "begin"

    def begin_load(self, request):  # type: ignore[no-untyped-def]
        grant = super().begin_load(request)
        if self.lose == "begin":
            raise HostUnreachable("host.unreachable", "the answer was lost", "--host")
        return grant

    def confirm_load(self, app_serial, online_counter, tac):  # type: ignore[no-untyped-def]
        done = super().confirm_load(app_serial, online_counter, tac)
        if self.lose == "confirm":
            raise HostUnreachable("host.unreachable", "the answer was lost", "--host")
        return done


@pytest.mark.parametrize("lose", ["begin", "confirm"])
def test_a_lost_answer_is_settled_by_the_next_attempt(live_server, kiosk_world, lose):
    """begin's answer lost: the card never got MAC2 (reversed next time); confirm's answer lost: the card credited
    and the host confirmed it (nothing left to settle). Either way the account pays exactly what the card holds."""
    clerk, card, row, host = kiosk_world
    home = live_server.home
    lossy = _LostAnswer(live_server.url, row["id"], host._credential, clock=live_server.clock.now)
    lossy.lose = lose
    with lossy, pytest.raises(HostUnreachable):
        _load(home, card, lossy, 3_000, row)
    [first] = _loads(home, card)
    assert first["status"] == ("pending" if lose == "begin" else "confirmed")
    outcome = _load(home, card, host, 1_000, row)
    assert [s["status"] for s in outcome.settled] == (["reversed"] if lose == "begin" else [])
    purse = 1_000 + (0 if lose == "begin" else 3_000)
    assert outcome.balance_fen == purse == _purse(home, card) == _float(home) == DEPOSIT - _account(clerk, card)
    _balanced(home)


def test_malformed_or_unknown_requests_are_4xx_never_500(live_server, kiosk_world):
    _clerk, _card, row, host = kiosk_world
    unknown = "03101000999999999999"
    begin = {"app_serial": unknown, "amount_fen": 100, "terminal_no": row["terminal_no"], "balance_fen": 0,
             "online_counter": 0, "key_version": 1, "algorithm_id": 4, "random": "00" * 4, "mac1": "00" * 4,
             "pin_verified": True}
    cases = [
        ("GET", "/purse/pending", {"app_serial": "12"}, None, 422, "app_serial"),
        ("POST", "/purse/settle", None, {"app_serial": unknown, "proves": [{"online_counter": 1, "tac": "zz"}]},
         422, "proves.0.tac"),
        ("POST", "/purse/settle", None, {"app_serial": unknown, "online_counter": True}, 422, "online_counter"),
        ("POST", "/purse/begin", None, {**begin, "random": "0" * 9}, 422, "random"),
        ("POST", "/purse/begin", None, {**begin, "pin_verified": "yes"}, 422, "pin_verified"),
        ("POST", "/purse/begin", None, begin, 404, "app_serial"),
        ("POST", "/purse/confirm", None, {"app_serial": unknown, "online_counter": 0, "tac": "00" * 4}, 404,
         "app_serial"),
    ]
    for method, path, params, body, status, field in cases:
        with pytest.raises(Exception) as refused:
            key = f"k-{path[7:]}-{status}-{field}" if method == "POST" else None
            host.request(method, path, params=params, body=body, idempotency_key=key)
        error = refused.value
        got = getattr(error, "status", None) or _status_of(error)
        assert (got, error.field) == (status, field), (path, body, error.code, error.message)  # type: ignore[attr-defined]
    settled = host.request("POST", "/purse/settle", body={"app_serial": unknown, "online_counter": 3})
    assert settled == {"app_serial": unknown, "settled": []}
    assert host.pending_loads(unknown) == []


def _status_of(error: Exception) -> int:
    """The HTTP status ``HttpHost`` raised as a domain error (404 NotFound, 409 RuleRefused, 422 InvalidInput)."""
    from sbcard.domain.errors import NotFound

    return {NotFound: 404, RuleRefused: 409, InvalidInput: 422}[type(error)]


def test_a_kiosk_cannot_reverse_a_credited_load_with_a_counter_it_read_off_pending(live_server, kiosk_world):
    """Red-team: a load torn after CREDIT FOR LOAD (the purse holds it, the load is pending). Another kiosk, with
    no card, reads the load's counter off ``/pending`` and shows it as the card's: the counter carries no MAC, so
    nothing is reversed (no money twice) and the load still counts toward the day's limit."""
    clerk, card, row, host = kiosk_world
    home = live_server.home
    with pytest.raises(CardIOError):
        _load(home, card, host, 3_000, row, tear=VERIFY_WRITES + 4)  # credited, unconfirmed
    assert _purse(home, card) == 3_000
    app_serial = _loads(home, card)[0]["app_serial"]
    other, credential = add_kiosk(live_server.home, live_server.clock.now())
    with HttpLoadHost(live_server.url, other["id"], credential, clock=live_server.clock.now) as thief:
        [pending] = thief.pending_loads(app_serial)
        forged = {"app_serial": app_serial, "online_counter": pending.online_counter,
                  "balance_fen": pending.balance_before_fen}
        [settled] = thief.request("POST", "/purse/settle", body=forged)["settled"]
        assert (settled["status"], settled["how"]) == ("pending", "counter_unproven")
        # a proof from another INITIALIZE (a MAC1 that does not verify) proves nothing either
        proof = {"amount_fen": 1, "terminal_no": other["terminal_no"], "balance_fen": pending.balance_before_fen,
                 "online_counter": pending.online_counter, "key_version": 1, "algorithm_id": 0,
                 "random": "00000000", "mac1": "00000000"}
        [settled] = thief.request("POST", "/purse/settle", body={**forged, "counter_proof": proof})["settled"]
        assert settled["status"] == "pending"
        # nor does the card's log, unauthenticated at an unattended kiosk
        logged = [{"counter": pending.online_counter, "amount_fen": pending.amount_fen,
                   "terminal_no": pending.terminal_no, "date_time": pending.date_time}]
        [settled] = thief.request("POST", "/purse/settle", body={"app_serial": app_serial, "logged": logged})["settled"]
        assert settled["status"] == "pending"
    assert [r["status"] for r in _loads(home, card)] == ["pending"]
    assert _account(clerk, card) == DEPOSIT - 3_000 and _purse(home, card) == 3_000 == _float(home)
    # the card itself, presented again, proves its counter passed the load's: confirmed, never refunded
    outcome = _load(home, card, host, 1_000, row)
    assert [s["status"] for s in outcome.settled] == ["confirmed"]
    assert _purse(home, card) == 4_000 == _float(home) == DEPOSIT - _account(clerk, card)
    _balanced(home)


def test_a_kiosk_reaches_only_the_purse_routes_and_its_psam_cannot_debit(live_server, kiosk_world):
    """Red-team: a kiosk's credential got 200 on ``/host/lists`` and reached the batch-MAC check of ``/uploads``.
    Each host route answers the kinds of terminal that need it; a kiosk's PSAM holds no purchase or upload key."""
    _clerk, card, row, host = kiosk_world
    home, now = live_server.home, live_server.clock.now()
    till, till_key = _add(home, now, lambda world, install: pos.add_pos(world, "BJH003", now=now, install=install))
    calls = [("GET", "/lists", None), ("POST", "/synced", {"version": 0}), ("GET", "/upload-key", None),
             ("POST", "/uploads", {"mac": "0" * 16, "records": []}), ("GET", f"/cards/{card}", None),
             ("POST", "/medical/claims", None)]
    for method, path, body in calls:
        with pytest.raises(Exception) as refused:
            host.request(method, path, body=body)
        error = refused.value
        assert (error.status, error.code) == (403, "terminal.kind" if "medical" not in path  # type: ignore[attr-defined]
                                              else "terminal.not_pos"), path
    with HttpLoadHost(live_server.url, till["id"], till_key, clock=live_server.clock.now) as pos_host:
        for method, path, body in calls[:4]:  # a POS writes no purse records and keeps no blacklist copy
            with pytest.raises(Exception) as refused:
                pos_host.request(method, path, body=body)
            assert refused.value.code == "terminal.kind", path  # type: ignore[attr-defined]
        assert pos_host.request("GET", f"/cards/{card}")["status"] == "active"
    with TerminalState.open(terminal_dir(home, row["id"])) as state:
        psam = state.psam()
        assert state.upload_key() is None and psam._keys == {}


def test_a_counter_proof_that_reversed_a_load_proves_nothing_again(live_server, kiosk_world):
    """The card's random is its own, not a host challenge: the 1-fen INITIALIZE answer that proved counter N
    for one reversal, replayed after a later load at the same counter N was credited (torn before its
    confirmation), would reverse that one too. A proof spent on a reversal is not taken again."""
    clerk, card, row, host = kiosk_world
    home = live_server.home
    with pytest.raises(CardIOError):
        _load(home, card, host, 3_000, row, tear=VERIFY_WRITES + 1)  # never credited: pending at counter N
    shown = []

    class Watched:  # the kiosk's host port, keeping what the card showed
        def __getattr__(self, name):  # type: ignore[no-untyped-def]
            return getattr(host, name)

        def settle(self, evidence):  # type: ignore[no-untyped-def]
            shown.append(evidence)
            return host.settle(evidence)

    with pytest.raises(CardIOError):  # settles the first (reversed), then credits 2,000 at N, torn unconfirmed
        _load(home, card, Watched(), 2_000, row, tear=VERIFY_WRITES + 4)
    assert [r["status"] for r in _loads(home, card)] == ["reversed", "pending"] and _purse(home, card) == 2_000
    [proof] = shown
    [settled] = host.settle(proof)
    assert (settled["status"], settled["how"]) == ("pending", "counter_unproven")
    outcome = _load(home, card, host, 1_000, row)  # the card itself: confirmed
    assert [s["status"] for s in outcome.settled] == ["confirmed"]
    assert _purse(home, card) == 3_000 == _float(home) == DEPOSIT - _account(clerk, card)
    _balanced(home)
