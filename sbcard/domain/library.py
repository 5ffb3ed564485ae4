"""Library loans (一卡通阅): how many at once, when they are due, what a late return costs.

The social security card is the reader's card: a library registers the holder at the
first loan. Each library's rules come from its row of ``fixtures/venues/venues.csv``;
where it gives none, the defaults below apply (the Beijing public libraries' 0.20 元 per
item per day, capped at 30 元 per item; 10 items for 30 days are the project's defaults).

Days are whole calendar days: an item borrowed on 1 March for 30 days is due on 31 March;
returned that day it is on time, on 1 April it is one day late. An unpaid fine blocks
further loans at that library until it is paid (``sbcard library pay``); so does an item
kept past its due date, until it is returned (as the libraries do: 逾期未还，暂停借阅).
"""

from __future__ import annotations

import datetime as dt

import attrs

from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.money import format_fen
from sbcard.domain.venues import Venue

DEFAULT_LOAN_LIMIT = 10
DEFAULT_LOAN_DAYS = 30
DEFAULT_FINE_FEN_PER_DAY = 20
DEFAULT_FINE_CAP_FEN = 3000
ITEM_MAX_LEN = 32


@attrs.frozen
class LoanRules:
    limit: int = DEFAULT_LOAN_LIMIT
    days: int = DEFAULT_LOAN_DAYS
    fine_fen_per_day: int = DEFAULT_FINE_FEN_PER_DAY
    fine_cap_fen: int = DEFAULT_FINE_CAP_FEN  # per item

    @classmethod
    def of(cls, venue: Venue) -> LoanRules:
        """The library's rules, its blanks filled with the defaults."""
        if not venue.is_library:
            raise InvalidInput("library.not_a_library", f"{venue.code} {venue.name} is a {venue.kind}, not a library",
                               "--library")
        return cls(
            limit=venue.loan_limit if venue.loan_limit is not None else DEFAULT_LOAN_LIMIT,
            days=venue.loan_days if venue.loan_days is not None else DEFAULT_LOAN_DAYS,
            fine_fen_per_day=venue.fine_fen_per_day if venue.fine_fen_per_day is not None else DEFAULT_FINE_FEN_PER_DAY,
            fine_cap_fen=venue.fine_cap_fen if venue.fine_cap_fen is not None else DEFAULT_FINE_CAP_FEN,
        )


def item_code(text: str) -> str:
    """An item's barcode as the desk scans it: 1–32 printable characters, no spaces."""
    code = (text or "").strip()
    if not code or len(code) > ITEM_MAX_LEN or not code.isprintable() or any(c.isspace() for c in code):
        raise InvalidInput("library.item", f"{text!r} is not an item barcode (1–{ITEM_MAX_LEN} characters, no spaces)",
                           "--item")
    return code


def due_date(borrowed: dt.date, rules: LoanRules) -> dt.date:
    return borrowed + dt.timedelta(days=rules.days)


def overdue_days(due: dt.date, returned: dt.date) -> int:
    """Whole days after the due date (0 when returned on or before it)."""
    return max(0, (returned - due).days)


def fine_fen(due: dt.date, returned: dt.date, rules: LoanRules) -> int:
    """The overdue fine of one item: per day late, at most the cap."""
    return min(overdue_days(due, returned) * rules.fine_fen_per_day, rules.fine_cap_fen)


def check_borrow(rules: LoanRules, *, open_loans: int, overdue_loans: int, owed_fen: int,
                 item_on_loan: bool, library_name: str) -> None:
    """``RuleRefused`` when the reader may not borrow now, first reason first: fines owed, an
    item kept past its due date, the limit of loans at once reached, the item already out."""
    if owed_fen > 0:
        raise RuleRefused("library.fine_owed", f"{format_fen(owed_fen)} of overdue fines unpaid at {library_name}: "
                          "pay them first (`sbcard library pay`)", "--reader")
    if overdue_loans > 0:
        raise RuleRefused("library.overdue", f"{overdue_loans} item(s) kept past the due date: return them to "
                          f"{library_name} first", "--reader")
    if open_loans >= rules.limit:
        raise RuleRefused("library.limit", f"{open_loans} items on loan already: {library_name} lends at most "
                          f"{rules.limit} at once", "--reader")
    if item_on_loan:
        raise RuleRefused("library.on_loan", "the item is on loan already: it must be returned first", "--item")
