"""Provenance of the fixtures' figures: sources, confidence, and what an answer tells its user."""

from __future__ import annotations

import pytest

from sbcard.domain.sources import (ILLUSTRATIVE, OFFICIAL, SECONDARY, Provenance, Source, cite, combine,
                                   least)

NOTICE = Source("tj-elderly-bus-2023", "天津市65岁以上老年人免费乘坐公共汽车实施办法", "天津市交通运输委员会",
                "2023-06-01", "https://jtys.tj.gov.cn/", OFFICIAL)
DIGEST = Source("travel-page", "故宫门票价格", "bkwk.cn", "2024", "", SECONDARY)
SOURCES = {s.id: s for s in (NOTICE, DIGEST)}


@pytest.mark.parametrize("ids, confidence, expected", [
    ("tj-elderly-bus-2023", "official", OFFICIAL),
    ("tj-elderly-bus-2023; travel-page", "secondary", SECONDARY),
    ("", "illustrative", ILLUSTRATIVE),
    ("travel-page", "illustrative", ILLUSTRATIVE),  # a shape from a page, figures the project's own
])
def test_a_row_cites_known_sources_with_a_confidence(ids: str, confidence: str, expected: str) -> None:
    p = cite(SOURCES, ids, confidence, where="row 2")
    assert p.confidence == expected
    assert p.illustrative == (expected == ILLUSTRATIVE)


@pytest.mark.parametrize("ids, confidence, message", [
    ("nowhere", "official", "unknown source nowhere"),
    ("", "official", "names its source"),
    ("travel-page", "official", "at least one official source"),
    ("tj-elderly-bus-2023", "sure", "confidence 'sure'"),
])
def test_a_row_that_does_not_say_where_its_figure_comes_from_is_refused(ids: str, confidence: str,
                                                                       message: str) -> None:
    with pytest.raises(ValueError, match=message) as e:
        cite(SOURCES, ids, confidence, where="venues.csv line 7")
    assert "venues.csv line 7" in str(e.value)


def test_an_answer_is_as_trusted_as_its_weakest_figure() -> None:
    fare = Provenance((NOTICE,), OFFICIAL)
    rate = Provenance((DIGEST,), SECONDARY)
    both = combine([fare, rate, fare])
    assert both.confidence == SECONDARY
    assert [s.id for s in both.sources] == ["tj-elderly-bus-2023", "travel-page"]
    assert least([OFFICIAL, ILLUSTRATIVE]) == ILLUSTRATIVE


def test_the_json_says_source_confidence_and_illustrative() -> None:
    data = Provenance((NOTICE,), OFFICIAL).to_json()
    assert data["illustrative"] is False and data["confidence"] == "official"
    assert data["source"][0] == {"id": "tj-elderly-bus-2023", "title": NOTICE.title, "issuer": "天津市交通运输委员会",
                                 "date": "2023-06-01", "url": "https://jtys.tj.gov.cn/", "kind": "official"}
    assert Provenance().to_json() == {"source": [], "confidence": "illustrative", "illustrative": True}


@pytest.mark.parametrize("kwargs, message", [
    ({"id": "Has Space"}, "source id"),
    ({"date": "June 2023"}, "not YYYY"),
    ({"url": "jtys.tj.gov.cn"}, "http"),
])
def test_a_malformed_source_is_refused(kwargs: dict[str, str], message: str) -> None:
    fields = {"id": "ok-id", "title": "t", "issuer": "i", "date": "", "url": ""} | kwargs
    with pytest.raises(ValueError, match=message):
        Source(**fields)
