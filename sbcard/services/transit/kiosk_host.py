"""The purse host as a load kiosk reaches it (自助圈存): ``PurseHost`` with the kiosk as its operator.

A kiosk (``sbcard.services.terminals.kiosk``) is not staff: nobody signs in at it. So the
operator of record of its loads — in the ledger transaction, the ``purse_loads`` row, the
audit and any reversal — is the kiosk itself, ``terminal:<id>`` (as the host API's other
terminal acts are audited), and the outlet is the kiosk's registered outlet: both from the
register, never from a request. What differs from a counter's ``PurseHost``:

- **money from the holder's financial account only**: no till, no cash, at a kiosk;
- **its own terminal number**: a load request naming another is refused
  (``kiosk.terminal_no``), so the card's TAC and log name the kiosk that loaded it;
- **the holder's PIN**: the kiosk VERIFYs it on the card before INITIALIZE FOR LOAD and
  says so in its signed request (``LoadRequest.pin_verified``); a request without it is
  refused (``kiosk.pin_unverified``). The host cannot see the card: this is the kiosk's
  attestation, believed on its credential as a validator's PSAM is believed for a tap;
- **unattended limits** (``sbcard.domain.kiosk_load``), checked in the debit's transaction
  by the card's issuer (``PurseHost.channel`` ``KIOSK``; for another region's card served by
  another process, that process is told the load is a kiosk's and checks them).

Tears and lost answers are settled exactly as at a counter (``PurseHost.settle``, the next
load settles first), reversals recorded as the kiosk's.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain import kiosk_load
from sbcard.domain.errors import RuleRefused
from sbcard.domain.purse_load import LoadGrant, LoadRequest
from sbcard.services.exchange import lookup
from sbcard.services.outlets.staff import Forbidden
from sbcard.services.terminals import kiosk
from sbcard.services.transit import purse_host
from sbcard.services.transit.purse_host import PurseHost
from sbcard.store.world import World


def operator_of(terminal_id: str) -> str:
    """A kiosk's operator of record: the kiosk itself."""
    return f"terminal:{terminal_id}"


class KioskHost(PurseHost):
    """``PurseHost`` for one registered kiosk (its register row), at ``now``."""

    channel = purse_host.KIOSK  # settles from what the card proves only; the issuer checks the limits

    def __init__(self, world: World, terminal: dict[str, Any], *, now: dt.datetime) -> None:
        outlet = kiosk.outlet_of(terminal)
        if outlet is None:
            raise Forbidden("terminal.not_kiosk", f"terminal {terminal['id']} is not a load kiosk (`sbcard terminal "
                            "add --kind kiosk --outlet CODE`)", "terminal")
        # not PurseHost.__init__: the operator is the kiosk, not a member of staff to look up
        self.world, self.now, self.outlet, self.cash = world, now, outlet, False
        self.terminal = terminal
        self.operator = operator_of(terminal["id"])
        self.node = terminal["node"]
        self.outlet_node = lookup.get_outlet(world, outlet)["node"]
        self._issuers: dict[str, str] = {}
        self.corrections: list[dict[str, Any]] = []

    def begin_load(self, request: LoadRequest) -> LoadGrant:
        if request.terminal_no != self.terminal["terminal_no"].upper():
            raise RuleRefused("kiosk.terminal_no", f"this kiosk's terminal number is {self.terminal['terminal_no']}, "
                              f"not {request.terminal_no}: the card's INITIALIZE FOR LOAD must name it",
                              "terminal_no")
        if not request.pin_verified:
            raise RuleRefused("kiosk.pin_unverified", "a kiosk loads only after the holder's PIN was verified on the "
                              "card (VERIFY before INITIALIZE FOR LOAD)", "pin_verified")
        if request.amount_fen > kiosk_load.MAX_LOAD_FEN:  # before anything is looked at or taken back
            kiosk_load.check_unattended_load(request.amount_fen, 0)
        return super().begin_load(request)



# Fen loaded at kiosks onto the card on a Beijing day: checked by the card's issuer (``purse_host``).
loaded_today = purse_host.kiosk_loaded_today
