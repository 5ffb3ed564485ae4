"""The host API for terminals against a real server: a Tianjin card tapped on Beijing gates, uploaded over
HTTP and cleared with its issuer; the terminal's credential refused when wrong, replayed, stale or revoked;
the lists since a version; a card's status; the CLI's ``--host``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import httpx
import pytest
from api_world import start_server
from freezegun import freeze_time
from world_template import cli

_TRANSIT = str(Path(__file__).resolve().parents[1] / "transit")
if _TRANSIT not in sys.path:
    sys.path.append(_TRANSIT)

from purse_world import NOW as PURSE_NOW  # noqa: E402
from purse_world import PurseWorld, purse_template  # noqa: E402, F401
from world_template import copy_world  # noqa: E402

from sbcard.chip import terminal_auth as ta  # noqa: E402
from sbcard.clock import SimClock, SystemClock  # noqa: E402
from sbcard.domain.errors import RuleRefused  # noqa: E402
from sbcard.cli.terminals import install_terminal, terminal_dir  # noqa: E402
from sbcard.reference.transit import load_tariff  # noqa: E402
from sbcard.services.clearing import purse_records as clearing  # noqa: E402
from sbcard.services.exchange import directory as hub_directory  # noqa: E402
from sbcard.services.terminals import credentials  # noqa: E402
from sbcard.services.terminals import register  # noqa: E402
from sbcard.store.unit_of_work import UnitOfWork  # noqa: E402
from sbcard.store.world import open_world  # noqa: E402
from terminals.apps import uploads  # noqa: E402
from terminals.apps.http_host import HttpHost  # noqa: E402
from terminals.apps.terminal_state import TerminalState  # noqa: E402
from terminals.apps.transit import Validator  # noqa: E402
from terminals.apps.transit_fares import TariffFares  # noqa: E402
from terminals.drivers.emulator import EmulatorReader  # noqa: E402


def add_terminal(home: Path, now: dt.datetime, operator: str = "bj-subway", **options) -> tuple[str, TerminalState]:
    if operator == "bj-subway":
        options.setdefault("station", "西直门")
    with open_world(home) as world:
        row = register.add_terminal(world, operator=operator, now=now, install=install_terminal(home, "normal"),
                                    **options)
    return row["id"], TerminalState.open(terminal_dir(home, row["id"]))


def http_host(server, terminal_id: str, state: TerminalState, clock=None) -> HttpHost:
    return HttpHost(server.url, terminal_id, state.host_credential(), clock=(clock or server.clock).now)


def signed_get(server, terminal_id: str, key: bytes, path: str, *, now: dt.datetime, nonce: str | None = None,
               query: str = "") -> httpx.Response:
    headers = ta.sign(key, terminal_id, "GET", path, query, b"", now=now, nonce=nonce)
    return httpx.get(f"{server.url}{path}" + (f"?{query}" if query else ""), headers=headers, timeout=30)


def assert_refused(response: httpx.Response, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["error"]["code"] == code, response.text
    assert set(response.json()["error"]) == {"code", "field", "message"}


# ----------------------------------------------------------------------------- the road of a tap


@pytest.fixture
def tianjin_rider(purse_template, tmp_path):
    """The purse world's Tianjin holder (chen) with ¥30.00 loaded into the purse, at the counter (CLI)."""
    template, cards = purse_template
    world = PurseWorld(copy_world(template, tmp_path), dict(cards))
    with freeze_time(PURSE_NOW):
        code, _, err, _ = world.load("chen", "30")
    assert code == 0, err
    return world


def test_a_tianjin_card_tapped_on_beijing_gates_uploads_over_http_and_clears(tianjin_rider):
    pw = tianjin_rider
    clock = SimClock(PURSE_NOW + dt.timedelta(hours=1))
    server = start_server(pw.home, clock)
    try:
        gate_in, state_in = add_terminal(pw.home, clock.now(), station="西直门", gate="entry")
        gate_out, state_out = add_terminal(pw.home, clock.now(), station="国贸", gate="exit")
        fares = TariffFares(load_tariff())
        taps = []
        for state, minutes in ((state_in, 0), (state_out, 30)):
            clock.advance(dt.timedelta(minutes=minutes))
            reader = EmulatorReader(pw.path("chen"))
            try:
                taps.append(Validator(state, state.psam(), fares, clock).tap(reader))
            finally:
                reader.close()
        assert [t.result for t in taps] == ["ok", "ok"] and taps[0].issuer_node == "tj", taps
        fare = taps[1].fare_fen
        assert fare and fare > 0

        for terminal, state in ((gate_in, state_in), (gate_out, state_out)):
            with http_host(server, terminal, state) as host:
                sent = uploads.upload_unsent(state, host, terminal, now=clock.now())
                answer = sent.answer.to_dict()
                assert (answer["sent"], answer["accepted"], answer["rejected"], answer["duplicates"]) == (1, 1, 0, 0)
                assert answer["terminal"] == terminal and state.unsent_count() == 0
                # The same batch again (a retry after a lost answer): the host's first answer, nothing taken twice.
                again = host.upload(terminal, sent.records, mac=state.sign_batch(sent.records), now=clock.now())
                assert again.to_dict() == answer
            state.close()
        assert len(pw.query("tj", "SELECT * FROM purse_purchases")) == 2

        night = PURSE_NOW.replace(hour=23, minute=30)
        clock.advance(night - clock.now())
        with open_world(pw.home) as world:
            result = clearing.run_clearing(world, PURSE_NOW.date(), now=night).to_dict()
        assert [(x["payer"], x["payee"], x["party"], x["amount_fen"]) for x in result["lines"]] == [
            ("tj", "bj", "bj-subway", fare)]
        assert result["settlement"]["net"] == {"bj": fare, "tj": -fare, "he": 0}
        assert [r["clearing_day"] for r in pw.query("tj", "SELECT clearing_day FROM purse_purchases")] == [
            PURSE_NOW.date().isoformat()] * 2
    finally:
        server.stop()


# ----------------------------------------------------------------------------- the credential


def test_a_signed_request_is_answered_and_the_wrong_ones_are_refused(live_server):
    terminal, state = add_terminal(live_server.home, live_server.clock.now())
    key = state.host_credential()
    state.close()
    path = "/api/v1/host/lists"
    now = live_server.clock.now()

    good = signed_get(live_server, terminal, key, path, now=now, nonce="a" * 32)
    assert good.status_code == 200, good.text
    assert good.json()["terminal"] == terminal
    # the same request again: its nonce was used
    assert_refused(signed_get(live_server, terminal, key, path, now=now, nonce="a" * 32), "terminal.replayed")
    # another key
    assert_refused(signed_get(live_server, terminal, bytes(32), path, now=now), "terminal.bad_mac")
    # a MAC over another path, or with a changed body
    headers = ta.sign(key, terminal, "GET", "/api/v1/host/upload-key", "", b"", now=now)
    assert_refused(httpx.get(f"{live_server.url}{path}", headers=headers), "terminal.bad_mac")
    headers = ta.sign(key, terminal, "POST", "/api/v1/host/synced", "", b'{"version":0}', now=now)
    assert_refused(httpx.post(f"{live_server.url}/api/v1/host/synced", content=b'{"version":1}',
                              headers={**headers, "Content-Type": "application/json"}), "terminal.bad_mac")
    # outside the window, either way; just inside it is fine
    skew = dt.timedelta(seconds=ta.MAX_SKEW_SECONDS + 1)
    assert_refused(signed_get(live_server, terminal, key, path, now=now - skew), "terminal.clock_skew")
    assert_refused(signed_get(live_server, terminal, key, path, now=now + skew), "terminal.clock_skew")
    assert signed_get(live_server, terminal, key, path, now=now - skew + dt.timedelta(seconds=2)).status_code == 200
    # unknown terminal, no headers at all
    assert_refused(signed_get(live_server, "bj-subway-9999", key, path, now=now), "terminal.unknown")
    assert_refused(httpx.get(f"{live_server.url}{path}"), "terminal.unsigned")
    # a staff session is not a terminal
    staff = live_server.signed_in("BJ-C1")
    assert_refused(staff.get(path), "terminal.unsigned")


def test_a_revoked_terminal_is_refused_and_others_are_not(live_server):
    terminal, state = add_terminal(live_server.home, live_server.clock.now())
    other, other_state = add_terminal(live_server.home, live_server.clock.now())
    with http_host(live_server, terminal, state) as host:
        assert host.lists().version == 0
        code, _, err, data = cli(live_server.home, "terminal", "revoke", terminal, "--reason", "stolen", "--json")
        assert code == 0, err
        assert data["terminal"] == terminal and data["reason"] == "stolen"
        with pytest.raises(Exception) as refused:
            host.lists()
        assert refused.value.code == "terminal.revoked" and refused.value.status == 401
    with http_host(live_server, other, other_state) as host:
        assert host.lists().version == 0
    code, _, err, _ = cli(live_server.home, "terminal", "revoke", terminal, "--json")
    assert code == 1 and json.loads(err)["error"]["code"] == "terminal.revoked"
    with open_world(live_server.home) as world:
        audit = list(world.region("bj").query("SELECT operator, action, reason FROM audit_log WHERE subject = ?",
                                              [terminal]))
    assert audit == [{"operator": "cli", "action": "terminal_revoke", "reason": "stolen"}]
    state.close()
    other_state.close()


def test_a_terminal_made_before_credentials_gets_its_derived_credential(live_server):
    terminal, state = add_terminal(live_server.home, live_server.clock.now())
    key = state.host_credential()
    with state._conn:  # as a terminal made before this change: no credential table
        state._conn.execute("DROP TABLE host_credential")
    assert state.host_credential() is None
    state.close()
    code, _, err, _ = cli(live_server.home, "terminal", "sync", terminal, "--host", live_server.url, "--json")
    assert code == 1 and json.loads(err)["error"]["code"] == "terminal.no_credential"
    code, _, err, data = cli(live_server.home, "terminal", "credential", terminal, "--json")
    assert code == 0 and data == {"terminal": terminal, "loaded": True, "revoked_at": None}, err
    code, _, err, data = cli(live_server.home, "terminal", "credential", terminal, "--json")
    assert code == 0 and data["loaded"] is False, err
    with TerminalState.open(terminal_dir(live_server.home, terminal)) as state:
        assert state.host_credential() == key
    with open_world(live_server.home) as world:
        assert credentials.credential(world, terminal) == key


# ----------------------------------------------------------------------------- lists, status, the CLI


def _publish(home: Path, now: dt.datetime, adds=(), removes=()) -> int:
    with open_world(home) as world, UnitOfWork(world.hub()) as uow:
        version = hub_directory.publish_blacklist(uow.db, adds=adds, removes=removes, note="test", now=now)
        uow.commit()
    return version


def test_lists_since_a_version_and_the_synced_version(live_server):
    now = live_server.clock.now()
    terminal, state = add_terminal(live_server.home, now)
    one = _publish(live_server.home, now, adds=["100000012", "100000020"])
    two = _publish(live_server.home, now, adds=["100000038"], removes=["100000012"])
    with http_host(live_server, terminal, state) as host:
        full = host.request("GET", "/lists")
        assert (full["version"], full["cards"], full["changed"]) == (two, ["100000020", "100000038"], True)
        since = host.request("GET", "/lists", params={"since": one})
        assert (since["since"], since["added"], since["removed"]) == (one, ["100000038"], ["100000012"])
        assert host.request("GET", "/lists", params={"since": two})["changed"] is False
        with pytest.raises(Exception) as refused:
            host.request("GET", "/lists", params={"since": two + 5})
        assert refused.value.code == "blacklist.version"
        synced = uploads.sync_lists(state, host, terminal, now=now)
    assert synced.lists.version == two and state.blacklist_version == two and state.blacklisted("100000038")
    with open_world(live_server.home) as world:
        assert register.get_terminal(world, terminal)["blacklist_version"] == two
    state.close()


def test_a_cards_status(live_server):
    now = live_server.clock.now()
    terminal, state = add_terminal(live_server.home, now)
    with open_world(live_server.home) as world, UnitOfWork(world.hub()) as uow:
        hub_directory.upsert_card(uow.db, card_number="100000012", card_id_code="110000D156000005AD932A48BDC3B9E9", citizen_id="110105198506151236",
                                  issuing_region="110000", status="active", now=now)
        uow.commit()
    _publish(live_server.home, now, adds=["100000012"])
    with http_host(live_server, terminal, state) as host:
        status = host.card_status("100000012")
        assert (status["status"], status["issuing_region"], status["blacklisted"]) == ("active", "110000", True)
        with pytest.raises(Exception) as missing:
            host.card_status("100000020")
        assert missing.value.code == "card.unknown"
    state.close()


def test_the_cli_uploads_and_syncs_against_a_running_service(api_home):
    # The CLI's clock is the wall clock: the service's is set to it, within the window.
    clock = SimClock(SystemClock().now())
    server = start_server(api_home, clock)
    try:
        code, _, err, added = cli(api_home, "terminal", "add", "--operator", "bj-subway", "--station", "西直门",
                                  "--json")
        assert code == 0, err
        terminal = added["terminal"]
        _publish(api_home, clock.now(), adds=["100000012"])
        code, _, err, synced = cli(api_home, "terminal", "sync", terminal, "--host", server.url, "--json")
        assert code == 0, err
        assert (synced["blacklist_version"], synced["blacklist_size"], synced["previous_version"]) == (1, 1, 0)
        code, _, err, sent = cli(api_home, "transit", "upload", "--terminal", terminal, "--host", server.url, "--json")
        assert code == 0, err
        assert (sent["terminal"], sent["sent"], sent["accepted"]) == (terminal, 0, 0)
        code, _, err, _ = cli(api_home, "transit", "upload", "--terminal", terminal, "--host", "ftp://x", "--json")
        assert code == 2 and json.loads(err)["error"]["field"] == "--host"
    finally:
        server.stop()


def test_an_upload_key_is_wrapped_and_a_batch_with_a_wrong_psam_mac_is_refused_whole(live_server):
    now = live_server.clock.now()
    terminal, state = add_terminal(live_server.home, now)
    with open_world(live_server.home) as world:
        expected = register.upload_key(world, terminal)
    with http_host(live_server, terminal, state) as host:
        raw = host.request("GET", "/upload-key")
        assert expected.key.hex().upper() not in json.dumps(raw)  # never in clear on the wire
        assert host.upload_key(terminal).key == expected.key
        record = {"values": ["03103000000000000001", 6, 1, "110000000001", 1, 300, 1000, "20250301093000",
                             "0BADBEEF", "1000000000000000", "bj", None, terminal, "bj-subway", 0, "ok"],
                  "details": None}
        with pytest.raises(Exception) as refused:
            host.request("POST", "/uploads", body={"mac": "00" * 8, "records": [record]})
        assert isinstance(refused.value, RuleRefused) and refused.value.code == "upload.bad_mac"  # a 409
        with pytest.raises(Exception) as malformed:
            host.request("POST", "/uploads", body={"mac": "00" * 8, "records": [{"values": [1, 2], "details": None}]})
        assert malformed.value.code == "upload.record_invalid"
        # the same Idempotency-Key with another request
        assert host.request("POST", "/synced", body={"version": 0}, idempotency_key="k-1")["blacklist_version"] == 0
        with pytest.raises(Exception) as mismatch:
            host.request("POST", "/synced", body={"version": 1}, idempotency_key="k-1")
        assert mismatch.value.code == "idempotency.mismatch"
    with open_world(live_server.home) as world:
        assert world.region("bj")["transit_upload_refusals"].count == 1
    state.close()
