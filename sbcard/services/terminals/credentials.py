"""Terminals' host credentials: derived, checked on every signed request, revocable.

A terminal signs its requests to the host API (``sbcard.chip.terminal_auth``) with a key
derived from its region's UMK master and its terminal number (``credential_key``), as its
upload key is: the region stores no copy; it keeps only whether the terminal may still
use it (``terminals.revoked_at``, ``revoke``) and the nonces it used lately
(``terminal_nonces``). ``authenticate`` is the host's check of one request: a known
terminal, the MAC, the timestamp within ``MAX_SKEW_SECONDS`` of the host's clock, a nonce
not seen before, a terminal not revoked — any failure is ``NotSignedIn`` (HTTP 401).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterable
from typing import Any

import sqlite_utils

from sbcard.chip import terminal_auth
from sbcard.domain.errors import RuleRefused
from sbcard.domain.regions import node_of
from sbcard.reference.medical import hospitals
from sbcard.reference.transit import load_tariff
from sbcard.reference.venues import venues
from sbcard.services.cards.keys import upload_master
from sbcard.services.outlets import audit
from sbcard.services.outlets.staff import NotSignedIn
from sbcard.services.terminals import kiosk
from sbcard.services.terminals.register import get_terminal
from sbcard.store.migrations import timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import REGION_NODES, World


def terminal_credential(db: sqlite_utils.Database, terminal_no: str) -> bytes:
    """The host credential of the terminal numbered ``terminal_no`` in the region of ``db``."""
    _alg, master = upload_master(db)
    return terminal_auth.credential_key(master, terminal_no)


def credential(world: World, terminal_id: str) -> bytes:
    """A registered terminal's credential (``sbcard terminal credential``: loaded into a terminal made before)."""
    row = get_terminal(world, terminal_id)
    return terminal_credential(world.region(row["node"]), row["terminal_no"])


def revoke(world: World, terminal_id: str, *, now: dt.datetime, by: str, reason: str | None = None) -> dict[str, Any]:
    """The terminal's credential no longer opens the host API (for good: a new terminal is added instead)."""
    row = get_terminal(world, terminal_id)
    if row.get("revoked_at"):
        raise RuleRefused("terminal.revoked", f"terminal {terminal_id} was already revoked at {row['revoked_at']}",
                          "terminal")
    db = world.region(row["node"])
    with UnitOfWork(db) as uow:
        uow.db["terminals"].update(terminal_id, {"revoked_at": timestamp(now), "revoked_reason": reason})
        audit.record(uow.db, at=now, operator=by, action="terminal_revoke", subject=terminal_id, reason=reason)
        uow.commit()
    return {**row, "revoked_at": timestamp(now), "revoked_reason": reason}


def _refuse(code: str, message: str, field: str | None = None) -> NotSignedIn:
    return NotSignedIn(code, message, field)


def operator_node(terminal_id: str) -> str | None:
    """The region a terminal id belongs to, from its operator (``<operator>-<number>``), without any database.

    A transit operator's node (the tariff), a venue's or a hospital's region, a kiosk's outlet's region
    (``<outlet code>-<number>``); None for an id of no known operator.
    """
    operator = terminal_id.rsplit("-", 1)[0]
    outlet = kiosk.outlet_code(operator)
    if outlet is not None:
        return outlet.node
    transit = load_tariff().operators.get(operator)
    if transit is not None:
        return transit.node
    place = venues().get(operator.upper())
    if place is not None:
        return node_of(place.region)
    hospital = hospitals().get(operator.upper())
    if hospital is not None:
        return node_of(hospital.region)
    return None


def _find(world: World, terminal_id: str, regions: Iterable[str]) -> dict[str, Any] | None:
    for node in regions:
        found = list(world.region(node)["terminals"].rows_where("id = ?", [terminal_id]))
        if found:
            return found[0]
    return None


def _signature_headers(headers: dict[str, str | None]) -> tuple[str, str, str, str]:
    """The four signature headers, each present and of its form (terminal, timestamp, nonce, MAC)."""
    terminal_id = headers.get(terminal_auth.HEADER_TERMINAL)
    stamp = headers.get(terminal_auth.HEADER_TIMESTAMP)
    nonce = headers.get(terminal_auth.HEADER_NONCE)
    mac = headers.get(terminal_auth.HEADER_MAC)
    missing = [name for name, value in headers.items() if not value]
    if missing:
        raise _refuse("terminal.unsigned", f"a terminal's request is signed: {', '.join(missing)} missing "
                      "(docs/api/terminals.md)", missing[0])
    assert terminal_id and stamp and nonce and mac
    if not terminal_auth.TIMESTAMP_PATTERN.fullmatch(stamp):
        raise _refuse("terminal.timestamp_invalid", f"{terminal_auth.HEADER_TIMESTAMP} is Unix seconds",
                      terminal_auth.HEADER_TIMESTAMP)
    if not terminal_auth.NONCE_PATTERN.fullmatch(nonce):
        raise _refuse("terminal.nonce_invalid", f"{terminal_auth.HEADER_NONCE} is 16 to 64 of A-Z a-z 0-9 _ -",
                      terminal_auth.HEADER_NONCE)
    if not terminal_auth.MAC_PATTERN.fullmatch(mac.strip()):
        raise _refuse("terminal.bad_mac", f"{terminal_auth.HEADER_MAC} is 64 hex digits", terminal_auth.HEADER_MAC)
    return terminal_id, stamp, nonce, mac


def precheck(world: World, headers: dict[str, str | None], *, now: dt.datetime,
             regions: Iterable[str] = tuple(REGION_NODES)) -> dict[str, Any]:
    """What can be checked of a terminal's request before its body is read (reads only): the signature's
    headers of their form, the terminal registered here and not revoked, the timestamp fresh. The service
    checks this before it reads a large body (an upload), so nobody without a live terminal's id and a
    current clock makes it take in 128 MiB; ``verify`` then checks the MAC over the body, and all this again."""
    terminal_id, stamp, _, _ = _signature_headers(headers)
    row = _find(world, terminal_id, regions)
    if row is None:
        raise _refuse("terminal.unknown", f"no terminal {terminal_id!r} is registered", terminal_auth.HEADER_TERMINAL)
    _check_live(row, terminal_id, stamp, now)
    return row


def verify(world: World, headers: dict[str, str | None], *, method: str, path: str, query: str, body: bytes,
           now: dt.datetime, regions: Iterable[str] = tuple(REGION_NODES), idempotency_key: str = "") -> dict[str, Any]:
    """The terminal's register row if the request is signed by it, timely, and it is not revoked (reads only).

    ``headers``: ``terminal_auth.headers_of(request.headers)``. The terminal is looked for in
    ``regions`` only (a process serving one node: its own). The nonce is not checked here:
    ``remember_nonce`` does, once this passed (so nobody can spend a terminal's nonces for it).
    """
    terminal_id, stamp, nonce, mac = _signature_headers(headers)
    try:
        terminal_auth.canonical_query(query)
    except ValueError:
        raise _refuse("terminal.query_invalid", "a query key is given twice: a signed request names each once",
                      "query") from None
    row = _find(world, terminal_id, regions)
    if row is None:
        raise _refuse("terminal.unknown", f"no terminal {terminal_id!r} is registered", terminal_auth.HEADER_TERMINAL)
    db = world.region(row["node"])
    key = terminal_credential(db, row["terminal_no"])
    if not terminal_auth.mac_matches(key, mac, method, path, query, terminal_id, stamp, nonce, body,
                                     idempotency_key):
        raise _refuse("terminal.bad_mac", f"the request's MAC is not terminal {terminal_id}'s",
                      terminal_auth.HEADER_MAC)
    _check_live(row, terminal_id, stamp, now)
    return row


def _check_live(row: dict[str, Any], terminal_id: str, stamp: str, now: dt.datetime) -> None:
    """The request's timestamp within the allowed skew of the host's clock, and the terminal not revoked."""
    skew = terminal_auth.skew_seconds(stamp, now)
    if abs(skew) > terminal_auth.MAX_SKEW_SECONDS:
        raise _refuse("terminal.clock_skew", f"the request's timestamp is {abs(skew)} s "
                      f"{'ahead of' if skew > 0 else 'behind'} the host's clock (at most "
                      f"{terminal_auth.MAX_SKEW_SECONDS} s either way)", terminal_auth.HEADER_TIMESTAMP)
    if row.get("revoked_at"):
        raise _refuse("terminal.revoked", f"terminal {terminal_id} was revoked at {row['revoked_at']}",
                      terminal_auth.HEADER_TERMINAL)


def remember_nonce(world: World, row: dict[str, Any], nonce: str, *, now: dt.datetime) -> None:
    """Keep the nonce of a verified request in the terminal's region; ``terminal.replayed`` if it was used."""
    seen = terminal_auth.unix_seconds(now)
    with UnitOfWork(world.region(row["node"])) as uow:
        uow.db.execute("DELETE FROM terminal_nonces WHERE seen_at < ?", [seen - terminal_auth.NONCE_TTL_SECONDS])
        try:
            uow.db.execute("INSERT INTO terminal_nonces (terminal, nonce, seen_at) VALUES (?, ?, ?)",
                           [row["id"], nonce, seen])
        except sqlite3.IntegrityError:
            raise _refuse("terminal.replayed", f"terminal {row['id']} already used this nonce: a request is "
                          "never accepted twice", terminal_auth.HEADER_NONCE) from None
        uow.commit()


def authenticate(world: World, headers: dict[str, str | None], *, method: str, path: str, query: str, body: bytes,
                 now: dt.datetime, regions: Iterable[str] = tuple(REGION_NODES),
                 idempotency_key: str = "") -> dict[str, Any]:
    """``verify`` then ``remember_nonce``: the terminal's register row (the host API splits the two, taking
    its write lock only for the nonce)."""
    row = verify(world, headers, method=method, path=path, query=query, body=body, now=now, regions=regions,
                 idempotency_key=idempotency_key)
    remember_nonce(world, row, str(headers.get(terminal_auth.HEADER_NONCE)), now=now)
    return row
