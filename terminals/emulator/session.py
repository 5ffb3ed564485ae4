"""What a command handler sees: the card's image, its journal and the power-on session.

The session is the card's RAM — the selected DF, who authenticated, whether the PIN was
presented, the last challenge and a pending purse transaction. Power-on starts a fresh
one. The guards below are the card's access rules (docs/card-profile.md, "Life cycle"
and "Keys and access rules"); handlers call them before anything else, so a command
first learns whether it may run at all, then whether it is well formed.
"""

from __future__ import annotations

from typing import Any, Protocol

import attrs

from sbcard.chip import sw as status_words
from sbcard.chip.crypto import Algorithm
from sbcard.chip.profile import KeyUsage, LifeState
from sbcard.chip.sw import CardStatus
from terminals.emulator.image import MF, TU, CardState, KeyEntry
from terminals.emulator.journal import Journal

# Where each key lives: the card-level keys in the MF, the purse keys in T-Union.
KEY_DF = {
    KeyUsage.TRANSPORT: MF,
    KeyUsage.MAINTENANCE: MF,
    KeyUsage.PURCHASE: TU,
    KeyUsage.LOAD: TU,
    KeyUsage.TAC: TU,
    KeyUsage.APP_MAINTENANCE: TU,
}


class RandomSource(Protocol):
    def randbytes(self, n: int) -> bytes: ...


@attrs.define
class PendingPurchase:
    """Between INITIALIZE FOR (CAPP) PURCHASE and DEBIT FOR PURCHASE."""

    txn_type: int
    alg: Algorithm
    dpk: bytes
    amount: int
    terminal_no: bytes
    counter: int  # the offline counter INITIALIZE returned
    random: bytes
    capp_records: dict[int, bytes] = attrs.Factory(dict)  # staged UPDATE CAPP DATA CACHE


@attrs.define
class PendingLoad:
    """Between INITIALIZE FOR LOAD and CREDIT FOR LOAD."""

    alg: Algorithm
    session_key: bytes
    amount: int
    terminal_no: bytes
    counter: int  # the online counter INITIALIZE returned


@attrs.define
class Session:
    state: CardState
    journal: Journal
    rng: Any  # RandomSource
    current_df: str = MF
    authenticated: KeyUsage | None = None  # the key of the last EXTERNAL AUTHENTICATE
    pin_verified: bool = False
    challenge: bytes | None = None
    pending: PendingPurchase | PendingLoad | None = None
    store_data_block: int = 0  # the P2 the next STORE DATA must carry (00 after ERASE or authentication)

    # --- guards -------------------------------------------------------------------------

    def require_personalised(self) -> None:
        """Application data, the purse and the PIN: 6985 until personalisation finished."""
        if self.state.life_state is not LifeState.PERSONALISED:
            raise CardStatus(status_words.CONDITIONS_NOT_SATISFIED, "the card is not personalised")

    def require_write_access(self) -> None:
        """A personalisation write: after ERASE, under TK; once personalised, under MK."""
        life = self.state.life_state
        if life is LifeState.BLANK:
            raise CardStatus(status_words.CONDITIONS_NOT_SATISFIED, "a blank card takes no writes before ERASE")
        needed = KeyUsage.TRANSPORT if life is LifeState.PERSONALISING else KeyUsage.MAINTENANCE
        if self.authenticated is not needed:
            raise CardStatus(status_words.SECURITY_NOT_SATISFIED, f"writing needs EXTERNAL AUTHENTICATE with {needed.name}")

    def require_df(self, df: str) -> None:
        if self.current_df != df:
            raise CardStatus(status_words.CONDITIONS_NOT_SATISFIED, f"{df} is not selected")

    # --- helpers ------------------------------------------------------------------------

    def key(self, usage: KeyUsage, index: int) -> KeyEntry | None:
        return self.state.keys.get((KEY_DF[usage], usage, index))

    def take_challenge(self) -> bytes:
        """The last GET CHALLENGE's bytes; a challenge serves one authentication only."""
        challenge, self.challenge = self.challenge, None
        if challenge is None:
            raise CardStatus(status_words.CONDITIONS_NOT_SATISFIED, "no challenge: GET CHALLENGE first")
        return challenge


def require(condition: bool, sw: int, message: str | None = None) -> None:
    """``raise CardStatus(sw)`` unless ``condition`` — keeps handler checks one line each."""
    if not condition:
        raise CardStatus(sw, message)


def require_length(data: bytes, *lengths: int) -> None:
    if len(data) not in lengths:  # the message is made only when it is needed: every command checks
        raise CardStatus(status_words.WRONG_LENGTH, f"data of {len(data)} bytes, expected {' or '.join(map(str, lengths))}")


def require_p1p2(p1: int, p2: int, expected: tuple[int, int]) -> None:
    if (p1, p2) != expected:
        raise CardStatus(status_words.WRONG_P1P2, f"P1 P2 {p1:02X} {p2:02X}, expected {expected[0]:02X} {expected[1]:02X}")
