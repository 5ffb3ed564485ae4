"""Who may apply for a card, and what kind of application it is.

The rules of 申领, as facts in and a verdict out (the service gathers the facts from the
registry and the hub's directory):

- one person holds at most one valid card in the whole country — a lost card counts, it
  is replaced, not applied for again — and has at most one open application;
- the person must be enrolled in insurance: the insured region issues the card;
- a minor (under 16) applies through a guardian recorded in the registry; a guardian is
  an adult (18 or over) and not the applicant;
- the card carries a photo: an outlet takes it at the counter, an online application
  needs one on file — except a newborn's (under 1 year), the "newborn one-thing" bundle
  (新生儿出生一件事), whose card is made without a photo.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

import attrs

from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.errors import InvalidInput, RuleRefused

MINOR_UNDER_YEARS = 16
NEWBORN_UNDER_YEARS = 1
GUARDIAN_MIN_YEARS = 18

Kind = Literal["first", "newborn", "replacement"]


@attrs.frozen(kw_only=True)
class ApplicationFacts:
    """What is known about one application when it is made."""

    citizen_id: CitizenId
    today: dt.date
    online: bool
    enrolled: bool
    photo_on_file: bool
    open_application: str | None = None  # id of the person's open application, if any
    valid_card: str | None = None  # the person's valid card anywhere, from the hub's directory
    replaces: str | None = None  # the card this application replaces (补换卡)
    guardian_id: CitizenId | None = None
    guardian_recorded: bool = False  # the registry lists guardian_id as the person's guardian


def is_newborn(citizen_id: CitizenId, today: dt.date) -> bool:
    return citizen_id.age_on(today) < NEWBORN_UNDER_YEARS


def check_application(facts: ApplicationFacts) -> Kind:
    """The application's kind if the rules allow it; otherwise the first rule it breaks."""
    age = facts.citizen_id.age_on(facts.today)  # InvalidInput for a birth date after today
    if not facts.enrolled:
        raise RuleRefused(
            "application.not_insured",
            "the person has no insurance enrolment: the insured region issues the card",
            "--citizen-id",
        )
    if facts.open_application:
        raise RuleRefused(
            "application.open",
            f"the person already has an open application {facts.open_application}",
            "--citizen-id",
        )
    _check_cards(facts)
    _check_guardian(facts, age)
    if facts.online and not facts.photo_on_file and age >= NEWBORN_UNDER_YEARS:
        raise RuleRefused(
            "application.photo_required",
            "an online application needs a photo on file (only a newborn's card is made without one); "
            "apply at an outlet, where the photo is taken at the counter",
            "--online",
        )
    if facts.replaces:
        return "replacement"
    return "newborn" if age < NEWBORN_UNDER_YEARS else "first"


def _check_cards(facts: ApplicationFacts) -> None:
    if facts.replaces is None and facts.valid_card:
        raise RuleRefused(
            "application.card_held",
            f"the person already holds valid card {facts.valid_card}: one valid card per person "
            "(a lost card is replaced, not applied for again)",
            "--citizen-id",
        )
    if facts.replaces is not None and facts.valid_card != facts.replaces:
        raise RuleRefused(
            "application.not_replaceable",
            f"card {facts.replaces} is not the person's valid card",
            "--citizen-id",
        )


def _check_guardian(facts: ApplicationFacts, age: int) -> None:
    guardian = facts.guardian_id
    if guardian is None:
        if age < MINOR_UNDER_YEARS:
            raise RuleRefused(
                "application.guardian_required",
                f"the applicant is {age}: under {MINOR_UNDER_YEARS} a guardian applies (give --guardian-id)",
                "--guardian-id",
            )
        return
    if guardian == facts.citizen_id:
        raise InvalidInput("application.guardian_self", "the guardian cannot be the applicant", "--guardian-id")
    if guardian.age_on(facts.today) < GUARDIAN_MIN_YEARS:
        raise RuleRefused(
            "application.guardian_minor", f"a guardian must be {GUARDIAN_MIN_YEARS} or over", "--guardian-id"
        )
    if not facts.guardian_recorded:
        raise RuleRefused(
            "application.guardian_unknown",
            "not recorded as the applicant's guardian in the registry "
            "(register with `sbcard person add … --guardian-id ID --guardian-relation TEXT`)",
            "--guardian-id",
        )
