"""Self-service load kiosks (自助圈存机): registered terminals of a service outlet.

A kiosk is a terminal of the register like a gate or a POS, with its own terminal number,
PSAM (without any issuer's purchase keys or an upload key: it never debits a card) and
host credential (``register_terminal``), whose ``operator`` is the code of the
outlet it stands at (``BJ-110105-01``), as a POS's is its hospital's code: its id is
``<outlet>-<nnnn>`` (``BJ-110105-01-0001``) and it belongs to the outlet's region. That is
its *kind*: ``outlet_of(row)`` is the outlet of a kiosk and None for any other terminal,
so the host API's load routes answer kiosks only (``sbcard.api.routes.kiosk_host``). Its
loads are recorded at that outlet, under its own terminal number, with the kiosk itself
(``terminal:<id>``) as the operator of record (``sbcard.services.transit.kiosk_host``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain.errors import InvalidInput
from sbcard.domain.outlets import OutletCode
from sbcard.services.exchange import lookup
from sbcard.services.terminals.register import Install, register_terminal
from sbcard.store.world import World

KIND = "kiosk"


def add_kiosk(world: World, outlet: str, *, now: dt.datetime, install: Install) -> dict[str, Any]:
    """Register a load kiosk at ``outlet`` (an outlet of the register, any kind); ``install`` makes its directory."""
    if not isinstance(outlet, str) or not outlet.strip():
        raise InvalidInput("terminal.outlet", "a kiosk stands at an outlet: give --outlet", "--outlet")
    row = lookup.get_outlet(world, outlet)  # NotFound outlet.unknown; the code parsed and normalised
    code = row["code"]
    more = {"station_code": None, "gate": "both", "line": None, "area": None, "full_fare_fen": None,
            "kind": KIND, "outlet": code}
    return register_terminal(world, node=row["node"], operator=code, station=row["name"], more=more, now=now,
                             install=install, purse_records=False)  # it loads; it never debits a card


def outlet_code(text: str) -> OutletCode | None:
    """The outlet code ``text`` is (as a terminal's operator), or None."""
    try:
        return OutletCode.parse(text)
    except InvalidInput:
        return None


def outlet_of(terminal: dict[str, Any]) -> str | None:
    """The outlet of a registered kiosk; None for any other terminal (a gate, a validator, a POS)."""
    operator = terminal.get("operator") or ""
    code = outlet_code(operator)
    return str(code) if code is not None and str(code) == operator else None
