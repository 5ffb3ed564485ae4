"""``sbcard transit fare`` end to end (issue 16): the elderly rules, and where each answer comes from.

Every ``--json`` answer carries ``"source"`` (the documents), ``"confidence"`` and
``"illustrative"``; the human output says in one line when a figure is illustrative. A
fixture citing a source ``sources.csv`` does not list is refused (exit 3).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sbcard import reference
from sbcard.reference import transit as transit_reference

BJ_BORN_1965_03_10 = "110105196503100020"  # 60 on 2025-03-10
TJ_BORN_1960_03_20 = "120103196003200024"  # 65 on 2025-03-20
TJ_BORN_1950 = "12010319500101002X"  # born 1950-01-01


def _fare(sbcard, *args: str):
    return sbcard("transit", "fare", *args, "--json")


CASES = [  # arguments → exit code, fare, rule, confidence
    (["--operator", "bj-bus", "--km", "14", "--holder-id", BJ_BORN_1965_03_10, "--concession", "elderly",
      "--date", "2025-03-09"], 150, "bj-bus.card-city", "secondary"),  # the elderly rule's age decided
    (["--operator", "bj-bus", "--km", "14", "--holder-id", BJ_BORN_1965_03_10, "--concession", "elderly",
      "--date", "2025-03-10"], 0, "bj-bus.elderly-free", "secondary"),
    (["--operator", "bj-bus", "--km", "14", "--holder-id", BJ_BORN_1965_03_10, "--date", "2025-03-10"],
     150, "bj-bus.card-city", "secondary"),  # 60, no concession on the card
    (["--operator", "bj-bus", "--km", "14", "--holder-id", TJ_BORN_1960_03_20, "--card-region", "120000",
      "--date", "2025-06-01"], 150, "bj-bus.card-city", "secondary"),  # a Tianjin holder: the switch is off
    (["--operator", "bj-bus", "--km", "14", "--holder-id", TJ_BORN_1960_03_20, "--date", "2000-06-01"],
     150, "bj-bus.card-city", "official"),  # aged 40: no elderly rule in the answer
    (["--operator", "tj-bus", "--full-fare", "2", "--holder-id", TJ_BORN_1950, "--concession", "elderly",
      "--date", "2023-10-31"], 200, "tj-bus.full", "illustrative"),  # the eve of the rule's start
    (["--operator", "tj-bus", "--full-fare", "2", "--holder-id", TJ_BORN_1950, "--concession", "elderly",
      "--date", "2023-11-01"], 0, "tj-bus.elderly-free-ride", "official"),
    (["--operator", "tj-bus", "--line", "13", "--holder-id", TJ_BORN_1950, "--concession", "elderly",
      "--date", "2023-11-01"], 0, "tj-bus.elderly-free-ride", "illustrative"),  # the line's fare: the project's
    (["--operator", "bj-subway", "--km", "12"], 400, "bj-subway.distance", "official"),
    (["--operator", "he-lf-bus", "--full-fare", "2"], 200, "he-lf-bus.full", "illustrative"),
]


@pytest.mark.parametrize(("args", "fen", "rule", "confidence"), CASES)
def test_the_answer_says_what_it_rests_on(sbcard, args, fen, rule, confidence):
    code, out, err, data = _fare(sbcard, *args)
    assert code == 0, err
    assert (data["fare_fen"], data["rule"], data["confidence"]) == (fen, rule, confidence)
    assert data["illustrative"] is (confidence == "illustrative")
    assert isinstance(data["source"], list)
    for source in data["source"]:
        assert {"id", "title", "issuer", "date", "url", "kind"} <= set(source)
    if confidence != "illustrative":
        assert data["source"], "a sourced answer names its documents"


def test_the_human_output_names_the_source_and_says_illustrative(sbcard):
    code, out, err, _ = sbcard("transit", "fare", "--operator", "tj-bus", "--full-fare", "2")
    assert code == 0, err
    assert "illustrative: this answer rests on a figure of the project's own" in out
    code, out, err, _ = sbcard("transit", "fare", "--operator", "bj-subway", "--km", "12")
    assert code == 0, err
    assert "official: 关于调整本市公共交通价格的通知 (北京市发展和改革委员会, 2014-12)" in out
    assert "illustrative:" not in out


def test_a_tianjin_holder_is_told_the_same_treatment_switch_is_off(sbcard):
    code, out, err, data = _fare(sbcard, "--operator", "bj-bus", "--km", "14", "--holder-id", TJ_BORN_1960_03_20,
                                 "--card-region", "120000", "--date", "2025-06-01")
    assert code == 0, err
    assert data["card_region"] == "120000" and "同城待遇, is off" in data["description"]


@pytest.mark.parametrize("region", ["12", "440000", "999999"])  # malformed; outside the three regions
def test_a_bad_card_region_is_bad_input(sbcard, region):
    code, out, err, _ = _fare(sbcard, "--operator", "bj-bus", "--km", "3", "--card-region", region)
    assert code == 2 and "--card-region" in err


@pytest.fixture
def broken_fixtures(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A copy of fixtures/ to spoil, read instead of the real one (the loaders' caches emptied around it)."""
    copy = tmp_path / "fixtures"
    shutil.copytree(reference.fixtures_dir(), copy)
    monkeypatch.setenv(reference.ENV_VAR, str(copy))
    caches = (reference.load_sources, transit_reference.load_tariff, transit_reference.load_concession_policy,
              transit_reference.load_fare_rules)
    for cache in caches:
        cache.cache_clear()
    yield copy / "transit"
    for cache in caches:
        cache.cache_clear()


SPOILED = [  # file, text replaced, by → what the message names
    ("concessions.csv", "tj-elderly-bus-2023;", "tj-elderly-bus-2099;", "unknown source tj-elderly-bus-2099"),
    ("fare_rules.csv", "bj-subway.distance,Beijing subway distance fare,bj-fares-2014,official",
     "bj-subway.distance,Beijing subway distance fare,nowhere,official", "unknown source nowhere"),
    ("operators.csv", "tj-metro-fares,official", "tj-metro-fares,sure", "confidence 'sure'"),
    ("concessions.csv", ",off,120000;130000,", ",maybe,120000;130000,", "same_treatment 'maybe'"),
    # a choice column's bad value: attrs' sentence, not its internals
    ("concessions.csv", ",none,off,", ",two_months,off,", "'enable_ahead' must be in ('none', 'one_month') (got "
     "'two_months')"),
]


@pytest.mark.parametrize(("name", "old", "new", "message"), SPOILED)
def test_a_fixture_that_does_not_say_where_its_figure_comes_from_is_refused(sbcard, broken_fixtures, name, old,
                                                                            new, message):
    path = broken_fixtures / name
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")
    code, out, err, _ = _fare(sbcard, "--operator", "bj-subway", "--km", "6")
    assert code == 3
    assert message in err and name in err and "Attribute(" not in err
