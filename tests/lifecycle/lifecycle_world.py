"""The staff, holders and helpers the life-event tests share."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

from sbcard.clock import BEIJING
from sbcard.store.db import content_digest, open_db
from sbcard.store.world import NODES, WorldPaths

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)
PIN = "135790"

OUTLET = "BJ-110105-01"  # 朝阳区 service outlet: issues and replaces
BANK = "BJ-110105-02"  # 建设银行朝阳支行 (社银合作): cash
TJ_OUTLET = "TJ-120103-01"

# code → (name, role, region, node)
OPERATORS = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "BJ-F1": ("赵敏", "finance", "110105", "bj"),
    "BJ-CALL": ("孙丽", "counter", "110105", "bj"),  # the 12333 call centre
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
    "TJ-F1": ("周强", "finance", "120103", "tj"),
}

# key → (node, registry fields)
HOLDERS = {
    "liu": ("bj", {"citizen_id": "110105198506151236", "name": "刘洋", "region": "110105", "insurance": "employee"}),
    "chen": ("tj", {"citizen_id": "120103197803024561", "name": "陈静", "region": "120103", "insurance": "resident"}),
    # a minor (9 at NOW): her applications, a replacement's too, are made by her father, liu
    "xiaoyu": ("bj", {"citizen_id": "110105201506111239", "name": "刘小雨", "region": "110105", "insurance": "resident",
                      "guardian_id": "110105198506151236", "guardian_relation": "父亲"}),
}


def digests(home: Path) -> dict[str, str]:
    """Every node's content digest: equal before and after means nothing changed."""
    out = {}
    for node in NODES:
        db = open_db(WorldPaths(home).db(node))
        try:
            out[node] = content_digest(db)
        finally:
            db.close()
    return out


def query(home: Path, node: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
    db = open_db(WorldPaths(home).db(node))
    try:
        return [dict(row) for row in db.query(sql, params)]
    finally:
        db.close()


def events(home: Path, node: str, card: str) -> list[dict[str, Any]]:
    rows = query(home, node, "SELECT * FROM card_events WHERE card_number = ? ORDER BY id", (card,))
    for row in rows:
        row["details"] = json.loads(row["details"]) if row["details"] else None
    return rows


def hub_card(home: Path, card: str) -> dict[str, Any]:
    [row] = query(home, "hub", "SELECT * FROM card_directory WHERE card_number = ?", (card,))
    return row


def blacklist(home: Path) -> tuple[int, set[str]]:
    """(latest version, the cards on the list as of it)."""
    from sbcard.services.exchange import directory as hub_directory

    db = open_db(WorldPaths(home).db("hub"))
    try:
        return hub_directory.blacklist_version(db), hub_directory.blacklisted_cards(db)
    finally:
        db.close()


def card_row(home: Path, node: str, card: str) -> dict[str, Any]:
    """The card's row; its ``virtual_path`` (recorded relative to the home) as the file it names."""
    [row] = query(home, node, "SELECT * FROM cards WHERE card_number = ?", (card,))
    return {**row, "virtual_path": WorldPaths(home).resolve(row["virtual_path"])}


def load_purse(home: Path, node: str, card: str, amount_fen: int) -> None:
    """圈存 on the card's chip, as a load terminal with the issuer's keys would (before transit exists)."""
    from sbcard.services.cards import keys
    from terminals.emulator import testing
    from terminals.emulator.card import VirtualCard

    row = card_row(home, node, card)
    db = open_db(WorldPaths(home).db(node))
    try:
        card_keys = keys.keys_for_card(db, row)
    finally:
        db.close()
    with VirtualCard.load(row["virtual_path"]) as chip:
        testing.load(chip, amount_fen, keys=card_keys)
