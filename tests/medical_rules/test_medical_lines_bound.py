"""A claim has at most ``MAX_LINES`` lines, so its totals stay far below SQLite's 64-bit integer
(docs/protections/money-bounds.md): the line past it is refused naming the items."""

from __future__ import annotations

import pytest

from sbcard.domain.errors import InvalidInput
from sbcard.domain.medical import MAX_LINES, MAX_QUANTITY, MAX_UNIT_PRICE_FEN, parse_lines
from sbcard.domain.money import MAX_FEN

LINE = {"code": "XJ01CAA040", "quantity": str(MAX_QUANTITY), "price": str(MAX_UNIT_PRICE_FEN // 100)}


@pytest.mark.parametrize(("count", "accepted"), [(1, True), (MAX_LINES, True), (MAX_LINES + 1, False)])
def test_the_number_of_lines_is_bounded(count, accepted):
    rows = [LINE] * count
    if accepted:
        assert len(parse_lines(rows)) == count
    else:
        with pytest.raises(InvalidInput) as refused:
            parse_lines(rows)
        assert (refused.value.code, refused.value.field) == ("medical.items.too_many", "items")


def test_the_largest_claim_is_far_below_the_integer_limit():
    assert MAX_LINES * MAX_QUANTITY * MAX_UNIT_PRICE_FEN * 1000 < MAX_FEN
