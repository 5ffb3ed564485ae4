"""Rail networks: routes over the fixtures, transfers at shared codes, separate fare systems, maximum fares."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from sbcard.domain import fares
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.network import KM, SECTIONS, BusLine, Network, OperatorInfo, Tariff
from sbcard.reference.transit import load_tariff


def rows(*lines: tuple[str, str]) -> list[dict[str, str]]:
    """``("L1", "A:0001 B:0002/1.5 C:0003/2")`` → fixture rows (code; km from the previous station)."""
    out = []
    for line, text in lines:
        for seq, item in enumerate(text.split(), start=1):
            name, rest = item.split(":")
            code, _, km = rest.partition("/")
            out.append({"line": line, "seq": str(seq), "station": name, "code": f"9901{code}",
                        "km_from_previous": km})
    return out


# A square: L1 A-B-C (1 + 1 km), L2 A-D-E-F-C (0.3 km each, 4 sections), L3 the loop G-H-G.
TOY = rows(("L1", "A:0001 B:0002/1 C:0003/1"), ("L2", "A:0001 D:0004/0.3 E:0005/0.3 F:0006/0.3 C:0003/0.3"),
           ("L3", "G:0007 H:0008/2 G:0007/3"))


def test_by_km_the_shortest_distance_wins_even_over_more_sections():
    route = Network("toy", TOY, weight=KM).route("A", "C")
    assert (route.km, route.sections, route.lines) == (Decimal("1.2"), 4, ("L2",))


def test_by_sections_the_fewest_sections_win_even_over_more_km():
    route = Network("toy", TOY, weight=SECTIONS).route("A", "C")
    assert (route.km, route.sections, route.lines) == (Decimal("2"), 2, ("L1",))


def test_a_route_to_itself_is_zero_and_names_or_codes_both_work():
    net = Network("toy", TOY)
    assert net.route("B", "99010002").km == 0
    with pytest.raises(NotFound) as e:
        net.route("A", "Z")
    assert e.value.field == "--to"


def test_a_loop_closes_on_its_first_station_and_unconnected_stations_are_refused():
    net = Network("toy", TOY)
    assert net.route("G", "H").km == Decimal(2)
    with pytest.raises(InvalidInput) as e:
        net.route("A", "G")
    assert e.value.code == "transit.route"


@pytest.mark.parametrize("bad", [
    [{"line": "L", "seq": "1", "station": "A", "code": "99010001", "km_from_previous": "1"}],  # first with km
    rows(("L", "A:0001 B:0002")),  # second without km
    rows(("L", "A:0001 B:0002/-1")),
    [{"line": "L", "seq": "1", "station": "A", "code": "123", "km_from_previous": ""}],  # code not 8 digits
    rows(("L", "A:0001 B:0001/1")),  # one code, two names
    [],
])
def test_malformed_network_rows_are_refused(bad):
    with pytest.raises(ValueError):
        Network("toy", bad)


# ----------------------------------------------------------------------------- the fixtures

BJ_ROUTES = [  # from, to → lines ridden (as a set), fare
    ("西直门", "东直门", {"2号线"}, 400),
    ("公主坟", "国贸", {"1号线八通线"}, 500),
    ("古城", "环球度假区", {"1号线八通线"}, 700),
    ("天通苑北", "天宫院", None, 800),
    ("复兴门", "西单", {"1号线八通线"}, 300),
]


@pytest.mark.parametrize(("a", "b", "lines", "fen"), BJ_ROUTES)
def test_beijing_subway_routes_over_the_fixture(a, b, lines, fen):
    quote, route = load_tariff().quote("bj-subway", origin=a, destination=b)
    assert quote.fare_fen == fen and quote.rule == "bj-subway.distance"
    assert quote.fare_fen == fares.bj_subway_full_fare(route.km)
    if lines is not None:
        assert set(route.lines) == lines
    assert route.stations[0] == route.from_code and route.stations[-1] == route.to_code


def test_transfers_happen_at_shared_codes():
    tariff = load_tariff()
    net = tariff.network("bj-subway")
    assert set(net.stations[net.find("西直门")[0]].lines) == {"2号线", "4号线大兴线", "13号线"}
    route = net.route("天通苑北", "宋家庄")  # line 5 end to end, no reason to change
    assert route.lines == ("5号线",) and route.sections == 22
    route = net.route("安河桥北", "国贸")
    assert len(route.lines) > 1


def test_the_capital_airport_express_is_its_own_fare_system():
    tariff = load_tariff()
    quote, route = tariff.quote("bj-subway", origin="东直门", destination="3号航站楼")
    assert (quote.fare_fen, quote.rule) == (2500, "bj-subway.airport-express")
    assert route.lines == (fares.BJ_AIRPORT_EXPRESS_LINE,)
    quote, _ = tariff.quote("bj-subway", origin="东直门", destination="国贸")  # the subway's 东直门
    assert quote.rule == "bj-subway.distance"
    with pytest.raises(InvalidInput):
        tariff.quote("bj-subway", origin="3号航站楼", destination="国贸")  # leave the gates to change


TJ_ROUTES = [  # from, to → sections, fare
    ("西南角", "营口道", 4, 200),  # 5 stations: ¥2
    ("西站", "营口道", 6, 300),
    ("西站", "天津站", 6, 300),  # line 1 then line 2 at 西南角 (6) beats line 1 then 3 at 营口道 (9)
    ("刘园", "双林", 21, 500),
    ("曹庄", "天津站", 10, 400),
    ("天津站", "天津站", 0, 200),
]


@pytest.mark.parametrize(("a", "b", "sections", "fen"), TJ_ROUTES)
def test_tianjin_metro_routes_take_the_fewest_sections(a, b, sections, fen):
    quote, route = load_tariff().quote("tj-metro", origin=a, destination=b)
    assert (route.sections, quote.fare_fen) == (sections, fen)


def test_explicit_figures_win_over_the_route_and_the_line():
    tariff = load_tariff()
    assert tariff.quote("tj-metro", sections=2)[0].fare_fen == 200
    assert tariff.quote("bj-bus", line="814", km="14")[0].rule == "bj-bus.card-suburb"
    assert tariff.quote("bj-bus", line="814", km="14", area="city")[0].rule == "bj-bus.card-city"
    assert tariff.quote("tj-bus", line="522")[0].full_fare_fen == 300
    assert tariff.quote("tj-bus", line="522", full_fare_fen=200)[0].full_fare_fen == 200


def test_bus_lines_carry_their_kind_into_the_free_ride():
    tariff = load_tariff()
    old = dict(holder_birth_date=date(1950, 1, 1), day=date(2025, 3, 1), concession="elderly")
    assert tariff.quote("tj-bus", line="13", **old)[0].fare_fen == 0
    assert tariff.quote("tj-bus", line="通勤1", **old)[0].fare_fen == 200
    assert tariff.quote("tj-bus", line="522", **old)[0].fare_fen == 300
    with pytest.raises(NotFound) as e:
        tariff.quote("tj-bus", line="9999")
    assert e.value.field == "--line"


def test_a_trip_by_stations_needs_both_ends_and_a_network():
    tariff = load_tariff()
    with pytest.raises(InvalidInput):
        tariff.quote("bj-subway", origin="西直门")
    with pytest.raises(InvalidInput):
        tariff.quote("bj-bus", origin="西直门", destination="东直门")


MAX = [("bj-subway", None, 800), ("bj-subway", "3号航站楼", 2500), ("bj-subway", "东直门", 800),
       ("tj-metro", None, 500), ("bj-bus", None, 1300), ("tj-bus", None, 500), ("he-sjz-bus", None, 200),
       ("he-lf-bus", None, 200)]


@pytest.mark.parametrize(("operator", "station", "fen"), MAX)
def test_maximum_fares(operator, station, fen):
    assert load_tariff().max_fare(operator, station) == fen


def test_the_fixtures_agree_with_the_rules():
    tariff = load_tariff()
    assert set(tariff.operators) == set(fares.OPERATORS)
    for code, info in tariff.operators.items():
        assert info.region == fares.OPERATOR_REGIONS[code] and info.source
    for (operator, _), line in tariff.lines.items():
        assert operator in fares.OPERATORS
        if operator == fares.BJ_BUS:
            assert line.area in fares.AREAS and line.km > 0
        else:
            assert line.full_fare_fen > 0 and line.kind in fares.LINE_KINDS
    for operator in (fares.BJ_SUBWAY, fares.TJ_METRO):
        codes = tariff.network(operator).stations
        assert all(c[:2] == ("11" if operator == fares.BJ_SUBWAY else "12") for c in codes)
    bj = tariff.network(fares.BJ_SUBWAY)
    assert {"1号线八通线", "2号线", "4号线大兴线", "5号线", "10号线", "13号线", fares.BJ_AIRPORT_EXPRESS_LINE} <= set(bj.lines)
    assert set(tariff.network(fares.TJ_METRO).lines) == {"1号线", "2号线", "3号线"}


def test_a_tariff_refuses_a_line_listed_twice():
    op = OperatorInfo("tj-bus", "天津公交", "tj", "120000", "bus", "flat", "test")
    with pytest.raises(ValueError):
        Tariff([op], {}, [BusLine("tj-bus", "1", full_fare_fen=100), BusLine("tj-bus", "1", full_fare_fen=200)])
