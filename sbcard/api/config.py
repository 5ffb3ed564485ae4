"""What a running service serves: which world, which node(s), which clock, which peers."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from sbcard.clock import Clock, SystemClock
from sbcard.domain.errors import InvalidInput
from sbcard.api.peers import HttpLink
from sbcard.store.world import HUB, NODES, REGION_NODES, World, exchange_secret, open_world

NODE_CHOICES: tuple[str, ...] = ("all", *NODES)


@attrs.define
class ServiceConfig:
    """One process of the service: ``node`` 'all' serves the three regions and the hub.

    ``peers``: where the other nodes' processes listen (``{"bj": "http://127.0.0.1:8001"}``),
    for a process that serves one node and reaches the others over HTTP
    (``docs/api/nodes.md``). ``delivery_interval``: how often such a process delivers its
    pending outbox messages (seconds).
    """

    home: Path = attrs.field(converter=Path)
    node: str = "all"
    clock: Clock = attrs.field(factory=SystemClock)
    peers: dict[str, str] = attrs.field(factory=dict)
    delivery_interval: float = 1.0

    def __attrs_post_init__(self) -> None:
        if self.node not in NODE_CHOICES:
            raise InvalidInput("serve.node", f"{self.node!r} is not one of {', '.join(NODE_CHOICES)}", "--node")

    @property
    def served(self) -> tuple[str, ...]:
        return NODES if self.node == "all" else (self.node,)

    def serves(self, node: str) -> bool:
        return node in self.served

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(node for node in self.served if node in REGION_NODES)

    @property
    def serves_hub(self) -> bool:
        return HUB in self.served

    @property
    def whole(self) -> bool:
        """Whether this process holds every node (``--node all``): everything in process, as the CLI."""
        return self.node == "all"


class Worlds:
    """A world per worker thread: SQLite connections belong to the thread that opened them.

    The threads are the server's pool, so their number is bounded; each opens the world once
    and keeps it. ``writing()`` serialises the use cases that write: one at a time in this
    process (a use case may touch a region and the hub), while reads go on beside them (WAL).

    A process that serves one node opens only that node's database (asking for another's
    raises ``NodeElsewhere``, answered 421) and reaches the other nodes through ``link``
    (``sbcard.api.peers.HttpLink``, signed with the world's node-to-node secret).
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._opened: list[World] = []
        self._opened_lock = threading.Lock()
        self._secret: bytes | None = None
        self.link: HttpLink | None = None
        if not config.whole:
            self.link = HttpLink(config.node, config.peers, self.secret, held=config.served)

    @property
    def secret(self) -> bytes:
        """The world's node-to-node secret (``docs/api/nodes.md``), read once."""
        if self._secret is None:
            self._secret = exchange_secret(self.config.home)
        return self._secret

    def world(self) -> World:
        world = getattr(self._local, "world", None)
        if world is None:
            nodes = None if self.config.whole else self.config.served
            world = self._local.world = open_world(self.config.home, self.config.clock, nodes=nodes)
            world.link = self.link
            with self._opened_lock:
                self._opened.append(world)
        return world

    @contextmanager
    def writing(self) -> Iterator[World]:
        with self._write_lock:
            yield self.world()

    def close(self) -> None:
        with self._opened_lock:
            opened, self._opened = self._opened, []
        for world in opened:
            try:
                world.close()
            except Exception:  # a connection of a thread already gone: nothing left to release
                pass
        if self.link is not None:
            self.link.close()
