"""Items files → claim lines: what a counter types or a hospital system exports, and what is refused."""

from __future__ import annotations

import pytest

from sbcard.domain import medical
from sbcard.domain.errors import InvalidInput

GOOD = [
    ({"code": "XJ01CAA040", "quantity": "2", "price": "12.50"}, medical.ClaimLine("XJ01CAA040", 2, 1250)),
    ({"code": " 001102000010000 ", "quantity": " 1 ", "price": "50"}, medical.ClaimLine("001102000010000", 1, 5000)),
    ({"code": "XC10AAA050", "quantity": 3, "price": 22.3}, medical.ClaimLine("XC10AAA050", 3, 2230)),  # JSON numbers
    ({"code": "XC10AAA050", "quantity": 1, "price": 7}, medical.ClaimLine("XC10AAA050", 1, 700)),
    ({"code": "XA10BAE010", "quantity": "9999", "price": "¥0.01"}, medical.ClaimLine("XA10BAE010", 9999, 1)),
]


@pytest.mark.parametrize(("row", "expected"), GOOD)
def test_rows_become_lines_in_fen(row, expected):
    assert medical.parse_lines([row]) == [expected]


def test_lines_keep_the_files_order_and_repeated_codes():
    rows = [{"code": c, "quantity": "1", "price": "1"} for c in ("B", "A", "B")]
    assert [x.code for x in medical.parse_lines(rows)] == ["B", "A", "B"]


BAD = [
    ({"quantity": "1", "price": "1"}, "items[0].code"),
    ({"code": "  ", "quantity": "1", "price": "1"}, "items[0].code"),
    ({"code": "X", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "0", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "-1", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "1.5", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "abc", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": 0, "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": 1.0, "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": True, "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "10000", "price": "1"}, "items[0].quantity"),
    ({"code": "X", "quantity": "１", "price": "1"}, "items[0].quantity"),  # full-width digit
    ({"code": "X", "quantity": "1"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "0"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "0.00"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "-3"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "12.345"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "1,000"}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": 1e20}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": True}, "items[0].price"),
    ({"code": "X", "quantity": "1", "price": "1000001"}, "items[0].price"),
]


@pytest.mark.parametrize(("row", "field"), BAD)
def test_bad_rows_are_refused_naming_the_item_and_field(row, field):
    with pytest.raises(InvalidInput) as e:
        medical.parse_lines([row])
    assert e.value.field == field


def test_the_index_is_the_rows_position():
    rows = [{"code": "A", "quantity": "1", "price": "1"}, {"code": "B", "quantity": "0", "price": "1"}]
    with pytest.raises(InvalidInput) as e:
        medical.parse_lines(rows)
    assert e.value.field == "items[1].quantity"


@pytest.mark.parametrize("rows", [[], ["not a mapping"]])
def test_no_items_or_a_row_that_is_not_a_mapping_is_refused(rows):
    with pytest.raises(InvalidInput):
        medical.parse_lines(rows)


@pytest.mark.parametrize(("quantity", "price", "field"), [
    (0, 100, "quantity"), (-2, 100, "quantity"), (1, 0, "price"), (1, -5, "price"),
    (1, medical.MAX_UNIT_PRICE_FEN + 1, "price"), (medical.MAX_QUANTITY + 1, 1, "quantity"), (True, 100, "quantity"),
])
def test_a_claim_line_that_exists_is_valid(quantity, price, field):
    with pytest.raises(InvalidInput) as e:
        medical.ClaimLine("XJ01CAA040", quantity, price)
    assert e.value.field == field
