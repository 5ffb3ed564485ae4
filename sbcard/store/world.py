"""The world on disk: one database per region, the hub's database, and their creation.

`init_world` is idempotent: it creates what is missing, upgrades what is old, loads the
reference regions, each region's own service outlets and the subsidy catalogue, gives
each region its issuer master keys once (in its key store, ``<node>.keys``: never in clear in
a database), and changes nothing when run again. `open_world` is how everything
else gets at the databases; it refuses a directory that is not a world and upgrades one
that is behind the code.
"""

from __future__ import annotations

import os
import random
import secrets
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import attrs
import sqlite_utils

from sbcard.clock import Clock, SystemClock
from sbcard.domain.errors import InvalidInput, NotFound, SbcardError
from sbcard.domain.outlets import KINDS as OUTLET_KINDS
from sbcard.domain.outlets import OutletCode
from sbcard.domain.regions import node_of
from sbcard.reference import subsidies as subsidy_reference
from sbcard.reference import read_csv_rows
from sbcard.store import schema_hub, schema_region
from sbcard.store.db import open_db
from sbcard.store import keystore
from sbcard.store.keystore import keystore_path
from sbcard.store.paths import recorded_path
from sbcard.store.migrations import Migration, migrate, read_meta, schema_version, timestamp
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.write_gate import WriteGate

HUB = "hub"
REGION_NODES: dict[str, str] = {"bj": "110000", "tj": "120000", "he": "130000"}
NODES: tuple[str, ...] = (*REGION_NODES, HUB)

KEY_PURPOSES = ("DPK", "DLK", "DTK", "DAMK", "MK", "UMK")  # UMK: terminals' upload batch MACs
KEY_ALGORITHM = "SM4"
KEY_LENGTH = 16  # SM4 keys are 128 bits

_LEVEL_ORDER = {"province": 0, "prefecture": 1, "county": 2}
# 4 columns x 200 rows = 800 host parameters, under SQLite's historical limit of 999.
_REGION_BATCH = 200
_OUTLET_BATCH = 100  # 6 columns
_ITEM_BATCH = 100  # 7 columns


@attrs.frozen
class WorldPaths:
    home: Path = attrs.field(converter=Path)

    def db(self, node: str) -> Path:
        _check_node(node)
        return self.home / f"{node}.db"

    @property
    def exchange_key(self) -> Path:
        """The world-wide node-to-node secret of before (no longer used: each pair of nodes has its own,
        ``exchange_keys``); named only to tell whoever still has it."""
        return self.home / "exchange.key"

    @property
    def cards_dir(self) -> Path:
        return self.home / "cards"

    @property
    def terminals_dir(self) -> Path:
        return self.home / "terminals"

    def keystore(self, node: str) -> Path:
        """The region's key store, beside its database (``sbcard/store/keystore.py``)."""
        if node not in REGION_NODES:
            raise ValueError(f"not a region node: {node!r}")
        return keystore_path(self.home, node)

    def record(self, path: str | os.PathLike[str]) -> str:
        """How the databases record a file of this world: its path relative to the home, so a
        copied world names its own files, never the original's. A file outside the home (a
        card kept elsewhere) keeps its absolute path."""
        return recorded_path(self.home, path)

    def resolve(self, stored: str | None) -> str | None:
        """The file a recorded path names: under this world's home when relative."""
        if not stored:
            return stored
        return stored if os.path.isabs(stored) else os.path.join(self.home, stored)



@attrs.frozen
class NodeReport:
    node: str
    path: Path
    region_code: str | None
    created: bool
    schema_version: int
    migrations_applied: tuple[str, ...]
    regions_loaded: int  # rows inserted or corrected this run, 0 when already current
    keys_generated: tuple[str, ...]  # purposes of issuer keys created this run
    outlets_loaded: int = 0  # this region's outlets inserted or corrected this run
    subsidy_items_loaded: int = 0  # subsidy catalogue items inserted or corrected this run

    @property
    def changed(self) -> bool:
        return self.created or bool(
            self.migrations_applied or self.regions_loaded or self.keys_generated or self.outlets_loaded
            or self.subsidy_items_loaded
        )


@attrs.frozen
class InitReport:
    home: Path
    created: bool
    nodes: tuple[NodeReport, ...]
    changed: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with stable keys (for `sbcard init --json`)."""
        return {
            "home": str(self.home),
            "created": self.created,
            "changed": self.changed,
            "nodes": [
                {
                    "node": n.node,
                    "path": str(n.path),
                    "region_code": n.region_code,
                    "created": n.created,
                    "schema_version": n.schema_version,
                    "migrations_applied": list(n.migrations_applied),
                    "regions_loaded": n.regions_loaded,
                    "keys_generated": list(n.keys_generated),
                    "outlets_loaded": n.outlets_loaded,
                    "subsidy_items_loaded": n.subsidy_items_loaded,
                }
                for n in self.nodes
            ],
        }


def init_world(home: Path, clock: Clock, rng_seed: int | None = None) -> InitReport:
    """Create or bring up to date the world at `home`.

    With `rng_seed` the issuer keys are derived from it, so two worlds initialised with
    the same seed hold the same keys (reproducible simulations); without it they come
    from the operating system's CSPRNG.
    """
    paths = WorldPaths(home)
    _refuse_directories(paths)
    existed_before = any(paths.db(node).exists() for node in NODES)
    dirs_created = False
    for directory in (paths.home, paths.cards_dir, paths.terminals_dir):
        if not directory.is_dir():
            directory.mkdir(parents=True, exist_ok=True)
            dirs_created = True
    regions = _fixture_regions()
    outlets = _fixture_outlets({row["code"] for row in regions})
    reports = tuple(_init_node(paths, node, regions, outlets, clock, rng_seed) for node in NODES)
    return InitReport(
        home=paths.home,
        created=not existed_before,
        nodes=reports,
        changed=dirs_created or any(r.changed for r in reports),
    )


class NodeElsewhere(SbcardError):
    """A node's database this world does not hold: a process that serves one node reaches the
    others over the network (``sbcard serve --node``), never by opening their files."""

    def __init__(self, node: str, held: Sequence[str]) -> None:
        super().__init__("node.elsewhere", f"node {node} is not held here: this process holds only "
                         f"{', '.join(held)}'s database, and this act needs {node}'s", "node")
        self.node = node


class World:
    """The open databases of one world, or of the nodes of it a process holds. Close it (or use it as a context manager).

    ``open_world(home, nodes=("bj",))`` opens only those nodes' databases; asking for another
    node's database raises ``NodeElsewhere`` instead of opening its file. ``link`` is the port
    through which such a world reaches the other nodes (set by the entry point that opened it;
    ``sbcard.services.exchange.peers.NodeLink``), None when it holds them all or reaches none.
    """

    def __init__(self, paths: WorldPaths, dbs: dict[str, sqlite_utils.Database], link: Any = None) -> None:
        self.paths = paths
        self._dbs = dbs
        self.link = link

    @property
    def nodes(self) -> tuple[str, ...]:
        """The nodes whose databases this world holds, in the order of ``NODES``."""
        return tuple(node for node in NODES if node in self._dbs)

    def holds(self, node: str) -> bool:
        return node in self._dbs

    @property
    def whole(self) -> bool:
        """Whether this world holds every node's database (the CLI, the simulator, ``serve --node all``)."""
        return len(self._dbs) == len(NODES)

    def region(self, node: str) -> sqlite_utils.Database:
        if node not in REGION_NODES:
            raise ValueError(f"not a region node: {node!r} (expected one of {list(REGION_NODES)})")
        if node not in self._dbs:
            raise NodeElsewhere(node, self.nodes)
        return self._dbs[node]

    def hub(self) -> sqlite_utils.Database:
        if HUB not in self._dbs:
            raise NodeElsewhere(HUB, self.nodes)
        return self._dbs[HUB]

    def close(self) -> None:
        for db in self._dbs.values():
            db.close()

    def __enter__(self) -> World:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _refuse_directories(paths: WorldPaths) -> None:
    """A database path that is a directory is said to be one (not "missing", not "unable to open")."""
    for node in NODES:
        path = paths.db(node)
        if path.is_dir():
            raise InvalidInput("world.db_is_directory", f"{path} is a directory, not a database file: move it out "
                               "of the world (then `sbcard init` makes the database)", "--home")


def open_world(home: Path, clock: Clock | None = None, nodes: Sequence[str] | None = None, *,
               shared: bool = False, gates: Mapping[str, WriteGate] | None = None) -> World:
    """Open the world at `home`, applying any pending migrations (stamped by `clock`).

    ``nodes``: only those nodes' databases (a process that serves one node); the others'
    files are neither required nor opened. ``shared``: its connections may be closed by
    another thread (``open_db``). ``gates``: node → the write gate the threads of this
    process queue at before writing that node's database (``sbcard.store.write_gate``).
    """
    paths = WorldPaths(home)
    _refuse_directories(paths)
    wanted = NODES if nodes is None else tuple(node for node in NODES if node in set(nodes))
    for node in nodes or ():
        _check_node(node)
    missing = [node for node in wanted if not paths.db(node).is_file()]
    if len(missing) == len(wanted):
        raise NotFound("world.missing", f"no world at {paths.home}: run `sbcard init` first")
    if missing:
        files = ", ".join(f"{node}.db" for node in missing)
        raise NotFound(
            "world.incomplete",
            f"world at {paths.home} is missing {files}: run `sbcard init` to repair it",
        )
    now = (clock or SystemClock()).now
    dbs: dict[str, sqlite_utils.Database] = {}
    try:
        for node in wanted:
            dbs[node] = open_db(paths.db(node), shared=shared)
            kind, migrations = _schema_of(node)
            migrate(dbs[node], kind, migrations, now, region_code=REGION_NODES.get(node))
            if gates is not None and node in gates:
                dbs[node].write_gate = gates[node]  # type: ignore[attr-defined]
    except BaseException:
        for db in dbs.values():
            db.close()
        raise
    return World(paths, dbs)


def exchange_pair_path(home: Path, a: str, b: str) -> Path:
    """Where the secret of the pair of nodes ``a`` and ``b`` is kept: ``<home>/exchange/<a>-<b>.key``, the pair
    sorted (``bj-hub``, ``he-tj``)."""
    first, second = sorted((a, b))
    return Path(home) / "exchange" / f"{first}-{second}.key"


def exchange_keys(home: Path, nodes: Sequence[str]) -> dict[tuple[str, str], bytes]:
    """The node-to-node secrets a process serving ``nodes`` holds: one per pair of nodes one of whose ends it
    serves (``docs/api/nodes.md``), keyed by the sorted pair. Each pair's file (32 random bytes, hex, mode 0600)
    is meant to be copied to exactly its two nodes' servers, so that no node can sign as a third.

    A missing pair file is made here only when this home holds both ends' databases (one machine: the two ends
    read the same file); otherwise it is left out, and the pair cannot talk until it is copied here. Made whole
    in a temporary file and linked into place, so two processes starting at once agree on one secret.
    The old world-wide ``exchange.key`` is never used: every holder of it could sign as any node.
    """
    home = Path(home)
    held: dict[tuple[str, str], bytes] = {}
    for node in nodes:
        for other in NODES:
            first, second = sorted((node, other))
            pair = (first, second)
            if other == node or pair in held:
                continue
            path = exchange_pair_path(home, node, other)
            if not path.is_file():
                if not all((home / f"{end}.db").is_file() for end in pair):
                    continue
                _make_secret_file(path)
            held[pair] = _read_secret(path)
    return held


def _make_secret_file(path: Path) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_hex(32) + "\n")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # another process made it first: its secret is the pair's
    finally:
        tmp.unlink(missing_ok=True)


def _read_secret(path: Path) -> bytes:
    text = path.read_text().strip()
    try:
        secret = bytes.fromhex(text)
    except ValueError:
        secret = b""
    if len(secret) < 16:
        raise SbcardError("world.exchange_key", f"{path} does not hold a node-to-node secret (64 hex digits)")
    return secret


def node_of_db(db: sqlite_utils.Database) -> str:
    """The node ("bj", "tj", "he") a region database belongs to, from its own identity.

    A database's region is written once, when it is made, so it is read once per open database.
    """
    node = _NODE_OF_DB.get(db)
    if node is None:
        code = read_meta(db).get("region_code")
        if code is None:
            raise SbcardError("store.not_region", "this database is not a region's database")
        node = _NODE_OF_DB[db] = node_of(code)
    return node


_NODE_OF_DB: weakref.WeakKeyDictionary[sqlite_utils.Database, str] = weakref.WeakKeyDictionary()


def world_summary(world: World) -> dict[str, dict[str, Any]]:
    """Counts per node, keyed by node, with stable keys (for `sbcard init` and `simulate`).

    A hub's `cards` are the cards in its directory; `blacklist_version` is 0 until the
    first list is published.
    """
    summary: dict[str, dict[str, Any]] = {}
    for node, code in REGION_NODES.items():
        db = world.region(node)
        summary[node] = {
            "kind": "region",
            "region_code": code,
            "schema_version": schema_version(db),
            "regions": db["regions"].count,
            "operators": db["operators"].count,
            "audit_entries": db["audit_log"].count,
            "outlets": db["outlets"].count,
            "persons": db["persons"].count,
        }
    hub = world.hub()
    latest = hub.execute("SELECT max(version) FROM blacklist_versions").fetchone()[0]
    summary[HUB] = {
        "kind": "hub",
        "region_code": None,
        "schema_version": schema_version(hub),
        "regions": hub["regions"].count,
        "cards": hub["card_directory"].count,
        "blacklist_version": latest or 0,
    }
    return summary


def _init_node(
    paths: WorldPaths,
    node: str,
    regions: Sequence[dict[str, Any]],
    outlets: Sequence[dict[str, Any]],
    clock: Clock,
    rng_seed: int | None,
) -> NodeReport:
    path = paths.db(node)
    created = not path.exists()
    region_code = REGION_NODES.get(node)
    kind, migrations = _schema_of(node)
    db = open_db(path)
    try:
        applied = migrate(db, kind, migrations, clock.now, region_code=region_code)
        loaded = _load_regions(db, regions)
        keys: tuple[str, ...] = ()
        outlets_loaded = items_loaded = 0
        if region_code is not None:
            keys = _ensure_issuer_keys(db, paths.keystore(node), region_code, clock, rng_seed)
            outlets_loaded = _load_outlets(db, [row for row in outlets if row["node"] == node])
            items_loaded = _upsert_changed(db, "subsidy_items", subsidy_reference.catalogue_rows(), _ITEM_BATCH)
        version = schema_version(db)
    finally:
        db.close()
    return NodeReport(
        node=node,
        path=path,
        region_code=region_code,
        created=created,
        schema_version=version,
        migrations_applied=tuple(applied),
        regions_loaded=loaded,
        keys_generated=keys,
        outlets_loaded=outlets_loaded,
        subsidy_items_loaded=items_loaded,
    )


def _fixture_regions() -> list[dict[str, Any]]:
    """The regions fixture as rows for the `regions` table, parents before children."""
    rows = [
        {
            "code": row["code"].strip(),
            "name": row["name"].strip(),
            "level": row["level"].strip(),
            "parent": (row.get("parent") or "").strip() or None,
        }
        for row in read_csv_rows("regions.csv")
    ]
    return sorted(rows, key=lambda r: (_LEVEL_ORDER.get(r["level"], len(_LEVEL_ORDER)), r["code"]))


def _load_regions(db: sqlite_utils.Database, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert only the rows that differ, so a second run writes nothing at all.

    Regions that left the fixture are kept: other rows may still refer to them.
    """
    return _upsert_changed(db, "regions", rows, _REGION_BATCH)


def _fixture_outlets(known_regions: set[str]) -> list[dict[str, Any]]:
    """The outlets fixture, checked row by row, each row tagged with the node that owns it.

    A malformed fixture is an internal error (exit 3) naming the line: loading half of it
    would leave a region without outlets its staff expect.
    """
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for line, row in enumerate(read_csv_rows("outlets.csv"), start=2):
        try:
            outlet = _outlet_row(row, known_regions)
            if outlet["code"] in seen:
                raise ValueError(f"{outlet['code']} is listed twice")
        except (InvalidInput, KeyError, ValueError, AttributeError) as e:
            raise SbcardError("fixture.invalid", f"outlets.csv line {line}: {e}") from e
        seen.add(outlet["code"])
        rows.append(outlet)
    return rows


def _outlet_row(row: dict[str, str], known_regions: set[str]) -> dict[str, Any]:
    code = OutletCode.parse(row["code"], field="code")
    region = row["region"].strip()
    if region != code.district:
        raise ValueError(f"{code} lies in district {code.district}, not {region}")
    if region not in known_regions:
        raise ValueError(f"region {region} is not in regions.csv")
    kind = row["kind"].strip()
    if kind not in OUTLET_KINDS:
        raise ValueError(f"kind {kind!r} is not one of {', '.join(OUTLET_KINDS)}")
    name = row["name"].strip()
    if not name:
        raise ValueError(f"{code} has no name")
    low_stock = int(row["low_stock"])
    if low_stock < 0:
        raise ValueError(f"{code}: low_stock must not be negative")
    return {
        "node": code.node,
        "code": str(code),
        "name": name,
        "region": region,
        "kind": kind,
        "address": (row.get("address") or "").strip() or None,
        "low_stock": low_stock,
    }


def _load_outlets(db: sqlite_utils.Database, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert this region's outlets that differ, as for regions: a second run writes nothing.

    Outlets that left the fixture are kept: their stock and their cards' events name them.
    """
    return _upsert_changed(db, "outlets", [{k: v for k, v in row.items() if k != "node"} for row in rows],
                           _OUTLET_BATCH)


def _upsert_changed(db: sqlite_utils.Database, table: str, rows: Sequence[dict[str, Any]], batch_size: int) -> int:
    """Upsert the fixture rows (keyed by ``code``) that differ from the table's; how many there were."""
    with UnitOfWork(db) as uow:
        current = {row["code"]: row for row in uow.db[table].rows}
        stale = [row for row in rows if current.get(row["code"]) != row]
        if stale:
            uow.db[table].upsert_all(stale, pk="code", batch_size=batch_size)
            uow.commit()
    return len(stale)


def _ensure_issuer_keys(
    db: sqlite_utils.Database, store: Path, region_code: str, clock: Clock, rng_seed: int | None
) -> tuple[str, ...]:
    """Create the region's missing master keys in its key store; an existing key is never replaced.

    A region that has issued cards and lost its key store is refused rather than given new
    keys: its cards' keys derive from the old ones.
    """
    node = node_of(region_code)
    present = keystore.read_keys(store, node=node, region_code=region_code)
    missing = [purpose for purpose in KEY_PURPOSES if purpose not in present]
    if not missing:
        return ()
    if not present and db.execute("SELECT 1 FROM cards LIMIT 1").fetchone() is not None:
        raise SbcardError("keys.lost", f"region {node} has issued cards but its key store {store} is missing: "
                          "restore it (new keys would not open the cards)")
    created_at = timestamp(clock.now())
    keystore.add_keys(store, ({
        "purpose": purpose,
        "algorithm": KEY_ALGORITHM,
        "key_version": 1,
        "key_hex": _new_key(rng_seed, region_code, purpose).hex().upper(),
        "created_at": created_at,
    } for purpose in missing), node=node, region_code=region_code)
    return tuple(missing)


def _new_key(seed: int | None, region_code: str, purpose: str) -> bytes:
    """A fresh key: from the seed (one stream per region and purpose) or the OS CSPRNG."""
    if seed is None:
        return secrets.token_bytes(KEY_LENGTH)
    return random.Random(f"sbcard issuer key {seed} {region_code} {purpose}").randbytes(KEY_LENGTH)


def _schema_of(node: str) -> tuple[str, Sequence[Migration]]:
    if node == HUB:
        return "hub", schema_hub.MIGRATIONS
    return "region", schema_region.MIGRATIONS


def _check_node(node: str) -> None:
    if node not in NODES:
        raise ValueError(f"unknown node {node!r} (expected one of {list(NODES)})")

