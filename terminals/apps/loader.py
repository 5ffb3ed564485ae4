"""The load terminal (圈存): a counter's reader or a self-service machine moving money from the
holder's financial account into the card's purse.

It drives the card in a ``Reader`` and reaches the card's issuer only through the
``LoadHost`` port, which the composition root (``sbcard/cli``) wires to
``sbcard.services.transit.purse_host``:

    SELECT T-Union → (settle the card's pending loads, below) → INITIALIZE FOR LOAD →
    host.begin_load (MAC1 checked, account debited, MAC2) → CREDIT FOR LOAD → TAC →
    host.confirm_load

Before every load, and on demand (``recover``), the terminal asks the host for the card's
pending loads — a load the host debited but never saw credited, because the card was
torn, an answer was lost or a process died — and shows the host what the card says about
them: GET TRANSACTION PROVE type 02 for each pending counter (the TAC of the card's last
load), the card's online counter (from a 1-fen INITIALIZE FOR LOAD that is never
completed) and, if the counter cannot be had, the loads in the card's log. The host
confirms or reverses each (``sbcard.domain.purse_load.decide``); a load is refused while
one stays pending. Every APDU is a command value of ``sbcard.chip.commands``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

from sbcard.chip import profile
from sbcard.chip.commands import (
    CreditForLoad,
    GetBalance,
    GetTransactionProve,
    InitializeForLoad,
    Verify,
    read_transaction_log,
    select_tunion,
)
from sbcard.chip.purse import EP_LOAD
from sbcard.chip.reader import CountingReader, Reader
from sbcard.chip.sw import AuthenticationBlocked, ConditionsNotSatisfied, MacNotAvailable, WrongPin
from sbcard.domain.errors import InvalidInput, RuleRefused
from sbcard.domain.money import format_fen
from sbcard.domain.purse_load import (
    MAX_BALANCE_FEN,
    CardLoadEvidence,
    LoadGrant,
    LoadRequest,
    LoggedLoad,
    PendingLoad,
)

# ----------------------------------------------------------------------------- host port


class LoadHost(Protocol):
    """The card's issuer, as the load terminal sees it."""

    def pending_loads(self, app_serial: str) -> Sequence[PendingLoad]:
        """The card's loads the host debited and has not seen settled."""
        ...

    def settle(self, evidence: CardLoadEvidence) -> list[Any]:
        """Confirm or reverse the card's pending loads from what the card shows."""
        ...

    def begin_load(self, request: LoadRequest) -> LoadGrant:
        """Check MAC1, the maximum and the account; debit the account; answer MAC2."""
        ...

    def confirm_load(self, app_serial: str, online_counter: int, tac: bytes) -> Any:
        """The card's TAC for the load: the host records it credited."""
        ...


# ----------------------------------------------------------------------------- outcomes


@attrs.frozen
class Recovery:
    app_serial: str
    balance_fen: int
    settled: list[Any]  # what the host did with each pending load
    apdus: int


@attrs.frozen
class LoadOutcome:
    app_serial: str
    card_number: str
    load_id: str
    amount_fen: int
    balance_fen: int  # the purse after the load
    account_balance_fen: int | None  # None: paid in cash
    online_counter: int  # the load's (INITIALIZE's) counter
    tac: bytes
    confirmed: Any  # what the host recorded
    settled: list[Any]  # pending loads settled before this one
    apdus: int

    def to_dict(self, *, paid: str, terminal_no: bytes, corrections: Any) -> dict[str, Any]:
        """The load as ``sbcard transit load --json`` and the counter's API answer it (the same keys)."""
        return {
            "card_number": self.card_number,
            "app_serial": self.app_serial,
            "node": self.confirmed["node"],
            "load_id": self.load_id,
            "amount_fen": self.amount_fen,
            "balance_fen": self.balance_fen,
            "account_balance_fen": self.account_balance_fen,
            "paid": paid,
            "online_counter": self.online_counter,
            "tac": self.tac.hex().upper(),
            "terminal_no": terminal_no.hex().upper(),
            "settled": self.settled,
            "corrections": corrections,
            "apdus": self.apdus,
        }


# ----------------------------------------------------------------------------- the card


def select_purse(reader: Reader) -> str:
    """Select T-Union; the card's application serial (refused if the card has no purse)."""
    fci = select_tunion().send(reader)
    if fci.tunion is None:
        raise RuleRefused("card.no_purse", "the card in the reader has no T-Union purse (not personalised?)",
                          "--reader")
    return fci.tunion.app_serial


def card_evidence(reader: Reader, app_serial: str, pending: Sequence[PendingLoad],
                  terminal_no: bytes) -> CardLoadEvidence:
    """What the card (T-Union selected) shows about its loads, for the host to settle ``pending``."""
    balance = GetBalance().send(reader)
    proves: dict[int, bytes] = {}
    for load in pending:
        try:
            proves[load.online_counter] = GetTransactionProve(EP_LOAD, load.online_counter).send(reader).tac
        except MacNotAvailable:
            pass
    proof: LoadRequest | None = None
    try:
        # Never completed: the next INITIALIZE, or the end of the session, drops it. Its MAC1 (the card's DLK)
        # is what proves the counter to the issuer: without it the host reverses nothing.
        init = InitializeForLoad(profile.CARD_KEY_INDEX, 1, terminal_no).send(reader)
        counter: int | None = init.online_counter
        proof = LoadRequest(app_serial=app_serial, amount_fen=1, terminal_no=terminal_no.hex().upper(),
                            balance_fen=init.balance, online_counter=init.online_counter,
                            key_version=init.key_version, algorithm_id=init.algorithm.id_byte, random=init.random,
                            mac1=init.mac1)
    except ConditionsNotSatisfied:  # a full purse takes not even 1 fen
        counter = None
    logged: tuple[LoggedLoad, ...] = ()
    if counter is None:
        logged = tuple(
            LoggedLoad(counter=r.counter, amount_fen=r.amount, terminal_no=r.terminal_no.hex().upper(),
                       date_time=r.at.strftime("%Y%m%d%H%M%S"))
            for r in read_transaction_log(reader) if r.txn_type == EP_LOAD
        )
    return CardLoadEvidence(app_serial=app_serial, balance_fen=balance, online_counter=counter, proves=proves,
                            logged=logged, counter_proof=proof)


def _settle(reader: Reader, host: LoadHost, app_serial: str, terminal_no: bytes) -> list[Any]:
    pending = list(host.pending_loads(app_serial))
    if not pending:
        return []
    return list(host.settle(card_evidence(reader, app_serial, pending, terminal_no)))


# ----------------------------------------------------------------------------- the flows


def recover(reader: Reader, host: LoadHost, terminal_no: bytes) -> Recovery:
    """Settle the card's pending loads, if any (a load does this first by itself)."""
    _check_terminal_no(terminal_no)
    counting = CountingReader(reader)
    app_serial = select_purse(counting)
    settled = _settle(counting, host, app_serial, terminal_no)
    balance = GetBalance().send(counting)
    return Recovery(app_serial, balance, settled, counting.count)


def load(reader: Reader, host: LoadHost, amount_fen: int, terminal_no: bytes, *, pin: str | None = None) -> LoadOutcome:
    """Load ``amount_fen`` from the holder's account onto the purse of the card in ``reader``.

    ``pin``: the holder's PIN, VERIFYed on the card before INITIALIZE FOR LOAD (a kiosk, where
    no clerk sees the holder); the request to the host then says so (``pin_verified``). A wrong
    PIN ends the load before the host is asked for money.
    """
    _check_terminal_no(terminal_no)
    if isinstance(amount_fen, bool) or not isinstance(amount_fen, int) or amount_fen <= 0:
        raise InvalidInput("load.amount", "the amount to load must be more than ¥0.00", "--amount")
    if pin is not None:
        try:
            Verify(pin)  # the PIN's form, before the card is touched
        except InvalidInput as e:
            raise InvalidInput(e.code, e.message, "--pin") from None
    if amount_fen > MAX_BALANCE_FEN:  # whatever the purse holds (and before the card's 4-byte amount is built)
        raise RuleRefused("purse.max_balance", f"loading {format_fen(amount_fen)} would pass the purse's maximum of "
                          f"{format_fen(MAX_BALANCE_FEN)}", "--amount")
    counting = CountingReader(reader)
    app_serial = select_purse(counting)
    settled = _settle(counting, host, app_serial, terminal_no)
    if pin is not None:
        verify_pin(counting, pin)
    try:
        init = InitializeForLoad(profile.CARD_KEY_INDEX, amount_fen, terminal_no).send(counting)
    except ConditionsNotSatisfied:
        balance = GetBalance().send(counting)
        if balance + amount_fen > MAX_BALANCE_FEN:
            raise RuleRefused(
                "purse.max_balance",
                f"the purse holds {format_fen(balance)}; loading {format_fen(amount_fen)} would pass its maximum of "
                f"{format_fen(MAX_BALANCE_FEN)}", "--amount") from None
        raise
    grant = host.begin_load(LoadRequest(
        app_serial=app_serial, amount_fen=amount_fen, terminal_no=terminal_no.hex().upper(),
        balance_fen=init.balance, online_counter=init.online_counter, key_version=init.key_version,
        algorithm_id=init.algorithm.id_byte, random=init.random, mac1=init.mac1, pin_verified=pin is not None,
    ))
    tac = CreditForLoad(bytes.fromhex(grant.date_time), grant.mac2).send(counting)
    confirmed = host.confirm_load(app_serial, init.online_counter, tac)
    return LoadOutcome(
        app_serial=app_serial, card_number=grant.card_number, load_id=grant.load_id, amount_fen=amount_fen,
        balance_fen=init.balance + amount_fen, account_balance_fen=grant.account_balance_fen,
        online_counter=init.online_counter, tac=tac, confirmed=confirmed, settled=settled, apdus=counting.count,
    )


def verify_pin(reader: Reader, pin: str) -> None:
    """VERIFY the holder's PIN on the card (it never leaves the terminal); refused with the tries left, or blocked."""
    try:
        Verify(pin).send(reader)
    except WrongPin as wrong:
        if wrong.tries_left:
            raise RuleRefused("pin.wrong", f"wrong PIN: {wrong.tries_left} tries left", "--pin") from None
        raise RuleRefused("pin.blocked", "wrong PIN, 0 tries left: the PIN is now blocked; have it reset at a "
                          "counter", "--pin") from None
    except AuthenticationBlocked:
        raise RuleRefused("pin.blocked", "PIN blocked: reset at a counter", "--pin") from None


def _check_terminal_no(terminal_no: bytes) -> None:
    if not isinstance(terminal_no, bytes) or len(terminal_no) != 6:
        raise ValueError(f"a terminal number is 6 bytes, got {terminal_no!r}")
