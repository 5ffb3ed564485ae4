"""The card's life after issuance: which change each status allows, and what time does alone.

    from                    change                         to
    issued                  activate (启用)                 active
    active                  report lost (挂失)              lost: temporary by phone or app, formal at a counter
    lost, temporary         confirm at a counter           lost, formal
    lost, temporary         5 days pass unconfirmed        active (the loss lapses)
    lost                    unblock (解挂)                  active
    issued, active, lost    replace (补换卡)                 replaced
    any but cancelled       cancel (注销)                   cancelled

A loss reported by phone or app is temporary (口头挂失): it stops the card at once but
lapses by itself after ``TEMPORARY_LOSS_LAPSES_AFTER`` unless the holder confirms it at
a counter, where a loss is formal (书面挂失) and lasts until unblocked or replaced. The
stored status of a lapsed loss stays ``lost`` until something writes the lapse, so every
decision is taken on ``CardState.effective(now)``.

A card is on the national blacklist exactly while it is lost, replaced or cancelled.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import attrs

from sbcard.domain.errors import InvalidInput, RuleRefused

FIELD = "CARD"

# A temporary loss protects the holder for the days it takes to reach a counter.
TEMPORARY_LOSS_LAPSES_AFTER = timedelta(days=5)

# The project's choice: offline transit terminals upload their taps within days, and
# clearing between regions runs daily, so 30 days after a card is replaced no purchase
# made with it can still arrive; only then is the purse balance it held refunded.
CLEARING_WINDOW = timedelta(days=30)


class Status(StrEnum):
    ISSUED = "issued"
    ACTIVE = "active"
    LOST = "lost"
    REPLACED = "replaced"
    CANCELLED = "cancelled"


class LossKind(StrEnum):
    TEMPORARY = "temporary"  # by phone or app; lapses
    FORMAL = "formal"  # at a counter, identity checked; lasts


class Channel(StrEnum):
    """Where a loss is reported; the channel decides whether the loss is temporary."""

    PHONE = "phone"
    APP = "app"
    COUNTER = "counter"

    @property
    def loss_kind(self) -> LossKind:
        return LossKind.FORMAL if self is Channel.COUNTER else LossKind.TEMPORARY


class Action(StrEnum):
    ACTIVATE = "activate"
    REPORT_LOST = "report_lost"
    CONFIRM_LOSS = "confirm_loss"
    UNBLOCK = "unblock"
    REPLACE = "replace"
    CANCEL = "cancel"


# Each action: the statuses it starts from, and how a refusal says what was needed.
_ALLOWED_FROM: dict[Action, tuple[frozenset[Status], str]] = {
    Action.ACTIVATE: (frozenset({Status.ISSUED}), "only an issued card can be activated"),
    Action.REPORT_LOST: (frozenset({Status.ACTIVE}), "only an active card can be reported lost"),
    Action.CONFIRM_LOSS: (frozenset({Status.LOST}), "only a temporary loss can be confirmed"),
    Action.UNBLOCK: (frozenset({Status.LOST}), "only a lost card can be unblocked"),
    Action.REPLACE: (
        frozenset({Status.ISSUED, Status.ACTIVE, Status.LOST}),
        "only an issued, active or lost card can be replaced",
    ),
    Action.CANCEL: (
        frozenset({Status.ISSUED, Status.ACTIVE, Status.LOST, Status.REPLACED}),
        "it cannot be cancelled twice",
    ),
}

BLACKLISTED = frozenset({Status.LOST, Status.REPLACED, Status.CANCELLED})


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M")


def _parse_time(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


@attrs.frozen
class CardState:
    """A card's place in its life. A value that exists is consistent:
    ``loss_kind`` is set exactly while lost, ``loss_expires_at`` exactly for a temporary loss."""

    card_number: str
    status: Status = attrs.field(converter=Status)
    loss_kind: LossKind | None = attrs.field(default=None, converter=attrs.converters.optional(LossKind))
    loss_expires_at: datetime | None = None

    def __attrs_post_init__(self) -> None:
        if (self.status is Status.LOST) != (self.loss_kind is not None):
            raise InvalidInput("card.state", f"card {self.card_number}: a loss kind goes with status lost only", FIELD)
        if (self.loss_kind is LossKind.TEMPORARY) != (self.loss_expires_at is not None):
            raise InvalidInput("card.state", f"card {self.card_number}: only a temporary loss lapses", FIELD)

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> CardState:
        """From a ``cards`` row (timestamps as stored: ISO 8601 with offset)."""
        return cls(row["card_number"], row["status"], row["loss_kind"], _parse_time(row["loss_expires_at"]))

    def to_row(self) -> dict[str, Any]:
        """The ``cards`` columns this state sets."""
        return {
            "status": self.status.value,
            "loss_kind": self.loss_kind.value if self.loss_kind else None,
            "loss_expires_at": self.loss_expires_at.isoformat() if self.loss_expires_at else None,
        }

    def lapsed(self, now: datetime) -> bool:
        """A temporary loss not confirmed in time: the card is active again."""
        return self.loss_expires_at is not None and now >= self.loss_expires_at

    def effective(self, now: datetime) -> CardState:
        """The state at ``now``, the lapse of a temporary loss applied."""
        return CardState(self.card_number, Status.ACTIVE) if self.lapsed(now) else self

    @property
    def blacklisted(self) -> bool:
        return self.status in BLACKLISTED

    def describe(self) -> str:
        """How a counter clerk says it: 'temporarily reported lost (lapses 2024-05-06 10:00)'."""
        if self.loss_kind is LossKind.TEMPORARY:
            assert self.loss_expires_at is not None
            return f"temporarily reported lost (lapses {_when(self.loss_expires_at)})"
        if self.loss_kind is LossKind.FORMAL:
            return "reported lost"
        if self.status is Status.ISSUED:
            return "issued but not yet activated"
        return self.status.value


def effective_status(card_row: Mapping[str, Any], now: datetime) -> str:
    """The status a ``cards`` row has at ``now``: ``lost`` turns ``active`` once a temporary loss lapses."""
    return CardState.from_row(card_row).effective(now).status.value


def _require(state: CardState, action: Action, now: datetime) -> CardState:
    """The effective state, if ``action`` may start from it; otherwise a one-line refusal."""
    current = state.effective(now)
    allowed, needs = _ALLOWED_FROM[action]
    if current.status not in allowed or (
        action is Action.CONFIRM_LOSS and current.loss_kind is not LossKind.TEMPORARY
    ):
        lapse = ""
        if state.lapsed(now):
            assert state.loss_expires_at is not None
            lapse = f" (its temporary loss lapsed {_when(state.loss_expires_at)})"
        raise RuleRefused(
            f"card.{current.status.value}",
            f"card {state.card_number} is {current.describe()}{lapse}; {needs}",
            FIELD,
        )
    return current


def activate(state: CardState, now: datetime) -> CardState:
    _require(state, Action.ACTIVATE, now)
    return CardState(state.card_number, Status.ACTIVE)


def report_lost(state: CardState, channel: Channel, now: datetime) -> CardState:
    """Lost from ``now``; by phone or app only until the lapse unless confirmed at a counter."""
    _require(state, Action.REPORT_LOST, now)
    kind = Channel(channel).loss_kind
    expires = now + TEMPORARY_LOSS_LAPSES_AFTER if kind is LossKind.TEMPORARY else None
    return CardState(state.card_number, Status.LOST, kind, expires)


def confirm_loss(state: CardState, now: datetime) -> CardState:
    """A temporary loss made formal at a counter, before it lapses."""
    _require(state, Action.CONFIRM_LOSS, now)
    return CardState(state.card_number, Status.LOST, LossKind.FORMAL)


def unblock(state: CardState, now: datetime) -> CardState:
    """解挂: the card was found; it works again."""
    _require(state, Action.UNBLOCK, now)
    return CardState(state.card_number, Status.ACTIVE)


def replace(state: CardState, now: datetime) -> CardState:
    """补换卡: this card ends; a new card with a new number takes its place."""
    _require(state, Action.REPLACE, now)
    return CardState(state.card_number, Status.REPLACED)


def cancel(state: CardState, now: datetime) -> CardState:
    """注销: the card ends for good (on death, say); nothing replaces it."""
    _require(state, Action.CANCEL, now)
    return CardState(state.card_number, Status.CANCELLED)


def blacklist_change(before: CardState, after: CardState) -> str | None:
    """``add`` or ``remove`` when the change moves the card on or off the blacklist, else None."""
    if after.blacklisted == before.blacklisted:
        return None
    return "add" if after.blacklisted else "remove"


def refund_due_at(replaced_at: datetime) -> datetime:
    """When the purse balance of a card replaced at ``replaced_at`` may be refunded."""
    return replaced_at + CLEARING_WINDOW
