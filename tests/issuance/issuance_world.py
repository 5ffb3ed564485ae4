"""The people, staff and helpers the issuance tests share."""

from __future__ import annotations

import hashlib

from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs

from sbcard.clock import BEIJING
from sbcard.store.db import content_digest, open_db
from sbcard.store.world import NODES, WorldPaths

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=BEIJING)

# code → (name, role, region, node)
OPERATORS = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "BJ-F1": ("赵敏", "finance", "110105", "bj"),
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
    "HE-C1": ("刘洋", "counter", "130102", "he"),
}


@attrs.frozen
class Person:
    node: str
    fields: dict[str, Any]

    @property
    def citizen_id(self) -> str:
        return self.fields["citizen_id"]


def _person(node: str, citizen_id: str, name: str, region: str, insurance: str, **more: Any) -> Person:
    return Person(node, {"citizen_id": citizen_id, "name": name, "region": region, "insurance": insurance, **more})


ZHANG = "120103198001011237"  # Tianjin-insured, applies in Beijing too (跨省通办)
PEOPLE = {
    "zhang": _person("tj", ZHANG, "张三", "120103", "employee"),
    "li": _person("bj", "110105199003072346", "李四", "110105", "resident", photo_ref="photos/li.jpg"),
    "wang": _person("he", "130102197506151121", "王五", "130102", "employee"),
    "old": _person("bj", "110108196811113017", "欧阳娜娜", "110108", "employee", retired=True),
    "newborn": _person("tj", "120103202412010027", "张小宝", "120103", "resident",
                       guardian_id=ZHANG, guardian_relation="父亲"),
    "child": _person("tj", "12010320150601004X", "张小明", "120103", "resident"),
    "mother": _person("tj", "120103198505052243", "陈静", "120103", "employee"),
}


@attrs.frozen
class WorldState:
    """Every node's content digest and the bytes of some card files: equal means unchanged."""

    digests: dict[str, str]
    cards: dict[str, bytes | None]

    @classmethod
    def take(cls, home: Path, card_files: Iterable[Path], *, but_sequences: bool = False) -> WorldState:
        """``but_sequences``: the digests leave out the sequences (numbers reserved and never reused)."""
        paths = WorldPaths(home)
        digests = {}
        for node in NODES:
            db = open_db(paths.db(node))
            try:
                if but_sequences:
                    lines = [line for line in db.conn.iterdump() if not line.startswith('INSERT INTO "sequences"')]
                    digests[node] = hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()
                else:
                    digests[node] = content_digest(db)
            finally:
                db.close()
        return cls(digests, {str(p): Path(p).read_bytes() if Path(p).exists() else None for p in card_files})
