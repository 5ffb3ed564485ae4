"""The register of transit terminals, and what a terminal takes from the world.

A terminal (a metro gate, a bus validator) belongs to its operator's region: its row is
in that region's ``terminals`` table (``<operator>-<nnnn>``, a terminal number = the
region's code ‖ a 6-digit sequence, a PSAM id). Its own state — PSAM, offline log,
blacklist copy — lives in its directory under ``<home>/terminals/<id>/``, which the
composition root makes with ``terminals.apps.terminal_state`` (the core never imports
``terminals``): ``add_terminal`` hands it, inside the region's transaction, what the
terminal needs — the PSAM's consumer keys of every issuing region (each region's
purchase and application maintenance masters: the national key system loads every
issuer's into every PSAM, which is how a Tianjin card is debited on a Beijing gate) and
the hub's current blacklist — and commits the row only once ``install`` has made it.
The row ``install`` receives also carries ``upload_key`` (``UploadKey``): the PSAM's key for
MACing its upload batches, the terminal's region's UMK master diversified by the terminal
number (``sbcard.chip.upload_batch``); the host recomputes it to believe a batch, and it is
never stored in the region. ``upload_key(world, terminal_id)`` gives it again, for a PSAM
made before upload keys (loaded once). It carries ``host_credential`` too: the key the
terminal signs its requests to the host API with (``sbcard.chip.terminal_auth``, derived
from the same master with another label; ``sbcard.services.terminals.credentials``).

``sync`` is what a terminal fetches when it goes online: the blacklist as of the hub's
latest version and the concessions revoked as of it (``services.exchange.concession_list``: the
same version numbers), after which
``record_sync`` notes the version the terminal reported.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

import attrs
import sqlite_utils

from sbcard.chip import terminal_auth, upload_batch
from sbcard.chip.crypto import Algorithm
from sbcard.chip.transit import CAPP_OPERATOR_CODES
from sbcard.domain.errors import InvalidInput, NotFound
from sbcard.domain.outlets import OutletCode
from sbcard.reference.medical import hospitals
from sbcard.reference.transit import load_tariff
from sbcard.reference.venues import venues
from sbcard.services.exchange import peers
from sbcard.services.outlets import audit
from sbcard.services.cards.keys import issuer_masters, upload_master
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World

GATES = ("entry", "exit", "both")
AREAS = ("city", "suburb")
SEQ_TERMINAL_NO = "terminal_no"


@attrs.frozen
class ConsumerKeys:
    """One issuing region's keys for PSAMs: the purchase and application maintenance masters."""

    node: str
    issuer_id: str  # the province's BCD code ‖ 0000000000 (16 hex), what EF 0015 starts with
    algorithm: str  # "SM4" | "3DES"
    version: int
    purchase_master: bytes = attrs.field(repr=False)
    app_maintenance_master: bytes = attrs.field(repr=False)


@attrs.frozen
class BlacklistCopy:
    version: int
    published_at: str | None
    cards: frozenset[str]
    revoked_concessions: frozenset[tuple[str, str]]  # (card number, kind): full fare from now on


@attrs.frozen
class UploadKey:
    """A terminal's upload key, for its PSAM (never stored by the region: derived again when checked)."""

    algorithm: Algorithm
    key: bytes = attrs.field(repr=False)


def terminal_upload_key(db: sqlite_utils.Database, terminal_no: str) -> UploadKey:
    """The upload key of the terminal numbered ``terminal_no`` in the region of ``db``."""
    alg, master = upload_master(db)
    return UploadKey(alg, upload_batch.upload_key(alg, master, bytes.fromhex(terminal_no)))


def upload_key(world: World, terminal_id: str) -> UploadKey:
    """A registered terminal's upload key: loaded into a PSAM made before upload keys."""
    row = get_terminal(world, terminal_id)
    return terminal_upload_key(world.region(row["node"]), row["terminal_no"])


def has_uploaded(world: World, terminal_id: str) -> bool:
    """Whether the host took a batch of the terminal's (its PSAM's MAC verified: the PSAM holds its upload key)."""
    row = get_terminal(world, terminal_id)
    return world.region(row["node"]).execute("SELECT 1 FROM transit_uploads WHERE terminal = ? LIMIT 1",
                                              [terminal_id]).fetchone() is not None


def record_upload_key_served(world: World, terminal_id: str, *, now: dt.datetime) -> None:
    """The upload key was handed to the terminal (over the host API): audited in its region."""
    row = get_terminal(world, terminal_id)
    with UnitOfWork(world.region(row["node"])) as uow:
        audit.record(uow.db, at=now, operator=f"terminal:{terminal_id}", action="terminal_upload_key",
                     subject=terminal_id)
        uow.commit()


Install = Callable[[dict[str, Any], list[ConsumerKeys], BlacklistCopy], None]


def consumer_keys(world: World) -> list[ConsumerKeys]:
    """Every region's PSAM keys, from its issuer masters (``sbcard init`` made them)."""
    out = []
    for node, region in REGION_NODES.items():
        masters = issuer_masters(world.region(node))
        out.append(
            ConsumerKeys(
                node=node,
                issuer_id=region + "0000000000",
                algorithm=masters.algorithm.value,
                version=masters.version,
                purchase_master=masters.purchase,
                app_maintenance_master=masters.app_maintenance,
            )
        )
    return out


def blacklist_copy(world: World, version: int | None = None) -> BlacklistCopy:
    """The hub's blacklist as of its latest version (or ``version``, an earlier one), as a terminal copies it
    (asked of the hub's process when this world holds one region: ``sbcard.services.exchange.peers``)."""
    lists = peers.ask(world, HUB, "directory.lists", **({} if version is None else {"version": version}))
    return BlacklistCopy(
        version=lists["version"],
        published_at=lists["published_at"],
        cards=frozenset(lists["blacklist"]),
        revoked_concessions=frozenset((card, kind) for card, kind in lists["revoked_concessions"]),
    )


def _validate(operator: str, station: str | None, gate: str, line: str | None, area: str | None,
              full_fare_fen: int | None) -> tuple[Any, str | None, str | None]:
    """The operator's info, the station as the network names it (a metro needs one) and its code.

    A name that names several stations (the airport express's 东直门) is the first listed;
    give the 8-digit code to choose another."""
    tariff = load_tariff()
    info = tariff.operator(operator)
    code = None
    if gate not in GATES:
        raise InvalidInput("terminal.gate", f"{gate!r} is not a gate ({', '.join(GATES)})", "--gate")
    if area is not None and area not in AREAS:
        raise InvalidInput("terminal.area", f"{area!r} is not an area ({', '.join(AREAS)})", "--area")
    if full_fare_fen is not None and full_fare_fen <= 0:
        raise InvalidInput("terminal.full_fare", "a line's full fare is a positive amount", "--full-fare")
    if info.mode == "metro":
        if operator not in CAPP_OPERATOR_CODES:
            raise InvalidInput("terminal.operator", f"{operator} has no operator code for the cards' capp record "
                               "(docs/card-profile.md)", "--operator")
        if not station:
            raise InvalidInput("terminal.station", f"a {operator} gate needs its --station", "--station")
        network = tariff.network(operator)
        code = network.find(station, "--station")[0]
        station = network.stations[code].name
        if line or area or full_fare_fen:
            raise InvalidInput("terminal.line", "--line, --area and --full-fare are for bus validators", "--line")
    else:
        if gate != "both":
            raise InvalidInput("terminal.gate", "--gate is for metro gates", "--gate")
        if line is not None:
            tariff.line(operator, line)
    return info, station, code


def add_terminal(
    world: World,
    *,
    operator: str,
    now: dt.datetime,
    install: Install,
    station: str | None = None,
    gate: str = "both",
    line: str | None = None,
    area: str | None = None,
    full_fare_fen: int | None = None,
) -> dict[str, Any]:
    """Register a terminal of ``operator`` in its region; ``install`` makes its directory.

    ``install(row, consumer_keys, blacklist)`` runs inside the region's transaction; if it
    raises, nothing is recorded. Returns the row with the copied blacklist's version.
    """
    info, station, station_code = _validate(operator, station, gate, line, area, full_fare_fen)
    more = {"station_code": station_code, "gate": gate, "line": line, "area": area, "full_fare_fen": full_fare_fen}
    return register_terminal(world, node=info.node, operator=operator, station=station, more=more, now=now,
                             install=install)


def register_terminal(world: World, *, node: str, operator: str, station: str | None, more: dict[str, Any],
                      now: dt.datetime, install: Install, purse_records: bool = True) -> dict[str, Any]:
    """The row of any terminal with a PSAM (validator, venue gate): numbered in ``node``, installed, committed.

    ``more`` is what the terminal's directory needs beyond the row (a gate's station code,
    a bus line…); ``install(row, consumer_keys, blacklist)`` runs inside the transaction.
    ``purse_records`` False (a load kiosk: it never debits a card): its PSAM gets no
    issuer's purchase keys and no upload key, so a stolen kiosk cannot make purchase
    records either.
    """
    keys = consumer_keys(world) if purse_records else []
    blacklist = blacklist_copy(world)
    db = world.region(node)
    with UnitOfWork(db) as uow:
        number = next_value(uow.db, f"terminal:{operator}")
        sequence = next_value(uow.db, SEQ_TERMINAL_NO)
        row = {
            "id": f"{operator}-{number:04d}",
            "operator": operator,
            "station": station,
            "node": node,
            "psam_id": f"{node.upper()}-PSAM-{sequence:06d}",
            "terminal_no": f"{REGION_NODES[node]}{sequence:06d}",
            "blacklist_version": blacklist.version,
            "synced_at": timestamp(now),
            "created_at": timestamp(now),
        }
        uow.db["terminals"].insert(row)
        credential = terminal_auth.credential_key(upload_master(uow.db)[1], row["terminal_no"])
        upload = terminal_upload_key(uow.db, row["terminal_no"]) if purse_records else None
        install({**row, **more, "upload_key": upload,
                 "host_credential": credential}, keys, blacklist)
        uow.commit()
    return {**row, **more, "blacklist_size": len(blacklist.cards)}


def list_terminals(world: World, *, operator: str | None = None) -> list[dict[str, Any]]:
    """Every region's terminals (or one operator's), by id.

    An operator the filter cannot match (unknown, or blank) is refused rather than
    answered with an empty list a clerk would read as "no terminals"."""
    if operator is not None:
        operator = known_operator(operator)
    rows: list[dict[str, Any]] = []
    for node in REGION_NODES:
        db = world.region(node)
        where, args = ("operator = ?", [operator]) if operator else (None, [])
        rows.extend(db["terminals"].rows_where(where, args))
    return sorted(rows, key=lambda r: r["id"])


def known_operator(code: str, field: str = "--operator") -> str:
    """``code`` if terminals can belong to it: a transit operator, or a venue (its gates); InvalidInput if not."""
    text = code.strip() if isinstance(code, str) else ""
    if not text:
        raise InvalidInput("terminal.operator", "the operator to filter by is empty or blank", field)
    transit = tuple(load_tariff().operators)
    if text in transit:
        return text
    places = venues()
    if text.upper() in places:
        return places[text.upper()].code
    if text.upper() in hospitals():  # its points of sale
        return text.upper()
    try:  # an outlet: its load kiosks (``services.terminals.kiosk``)
        return str(OutletCode.parse(text))
    except InvalidInput:
        pass
    raise InvalidInput("terminal.operator", f"unknown operator {text!r}: terminals belong to a transit operator "
                       f"({', '.join(transit)}), a venue (`sbcard venue list`), a hospital (its POS) or an "
                       "outlet (its load kiosks)", field)


def get_terminal(world: World, terminal_id: str) -> dict[str, Any]:
    for node in REGION_NODES:
        found = list(world.region(node)["terminals"].rows_where("id = ?", [terminal_id]))
        if found:
            return found[0]
    raise NotFound("terminal.unknown", f"no terminal {terminal_id!r} (see `sbcard terminal list`)", "terminal")


def record_sync(world: World, terminal_id: str, *, version: int, now: dt.datetime) -> dict[str, Any]:
    """The version a terminal reported after copying the blacklist."""
    row = get_terminal(world, terminal_id)
    db: sqlite_utils.Database = world.region(row["node"])
    with UnitOfWork(db) as uow:
        uow.db["terminals"].update(terminal_id, {"blacklist_version": version, "synced_at": timestamp(now)})
        uow.commit()
    return {**row, "blacklist_version": version, "synced_at": timestamp(now)}
