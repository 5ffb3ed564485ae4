"""What a running service serves: which world, which node(s), which clock, which peers."""

from __future__ import annotations

import os
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs

from sbcard.clock import Clock, SystemClock
from sbcard.domain.errors import InvalidInput, SbcardError
from sbcard.api.peers import HttpLink, PairKeys
from sbcard.store.world import (HUB, NODES, REGION_NODES, World, WorldPaths, exchange_keys, exchange_pair_path,
                                open_world)
from sbcard.store.write_gate import WriteGate

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


SERVICE_KEY = "service.key"


def service_key(home: Path) -> bytes:
    """The world's service key (``<home>/service.key``, 256 random bits, owner-only), made at first use.

    It keys the digests that bind an Idempotency-Key to its request (``Call.write``), so the
    database alone, copied, does not let a PIN or a password in a request be found again.
    Two processes starting together agree: the file is created exclusively, and the loser reads it.
    """
    path = Path(home) / SERVICE_KEY
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        for _ in range(50):  # the winner may still be writing it
            text = path.read_text(encoding="ascii").strip()
            if len(text) == 64:
                return bytes.fromhex(text)
            time.sleep(0.01)
        raise InvalidInput("serve.key", f"{path} is not a service key (64 hex digits): remove it to make a new one",
                           "--home") from None
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(secrets.token_hex(32) + "\n")
        out.flush()
        os.fsync(out.fileno())
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


class _Held:
    """A thread's world; closed when the thread ends and its thread-local data goes."""

    def __init__(self, world: World) -> None:
        self.world = world

    def __del__(self) -> None:
        self.world.close()


class Worlds:
    """A world per worker thread: each thread uses its own connections.

    The server's pool starts and ends threads as the load goes; a thread's world is closed
    when the thread ends (its connections are opened ``shared`` so that any thread may
    close them), so idle threads leave no open files behind.

    Writing, in two layers (``docs/service.md``, "Idempotency and concurrency"):

    - ``writing(node)``: a use case acting for ``node`` (the caller's region) runs alone
      among that node's use cases in this process, from its first read to its answer — so a
      clerk's pick of "the next blank of the outlet's stock" and the card written on it are
      not raced by another clerk of the same region. The three regions and the hub have one
      such lock each: a Tianjin clerk no longer waits for a Beijing one. ``writing()`` with no
      node takes them all (in the order of ``NODES``), for the rare acts that span the world.
    - Each database's transactions queue at its write gate (``sbcard.store.write_gate``,
      taken by ``UnitOfWork``): first come, first served, so the short cross-node parts of a
      use case (its messages to the hub, an upload's exchange with an issuer) wait their
      turn instead of polling SQLite's lock.

    Both are served in arrival order (FIFO), which keeps the slowest waits (the p99) close to
    the typical one. Reads go on beside the writers (WAL).

    A process that serves one node opens only that node's database (asking for another's
    raises ``NodeElsewhere``, answered 421) and reaches the other nodes through ``link``
    (``sbcard.api.peers.HttpLink``, signed with the key of each pair of nodes it is an end of).
    """

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._gates = {node: WriteGate(f"{node}.db") for node in NODES}  # per database, per transaction
        self._locks = {node: WriteGate(f"{node}'s use cases") for node in NODES}  # per node, per use case
        self._opened: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._keys: PairKeys | None = None
        self.link: HttpLink | None = None
        if not config.whole:
            _require_pair_keys(config, self.keys)
            self.link = HttpLink(config.node, config.peers, self.keys, held=config.served)

    @property
    def keys(self) -> PairKeys:
        """The node-to-node secrets of the pairs this process is an end of (``docs/api/nodes.md``), read once."""
        if self._keys is None:
            self._keys = PairKeys(exchange_keys(self.config.home, self.config.served))
        return self._keys

    def world(self) -> World:
        held = getattr(self._local, "held", None)
        if held is None:
            nodes = None if self.config.whole else self.config.served
            world = open_world(self.config.home, self.config.clock, nodes=nodes, shared=True, gates=self._gates)
            world.link = self.link
            held = self._local.held = _Held(world)
            self._opened.add(held)
        return held.world

    @contextmanager
    def writing(self, node: str | None = None) -> Iterator[World]:
        """The thread's world, for a use case that acts for ``node`` (all nodes when None)."""
        with self.write_lock(node):
            yield self.world()

    @contextmanager
    def write_lock(self, node: str | None = None, *, wait: float | None = None) -> Iterator[None]:
        """The lock alone, for a use case that opens its own transaction (signing in). ``wait``: at most so
        many seconds for each lock, then sqlite3's busy error (answered 503 ``store.busy``), nothing done."""
        taken: list[WriteGate] = []
        try:
            for name in NODES if node is None else (node,):
                lock = self._locks[name]
                lock.acquire(wait)
                taken.append(lock)
            yield
        finally:
            for lock in reversed(taken):
                lock.release()

    def let_others_write(self) -> None:
        """Called inside ``writing()`` between two transactions of a long run (a batch's pay, a chunk at a
        time): the locks this thread holds are let go, the use cases waiting for them run (in the order they
        came), then the run takes them again (in the order of ``NODES``) and goes on."""
        held = [self._locks[name] for name in NODES if self._locks[name].held()]
        for lock in reversed(held):
            lock.release()
        time.sleep(0)
        for lock in held:
            lock.acquire()

    def close(self) -> None:
        for held in list(self._opened):
            try:
                held.world.close()
            except Exception:  # already closed by its thread's end: nothing left to release
                pass
        if self.link is not None:
            self.link.close()


def _require_pair_keys(config: ServiceConfig, keys: PairKeys) -> None:
    """A process serving one node refuses to start without the key of each pair it has a ``--peer`` for: it could
    neither sign to that node nor believe it. The world-wide ``exchange.key`` of before is not used instead."""
    missing = [exchange_pair_path(config.home, node, peer) for node in config.served for peer in sorted(config.peers)
               if peer not in config.served and keys.secret(node, peer) is None]
    if not missing:
        return
    legacy = WorldPaths(config.home).exchange_key
    raise SbcardError("world.exchange_key", "no node-to-node key for " + ", ".join(str(path) for path in missing)
                      + ": each pair of nodes has its own key, which only its two nodes' servers hold — copy it "
                      "from the world's home (where it is made on first use) to both ends (docs/api/nodes.md)"
                      + (f"; {legacy} (one secret for the whole world) is no longer used" if legacy.is_file() else ""),
                      "--peer")
