"""Loads (圈存) between the load terminal and the issuer's host, as values, and how a load
left pending by a tear is settled from what the card shows.

The load terminal (``terminals/apps/loader.py``) and the issuer's purse host
(``sbcard/services/transit/purse_host.py``) exchange these values through the terminal's host
port; both import them from here, so neither imports the other.

Settling a pending load (``decide``) rests on two facts of the card profile:

- the card's online counter moves on only when CREDIT FOR LOAD commits, and only a MAC2
  made with the card's DLK (the issuer's) opens a CREDIT for that counter: a card whose
  online counter has passed a pending load's counter credited that load;
- GET TRANSACTION PROVE (type 02) answers the TAC of the card's last load by its counter:
  the issuer checks it with its DTK, which proves the credit of exactly that load.

So: a prove whose TAC verifies → confirmed; otherwise a card whose counter has passed
the load's → confirmed (by its log entry if the card still has it, else by the counter);
a card whose counter is still the load's → it never credited: the load is reversed. A
card that shows neither (its counter unreadable), or a counter *below* the load's (the
card's image was put back: refunding could pay twice), leaves the load pending.

``decide`` takes the evidence as given; the issuer first drops a counter the card did not
authenticate (``CardLoadEvidence.counter_proof``), so an unproven counter never reverses.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping

import attrs

MAX_BALANCE_FEN = 100_000  # ¥1,000.00: the purse's maximum (docs/card-profile.md)


def _hex12(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or len(value) != 12 or any(c not in "0123456789ABCDEF" for c in value):
        raise ValueError(f"{attribute.name} must be 12 upper-case hex digits, got {value!r}")


def _app_serial(_instance: object, _attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or len(value) != 20 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"an application serial is 20 digits, got {value!r}")


def _datetime14(_instance: object, attribute: attrs.Attribute, value: str) -> None:
    if not isinstance(value, str) or len(value) != 14 or not (value.isascii() and value.isdigit()):
        raise ValueError(f"{attribute.name} must be the 14 digits YYYYMMDDhhmmss, got {value!r}")


def _bytes_of(n: int) -> Callable[[object, attrs.Attribute, bytes], None]:
    def check(_instance: object, attribute: attrs.Attribute, value: bytes) -> None:
        if not isinstance(value, bytes) or len(value) != n:
            raise ValueError(f"{attribute.name} must be {n} bytes, got {value!r}")

    return check


def _fen(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{attribute.name} must be a non-negative int of fen, got {value!r}")


def _counter(_instance: object, attribute: attrs.Attribute, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 0xFFFF:
        raise ValueError(f"{attribute.name} must be a 2-byte counter, got {value!r}")


@attrs.frozen
class LoadRequest:
    """What the terminal sends the host after INITIALIZE FOR LOAD: the card's answer, as it was."""

    app_serial: str = attrs.field(validator=_app_serial)
    amount_fen: int = attrs.field(validator=_fen)
    terminal_no: str = attrs.field(validator=_hex12)
    balance_fen: int = attrs.field(validator=_fen)  # the card's balance before the load
    online_counter: int = attrs.field(validator=_counter)
    key_version: int
    algorithm_id: int
    random: bytes = attrs.field(validator=_bytes_of(4))
    mac1: bytes = attrs.field(validator=_bytes_of(4))
    # The terminal VERIFYed the holder's PIN on the card before INITIALIZE FOR LOAD: what an
    # unattended kiosk attests (``services.transit.kiosk_host``); a counter's clerk sees the holder instead.
    pin_verified: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))


@attrs.frozen
class LoadGrant:
    """The host's answer: the account is debited (pending); MAC2 and the date-time for CREDIT FOR LOAD."""

    load_id: str
    card_number: str
    mac2: bytes = attrs.field(validator=_bytes_of(4))
    date_time: str = attrs.field(validator=_datetime14)
    account_balance_fen: int | None  # None: paid in cash


@attrs.frozen
class PendingLoad:
    """A load the host debited and has not seen credited or refused yet."""

    load_id: str
    online_counter: int = attrs.field(validator=_counter)
    amount_fen: int = attrs.field(validator=_fen)
    balance_before_fen: int = attrs.field(validator=_fen)
    terminal_no: str = attrs.field(validator=_hex12)
    date_time: str = attrs.field(validator=_datetime14)


@attrs.frozen
class LoggedLoad:
    """A load entry of the card's own transaction log (SFI 18)."""

    counter: int = attrs.field(validator=_counter)
    amount_fen: int = attrs.field(validator=_fen)
    terminal_no: str = attrs.field(validator=_hex12)
    date_time: str = attrs.field(validator=_datetime14)


@attrs.frozen
class CardLoadEvidence:
    """What the card in the terminal shows about its loads.

    ``online_counter`` is None when the card would not say (a full purse refuses even a
    1-fen INITIALIZE FOR LOAD); ``proves`` maps an online counter to the TAC GET TRANSACTION
    PROVE gave for it. ``counter_proof``: the card's whole answer to that 1-fen INITIALIZE
    FOR LOAD (as a ``LoadRequest`` of 1 fen), whose MAC1 the issuer checks with the card's
    DLK: only a counter so proven may reverse a load (or confirm one by the counter) — a
    counter alone is a number anyone asking ``pending`` has seen.
    """

    app_serial: str = attrs.field(validator=_app_serial)
    balance_fen: int | None
    online_counter: int | None
    proves: Mapping[int, bytes] = attrs.field(factory=dict)
    logged: tuple[LoggedLoad, ...] = ()
    counter_proof: LoadRequest | None = None


class Outcome(enum.Enum):
    CONFIRM = "confirm"
    REVERSE = "reverse"
    UNDECIDED = "undecided"


@attrs.frozen
class Decision:
    outcome: Outcome
    how: str  # prove | log | counter | unknown
    tac: bytes | None = None


def decide(load: PendingLoad, card: CardLoadEvidence, tac_verifies: Callable[[bytes], bool]) -> Decision:
    """Confirm, reverse or leave a pending load, from the card's evidence (see the module doc).

    ``tac_verifies(tac)`` is the issuer's check of a TAC against this load (its DTK).
    """
    tac = card.proves.get(load.online_counter)
    if tac is not None and tac_verifies(tac):
        return Decision(Outcome.CONFIRM, "prove", tac)
    logged = any(
        (e.counter, e.amount_fen, e.terminal_no, e.date_time)
        == (load.online_counter, load.amount_fen, load.terminal_no, load.date_time)
        for e in card.logged
    )
    if card.online_counter is not None:
        if card.online_counter > load.online_counter:
            return Decision(Outcome.CONFIRM, "log" if logged else "counter")
        if card.online_counter == load.online_counter:
            return Decision(Outcome.REVERSE, "counter")
        # Below the counter the card itself gave for this load: its image was put back.
        # Refunding now could pay twice; staff look at it (the card stays pending).
        return Decision(Outcome.UNDECIDED, "counter_back")
    if logged:
        return Decision(Outcome.CONFIRM, "log")
    return Decision(Outcome.UNDECIDED, "unknown")
