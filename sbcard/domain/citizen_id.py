"""The citizen ID (公民身份号码), which is also the social security number (社会保障号码).

GB 11643: 6-digit region of registration at birth, 8-digit birth date, 3-digit sequence
(odd for men, even for women) and an ISO 7064 MOD 11-2 check character. Dates of birth,
ages and sex all come from the number, so a ``CitizenId`` that exists has passed every
check that can be made without a clock; whether the birth date lies in the future needs
"today", which the caller passes to ``check_not_future``.
"""

from __future__ import annotations

import operator
import re
from datetime import date

import attrs

from sbcard.domain.errors import InvalidInput
from sbcard.domain.masking import mask_citizen_id

FIELD = "citizen_id"
WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
CHECK_CHARS = "10X98765432"
EARLIEST_BIRTH_YEAR = 1880

_FIRST17 = re.compile(r"[0-9]{17}")  # [0-9], not \d: full-width digits are not digits here
_FIFTEEN = re.compile(r"[0-9]{15}")
_WHITESPACE = re.compile(r"\s+")


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(code=f"citizen_id.{code}", message=message, field=FIELD)


def compute_check_char(first17: str) -> str:
    """The MOD 11-2 check character ('0'-'9' or 'X') for the first 17 digits."""
    if not _FIRST17.fullmatch(first17):
        raise _invalid("format", f"expected 17 digits to compute a check character, got {first17!r}")
    total = sum(map(operator.mul, map(int, first17), WEIGHTS))  # map: a million-row import checks each ID
    return CHECK_CHARS[total % 11]


def eighteen_digit_form(old: str) -> str | None:
    """The 18-digit form of a 15-digit ID of the 1984-1999 form (GB 11643-1989): the century
    "19" put before its 6-digit birth date, and the check character computed. None when
    ``old`` is not 15 digits whose birth date exists (then it is not such an ID at all).

    The 15-digit form has no check character and a two-digit year; it was replaced in
    1999 and every holder has had the 18-digit number since, so sbcard never accepts the
    old form, but a clerk is told what the new one would be.
    """
    if not _FIFTEEN.fullmatch(old):
        return None
    first17 = old[:6] + "19" + old[6:]
    try:
        date(int(first17[6:10]), int(first17[10:12]), int(first17[12:14]))
    except ValueError:
        return None
    return first17 + compute_check_char(first17)


def _birth_date_of(value: str) -> date:
    text = value[6:14]
    year, month, day = int(text[:4]), int(text[4:6]), int(text[6:8])
    if year < EARLIEST_BIRTH_YEAR:
        raise _invalid("birth_year", f"birth year {year} is before {EARLIEST_BIRTH_YEAR}")
    try:
        return date(year, month, day)
    except ValueError as e:
        raise _invalid("birth_date", f"birth date {text} does not exist ({e})") from None


# The values that passed lately: the checks need nothing but the value, and one person's ID is
# checked again at every step of an application, an issuance or a batch (eight times per card).
_PASSED: dict[str, None] = {}
_PASSED_KEPT = 4096


def _validate(_instance: object, _attribute: object, value: str) -> None:
    """``_check``, once per value lately seen."""
    plain = type(value) is str
    if plain and value in _PASSED:
        return
    _check(value)
    if plain:
        if len(_PASSED) >= _PASSED_KEPT:
            _PASSED.clear()
        _PASSED[value] = None


def _check(value: str) -> None:
    """Every check that needs no clock; order gives the most useful message first."""
    if not isinstance(value, str):
        raise _invalid("format", f"expected a string, got {type(value).__name__}")
    if len(value) != 18:
        new = eighteen_digit_form(value)
        if new is not None:
            raise _invalid("old_form", "a 15-digit ID (the form used before 1999) is not accepted: "
                           f"its 18-digit form is {new}; give that")
        raise _invalid("length", f"a citizen ID has 18 characters, got {len(value)}")
    if not _FIRST17.fullmatch(value[:17]):
        raise _invalid("format", "the first 17 characters must be the digits 0-9")
    last = value[17]
    if last not in "0123456789X":
        raise _invalid("format", f"the last character must be a digit or 'X', got {last!r}")
    _birth_date_of(value)
    expected = compute_check_char(value[:17])
    if last != expected:
        raise _invalid("check_char", f"check character should be {expected!r}, got {last!r}")


@attrs.frozen
class CitizenId:
    """A citizen ID that passed the GB 11643 checks. ``value`` is upper case ('X')."""

    value: str = attrs.field(validator=_validate)

    @classmethod
    def parse(cls, text: str) -> CitizenId:
        """Accept what people type: spaces anywhere (IDs are often grouped 6-8-4) and 'x'."""
        if not isinstance(text, str):
            raise _invalid("format", f"expected a string, got {type(text).__name__}")
        normalised = _WHITESPACE.sub("", text).upper()
        if not normalised:
            raise _invalid("empty", "no citizen ID given")
        return cls(normalised)

    def __str__(self) -> str:
        return self.value

    @property
    def region_code(self) -> str:
        """The region of registration at birth; it stays in the ID after re-zoning."""
        return self.value[:6]

    @property
    def birth_date(self) -> date:
        return _birth_date_of(self.value)

    @property
    def sequence(self) -> str:
        """The 3-digit order code, leading zeros kept."""
        return self.value[14:17]

    @property
    def sex(self) -> str:
        """"M" when the 17th digit is odd, else "F"."""
        return "M" if int(self.value[16]) % 2 else "F"

    def check_not_future(self, today: date) -> None:
        """Refuse an ID whose holder is not born yet on ``today`` (the caller's clock)."""
        if self.birth_date > today:
            raise _invalid(
                "birth_in_future",
                f"birth date {self.birth_date.isoformat()} is after today ({today.isoformat()})",
            )

    def age_on(self, day: date) -> int:
        """Full years on ``day``. A 29 February birthday counts from 1 March in common years."""
        born = self.birth_date
        if day < born:
            raise _invalid(
                "birth_in_future",
                f"birth date {born.isoformat()} is after {day.isoformat()}: no age yet",
            )
        return day.year - born.year - ((day.month, day.day) < (born.month, born.day))

    def masked(self) -> str:
        """First 6 and last 4 characters, for logs and human output."""
        return mask_citizen_id(self.value)
