"""The same attacks through the real validator (``sbcard transit tap``) and ``sbcard transit upload``.

A purse balance edited in the card file, a blacklisted card on an offline terminal whose
list is old (the window reported), a card image put back (the counter goes back), a
fare inflated in the terminal's own log (its TAC no longer verifies), and a log sent twice.
"""

from __future__ import annotations

import datetime as dt

from purse_world import clock, purse_template, purse_world  # noqa: F401


def _loaded(pw, holder="liu", yuan="50"):
    code, _, err, _ = pw.load(holder, yuan)
    assert code == 0, err


def test_a_balance_edited_in_the_card_file_is_flagged_at_upload(purse_world, clock):
    _loaded(purse_world)
    bus = purse_world.add_terminal("tj-bus")
    code, first = purse_world.tap("liu", bus)
    assert code == 0 and first["fare_fen"] == 200 and first["balance_fen"] == 4800
    purse_world.edit_card("liu", lambda doc: doc["purse"].update(balance=90000))
    clock.tick(dt.timedelta(minutes=5))
    code, second = purse_world.tap("liu", bus)
    assert code == 0 and second["balance_fen"] == 89800  # the chip itself cannot tell
    sent = purse_world.upload_terminal(bus)
    assert (sent["sent"], sent["accepted"], sent["flagged"], sent["rejected"]) == (2, 2, 1, 0)
    [flagged] = sent["records"]
    assert flagged["counter"] == 1 and "purse balance altered" in flagged["reason"]
    rows = purse_world.transit_records("tj")
    assert [r["status"] for r in rows] == ["accepted", "flagged"]
    assert rows[1]["flags"][0]["expected_fen"] == 4800


def test_a_blacklisted_card_on_an_offline_terminal_with_an_old_list(purse_world, clock):
    _loaded(purse_world)
    bus = purse_world.add_terminal("tj-bus")  # copies the list as it is now: version 0
    card = purse_world.cards["liu"].number
    code, _, err, _ = purse_world.run("card", "report-lost", card, "--operator", "BJ-C1", "--json")
    assert code == 0, err
    [published] = purse_world.query("hub", "SELECT version, published_at FROM blacklist_versions")
    clock.tick(dt.timedelta(hours=2))
    code, tapped = purse_world.tap("liu", bus)  # offline, never synced: the card rides
    assert code == 0 and tapped["result"] == "ok"
    sent = purse_world.upload_terminal(bus)
    assert (sent["accepted"], sent["flagged"]) == (1, 1)
    [record] = sent["records"]
    [flag] = record["flags"]
    assert flag["flag"] == "blacklisted"
    assert (flag["blacklist_version"], flag["terminal_version"], flag["window_seconds"]) == (1, 0, 7200)
    assert flag["published_at"] == dt.datetime.fromisoformat(published["published_at"]).isoformat()
    assert "held version 0" in record["reason"]
    # Once synced, the terminal refuses the card (and blocks it on the chip): nothing more to flag.
    code, _, err, synced = purse_world.run("terminal", "sync", bus, "--json")
    assert code == 0 and synced["blacklist_version"] == 1, err
    code, refused = purse_world.tap("liu", bus)
    assert code == 1 and refused["result"] == "refused"


def test_a_card_image_put_back_is_caught_by_its_counter(purse_world, clock):
    _loaded(purse_world)
    bus, other = purse_world.add_terminal("tj-bus"), purse_world.add_terminal("tj-bus")
    saved = purse_world.path("liu").read_bytes()
    assert purse_world.tap("liu", bus)[0] == 0
    purse_world.path("liu").write_bytes(saved)  # the EEPROM as it was: ¥50.00 and counter 0 again
    clock.tick(dt.timedelta(minutes=10))
    code, replay = purse_world.tap("liu", other)
    assert code == 0 and replay["balance_fen"] == 4800 and replay["counter"] == 0
    assert purse_world.upload_terminal(bus)["accepted"] == 1
    sent = purse_world.upload_terminal(other)
    assert (sent["accepted"], sent["flagged"]) == (1, 1)
    assert "counter went back" in sent["records"][0]["reason"]


def test_a_fare_inflated_in_the_terminal_log_is_set_aside(purse_world, clock):
    _loaded(purse_world)
    bus = purse_world.add_terminal("tj-bus")
    for _ in range(2):
        assert purse_world.tap("liu", bus)[0] == 0
        clock.tick(dt.timedelta(minutes=3))
    db = purse_world.terminal_db(bus)
    try:  # someone with the terminal's file: the log's append-only trigger removed, a fare raised
        db.execute("DROP TRIGGER records_no_update")
        db.execute("UPDATE records SET amount_fen = 2000 WHERE seq = 2")
    finally:
        db.close()
    sent = purse_world.upload_terminal(bus)
    assert (sent["sent"], sent["accepted"], sent["rejected"]) == (2, 1, 1)
    [rejected] = sent["records"]
    assert rejected["status"] == "rejected" and "bad TAC" in rejected["reason"]
    shadow = purse_world.query("bj", "SELECT expected_balance_fen FROM purse_shadow")
    assert shadow == [{"expected_balance_fen": 5000 - 200}]  # only the genuine record is cleared


def test_a_log_sent_again_after_a_lost_acknowledgement_is_all_duplicates(purse_world, clock):
    _loaded(purse_world)
    bus = purse_world.add_terminal("tj-bus")
    for _ in range(3):
        assert purse_world.tap("liu", bus)[0] == 0
        clock.tick(dt.timedelta(minutes=3))
    first = purse_world.upload_terminal(bus)
    assert (first["sent"], first["accepted"], first["duplicates"]) == (3, 3, 0)
    db = purse_world.terminal_db(bus)
    try:  # the terminal died before it wrote down what the host took
        db.execute("DELETE FROM uploads")
    finally:
        db.close()
    again = purse_world.upload_terminal(bus)
    assert (again["sent"], again["accepted"], again["duplicates"], again["rejected"]) == (3, 0, 3, 0)
    assert len(purse_world.transit_records("tj")) == 3
    assert len(purse_world.query("bj", "SELECT * FROM purse_purchases")) == 3
