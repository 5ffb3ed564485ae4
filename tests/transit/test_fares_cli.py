"""``sbcard transit fare``: the quote scripts rely on, the default day of travel, bad input."""

from __future__ import annotations

import pytest
from freezegun import freeze_time
from world_template import error_line

BORN_1960_03_20 = "120103196003200024"  # 65 on 2025-03-20


def test_the_interface_of_issue_4(sbcard):
    code, out, err, data = sbcard("transit", "fare", "--operator", "bj-subway", "--km", "6", "--json")
    assert code == 0, err
    assert {"fare_fen": 300, "full_fare_fen": 300, "rule": "bj-subway.distance"}.items() <= data.items()
    assert isinstance(data["fare_fen"], int) and isinstance(data["rule"], str)


CASES = [
    (["--operator", "bj-subway", "--km", "6.0001"], 400, 400, "bj-subway.distance"),
    (["--operator", "bj-subway", "--km", "52"], 700, 700, "bj-subway.distance"),
    (["--operator", "bj-subway", "--km", "52.0001"], 800, 800, "bj-subway.distance"),
    (["--operator", "bj-subway", "--from", "西直门", "--to", "东直门"], 400, 400, "bj-subway.distance"),
    (["--operator", "bj-subway", "--from", "东直门", "--to", "2号航站楼"], 2500, 2500, "bj-subway.airport-express"),
    (["--operator", "bj-bus", "--km", "14"], 150, 300, "bj-bus.card-city"),
    (["--operator", "bj-bus", "--km", "14", "--area", "suburb"], 240, 300, "bj-bus.card-suburb"),
    (["--operator", "bj-bus", "--km", "14", "--concession", "student"], 75, 300, "bj-bus.student-city"),
    (["--operator", "bj-bus", "--km", "14", "--line", "930"], 240, 300, "bj-bus.card-suburb"),
    (["--operator", "tj-metro", "--from", "西站", "--to", "天津站"], 300, 300, "tj-metro.sections"),
    (["--operator", "tj-metro", "--sections", "16"], 500, 500, "tj-metro.sections"),
    (["--operator", "tj-bus", "--full-fare", "1.5"], 150, 150, "tj-bus.full"),
    (["--operator", "tj-bus", "--full-fare", "2", "--km", "7"], 200, 200, "tj-bus.full"),  # km: no matter
    (["--operator", "he-sjz-bus", "--km", "5"], 100, 100, "he-sjz-bus.full"),
    (["--operator", "he-lf-bus", "--full-fare", "2", "--concession", "student"], 100, 200, "he-lf-bus.student"),
]


@pytest.mark.parametrize(("args", "fen", "full", "rule"), CASES)
def test_quotes(sbcard, args, fen, full, rule):
    code, out, err, data = sbcard("transit", "fare", *args, "--json")
    assert code == 0, err
    assert (data["fare_fen"], data["full_fare_fen"], data["rule"]) == (fen, full, rule)


def test_a_route_comes_with_the_quote(sbcard):
    code, out, err, data = sbcard("transit", "fare", "--operator", "tj-metro", "--from", "西站", "--to", "天津站",
                                  "--json")
    assert code == 0, err
    assert data["route"]["sections"] == 6 and data["route"]["lines"] == ["1号线", "2号线"]
    assert data["route"]["from"] == "西站" and data["route"]["to_code"].startswith("12")


BIRTHDAY = [  # today (frozen), operator's arguments → fare: 60 (Beijing) and 65 (Tianjin) on the 20th of March
    ("2020-03-19 23:59:59", ["--operator", "bj-bus", "--km", "14"], 150),
    ("2020-03-20 00:00:01", ["--operator", "bj-bus", "--km", "14"], 0),
    ("2025-03-19 23:59:59", ["--operator", "tj-bus", "--full-fare", "2"], 200),
    ("2025-03-20 00:00:01", ["--operator", "tj-bus", "--full-fare", "2"], 0),
]


@pytest.mark.parametrize(("now", "args", "fen"), BIRTHDAY)
def test_the_default_day_of_travel_is_today_in_beijing_time(sbcard, now, args, fen):
    with freeze_time(now + "+08:00"):  # 2025-03-19 16:00 UTC is already the 20th in Beijing
        code, out, err, data = sbcard("transit", "fare", *args, "--holder-id", BORN_1960_03_20,
                                      "--concession", "elderly", "--json")
    assert code == 0, err
    assert data["fare_fen"] == fen
    assert data["date"] == now[:10]


@pytest.mark.parametrize(("day", "fen", "age"), [("2020-03-19", 150, 59), ("2020-03-20", 0, 60),
                                                 ("2025-03-20", 0, 65)])
def test_date_gives_the_day_of_travel(sbcard, day, fen, age):
    with freeze_time("2019-01-01"):
        code, out, err, data = sbcard("transit", "fare", "--operator", "bj-bus", "--km", "14", "--holder-id",
                                      BORN_1960_03_20, "--concession", "elderly", "--date", day, "--json")
    assert code == 0, err
    assert (data["fare_fen"], data["age"], data["date"]) == (fen, age, day)


def test_human_output_shows_the_fare_in_yuan(sbcard):
    code, out, err, _ = sbcard("transit", "fare", "--operator", "bj-bus", "--km", "14")
    assert code == 0, err
    assert "¥1.50" in out and "¥3.00" in out and "bj-bus.card-city" in out


BAD = [
    (["--operator", "bj-subway"], "--km"),
    (["--operator", "bj-subway", "--km", "-3"], "--km"),
    (["--operator", "bj-subway", "--km", "twelve"], "--km"),
    (["--operator", "tj-metro", "--km", "8"], "--sections"),
    (["--operator", "bj-bus", "--km", "3", "--holder-id", "120103196003200025"], "--holder-id"),
    (["--operator", "bj-bus", "--km", "3", "--date", "2025-02-30"], "--date"),
    (["--operator", "bj-bus", "--km", "3", "--holder-id", BORN_1960_03_20, "--date", "1959-01-01"], "--date"),
    (["--operator", "tj-bus", "--full-fare", "2.005"], "--full-fare"),
    (["--operator", "tj-bus", "--full-fare", "0"], "--full-fare"),
    (["--operator", "tj-bus", "--concession", "elderly"], "--holder-id"),
    (["--operator", "bj-subway", "--from", "西直门", "--to", "人民广场"], "--to"),
    (["--operator", "bj-subway", "--from", "3号航站楼", "--to", "国贸"], "--to"),
    (["--operator", "tj-bus", "--line", "99999"], "--line"),
]


@pytest.mark.parametrize(("args", "field"), BAD)
def test_bad_input_exits_2_naming_the_field(sbcard, args, field):
    code, out, err, _ = sbcard("transit", "fare", *args, "--json")
    assert code == 2, out
    assert error_line(err).startswith(f"error: {field}:") and "Traceback" not in err
    assert out == ""


def test_an_unknown_operator_is_a_usage_error(sbcard):
    code, out, err, _ = sbcard("transit", "fare", "--operator", "sh-metro", "--km", "3")
    assert code == 2 and "sh-metro" in err
