"""A medical claim on its way from the point of sale to the insured region, and the offline rule.

``ClaimRequest`` is what a hospital's point of sale (``terminals/apps/medical.py``) sends,
through the hub, to the insured region (``sbcard.services.medical.host``): the card and
what its DF04 says, the lines, the circumstances and how the holder pays. It travels as
JSON (``to_json`` / ``from_json``), recorded once in the hub's ``messages``.

``offline_settlement`` is the point of sale's rule when the insured region cannot be
reached (issue 6, "Outage"): the claim is settled against the card's DF04/EF06 offline
settlement data with the insured region's policy, conservatively —

- the year's deductible is taken as **wholly unpaid** (the holder pays at most more than
  the insured region would make them pay; the difference comes back at reconciliation),
  and the pooled fund's year so far as what the card itself has spent offline this year;
- the personal account is not used (its balance is the insured region's to know) and the
  self-pay is cash (the financial account is the insured region's too);
- the pooled fund's part must fit what is left of the card's offline limit for the year
  (``used + fund ≤ limit``, ``used`` counting from 0 in a new year), else refused.

The card then holds ``used + fund`` for the year (its forward-only rule keeps it from
going back); the claim is queued and settled for real, with the insured region's own
accumulators, once the link is back (``sbcard medical reconcile``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from sbcard.domain import medical
from sbcard.domain.errors import RuleRefused
from sbcard.domain.money import format_fen

MODES = ("online", "offline")
SELF_PAY = ("cash", "account")


def _lines(value: Sequence[Any]) -> tuple[medical.ClaimLine, ...]:
    return tuple(v if isinstance(v, medical.ClaimLine) else medical.ClaimLine(str(v[0]), int(v[1]), int(v[2])) for v in value)


@attrs.frozen
class ClaimRequest:
    """One claim as the point of sale sends it to the insured region."""

    claim_id: str
    hospital: str
    card_number: str
    card_id_code: str
    citizen_id: str = attrs.field(repr=False)
    insured_region: str  # DF04/EF05 tag 01
    insurance_type: str  # DF04/EF05 tag 02
    retired: bool  # DF04/EF05 tag 03
    lines: tuple[medical.ClaimLine, ...] = attrs.field(converter=_lines)
    at: dt.datetime  # at the point of sale (Beijing time)
    registered: bool = False  # kept for requests stored before registrations: the insured region looks it up now
    referral_or_emergency: bool = False  # kept for stored requests: ``visit`` says which
    use_account: bool = False  # the personal account pays what it may (PIN verified)
    self_pay: str = attrs.field(default="cash", validator=attrs.validators.in_(SELF_PAY))
    mode: str = attrs.field(default="online", validator=attrs.validators.in_(MODES))
    offline_self_fen: int | None = None  # offline: what the holder paid at the point of sale
    visit: str = attrs.field(default="", validator=attrs.validators.in_(medical.VISITS))  # the hospital declares it
    episode: str = attrs.field(default=medical.OUTPATIENT, validator=attrs.validators.in_(medical.EPISODES))

    def __attrs_post_init__(self) -> None:
        if self.at.tzinfo is None:
            raise ValueError("a claim's time must be timezone-aware")
        if (self.mode == "offline") != (self.offline_self_fen is not None):
            raise ValueError("an offline claim, and only one, carries what the holder paid offline")
        if self.mode == "offline" and (self.use_account or self.self_pay != "cash"):
            raise ValueError("an offline claim uses neither the personal account nor the financial account")

    @property
    def year(self) -> int:
        return self.at.year

    def to_json(self) -> dict[str, Any]:
        return {
            "claim_id": self.claim_id, "hospital": self.hospital, "card_number": self.card_number,
            "card_id_code": self.card_id_code, "citizen_id": self.citizen_id,
            "insured_region": self.insured_region, "insurance_type": self.insurance_type, "retired": self.retired,
            "lines": [[line.code, line.quantity, line.unit_price_fen] for line in self.lines],
            "at": self.at.isoformat(), "registered": self.registered,
            "referral_or_emergency": self.referral_or_emergency, "use_account": self.use_account,
            "self_pay": self.self_pay, "mode": self.mode, "offline_self_fen": self.offline_self_fen,
            "visit": self.visit, "episode": self.episode,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClaimRequest:
        fields = dict(data)
        fields["at"] = dt.datetime.fromisoformat(fields["at"])
        if "visit" not in fields:  # stored before visits: the flag said referral or emergency
            fields["visit"] = medical.REFERRAL if fields.get("referral_or_emergency") else ""
        return cls(**fields)


@attrs.frozen
class OfflineCard:
    """DF04/EF06 as read: the offline limit, the amount used and the year it counts for."""

    limit_fen: int
    used_fen: int
    year: int | None

    def used_in(self, year: int) -> int:
        """What the card has spent offline in ``year`` (a card still in an earlier year: nothing)."""
        if self.year is None or self.year < year:
            return 0
        return self.used_fen


@attrs.frozen
class OfflineDecision:
    """The offline split, and what DF04/EF06 holds after it."""

    settlement: medical.Settlement
    year: int
    used_fen: int  # the card's used amount for ``year`` after this claim
    new_year: bool  # the card's year moves forward (its used amount starts again at 0)


def offline_settlement(lines: Sequence[medical.ClaimLine], catalogue: Mapping[str, medical.CatalogueItem], policy: medical.Policy,
                       card: OfflineCard, c: medical.Circumstances, *, year: int) -> OfflineDecision:
    """The conservative split of a claim settled against the card (see the module's docstring).

    Refused (``RuleRefused`` "medical.offline.limit") when the fund's part does not fit
    what is left of the card's offline limit this year.
    """
    used = card.used_in(year)
    settlement = medical.settle(lines, catalogue, policy, medical.YearToDate(year, 0, used), c, account_available_fen=0)
    if used + settlement.fund_fen > card.limit_fen:
        left = max(0, card.limit_fen - used)
        raise RuleRefused(
            "medical.offline.limit",
            f"the insured region cannot be reached and the pooled fund's {format_fen(settlement.fund_fen)} is more "
            f"than what is left of the card's offline limit ({format_fen(left)} of {format_fen(card.limit_fen)} "
            f"in {year}): settle when the link is back, or pay in full", "--items")
    return OfflineDecision(settlement, year, used + settlement.fund_fen,
                           new_year=card.year is None or card.year < year)
