"""The venues' published price rules (fixtures/venues/prices.csv) at the gate: who pays what, from which source.

Holders are real-looking: citizen IDs with valid check characters, their birth date the
card's. Each band is tried on the eve of the birthday that moves the holder into it and
on the birthday itself; the Palace Museum's free entry for minors on the eve of its
first day and on that day; the seasons on their last and first days.
"""

from __future__ import annotations

import datetime as dt

import pytest

from sbcard.clock import BEIJING
from sbcard.domain.citizen_id import CitizenId, compute_check_char
from sbcard.domain.concessions import BJ_ELDERLY_FREE_BUS, ELDERLY_FREE_RIDE, CardConcession
from sbcard.domain.venues import decide
from sbcard.services.venues.gates import holder_statuses
from sbcard.reference.venues import venue

BEIJING_DISTRICT, TIANJIN_DISTRICT, HEBEI_DISTRICT = "110105", "120103", "130102"


def holder(born: str, region: str = BEIJING_DISTRICT, sequence: str = "123") -> CitizenId:
    """A citizen ID of someone born on ``born`` (YYYY-MM-DD), registered in ``region``."""
    first17 = region + born.replace("-", "") + sequence
    return CitizenId(first17 + compute_check_char(first17))


def enter(code: str, who: CitizenId, day: str, *statuses: str):
    at = dt.datetime.fromisoformat(f"{day}T10:00").replace(tzinfo=BEIJING)
    return decide(venue(code), birth_date=who.birth_date, at=at, statuses=set(statuses))


PALACE = "BJ-MU-001"  # 故宫博物院: ¥60 April–October, ¥40 otherwise; closed on Mondays
SUMMER_PALACE = "BJ-SC-001"  # 颐和园: ¥30 / ¥20, a city park
BISHU = "HE-SC-001"  # 避暑山庄: ¥130 / ¥90


@pytest.mark.parametrize(("born", "day", "statuses", "price", "rule", "age"), [
    # children: 6周岁(含)以下 free; 7–18 the ¥20 student ticket (before minors went free)
    ("2014-06-16", "2021-06-15", (), 0, "child-free", 6),          # the eve of the 7th birthday
    ("2014-06-16", "2021-06-16", (), 2000, "minor", 7),            # the 7th birthday
    # minors free on every open day from 2021-12-10 (a dated rule: its eve and its first day)
    ("2011-05-05", "2021-12-09", (), 2000, "minor", 10),
    ("2011-05-05", "2021-12-10", (), 0, "minor-free", 10),
    ("2018-07-02", "2025-07-01", (), 0, "child-free", 6),          # free either way: the child rule is listed first
    ("2018-07-02", "2025-07-02", (), 0, "minor-free", 7),
    # the 18th birthday ends the minors' free entry; 18 (含) still buys the ¥20 ticket, 19 pays in full
    ("2007-07-02", "2025-07-01", (), 0, "minor-free", 17),
    ("2007-07-02", "2025-07-02", (), 2000, "minor", 18),
    ("2006-07-02", "2025-07-01", (), 2000, "minor", 18),
    ("2006-07-02", "2025-07-02", (), 6000, "full", 19),
    ("2006-07-02", "2025-07-02", ("student",), 2000, "student", 19),  # a flat ¥20, not half of ¥60
    ("2003-03-15", "2025-03-04", ("student",), 2000, "student", 21),  # off-peak: ¥20 as well
    # seniors: 60周岁(含)以上 half price
    ("1965-07-02", "2025-07-01", (), 6000, "full", 59),
    ("1965-07-02", "2025-07-02", (), 3000, "senior-half", 60),
    ("1965-03-05", "2025-03-04", (), 4000, "full", 59),
    ("1965-03-05", "2025-03-05", (), 2000, "senior-half", 60),
    ("1960-07-02", "2025-07-02", ("student",), 2000, "student", 65),  # the student ticket is cheaper than half
])
def test_the_palace_museum(born, day, statuses, price, rule, age):
    entry = enter(PALACE, holder(born), day, *statuses)
    assert (entry.result, entry.price_fen, entry.rule, entry.age) == ("ok", price, f"{PALACE}.{rule}", age)
    assert entry.provenance.confidence == "secondary" and entry.provenance.sources  # travel pages quoting the museum


@pytest.mark.parametrize(("born", "region", "day", "statuses", "price", "rule", "confidence"), [
    # the Beijing elderly card (北京通—养老助残卡): free from 60 at the city parks
    ("1965-03-05", BEIJING_DISTRICT, "2025-03-04", ("elderly_card",), 2000, "full", "secondary"),  # 59: no card yet
    ("1965-03-05", BEIJING_DISTRICT, "2025-03-05", ("elderly_card",), 0, "elderly-card", "secondary"),
    ("1965-03-05", BEIJING_DISTRICT, "2025-03-05", (), 1000, "senior-half", "illustrative"),   # card not shown
    # a Tianjin holder: the card only with a Beijing 居住证 (staff see it); without, the band of everyone
    ("1963-01-10", TIANJIN_DISTRICT, "2025-03-05", (), 1000, "senior-half", "illustrative"),
    ("1963-01-10", TIANJIN_DISTRICT, "2025-03-05", ("elderly_card",), 0, "elderly-card", "secondary"),
    ("1960-03-05", HEBEI_DISTRICT, "2025-03-04", (), 1000, "senior-half", "illustrative"),     # 64
    ("1960-03-05", HEBEI_DISTRICT, "2025-03-05", (), 0, "senior-free", "illustrative"),        # 65
    ("1960-03-05", BEIJING_DISTRICT, "2025-03-05", ("elderly_card",), 0, "elderly-card", "secondary"),  # tie: 1st
    # children and minors: 6周岁(含)以下 free, 6(不含)–18(含) half; students half
    ("2018-03-05", BEIJING_DISTRICT, "2025-03-04", (), 0, "child-free", "secondary"),
    ("2018-03-05", BEIJING_DISTRICT, "2025-03-05", (), 1000, "minor-half", "secondary"),
    ("2006-03-05", BEIJING_DISTRICT, "2025-03-04", (), 1000, "minor-half", "secondary"),
    ("2006-03-05", BEIJING_DISTRICT, "2025-03-05", (), 2000, "full", "secondary"),
    ("2006-03-05", BEIJING_DISTRICT, "2025-03-05", ("student",), 1000, "student-half", "secondary"),
    ("2006-03-05", BEIJING_DISTRICT, "2025-07-01", ("student",), 1500, "student-half", "secondary"),  # peak ¥30
])
def test_the_summer_palace_and_the_beijing_elderly_card(born, region, day, statuses, price, rule, confidence):
    entry = enter(SUMMER_PALACE, holder(born, region), day, *statuses)
    assert (entry.price_fen, entry.rule) == (price, f"{SUMMER_PALACE}.{rule}")
    assert entry.provenance.confidence == confidence
    assert entry.provenance.illustrative is (confidence == "illustrative")


def test_the_elderly_card_rule_itself_is_official():
    entry = enter(SUMMER_PALACE, holder("1950-05-01"), "2025-03-05", "elderly_card")
    assert entry.rule_provenance is not None and entry.rule_provenance.confidence == "official"
    assert "bj-elderly-card-guide" in [s.id for s in entry.rule_provenance.sources]
    assert entry.category == "elderly_card" and entry.statuses == {"elderly_card"}


@pytest.mark.parametrize(("born", "day", "statuses", "price", "rule", "age"), [
    ("1955-07-02", "2025-07-01", (), 6500, "senior-half", 69),     # 60周岁(含)至69周岁(含): half
    ("1955-07-02", "2025-07-02", (), 0, "senior-free", 70),        # 70周岁(含)以上: free
    ("1965-07-02", "2025-07-01", (), 13000, "full", 59),
    ("1965-07-02", "2025-07-02", (), 6500, "senior-half", 60),
    ("1956-02-29", "2026-02-28", (), 4500, "senior-half", 69),     # born 29 February: 70 from 1 March
    ("1956-02-29", "2026-03-01", (), 0, "senior-free", 70),
    ("1956-02-29", "2024-02-29", (), 4500, "senior-half", 68),
    ("2018-07-02", "2025-07-01", (), 0, "child-free", 6),
    ("2018-07-02", "2025-07-02", (), 6500, "minor-half", 7),
    ("1995-01-01", "2025-07-02", ("student",), 6500, "student-half", 30),
    ("1995-01-01", "2025-07-02", ("elderly_card",), 13000, "full", 30),  # Beijing's card means nothing in Chengde
    ("1950-01-01", "2025-07-02", ("elderly_card",), 0, "senior-free", 75),
])
def test_bishu_shanzhuang(born, day, statuses, price, rule, age):
    entry = enter(BISHU, holder(born, HEBEI_DISTRICT), day, *statuses)
    assert (entry.price_fen, entry.rule, entry.age) == (price, f"{BISHU}.{rule}", age)
    assert entry.provenance.confidence == "secondary"


@pytest.mark.parametrize(("code", "day", "price"), [
    (PALACE, "2024-10-31", 6000), (PALACE, "2024-11-01", 4000),   # the peak season's last day, the off-season's first
    (PALACE, "2025-03-30", 4000), (PALACE, "2025-04-01", 6000),
    (BISHU, "2025-03-31", 9000), (BISHU, "2025-04-01", 13000),
    (SUMMER_PALACE, "2025-10-31", 3000), (SUMMER_PALACE, "2025-11-01", 2000),
])
def test_season_edges(code, day, price):
    entry = enter(code, holder("1990-05-20"), day)
    assert (entry.price_fen, entry.full_price_fen, entry.rule) == (price, price, f"{code}.full")


@pytest.mark.parametrize(("code", "born", "statuses", "price", "rule", "confidence"), [
    ("HE-SC-002", "1955-07-02", (), 0, "senior-free", "secondary"),          # 山海关: 70+ free
    ("HE-SC-002", "1990-07-02", (), 2500, "card-discount", "illustrative"),  # the project's 50% off for the card
    ("TJ-SC-001", "2015-01-01", (), 5600, "card-discount", "illustrative"),  # 天津之眼: market-priced: no child band
    ("TJ-SC-002", "2020-01-01", (), 0, "child-free", "illustrative"),        # a sourced band on an illustrative price
    ("BJ-MU-002", "1990-07-02", (), 0, "free-admission", "secondary"),
    ("TJ-MU-001", "1990-07-02", (), 0, "free-admission", "secondary"),
    ("HE-SC-003", "1990-07-02", (), 2500, "card-discount", "illustrative"),   # 隆兴寺: the price is the project's
])
def test_other_venues_and_their_confidence(code, born, statuses, price, rule, confidence):
    entry = enter(code, holder(born), "2025-07-02", *statuses)
    assert (entry.price_fen, entry.rule, entry.provenance.confidence) == (price, f"{code}.{rule}", confidence)


def test_a_card_without_a_birth_date_gets_no_age_band_but_keeps_its_statuses():
    at = dt.datetime(2025, 7, 2, 10, tzinfo=BEIJING)
    assert decide(venue(PALACE), birth_date=None, at=at).rule == f"{PALACE}.full"
    assert decide(venue(PALACE), birth_date=None, at=at, statuses={"student"}).price_fen == 2000


def test_a_refusal_cites_the_venues_hours_and_limits_official_where_the_venue_says_so():
    closed = enter("TJ-MU-001", holder("1990-07-02", TIANJIN_DISTRICT), "2025-07-07")  # 天津博物馆 on a Monday
    assert closed.code == "closed_day" and closed.provenance.confidence == "official"
    late = decide(venue("TJ-MU-001"), birth_date=None, at=dt.datetime(2025, 7, 8, 16, 0, tzinfo=BEIJING))
    assert late.code == "closed_hour" and "16:00" in late.reason


def test_a_refusal_cites_the_venues_hours_and_limits():
    entry = enter("BJ-MU-002", holder("1990-07-02"), "2025-07-07")  # a Monday
    assert entry.code == "closed_day" and entry.provenance == venue("BJ-MU-002").rules_provenance
    assert entry.rule_provenance is None


@pytest.mark.parametrize(("concession", "region", "expected"), [
    (CardConcession(BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 3, 10)), "110108", {"elderly_card"}),
    (CardConcession(BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 3, 11)), "110108", set()),  # from tomorrow
    (CardConcession(BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 3, 10), status="locked"), "110108", set()),
    (CardConcession(BJ_ELDERLY_FREE_BUS, "110000", dt.date(2025, 3, 10)), "120119", set()),  # not in Tianjin
    (CardConcession(ELDERLY_FREE_RIDE, "120000", dt.date(2025, 3, 10)), "120119", set()),  # Tianjin's bus ride
    (None, "110108", set()),
])
def test_the_card_s_beijing_elderly_concession_is_the_elderly_card(concession, region, expected):
    """What EF 0017 says on the card counts as the 北京通—养老助残卡 the staff would otherwise have to see."""
    assert holder_statuses(None, frozenset(), concession, dt.date(2025, 3, 10), region) == expected
    assert holder_statuses(None, frozenset({"student"}), concession, dt.date(2025, 3, 10), region) == \
        expected | {"student"}
