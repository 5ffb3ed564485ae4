"""The validator: rides and metro journeys across the three regions, fares, refusals."""

from __future__ import annotations

import datetime as dt

import pytest
from validator_helpers import ELDER_BORN, rig, validator_template  # noqa: F401

from sbcard.chip import profile
from sbcard.chip import purse as formulas
from sbcard.chip.commands import read_transaction_log
from sbcard.chip.crypto import Algorithm
from sbcard.chip.transit import CappRecord
from sbcard.domain import concessions
from sbcard.domain import fares
from terminals.drivers.emulator import EmulatorReader


def _tac_ok(rig, card, record) -> bool:
    """The issuer's check: the TAC recomputed with the card's DTK (from its region's masters)."""
    keys = rig.card_keys(card)
    tac = formulas.purchase_tac(
        Algorithm.SM4, keys.tac, record["amount_fen"], record["txn_type"], bytes.fromhex(record["terminal_no"]),
        record["terminal_serial"].to_bytes(4, "big"), bytes.fromhex(record["date_time"]))
    return tac.hex().upper() == record["tac"]


# ----------------------------------------------------------------------------- across regions


def test_a_tianjin_card_rides_the_beijing_subway(rig):
    card = rig.card("tj", balance_fen=5000)
    entry = rig.terminal("bj-subway", station="西直门", gate="entry")
    exit_ = rig.terminal("bj-subway", station="国贸", gate="exit")

    came_in = rig.tap(entry, card)
    assert came_in.ok and came_in.kind == "entry" and came_in.fare_fen == 0 and came_in.balance_fen == 5000
    inside = CappRecord.parse(rig.capp(card))
    assert inside.inside and inside.operator == "bj-subway" and inside.terminal_no.hex() == entry.config.terminal_no

    rig.later(minutes=35)
    went_out = rig.tap(exit_, card)
    assert went_out.ok and went_out.kind == "exit"
    assert went_out.entry_station == "西直门" and went_out.station == "国贸"
    assert (went_out.fare_fen, went_out.rule) == (500, "bj-subway.distance")  # 12.3 km: the 12–22 km band
    assert went_out.balance_fen == 4500 == rig.balance(card)
    assert went_out.issuer_node == "tj"
    assert not CappRecord.parse(rig.capp(card)).inside

    [entry_record] = entry.records()
    [exit_record] = exit_.records()
    assert entry_record["issuer_node"] == exit_record["issuer_node"] == "tj"
    assert entry_record["issuer_id"] == "1200000000000000"
    assert (entry_record["txn_type"], entry_record["amount_fen"], entry_record["counter"]) == (0x09, 0, 0)
    assert (exit_record["txn_type"], exit_record["amount_fen"], exit_record["counter"]) == (0x09, 500, 1)
    assert exit_record["entry_station"] == "西直门" and exit_record["station"] == "国贸"
    assert exit_record["entry_terminal_no"] == entry.config.terminal_no
    assert _tac_ok(rig, card, entry_record) and _tac_ok(rig, card, exit_record)
    # what the operator's host and clearing need, on every record
    for key in ("card_number", "app_serial", "issuer_id", "issuer_node", "txn_type", "counter", "amount_fen",
                "balance_before_fen", "terminal_no", "terminal_serial", "date_time", "tac", "station"):
        assert exit_record[key] is not None, key


def test_a_beijing_card_rides_a_tianjin_bus(rig):
    card = rig.card("bj", balance_fen=1000)
    bus = rig.terminal("tj-bus", line="13")  # full fare ¥2.00
    result = rig.tap(bus, card)
    assert result.ok and result.kind == "ride"
    assert (result.fare_fen, result.rule, result.balance_fen) == (200, "tj-bus.full", 800)
    [record] = bus.records()
    assert record["issuer_node"] == "bj" and record["operator"] == "tj-bus" and record["txn_type"] == 0x06
    assert record["terminal_no"].startswith("120000") and _tac_ok(rig, card, record)


def test_a_hebei_card_on_a_beijing_bus_and_a_beijing_card_on_a_hebei_bus(rig):
    he_card, bj_card = rig.card("he"), rig.card("bj")
    bj_bus = rig.terminal("bj-bus", line="1")  # a city line
    he_bus = rig.terminal("he-sjz-bus", line="105")
    ride = rig.tap(bj_bus, he_card, km="12")
    assert ride.ok and (ride.fare_fen, ride.full_fare_fen, ride.rule) == (150, 300, "bj-bus.card-city")
    assert ride.issuer_node == "he"
    ride = rig.tap(he_bus, bj_card)
    assert ride.ok and ride.fare_fen == 200 and ride.issuer_node == "bj"
    assert _tac_ok(rig, he_card, bj_bus.records()[0]) and _tac_ok(rig, bj_card, he_bus.records()[0])


def test_a_tianjin_metro_journey_counts_sections(rig):
    card = rig.card("bj")
    gate_in = rig.terminal("tj-metro", station="刘园")
    gate_out = rig.terminal("tj-metro", station="本溪路")
    assert rig.tap(gate_in, card).ok
    rig.later(minutes=10)
    out = rig.tap(gate_out, card)
    assert out.ok and out.fare_fen == 200 and out.rule == "tj-metro.sections"


# ----------------------------------------------------------------------------- metro edge cases


def test_an_exit_without_an_entry_pays_the_maximum_fare(rig):
    card = rig.card("bj")
    gate = rig.terminal("bj-subway", station="国贸", gate="exit")
    out = rig.tap(gate, card)
    expected = rig.fares.max_fare("bj-subway")
    assert out.ok and out.fare_fen == expected and out.rule == "bj-subway.max-fare"
    assert "no entry" in out.description and rig.balance(card) == 5000 - expected


def test_an_exit_more_than_four_hours_after_entry_pays_the_maximum_fare(rig):
    card = rig.card("bj")
    gate_in = rig.terminal("bj-subway", station="西直门", gate="entry")
    gate_out = rig.terminal("bj-subway", station="国贸", gate="exit")
    assert rig.tap(gate_in, card).ok
    rig.later(hours=4, minutes=1)
    out = rig.tap(gate_out, card)
    assert out.ok and out.fare_fen == rig.fares.max_fare("bj-subway") and "4 h" in out.description


def test_four_hours_exactly_is_still_the_distance_fare(rig):
    card = rig.card("bj")
    gate_in = rig.terminal("bj-subway", station="西直门", gate="entry")
    gate_out = rig.terminal("bj-subway", station="国贸", gate="exit")
    assert rig.tap(gate_in, card).ok
    rig.later(hours=4)
    assert rig.tap(gate_out, card).fare_fen == 500


def test_an_entry_on_a_card_still_inside_pays_the_open_journey_at_the_maximum_fare(rig):
    card = rig.card("bj")
    gate_a = rig.terminal("bj-subway", station="西直门", gate="entry")
    gate_b = rig.terminal("bj-subway", station="国贸", gate="entry")
    assert rig.tap(gate_a, card).ok
    rig.later(minutes=50)  # left without tapping out at another station, comes back in at 国贸
    again = rig.tap(gate_b, card)
    expected = rig.fares.max_fare("bj-subway")
    assert again.ok and again.kind == "entry" and again.fare_fen == expected
    assert "never closed" in again.description and again.entry_station == "西直门"
    assert CappRecord.parse(rig.capp(card)).inside


def test_a_second_tap_at_the_same_entry_is_refused_and_costs_nothing(rig):
    card = rig.card("bj")
    gate = rig.terminal("bj-subway", station="西直门", gate="entry")
    assert rig.tap(gate, card).ok
    rig.later(minutes=2)
    again = rig.tap(gate, card)
    assert not again.ok and again.code == "already_entered" and "西直门" in again.reason
    assert rig.counter(card) == 1 and rig.balance(card) == 5000


def test_a_both_ways_gate_reads_the_direction_from_the_card(rig):
    card = rig.card("bj")
    gate = rig.terminal("bj-subway", station="西直门")  # gate both
    assert rig.tap(gate, card).kind == "entry"
    rig.later(minutes=5)
    out = rig.tap(gate, card)  # the same station: the shortest fare
    assert out.kind == "exit" and out.fare_fen == 300


def test_entering_needs_the_minimum_fare_on_the_card(rig):
    card = rig.card("bj", balance_fen=250)
    gate = rig.terminal("bj-subway", station="西直门", gate="entry")
    refused = rig.tap(gate, card)
    assert not refused.ok and refused.code == "insufficient_balance"
    assert refused.reason == "insufficient balance: ¥3.00 needed to enter, ¥2.50 on the card"
    assert refused.balance_fen == 250 and rig.counter(card) == 0 and rig.capp(card) is None


def test_the_airport_express_is_its_flat_fare(rig):
    card = rig.card("bj")
    gate_in = rig.terminal("bj-subway", station="3号航站楼")
    gate_out = rig.terminal("bj-subway", station="11900002")  # the express's 东直门, outside the subway's gates
    assert rig.tap(gate_in, card).ok
    rig.later(minutes=30)
    out = rig.tap(gate_out, card)
    assert out.ok and (out.fare_fen, out.rule) == (fares.BJ_AIRPORT_EXPRESS_FEN, "bj-subway.airport-express")


# ----------------------------------------------------------------------------- refusals


def test_insufficient_balance_is_refused_with_the_amounts_and_changes_nothing(rig):
    card = rig.card("bj", balance_fen=100)
    bus = rig.terminal("tj-bus", line="8")  # ¥1.50
    before = rig.purse(card)
    refused = rig.tap(bus, card)
    assert not refused.ok and refused.code == "insufficient_balance"
    assert refused.reason == "insufficient balance: ¥1.50 needed, ¥1.00 on the card"
    assert refused.display.startswith("refused: insufficient balance")
    assert (refused.balance_fen, refused.fare_fen) == (100, 150)
    assert rig.purse(card) == before and bus.records() == [] and bus.pending() == []


def test_an_expired_card_is_refused(rig):
    card = rig.card("bj", issue_date=dt.date(2014, 6, 1))  # ten years' validity: ended 2024-06-01
    refused = rig.tap(rig.terminal("bj-bus"), card)
    assert not refused.ok and refused.code == "expired" and "2024-06-01" in refused.reason
    assert rig.counter(card) == 0


def test_a_card_not_yet_valid_is_refused(rig):
    card = rig.card("bj", issue_date=dt.date(2025, 6, 1))
    refused = rig.tap(rig.terminal("bj-bus"), card)
    assert not refused.ok and refused.code == "not_yet_valid"


def test_a_blacklisted_card_is_blocked_on_the_chip_and_refused(rig):
    card = rig.card("tj")
    number = rig.card_data(card).card_number
    gate = rig.terminal("bj-subway", station="西直门")
    stale = rig.terminal("bj-bus")  # added before the card was listed, never synced since
    version = rig.blacklist(number)
    assert rig.sync(gate) == version

    refused = rig.tap(gate, card)
    assert not refused.ok and refused.code == "blacklisted" and "blocked" in refused.reason
    assert rig.locked(card) and rig.counter(card) == 0 and rig.balance(card) == 5000
    [event] = gate.events()
    assert event["kind"] == "card_blocked" and event["subject"] == number and event["details"]["outcome"] == "blocked"

    # blocked on the chip: a terminal with an old list refuses it too
    assert stale.blacklist_version == 0
    refused = rig.tap(stale, card)
    assert not refused.ok and refused.code == "blocked" and stale.records() == []


def test_a_card_without_the_transit_application_is_refused(rig):
    class ForeignCard:
        name = "foreign"
        atr = bytes.fromhex("3B00")

        def card_present(self):
            return True

        def transmit_raw(self, apdu):
            return bytes.fromhex("6A82")

        def close(self):
            pass

    result = rig.validator(rig.terminal("bj-bus")).tap(ForeignCard())
    assert not result.ok and result.code == "wrong_application" and "T-Union" in result.reason


def test_a_blank_card_is_refused_as_not_issued(rig, tmp_path):
    from terminals.emulator.blank import create_blank

    blank = tmp_path / "blank.card"
    create_blank(blank, bytes(range(8)))
    result = rig.tap(rig.terminal("bj-bus"), blank)
    assert not result.ok and result.code == "not_issued"


# ----------------------------------------------------------------------------- concessions


def _elderly(region: str = "120000") -> bytes:
    return concessions.encode_0017(concessions.CardConcession(concessions.ELDERLY_FREE_RIDE, region, dt.date(2015, 1, 1)))


def test_the_tianjin_elderly_free_ride_is_a_zero_fen_record_with_a_tac(rig):
    card = rig.card("tj", born=ELDER_BORN)
    rig.write_0017(card, _elderly())
    bus = rig.terminal("tj-bus", line="13")
    ride = rig.tap(bus, card)
    assert ride.ok and (ride.fare_fen, ride.full_fare_fen, ride.rule) == (0, 200, "tj-bus.elderly-free-ride")
    [record] = bus.records()
    assert (record["txn_type"], record["amount_fen"], record["concession"]) == (0x09, 0, "elderly")
    assert _tac_ok(rig, card, record) and rig.balance(card) == 5000 and rig.counter(card) == 1


def test_without_the_function_or_when_revoked_the_elderly_pay_full_fare(rig):
    card = rig.card("tj", born=ELDER_BORN)
    bus = rig.terminal("tj-bus", line="13")
    assert rig.tap(bus, card).fare_fen == 200  # no concession on the card
    rig.write_0017(card, _elderly())
    assert rig.tap(bus, card).fare_fen == 0
    # enabled on the holder's new card since: the hub revokes it on this one (a new list version)
    from sbcard.services.exchange import concession_list
    from sbcard.store.unit_of_work import UnitOfWork

    with rig.world() as world, UnitOfWork(world.hub()) as uow:
        version = concession_list.publish_revocation(uow.db, card_number=rig.card_data(card).card_number,
                                                     kind=concessions.ELDERLY_FREE_RIDE, reason="new card", now=rig.clock.now())
        uow.commit()
    assert rig.sync(bus) == version
    ride = rig.tap(bus, card)
    assert ride.ok and ride.fare_fen == 200 and ride.rule == "tj-bus.full"
    assert bus.records()[-1]["concession"] is None


def test_a_student_pays_a_quarter_on_a_beijing_city_bus(rig):
    card = rig.card("bj")
    rig.write_0017(card, concessions.encode_0017(concessions.CardConcession(concessions.STUDENT, "110000", dt.date(2024, 9, 1),
                                                        dt.date(2025, 7, 15))))
    ride = rig.tap(rig.terminal("bj-bus", area="city"), card, km="5")
    assert ride.ok and (ride.fare_fen, ride.rule) == (50, "bj-bus.student-city")


def _beijing_elderly() -> bytes:
    return concessions.encode_0017(concessions.CardConcession(concessions.BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 3, 1)))


@pytest.mark.parametrize(("day", "fen"), [(dt.date(2025, 2, 28), 100), (dt.date(2025, 3, 1), 0)])
def test_a_60th_birthday_makes_the_beijing_bus_free_that_day_with_beijings_concession(rig, day, fen):
    rig.clock = type(rig.clock)(dt.datetime(day.year, day.month, day.day, 8, 0, tzinfo=rig.clock.now().tzinfo))
    card = rig.card("bj", born="19650301")
    rig.write_0017(card, concessions.encode_0017(concessions.CardConcession(concessions.BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 2, 1))))
    ride = rig.tap(rig.terminal("bj-bus"), card)
    assert ride.ok and ride.fare_fen == fen
    assert ride.rule == ("bj-bus.elderly-free" if fen == 0 else "bj-bus.card-city")


def test_a_75_year_old_without_the_concession_pays_the_card_fare_on_a_beijing_bus(rig):
    card = rig.card("bj", born="19500101")
    ride = rig.tap(rig.terminal("bj-bus"), card)
    assert ride.ok and (ride.fare_fen, ride.rule) == (100, "bj-bus.card-city")
    rig.write_0017(card, _beijing_elderly())
    bus = rig.terminal("bj-bus")
    ride = rig.tap(bus, card)
    assert ride.ok and (ride.fare_fen, ride.rule) == (0, "bj-bus.elderly-free")
    data = ride.to_json("T1")
    assert data["confidence"] == "secondary" and data["illustrative"] is False
    assert [s["id"] for s in data["source"]] == ["bj-fares-2014", "bj-elderly-card-guide", "bj-elderly-card-2017",
                                              "bj-ssc-gen3-2026"]
    assert all(s["title"] and s["issuer"] for s in data["source"])  # the answer names the documents
    kept = bus.records()[-1]["provenance"]  # the offline log keeps their ids only
    assert kept == {"source": ["bj-fares-2014", "bj-elderly-card-guide", "bj-elderly-card-2017",
                                              "bj-ssc-gen3-2026"],
                    "confidence": "secondary", "illustrative": False}


@pytest.mark.parametrize(("node", "switch", "fen"), [
    ("tj", False, 100), ("he", False, 100),  # Tianjin and Hebei holders pay the card fare on a Beijing bus
    ("tj", True, 0), ("he", True, 0),  # unless the policy's same-treatment switch is on
])
def test_other_regions_elderly_on_a_beijing_bus_by_the_same_treatment_switch(rig, node, switch, fen):
    import copy

    import attrs

    from sbcard.reference.transit import load_tariff
    from terminals.apps.transit_fares import TariffFares

    tariff = copy.copy(load_tariff())
    tariff.policy = concessions.ConcessionPolicy(tuple(attrs.evolve(r, same_treatment=switch) for r in tariff.policy.rules))
    rig._fares = TariffFares(tariff)
    card = rig.card(node, born="19500101")
    if node == "tj":
        rig.write_0017(card, _elderly())  # Tianjin's free ride on the card: not Beijing's concession
    ride = rig.tap(rig.terminal("bj-bus"), card)
    assert ride.ok and ride.fare_fen == fen


@pytest.mark.parametrize(("day", "fen"), [(dt.date(2023, 10, 31), 200), (dt.date(2023, 11, 1), 0)])
def test_tianjins_free_ride_starts_on_the_rules_first_day(rig, day, fen):
    rig.clock = type(rig.clock)(dt.datetime(day.year, day.month, day.day, 8, 0, tzinfo=rig.clock.now().tzinfo))
    card = rig.card("tj", born=ELDER_BORN, issue_date=dt.date(2023, 1, 2))
    rig.write_0017(card, _elderly())
    ride = rig.tap(rig.terminal("tj-bus", line="13"), card)
    assert ride.ok and ride.fare_fen == fen
    assert ride.to_json("T1")["confidence"] in ("official", "illustrative")


# ----------------------------------------------------------------------------- the terminal


def test_the_psam_serial_and_the_log_survive_a_restart(rig):
    from terminals.apps.terminal_state import TerminalState

    card = rig.card("bj")
    bus = rig.terminal("tj-bus", line="13")
    directory = bus.directory
    assert rig.tap(bus, card).terminal_serial == 1
    bus.close()
    reopened = TerminalState.open(directory)
    assert rig.tap(reopened, card).terminal_serial == 2
    assert [r["counter"] for r in reopened.records()] == [0, 1] and reopened.last_serial() == 2


def test_the_card_log_and_the_terminal_log_agree(rig):
    card = rig.card("tj")
    bus = rig.terminal("bj-bus")
    for _ in range(3):
        assert rig.tap(bus, card, km="3").ok
    with EmulatorReader(card) as reader:
        from sbcard.chip.commands import select_tunion

        select_tunion().send(reader)
        log = [r for r in read_transaction_log(reader) if r.txn_type == 0x06]
    assert sorted(r.counter for r in log) == [r["counter"] for r in bus.records()] == [0, 1, 2]
    assert all(r.terminal_no.hex() == bus.config.terminal_no for r in log)


@pytest.mark.parametrize("operator", ["bj-bus", "tj-bus", "he-sjz-bus", "he-lf-bus"])
def test_every_bus_operator_takes_cards_of_every_region(rig, operator):
    bus = rig.terminal(operator)
    for node in ("bj", "tj", "he"):
        ride = rig.tap(bus, rig.card(node))
        assert ride.ok and ride.fare_fen > 0 and ride.issuer_node == node
    assert profile.TU_LOG_RECORDS  # (the profile constant is there for the log reader)
