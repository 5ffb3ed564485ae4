"""Per-node processes for the tests: a world's home split into one home per node, and their servers.

Support for the tests of ``sbcard serve --node …`` (tests/api/test_api_nodes_*.py): each node's
home holds only its own files, so a process that opened another node's database shows as a
stray ``*.db`` in its home.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import attrs

from api_world import not_for_node
from sbcard.clock import SimClock
from sbcard.store.db import open_db
from sbcard.store.world import NODES

if TYPE_CHECKING:
    from api_world import LiveServer
    from sbcard.api.calls import Service


def node_home(world: Path, node: str, root: Path) -> Path:
    """A home with only ``node``'s files of ``world`` (its database, its keys, the cards, terminals and the keys of
    the pairs of nodes it is an end of)."""
    home = root / node
    shutil.copytree(world, home, ignore=lambda directory, names: not_for_node(node, directory, names))
    return home


def stray_databases(home: Path, node: str) -> list[str]:
    return sorted(path.name for path in home.glob("*.db") if path.name != f"{node}.db")


@attrs.define
class Nodes:
    """The nodes' homes and the servers started over them, each on its own free port."""

    homes: dict[str, Path]
    clock: SimClock
    start_server: Callable[..., LiveServer]
    servers: dict[str, LiveServer] = attrs.field(factory=dict)
    ports: dict[str, int] = attrs.field(factory=dict)

    def url(self, node: str) -> str:
        return f"http://127.0.0.1:{self.ports[node]}"

    def start(self, *nodes: str, peers: tuple[str, ...] | None = None) -> LiveServer:
        """Start ``nodes``' processes, each told where ``peers`` listen (by default every other node: the hub
        too, as it forwards routed exchanges); the last one's server."""
        for node in nodes:
            wanted = [other for other in NODES if other != node] if peers is None else peers
            self.servers[node] = self.start_server(self.homes[node], self.clock, node=node, port=self.ports[node],
                                                   peers={other: self.url(other) for other in wanted})
        return self.servers[nodes[-1]]

    def stop(self, node: str) -> None:
        self.servers.pop(node).stop()

    def service(self, node: str) -> Service:
        return self.servers[node].server.config.app.state.service

    def query(self, node: str, sql: str, params: list[object] | None = None) -> list[dict[str, object]]:
        db = open_db(self.homes[node] / f"{node}.db")
        try:
            return [dict(row) for row in db.query(sql, params or [])]
        finally:
            db.close()


def wait_for(condition: Callable[[], object], seconds: float = 20) -> object:
    """``condition``'s value once it is true (a courier's round, a process coming up), polled every 0.1 s."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)
