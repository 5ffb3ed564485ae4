"""Blank card stock at the outlets (空白卡库存).

Each blank is one virtual card file under ``<home>/cards/stock/<OUTLET>/<CHIPSERIAL>.card``
(the row records it relative to the home, so a copied world is independent of the original)
and one `blank_cards` row in the outlet's region, from delivery (`in_stock`) to the card
it became (`used`) or its end (`spoiled`). Issuance takes a blank only once the card is
personalised and read back, so a torn card stays in stock and is personalised again.

Chip serials are allocated from the region's sequence behind a per-region prefix
(86 + the province's two digits), so they are unique in the whole world, the same in
every run of a seeded simulation, and tell at a glance whose stock a blank came from.
The service writes card files through a `make_blank(path, chip_serial)` callable that
the composition root supplies (the emulator's `create_blank`): the core never imports
the terminals.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused
from sbcard.domain.outlets import OutletCode
from sbcard.domain.regions import NODE_NAMES, is_within
from sbcard.services.outlets import audit
from sbcard.services.outlets.operators import require_operator
from sbcard.store.migrations import timestamp
from sbcard.store.sequences import reserve
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.paths import recorded_path
from sbcard.store.world import REGION_NODES, World, node_of_db

MakeBlank = Callable[[Path, bytes], Any]
SEQUENCE = "chip_serial"
SERIAL_PREFIX: dict[str, str] = {"bj": "8611", "tj": "8612", "he": "8613"}
MAX_DELIVERY = 1000
STOCK_ROLES = {"counter", "supervisor"}
STATUSES = ("in_stock", "used", "spoiled")


def stock_dir(cards_dir: Path, outlet: str) -> Path:
    return Path(cards_dir) / "stock" / outlet


def receive_stock(
    db: sqlite_utils.Database,
    *,
    outlet: str,
    count: int,
    operator: str,
    now: datetime,
    cards_dir: Path,
    make_blank: MakeBlank,
) -> dict[str, Any]:
    """Take delivery of `count` blanks at `outlet` (its region's `db`).

    All or nothing: if a card file cannot be written, the files already made are
    removed and no row is kept.
    """
    code = _own_outlet(db, outlet)
    if not isinstance(count, int) or not 1 <= count <= MAX_DELIVERY:
        raise InvalidInput("stock.count", f"a delivery is 1 to {MAX_DELIVERY} blanks, got {count}", "--count")
    made: list[Path] = []
    try:
        with UnitOfWork(db).step():
            _require_outlet(db, code)
            staff = require_operator(db, operator, roles=STOCK_ROLES)
            first = reserve(db, SEQUENCE, count)
            serials = [f"{SERIAL_PREFIX[node_of_db(db)]}{n:012X}" for n in range(first, first + count)]
            directory = stock_dir(cards_dir, code).absolute()
            home = directory.parents[2]  # <home>/cards/stock/<outlet>: the row names the file from the home
            directory.mkdir(parents=True, exist_ok=True)
            for serial in serials:
                path = directory / f"{serial}.card"
                make_blank(path, bytes.fromhex(serial))
                made.append(path)
            at = timestamp(now)
            db["blank_cards"].insert_all(
                {"chip_serial": s, "outlet": code, "path": recorded_path(home, p), "status": "in_stock", "received_at": at,
                 "used_at": None, "used_for": None}
                for s, p in zip(serials, made)
            )
            audit.record(db, at=now, operator=staff["code"], outlet=code, action="stock.receive", subject=code,
                         details={"count": count, "first": serials[0], "last": serials[-1]})
    except BaseException:
        for path in made:
            path.unlink(missing_ok=True)
        raise
    return {"outlet": code, "received": count, "in_stock": stock_of(db, code)["in_stock"],
            "paths": [str(p) for p in made], "chip_serials": serials}


def outlets_with_stock(db: sqlite_utils.Database, *, area: str | None = None) -> list[dict[str, Any]]:
    """This region's outlets by code, each with its blanks in stock; `area` narrows to a district or prefecture."""
    levels = dict(db.execute("SELECT outlet, count(*) FROM blank_cards WHERE status = 'in_stock' GROUP BY outlet"))
    node = node_of_db(db)
    result = []
    for row in db.query("SELECT * FROM outlets ORDER BY code"):
        if area is not None and not is_within(row["region"], area):
            continue
        in_stock = levels.get(row["code"], 0)
        result.append({"code": row["code"], "name": row["name"], "region": row["region"], "kind": row["kind"],
                       "stock": in_stock, "low": in_stock <= row["low_stock"], "low_stock": row["low_stock"],
                       "address": row["address"], "node": node})
    return result


def stock_of(db: sqlite_utils.Database, outlet: str) -> dict[str, Any]:
    """Counts by status, and whether the outlet is at or below its low-stock mark."""
    code = _own_outlet(db, outlet)
    row = _require_outlet(db, code)
    counts = dict.fromkeys(STATUSES, 0)
    for status, n in db.execute("SELECT status, count(*) FROM blank_cards WHERE outlet = ? GROUP BY status", [code]):
        counts[status] = n
    return {"outlet": code, **counts, "low": counts["in_stock"] <= row["low_stock"], "low_stock": row["low_stock"]}


def blanks(db: sqlite_utils.Database, outlet: str, *, status: str | None = None) -> list[dict[str, Any]]:
    """The outlet's blanks in order of delivery, optionally of one status."""
    code = _own_outlet(db, outlet)
    _require_outlet(db, code)
    where, args = "outlet = ?", [code]
    if status is not None:
        where, args = where + " AND status = ?", [*args, status]
    return list(db.query(f"SELECT * FROM blank_cards WHERE {where} ORDER BY chip_serial", args))


def take_blank(
    db: sqlite_utils.Database, *, outlet: str, chip_serial: str, card_number: str, now: datetime
) -> dict[str, Any]:
    """The blank became card `card_number`: it leaves the outlet's stock.

    Taking the same blank for the same card again changes nothing (a redelivered message).
    """
    code = _own_outlet(db, outlet)
    serial = chip_serial.strip().upper()
    with UnitOfWork(db).step():
        row = _blank(db, serial)
        if row is not None and row["status"] == "used" and row["used_for"] == card_number:
            return row
        _refuse_unless_available(node_of_db(db), row, code, serial)
        db.execute("UPDATE blank_cards SET status = 'used', used_at = ?, used_for = ? WHERE chip_serial = ?",
                   [timestamp(now), card_number, serial])
        return _blank(db, serial)  # type: ignore[return-value]


def spoil_blank(
    db: sqlite_utils.Database, *, outlet: str, chip_serial: str, operator: str, reason: str, now: datetime
) -> dict[str, Any]:
    """A blank that cannot be used (damaged, lost): it leaves the stock, with who and why."""
    code = _own_outlet(db, outlet)
    serial = chip_serial.strip().upper()
    if not (reason or "").strip():
        raise InvalidInput("stock.reason", "say why the blank is spoiled", "--reason")
    with UnitOfWork(db).step():
        staff = require_operator(db, operator, roles=STOCK_ROLES)
        row = _blank(db, serial)
        _refuse_unless_available(node_of_db(db), row, code, serial, "CHIP_SERIAL")
        db.execute("UPDATE blank_cards SET status = 'spoiled', used_at = ? WHERE chip_serial = ?",
                   [timestamp(now), serial])
        audit.record(db, at=now, operator=staff["code"], outlet=code, action="stock.spoil", subject=serial,
                     reason=reason.strip())
        return _blank(db, serial)  # type: ignore[return-value]


def blank_to_issue(world: World, *, outlet: str, chip_serial: str | None = None,
                   usable: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """The blank of `outlet`'s stock to issue on: `chip_serial`'s, or the next one in stock (oldest serial first).

    The row with `path` resolved to the card file of this world. Refused, in words staff
    understand, when the stock is empty or the blank named cannot be used here. ``usable``
    (the resolved card file → whether its chip is still blank) skips, for the next one,
    a blank a torn issuance left personalised: it is spoiled, not the outlet stuck on it.
    """
    code = str(OutletCode.parse(outlet))
    if chip_serial is not None:
        row = check_blank(world, outlet=code, chip_serial=chip_serial)
    else:
        db = world.region(OutletCode.parse(code).node)
        in_stock = blanks(db, code, status="in_stock")
        if not in_stock:
            raise RuleRefused("stock.empty", f"outlet {code} has no blank cards in stock: receive a delivery first",
                              "--outlet")
        # the first that fits: each ``usable`` opens a card file, and an outlet may hold hundreds of blanks
        row = next((r for r in in_stock if usable is None or usable(world.paths.resolve(r["path"]) or "")), None)
        if row is None:
            raise RuleRefused("stock.empty", f"outlet {code} has no blank cards left in stock: those in stock "
                              f"are personalised already (spoil them) — receive a delivery", "--outlet")
    return {**row, "path": world.paths.resolve(row["path"])}


def blank_owner(world: World, chip_serial: str) -> tuple[str, dict[str, Any]] | None:
    """(node, row) of the region whose stock holds (or held) this blank, or None.

    A world that holds one region (``sbcard serve --node``) looks in its own stock only: a
    blank of another region's stock is then "in no outlet's stock" here, and refused as such.
    """
    serial = chip_serial.strip().upper()
    for node in REGION_NODES:
        if not world.holds(node):
            continue
        row = _blank(world.region(node), serial)
        if row is not None:
            return node, row
    return None


def check_blank(world: World, *, outlet: str, chip_serial: str) -> dict[str, Any]:
    """The blank's row if it may be issued at `outlet` now; else refused in words staff understand.

    Issuance asks this before personalising, so a blank from another outlet's or
    another region's stock is refused before the card is touched.
    """
    code = str(OutletCode.parse(outlet))
    serial = chip_serial.strip().upper()
    owner = blank_owner(world, serial)
    _refuse_unless_available(OutletCode.parse(code).node, owner[1] if owner else None, code, serial)
    return owner[1]  # type: ignore[index]


def _refuse_unless_available(
    node: str, row: dict[str, Any] | None, outlet: str, serial: str, field: str = "--reader"
) -> None:
    """Refuse, in words staff understand, a blank that `outlet` cannot use now."""
    if row is None:
        raise RuleRefused("stock.not_in_stock",
                          f"blank {serial} is not in any outlet's stock of {NODE_NAMES[node]}", field)
    if row["outlet"] != outlet:
        owner = OutletCode.parse(row["outlet"])
        where = "" if owner.node == node else f" ({NODE_NAMES[owner.node]})"
        code = "stock.other_outlet" if owner.node == node else "stock.other_region"
        raise RuleRefused(code, f"blank {serial} belongs to the stock of {row['outlet']}{where}, not {outlet}", field)
    if row["status"] == "used":
        raise RuleRefused("stock.not_in_stock", f"blank {serial} was already used for card {row['used_for']}", field)
    if row["status"] == "spoiled":
        raise RuleRefused("stock.not_in_stock", f"blank {serial} is spoiled", field)


def _own_outlet(db: sqlite_utils.Database, outlet: str) -> str:
    """The outlet's code, checked to belong to this region's service."""
    code = OutletCode.parse(outlet)
    node = node_of_db(db)
    if code.node != node:
        raise RuleRefused("stock.other_region",
                          f"outlet {code} belongs to {NODE_NAMES[code.node]}; its stock is not kept in "
                          f"{NODE_NAMES[node]}'s", "--outlet")
    return str(code)


def _require_outlet(db: sqlite_utils.Database, code: str) -> dict[str, Any]:
    rows = list(db.query("SELECT * FROM outlets WHERE code = ?", [code]))
    if not rows:
        raise NotFound("outlet.unknown", f"no outlet {code} in {NODE_NAMES[node_of_db(db)]}", "--outlet")
    return rows[0]


def _blank(db: sqlite_utils.Database, serial: str) -> dict[str, Any] | None:
    rows = list(db.query("SELECT * FROM blank_cards WHERE chip_serial = ?", [serial]))
    return rows[0] if rows else None
