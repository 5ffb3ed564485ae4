"""A hospital's point of sale as a registered terminal: its identity on the host API.

``sbcard medical settle`` runs the POS in process and names the hospital by ``--hospital``;
over the network a POS must prove which hospital it is. ``add_pos`` registers one in the
hospital's region like any terminal with a PSAM (``register_terminal``: a row of
``terminals`` whose operator is the hospital's code, a terminal number, a credential), and
``hospital_of`` gives back the hospital of a registered POS (None for a transit or venue
terminal): a POS settles claims of its own hospital only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sbcard.domain import medical
from sbcard.reference import medical as ref
from sbcard.services.medical.routing import hospital_node
from sbcard.services.terminals.register import Install, register_terminal
from sbcard.store.world import World


def is_hospital(code: str) -> bool:
    return (code or "").strip().upper() in ref.hospitals()


def add_pos(world: World, hospital_code: str, *, now: dt.datetime, install: Install) -> dict[str, Any]:
    """Register a point of sale of the hospital (id ``<hospital>-<nnnn>``); ``install`` makes its directory."""
    hospital = ref.hospital(hospital_code)
    more = {"station_code": None, "gate": "both", "line": None, "area": None, "full_fare_fen": None}
    return register_terminal(world, node=hospital_node(hospital), operator=hospital.code, station=hospital.name,
                             more=more, now=now, install=install)


def hospital_of(terminal: dict[str, Any]) -> medical.Hospital | None:
    """The hospital whose POS this registered terminal is, or None."""
    return ref.hospitals().get(terminal["operator"])
