"""The counter terminal: the issuance station at a service outlet (即时制卡).

It drives the card in a ``Reader`` and reaches the issuing region's service only through
the host ports below, which the composition root (``sbcard/cli``) wires to
``sbcard.services``. A host hands out its work as a context manager — leaving the block
without ``record`` abandons it, and the host keeps nothing — so the card is written
*inside* the host's transaction and the host records it only after the card has been
read back and checked:

- ``issue``: chip info → the host prepares the data for this chip (card number, 卡识别码,
  keys) → personalise, read back and compare → the host records the card issued. A card
  torn on the way is never recorded and stays a blank that ``issue`` can start again.
- ``activate``: read the card → the holder's new PIN is checked against the rule → the
  host opens the card's account → the PIN is set under the card maintenance key → the
  host records the card active.

The single-card functions (``set_pin``, ``change_pin``, ``pin_tries_left``) serve PIN
change and reset at the counter as well; ``read_concession`` and ``write_concession``
read and write the transit concession (T-Union EF 0017) when staff enable one.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

import attrs

from sbcard.chip import profile
from sbcard.chip.commands import (
    ChangePin,
    ChipInfo,
    GetChipInfo,
    PinTriesLeft,
    ReadBinary,
    ResetRetryCounter,
    SelectMF,
    UpdateBinary,
    external_authenticate,
    select_tunion,
)
from sbcard.chip.keys import CardKeys
from sbcard.chip.personalisation import CardData, PersonalisationResult
from sbcard.chip.personalisation import personalise as _personalise
from sbcard.chip.reader import CountingReader, Reader
from sbcard.chip.reading import CardSnapshot, read_card
from sbcard.domain.errors import RuleRefused
from sbcard.domain.pin import check_new_pin

# ----------------------------------------------------------------------------- host ports


class IssuanceOrder(Protocol):
    """One card's prepared data, held open by the host until recorded or abandoned."""

    card: CardData
    keys: CardKeys

    def record(self, result: PersonalisationResult) -> Any:
        """The card is written and checked: the host records it issued (and commits)."""
        ...


class IssuingHost(Protocol):
    def issuance(self, chip: ChipInfo) -> AbstractContextManager[IssuanceOrder]:
        """Prepare the card for the blank with this chip; refuses a chip it may not use."""
        ...


class ActivationOrder(Protocol):
    keys: CardKeys  # the card's keys: the maintenance key opens the PIN reset

    def record(self) -> Any:
        """The holder's PIN is on the card: the host records the card active (and commits)."""
        ...


class ActivationHost(Protocol):
    def activation(self, snapshot: CardSnapshot) -> AbstractContextManager[ActivationOrder]:
        """Open the activation of the card read as ``snapshot``; refuses another card."""
        ...


# ----------------------------------------------------------------------------- the card


def chip_info(reader: Reader) -> ChipInfo:
    """The chip serial and life state: what the counter knows of a card before anything else."""
    return GetChipInfo().send(reader)


def personalise(reader: Reader, card: CardData, keys: CardKeys) -> PersonalisationResult:
    """Write ``card`` and ``keys`` on the card, read it back and compare every field."""
    return _personalise(reader, card, keys)


def read_back(reader: Reader) -> CardSnapshot:
    """Everything the card shows a terminal (application data only once personalised)."""
    return read_card(reader)


def set_pin(reader: Reader, keys: CardKeys, pin: str) -> None:
    """Set the holder's PIN (and its 3 tries) under the card maintenance key: issuer only.

    The caller checks the PIN against the holder's rule first (``check_new_pin``).
    """
    SelectMF().send(reader)  # the PIN and MK are the card's, at MF level
    external_authenticate(reader, keys.maintenance, profile.CARD_KEY_INDEX, keys.algorithm)
    ResetRetryCounter(pin).send(reader)


def change_pin(reader: Reader, old: str, new: str) -> None:
    """The holder changes their PIN with the old one; ``WrongPin`` (63Cx) or
    ``AuthenticationBlocked`` (6983) when the old PIN is wrong or blocked."""
    SelectMF().send(reader)
    ChangePin(old, new).send(reader)


def pin_tries_left(reader: Reader) -> int:
    """How many PIN tries the card has left; asking costs none."""
    return PinTriesLeft().send(reader)


def read_concession(reader: Reader) -> bytes:
    """The T-Union application's EF 0017 (management and concession data, 64 bytes); open to read."""
    select_tunion().send(reader)
    return ReadBinary(profile.SFI_TU_MANAGEMENT, 0, profile.TU_MANAGEMENT_LEN).send(reader)


def write_concession(reader: Reader, keys: CardKeys, data0017: bytes) -> None:
    """Write EF 0017 (a concession enabled, locked or cleared) under the card maintenance key: issuer only.

    The caller builds the 64 bytes with ``sbcard.domain.concessions.encode_0017``.
    """
    if len(data0017) != profile.TU_MANAGEMENT_LEN:
        raise ValueError(f"EF 0017 is {profile.TU_MANAGEMENT_LEN} bytes, got {len(data0017)}")
    SelectMF().send(reader)  # MK is the card's, at MF level; the authentication survives the SELECT below
    external_authenticate(reader, keys.maintenance, profile.CARD_KEY_INDEX, keys.algorithm)
    select_tunion().send(reader)
    UpdateBinary(profile.SFI_TU_MANAGEMENT, 0, data0017).send(reader)


# ----------------------------------------------------------------------------- the flows


@attrs.frozen
class Outcome:
    record: Any  # what the host recorded
    apdus: int  # every APDU the flow exchanged with the card


def issue(reader: Reader, host: IssuingHost) -> Outcome:
    """Issue the blank in ``reader``; the host records it once the card reads back right."""
    counting = CountingReader(reader)
    chip = chip_info(counting)
    with host.issuance(chip) as order:
        result = personalise(counting, order.card, order.keys)
        return Outcome(order.record(result), counting.count)


def activate(reader: Reader, host: ActivationHost, pin: str) -> Outcome:
    """Activate the issued card in ``reader`` with the holder's new ``pin``."""
    counting = CountingReader(reader)
    snapshot = read_back(counting)
    if not snapshot.personalised or snapshot.card_number is None:
        raise RuleRefused(
            "card.not_personalised",
            f"the card in the reader is {snapshot.life_state.name.lower()}, not an issued card",
            "--reader",
        )
    check_new_pin(pin, birth_date=snapshot.birth_date)
    with host.activation(snapshot) as order:
        set_pin(counting, order.keys, pin)
        return Outcome(order.record(), counting.count)
