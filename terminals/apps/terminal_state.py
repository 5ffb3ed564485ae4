"""A terminal's own state: ``<home>/terminals/<ID>/terminal.db`` and ``inflight.slot``.

What a validator keeps offline, between taps and across restarts:

- ``config``: who it is (id, operator, station and its code, gate, line, area, flat full
  fare, node, terminal number, PSAM id) — written once, when the terminal is added;
- ``psam`` / ``psam_keys`` / ``psam_upload_key``: its PSAM's EEPROM — the terminal number,
  the terminal transaction serial, every issuing province's consumer keys, and the upload
  key its batches are MACed with (``sign_batch``; a terminal made before upload keys gets
  it once, ``load_upload_key``), and ``host_credential``, the key its requests to the
  host API are signed with (``sbcard.chip.terminal_auth``; ``load_host_credential`` for a
  terminal made before), every key sealed under the KEK (``sbcard/chip/sealing.py``:
  never in clear in the database; a terminal made before is sealed when next opened);
- ``blacklist`` (+ ``revoked_concessions``) and the hub's version they copy;
- ``inflight.slot`` (a small file beside the database): the PSAM's last serial and the
  purchase in flight, each written with one ``pwrite`` — the serial when the PSAM takes
  it, the purchase (counter, balance, amount, serial, date-time, the card's random…)
  *before* DEBIT FOR PURCHASE is sent. Its record settles it; a card torn instead moves it
  into ``pending``; a terminal that dies in between finds it there at ``resume``;
- ``pending``: purchases in flight at a tear, one per card, until the card's next tap
  completes or drops them (``terminals/apps/transit.py``, tear recovery);
- ``records``: the offline log, append-only (triggers refuse UPDATE and DELETE), one row
  per purchase on a card. Not declared unique by (application serial, type, counter): a
  card image restored to an older state repeats its counters, and both records must
  reach the host, which flags the counter going back (a unique index would also cost a
  random B-tree page per tap);
- ``uploads``: what has been sent to the operator's host, as ranges of ``records.seq``
  (the log itself never changes);
- ``events``: blocked cards, refused, abandoned or unresolved purchases (for the operator).

Durability. A tap writes the slot twice (page cache, no fsync) and commits the database
once: the record, in one small transaction, before the validator answers ``ok`` (the gate
opens only then). WAL with ``synchronous=NORMAL`` (the default): a commit appends to the
WAL with no fsync, so a crash of the terminal's process (or of the CLI) never loses a
committed record or the purchase in flight, and a power cut may lose the last commits
but never corrupts the database. ``durability="full"`` (``synchronous=FULL`` and an
fdatasync of every slot write) survives a power cut as well, at two fsyncs per tap. The
WAL is checkpointed every ``WAL_CHECKPOINT_PAGES`` pages and at every sync and upload (a
checkpoint fsyncs). The PSAM's serial reaches the ``psam`` table at a sync, an upload or
a close; in between its latest value is in the slot, and the serials the card saw are in
the records and pending purchases too — opening takes the highest, so a serial a card
saw is never given again.
"""

from __future__ import annotations

import json
import os
import sqlite3
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from sbcard.chip import sealing
from sbcard.chip.crypto import Algorithm
from sbcard.chip.psam import BatchMac
from sbcard.chip.purse_record import LOG_COLUMNS, PurseRecord, batch_digest
from terminals.psam import Psam, PsamKeySet, PsamUploadKey

DB_NAME = "terminal.db"
SCHEMA_VERSION = 1
DURABILITY = {"normal": "NORMAL", "full": "FULL"}
BUSY_TIMEOUT_MS = 5000
WAL_CHECKPOINT_PAGES = 10_000
WAL_SIZE_LIMIT = 8 * 1024 * 1024

_SCHEMA = """
CREATE TABLE config (
    key   TEXT PRIMARY KEY,
    value TEXT
) STRICT;

CREATE TABLE psam (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    psam_id     TEXT NOT NULL,
    terminal_no TEXT NOT NULL CHECK (length(terminal_no) = 12),
    serial      INTEGER NOT NULL CHECK (serial BETWEEN 0 AND 4294967295)
) STRICT;

CREATE TABLE psam_keys (
    issuer_id           TEXT PRIMARY KEY CHECK (length(issuer_id) = 16),
    algorithm           TEXT NOT NULL,
    version             INTEGER NOT NULL,
    purchase_master     TEXT NOT NULL,
    app_maintenance_master TEXT NOT NULL
) STRICT;

CREATE TABLE psam_upload_key (
    id        INTEGER PRIMARY KEY CHECK (id = 1),
    algorithm TEXT NOT NULL,
    key_hex   TEXT NOT NULL
) STRICT;

CREATE TABLE blacklist (card_number TEXT PRIMARY KEY) STRICT, WITHOUT ROWID;
CREATE TABLE revoked_concessions (
    card_number TEXT NOT NULL,
    kind        TEXT NOT NULL,  -- elderly_free_ride | student
    PRIMARY KEY (card_number, kind)
) STRICT, WITHOUT ROWID;

CREATE TABLE pending (
    app_serial TEXT PRIMARY KEY,
    body       TEXT NOT NULL CHECK (json_valid(body))
) STRICT, WITHOUT ROWID;

CREATE TABLE records (
    seq                INTEGER PRIMARY KEY,
    app_serial         TEXT NOT NULL,
    txn_type           INTEGER NOT NULL,
    counter            INTEGER NOT NULL,
    card_number        TEXT,
    issuer_id          TEXT NOT NULL,
    issuer_region      TEXT,
    issuer_node        TEXT,
    amount_fen         INTEGER NOT NULL CHECK (amount_fen >= 0),
    balance_before_fen INTEGER NOT NULL CHECK (balance_before_fen >= 0),
    terminal           TEXT NOT NULL,
    operator           TEXT NOT NULL,
    terminal_no        TEXT NOT NULL,
    terminal_serial    INTEGER NOT NULL,
    date_time          TEXT NOT NULL CHECK (length(date_time) = 14),
    at                 TEXT NOT NULL,
    tac                TEXT,
    mac2               TEXT,
    status             TEXT NOT NULL CHECK (status IN ('ok', 'mac2_failed')),
    recovered          TEXT CHECK (recovered IS NULL OR recovered IN ('prove', 'log')),
    kind               TEXT NOT NULL CHECK (kind IN ('ride', 'entry', 'exit')),
    blacklist_version  INTEGER NOT NULL,
    details            TEXT NOT NULL CHECK (json_valid(details))
) STRICT;
CREATE TRIGGER records_no_update BEFORE UPDATE ON records
BEGIN SELECT RAISE(ABORT, 'the offline log is append-only'); END;
CREATE TRIGGER records_no_delete BEFORE DELETE ON records
BEGIN SELECT RAISE(ABORT, 'the offline log is append-only'); END;

CREATE TABLE uploads (
    batch     TEXT PRIMARY KEY,
    first_seq INTEGER NOT NULL,
    last_seq  INTEGER NOT NULL CHECK (last_seq >= first_seq),
    count     INTEGER NOT NULL,
    at        TEXT NOT NULL,
    result    TEXT CHECK (result IS NULL OR json_valid(result))
) STRICT;

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    subject TEXT,
    details TEXT CHECK (details IS NULL OR json_valid(details))
) STRICT;
"""

# The columns of ``records``: a ``PurseRecord``'s log form (``details`` holds its ``extra`` as JSON).
RECORD_COLUMNS = LOG_COLUMNS
_INSERT_RECORD = (
    f"INSERT INTO records ({', '.join(RECORD_COLUMNS)}, details) VALUES ({', '.join('?' * (len(RECORD_COLUMNS) + 1))})"
)
_SELECT_RECORDS = f"SELECT seq, {', '.join(RECORD_COLUMNS)}, details FROM records WHERE seq > ? ORDER BY seq"
CONFIG_KEYS = (
    "terminal_id",
    "operator",
    "node",
    "station",
    "station_code",
    "gate",
    "line",
    "area",
    "full_fare_fen",
    "created_at",
)
GATES = ("entry", "exit", "both")


# ``json.dumps`` with options makes a new encoder at each call; a tap encodes twice.
_SLOT_JSON = json.JSONEncoder(ensure_ascii=False)  # = json.dumps(body, ensure_ascii=False)
_DETAILS_JSON = json.JSONEncoder(ensure_ascii=False, sort_keys=True)  # = json.dumps(…, ensure_ascii=False, sort_keys=True)

INFLIGHT_NAME = "inflight.slot"
_SLOT_MAGIC = b"SBINFLT1"
_SLOT = struct.Struct(">8sIII")  # magic, PSAM serial, body length, CRC-32 of serial ‖ length ‖ body
_SLOT_SIZE = 16 * 1024


class InflightSlot:
    """One small fixed file: the PSAM's last serial and the purchase in flight, one ``pwrite`` each.

    Written before the card sees a MAC1 (so a serial is never given twice) and before
    DEBIT is sent (so a purchase the card may commit is never forgotten), at the cost of a
    write to the page cache, not of a database commit. A torn or foreign slot (wrong magic
    or checksum) reads as empty: it was being written before the card was sent anything.
    """

    def __init__(self, path: Path, *, durable: bool = False) -> None:
        self.path = path
        self._durable = durable
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)

    def read(self) -> tuple[int, dict[str, Any] | None]:
        head = os.pread(self._fd, _SLOT.size, 0)
        if len(head) < _SLOT.size:
            return 0, None
        magic, serial, length, crc = _SLOT.unpack(head)
        if magic != _SLOT_MAGIC or length > _SLOT_SIZE:
            return 0, None
        body = os.pread(self._fd, length, _SLOT.size)
        if len(body) != length or zlib.crc32(body, zlib.crc32(head[8:16])) != crc:
            return 0, None
        return serial, (json.loads(body) if body else None)

    def write(self, serial: int, body: Mapping[str, Any] | None) -> None:
        raw = b"" if body is None else _SLOT_JSON.encode(body).encode()
        if len(raw) > _SLOT_SIZE:
            raise ValueError(f"a purchase in flight of {len(raw)} bytes does not fit the slot")
        middle = struct.pack(">II", serial, len(raw))
        crc = zlib.crc32(raw, zlib.crc32(middle))
        os.pwrite(self._fd, _SLOT_MAGIC + middle + crc.to_bytes(4, "big") + raw, 0)
        if self._durable:
            getattr(os, "fdatasync", os.fsync)(self._fd)

    def close(self) -> None:
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


class TerminalStateError(Exception):
    """The terminal's directory is missing, already exists, or is not a terminal's."""


@attrs.frozen
class TerminalConfig:
    terminal_id: str
    operator: str
    node: str
    terminal_no: str  # 12 hex digits
    psam_id: str
    created_at: str
    station: str | None = None
    station_code: str | None = None  # a metro gate's station code (a name may name several)
    gate: str = "both"  # gated operators: entry, exit or both (the card's state decides)
    line: str | None = None
    area: str | None = None  # Beijing buses: city | suburb
    full_fare_fen: int | None = None  # a flat-fare bus line's full fare

    def __attrs_post_init__(self) -> None:
        if len(self.terminal_no) != 12 or any(c not in "0123456789ABCDEFabcdef" for c in self.terminal_no):
            raise ValueError(f"terminal number {self.terminal_no!r}: 12 hex digits")
        if self.gate not in GATES:
            raise ValueError(f"gate {self.gate!r}: one of {', '.join(GATES)}")

    @property
    def terminal_no_bytes(self) -> bytes:
        return bytes.fromhex(self.terminal_no)


_PSAM_KEY_COLUMNS = ("purchase_master", "app_maintenance_master")


def _key_context(issuer_id: str, column: str) -> bytes:
    """What a sealed PSAM key is bound to: its issuer and purpose (moved to another row, it does not open)."""
    return f"sbcard PSAM key {issuer_id.upper()} {column}".encode("ascii")


def key_set_row(k: PsamKeySet) -> dict[str, Any]:
    """A PSAM key set as ``psam_keys`` stores it: the masters sealed under the KEK, never in clear."""
    return {
        "issuer_id": k.issuer_id,
        "algorithm": k.algorithm.value,
        "version": k.version,
        "purchase_master": sealing.seal(k.purchase_master, _key_context(k.issuer_id, "purchase_master")),
        "app_maintenance_master": sealing.seal(k.app_maintenance_master,
                                               _key_context(k.issuer_id, "app_maintenance_master")),
    }


def _sealed_upload_key(key: PsamUploadKey) -> str:
    """The upload key as ``psam_upload_key`` stores it: sealed under the KEK, like the consumer keys."""
    return sealing.seal(key.key, _key_context("upload", "upload_key"))


def _store_host_credential(conn: sqlite3.Connection, key: bytes) -> None:
    """The host credential (``sbcard.chip.terminal_auth``) sealed under the KEK, like the PSAM's keys."""
    conn.execute("CREATE TABLE IF NOT EXISTS host_credential (id INTEGER PRIMARY KEY CHECK (id = 1), "
                 "key_hex TEXT NOT NULL) STRICT")
    conn.execute("INSERT INTO host_credential (id, key_hex) VALUES (1, ?)",
                 (sealing.seal(key, _key_context("host", "credential")),))


def _psam_key(issuer_id: str, column: str, stored: str) -> bytes:
    if not sealing.is_sealed(stored):  # a terminal made before keys were sealed (``open`` seals them)
        return bytes.fromhex(stored)
    return sealing.unseal(stored, _key_context(issuer_id, column), what=f"the PSAM's {column} of {issuer_id}")


def _seal_clear_keys(conn: sqlite3.Connection) -> None:
    """Seal the PSAM keys a terminal made before they were sealed kept in clear (once: then none are)."""
    clear = conn.execute(f"SELECT issuer_id, {', '.join(_PSAM_KEY_COLUMNS)} FROM psam_keys "
                         f"WHERE purchase_master NOT LIKE '{sealing.PREFIX}%' "
                         f"OR app_maintenance_master NOT LIKE '{sealing.PREFIX}%'").fetchall()
    if not clear:
        return
    conn.execute("PRAGMA secure_delete = ON")  # the pages that held them are zeroed
    conn.execute("BEGIN IMMEDIATE")
    try:
        for issuer_id, *values in clear:
            sealed = [value if sealing.is_sealed(value) else
                      sealing.seal(bytes.fromhex(value), _key_context(issuer_id, column))
                      for column, value in zip(_PSAM_KEY_COLUMNS, values)]
            conn.execute("UPDATE psam_keys SET purchase_master = ?, app_maintenance_master = ? WHERE issuer_id = ?",
                         (*sealed, issuer_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _connect(path: Path, durability: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise TerminalStateError(f"{path}: cannot use WAL mode (got {mode})")
    conn.execute(f"PRAGMA synchronous={DURABILITY[durability]}")
    conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # A checkpoint fsyncs the WAL and the database: every WAL_CHECKPOINT_PAGES pages (about
    # 2,000 taps) rather than SQLite's 1,000, and at every sync; the WAL is cut back after.
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_CHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT}")
    return conn


class TerminalState:
    """The open ``terminal.db`` of one terminal. Also the PSAM's serial store."""

    def __init__(self, directory: Path, conn: sqlite3.Connection, durability: str = "normal") -> None:
        self.directory = directory
        self.durability = durability
        self._conn = conn
        self.config = self._read_config()
        self._pending: dict[str, dict[str, Any]] = {
            row[0]: json.loads(row[1]) for row in conn.execute("SELECT app_serial, body FROM pending")
        }
        self._blacklist_version = int(self._get("blacklist_version") or 0)
        # The list as the database holds it, asked at every tap: only ``replace_blacklist`` changes it.
        self._blacklist = frozenset(row[0] for row in conn.execute("SELECT card_number FROM blacklist"))
        self._staged: list[Callable[[], Any]] | None = None
        self._slot = InflightSlot(directory / INFLIGHT_NAME, durable=durability == "full")
        slot_serial, self._inflight = self._slot.read()
        self._saved_serial = conn.execute("SELECT serial FROM psam WHERE id = 1").fetchone()[0]
        last = conn.execute("SELECT terminal_serial FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        self._serial = max(
            self._saved_serial,
            slot_serial,
            last[0] if last else 0,
            *(int(p.get("terminal_serial") or 0) for p in self._pending.values()),
        )

    # --- making and opening -------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path | str,
        config: TerminalConfig,
        key_sets: Iterable[PsamKeySet],
        *,
        durability: str = "normal",
        upload_key: PsamUploadKey | None = None,
        host_credential: bytes | None = None,
    ) -> TerminalState:
        """A new terminal's directory and database; refuses a directory that already holds one."""
        directory = Path(directory)
        if durability not in DURABILITY:
            raise ValueError(f"durability {durability!r}: one of {', '.join(DURABILITY)}")
        path = directory / DB_NAME
        if path.exists():
            raise TerminalStateError(f"{path} already exists: a terminal is never made twice")
        directory.mkdir(parents=True, exist_ok=True)
        conn = _connect(path, durability)
        try:
            conn.execute("BEGIN IMMEDIATE")  # executescript would commit: statements one by one
            for statement in _statements(_SCHEMA):
                conn.execute(statement)
            values = attrs.asdict(config)
            conn.executemany(
                "INSERT INTO config (key, value) VALUES (?, ?)",
                [(k, None if values[k] is None else str(values[k])) for k in CONFIG_KEYS]
                + [("durability", durability), ("blacklist_version", "0"), ("schema_version", str(SCHEMA_VERSION))],
            )
            conn.execute(
                "INSERT INTO psam (id, psam_id, terminal_no, serial) VALUES (1, ?, ?, 0)",
                (config.psam_id, config.terminal_no.upper()),
            )
            conn.executemany(
                "INSERT INTO psam_keys VALUES (:issuer_id, :algorithm, :version, :purchase_master, :app_maintenance_master)",
                [key_set_row(k) for k in key_sets],
            )
            if upload_key is not None:
                conn.execute("INSERT INTO psam_upload_key (id, algorithm, key_hex) VALUES (1, ?, ?)",
                             (upload_key.algorithm.value, _sealed_upload_key(upload_key)))
            if host_credential is not None:
                _store_host_credential(conn, host_credential)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            conn.close()
            path.unlink(missing_ok=True)
            raise
        return cls(directory, conn, durability)

    @classmethod
    def open(cls, directory: Path | str) -> TerminalState:
        directory = Path(directory)
        path = directory / DB_NAME
        if not path.is_file():
            raise TerminalStateError(f"no terminal at {directory} (no {DB_NAME})")
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            row = conn.execute("SELECT value FROM config WHERE key = 'durability'").fetchone()
        except sqlite3.DatabaseError as e:
            conn.close()
            raise TerminalStateError(f"{path} is not a terminal's database: {e}") from None
        durability = row[0] if row and row[0] in DURABILITY else "normal"
        try:
            _seal_clear_keys(conn)
        except sqlite3.DatabaseError as e:
            raise TerminalStateError(f"{path} is not a terminal's database: {e}") from None
        finally:
            conn.close()
        return cls(directory, _connect(path, durability), durability)

    def close(self) -> None:
        self.save_serial()
        self._slot.close()
        self._conn.close()

    def __enter__(self) -> TerminalState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM config WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _read_config(self) -> TerminalConfig:
        values = dict(self._conn.execute("SELECT key, value FROM config").fetchall())
        psam_id, terminal_no = self._conn.execute("SELECT psam_id, terminal_no FROM psam").fetchone()
        full_fare = values.get("full_fare_fen")
        return TerminalConfig(
            terminal_id=values["terminal_id"],
            operator=values["operator"],
            node=values["node"],
            terminal_no=terminal_no,
            psam_id=psam_id,
            created_at=values["created_at"],
            station=values.get("station"),
            station_code=values.get("station_code"),
            gate=values.get("gate") or "both",
            line=values.get("line"),
            area=values.get("area"),
            full_fare_fen=None if full_fare is None else int(full_fare),
        )

    # --- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One transaction: committed when the block ends, rolled back by an exception.

        The in-memory copy of ``pending`` follows only what was committed.
        """
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        self._staged = []
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        finally:
            staged, self._staged = self._staged, None
        for change in staged:
            change()

    def _cache(self, change: Callable[[], Any]) -> None:
        if self._staged is None:
            change()
        else:
            self._staged.append(change)

    # --- the PSAM -----------------------------------------------------------------------

    def psam(self) -> Psam:
        """The terminal's PSAM, with its keys and this database as its serial store."""
        rows = self._conn.execute(
            "SELECT issuer_id, algorithm, version, purchase_master, app_maintenance_master FROM psam_keys"
        ).fetchall()
        key_sets = [
            PsamKeySet(issuer_id, _psam_key(issuer_id, "purchase_master", dpk),
                       _psam_key(issuer_id, "app_maintenance_master", damk), Algorithm(alg), version)
            for issuer_id, alg, version, dpk, damk in rows
        ]
        return Psam(self.config.terminal_no_bytes, key_sets, self, psam_id=self.config.psam_id,
                    upload_key=self.upload_key())

    def upload_key(self) -> PsamUploadKey | None:
        """The PSAM's upload key; None for a terminal made before upload keys."""
        try:
            row = self._conn.execute("SELECT algorithm, key_hex FROM psam_upload_key WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # no such table: made before upload keys
            return None
        if row is None:
            return None
        return PsamUploadKey(Algorithm(row[0]), _psam_key("upload", "upload_key", row[1]))

    def load_upload_key(self, key: PsamUploadKey) -> None:
        """Load the upload key into a PSAM made before upload keys; a PSAM's key is loaded once."""
        if self.upload_key() is not None:
            raise TerminalStateError(f"terminal {self.config.terminal_id}'s PSAM already holds an upload key")
        with self.transaction():
            self._conn.execute("CREATE TABLE IF NOT EXISTS psam_upload_key (id INTEGER PRIMARY KEY CHECK (id = 1), "
                               "algorithm TEXT NOT NULL, key_hex TEXT NOT NULL) STRICT")
            self._conn.execute("INSERT INTO psam_upload_key (id, algorithm, key_hex) VALUES (1, ?, ?)",
                               (key.algorithm.value, _sealed_upload_key(key)))

    def host_credential(self) -> bytes | None:
        """The key this terminal signs its requests to the host API with; None for a terminal made before."""
        try:
            row = self._conn.execute("SELECT key_hex FROM host_credential WHERE id = 1").fetchone()
        except sqlite3.OperationalError:  # no such table: made before host credentials
            return None
        if row is None:
            return None
        return _psam_key("host", "credential", row[0])

    def load_host_credential(self, key: bytes) -> bool:
        """Load the host credential into a terminal made before credentials; False if it already held this one.

        The credential is derived by the terminal's region, so loading it again is the same
        key: a different one is refused (a terminal's credential never changes)."""
        held = self.host_credential()
        if held is not None:
            if held != key:
                raise TerminalStateError(f"terminal {self.config.terminal_id} already holds another host credential")
            return False
        with self.transaction():
            _store_host_credential(self._conn, key)
        return True

    def sign_batch(self, records: Sequence[PurseRecord]) -> str:
        """The MAC (16 hex digits) the PSAM gives these log records, in this order, as one upload batch.

        One digest of the records' canonical lines (``PurseRecord.batch_line``), one BATCH MAC:
        the host recomputes both. Raises ``CardStatus``-derived errors from the
        PSAM (``6A88``: it holds no upload key).
        """
        mac = BatchMac(self.config.terminal_no_bytes, len(records), batch_digest(records)).send(self.psam())
        return mac.hex().upper()

    def last_serial(self) -> int:
        return self._serial

    def save_serial(self) -> None:
        """The PSAM's serial into the database (at a sync, an upload, a close; between them
        the in-flight slot holds it, and the log's records and pending purchases their own)."""
        if self._serial != self._saved_serial:
            with self.transaction():
                self._conn.execute("UPDATE psam SET serial = ? WHERE id = 1", (self._serial,))
            self._saved_serial = self._serial

    def take_serial(self) -> int:
        """The PSAM's next serial, saved at once in the in-flight slot (a write to the page
        cache, not a database commit: a tap commits the database once, with its record)."""
        self._serial += 1
        self._slot.write(self._serial, None)
        self._inflight = None
        return self._serial

    # --- blacklist ----------------------------------------------------------------------

    @property
    def blacklist_version(self) -> int:
        return self._blacklist_version

    def blacklisted(self, card_number: str | None) -> bool:
        return bool(card_number) and card_number in self._blacklist

    def concession_revoked(self, card_number: str | None, kind: str) -> bool:
        """Whether the hub revoked ``kind`` (elderly_free_ride, student) on the card."""
        if not card_number:
            return False
        row = self._conn.execute("SELECT 1 FROM revoked_concessions WHERE card_number = ? AND kind = ?",
                                 (card_number, kind)).fetchone()
        return row is not None

    def replace_blacklist(
        self,
        version: int,
        cards: Iterable[str],
        *,
        published_at: str | None,
        synced_at: str,
        revoked_concessions: Iterable[tuple[str, str]] | None = None,
    ) -> int:
        """Copy the hub's list as of ``version`` (and the revoked concessions); returns the previous version."""
        previous = self._blacklist_version
        listed = list(cards)
        with self.transaction():
            self._conn.execute("DELETE FROM blacklist")
            self._conn.executemany("INSERT OR IGNORE INTO blacklist VALUES (?)", ((c,) for c in listed))
            if revoked_concessions is not None:
                self._conn.execute("DELETE FROM revoked_concessions")
                self._conn.executemany("INSERT OR IGNORE INTO revoked_concessions VALUES (?, ?)",
                                       [tuple(pair) for pair in revoked_concessions])
            self._conn.executemany(
                "INSERT OR REPLACE INTO config (key, value) VALUES (?, ?)",
                [
                    ("blacklist_version", str(version)),
                    ("blacklist_published_at", published_at),
                    ("synced_at", synced_at),
                ],
            )
        self._blacklist_version = version
        self._blacklist = frozenset(listed)
        self.checkpoint()
        return previous

    def checkpoint(self) -> None:
        """Fold the WAL into the database (when the terminal is idle: at a sync, an upload)."""
        self.save_serial()
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def blacklist_size(self) -> int:
        return self._conn.execute("SELECT count(*) FROM blacklist").fetchone()[0]

    @property
    def synced_at(self) -> str | None:
        return self._get("synced_at")

    # --- the purchase in flight ---------------------------------------------------------

    def begin_purchase(self, body: dict[str, Any]) -> None:
        """The purchase about to be sent to the card (DEBIT next): saved in the slot.

        Its record (``append_record`` in a ``transaction``) settles it; if the card is torn
        instead, ``put_pending`` keeps it for the card's next tap. A terminal that dies
        in between finds it again at ``resume``.
        """
        self._slot.write(self._serial, body)
        self._inflight = body

    def end_purchase(self) -> None:
        """Nothing in flight any more: its record is written, or the card answered DEBIT with an
        error (it committed nothing)."""
        self._slot.write(self._serial, None)
        self._inflight = None

    def resume(self) -> dict[str, Any] | None:
        """After a restart: a purchase the slot holds with no record is in flight (pending).

        Returns it when it was moved to ``pending``. Call from the validator's process only.
        """
        body = self._inflight
        if body is None or body.get("app_serial") in self._pending:
            return None
        if self.has_record(body["app_serial"], body["txn_type"], body["counter"]):
            return None
        with self.transaction():
            self.put_pending(body)
        return body

    def pending_for(self, app_serial: str) -> dict[str, Any] | None:
        return self._pending.get(app_serial)

    def pending(self) -> list[dict[str, Any]]:
        return list(self._pending.values())

    def put_pending(self, body: dict[str, Any]) -> None:
        """Inside a ``transaction()``: the purchase about to be sent to the card."""
        body = dict(body)
        self._conn.execute(
            "INSERT OR REPLACE INTO pending (app_serial, body) VALUES (?, ?)", (body["app_serial"], json.dumps(body))
        )
        self._cache(lambda: self._pending.__setitem__(body["app_serial"], body))

    def drop_pending(self, app_serial: str) -> None:
        self._conn.execute("DELETE FROM pending WHERE app_serial = ?", (app_serial,))
        self._cache(lambda: self._pending.pop(app_serial, None))

    # --- the offline log ----------------------------------------------------------------

    def append_record(self, record: PurseRecord) -> int:
        """Inside a ``transaction()``: one purchase; returns its ``seq``."""
        return int(self._conn.execute(_INSERT_RECORD, record.log_row()).lastrowid)

    def commit_record(self, record: PurseRecord) -> int:
        """``append_record`` in a ``transaction()`` of its own; returns its ``seq``.

        Outside a transaction the INSERT runs in autocommit mode: one statement is its own
        write transaction (the write lock taken at its start, under the busy timeout, as
        BEGIN IMMEDIATE takes it), committed when it ends — the same commit, without the
        BEGIN and COMMIT statements. A tap commits its record so.
        """
        return self.append_record(record)  # (inside a ``transaction()``: part of it, as ever)

    def has_record(self, app_serial: str, txn_type: int, counter: int) -> bool:
        """Whether the log holds this purchase (newest first: what recovery asks about is recent)."""
        row = self._conn.execute(
            "SELECT 1 FROM records WHERE app_serial = ? AND txn_type = ? AND counter = ? ORDER BY seq DESC LIMIT 1",
            (app_serial, txn_type, counter),
        ).fetchone()
        return row is not None

    def purse_records(self, *, after_seq: int = 0, limit: int | None = None) -> list[PurseRecord]:
        """The log in order, from ``after_seq`` on, each with its ``seq``."""
        sql, args = _SELECT_RECORDS, [after_seq]
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [PurseRecord.from_log_row(row[0], row[1:-1], row[-1]) for row in self._conn.execute(sql, args)]

    def records(self, *, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """The log in order, in its JSON form (``PurseRecord.to_log``: ``seq``, the columns, ``extra``)."""
        return [r.to_log() for r in self.purse_records(after_seq=after_seq, limit=limit)]

    def record_count(self) -> int:
        return self._conn.execute("SELECT count(*) FROM records").fetchone()[0]

    # --- uploads (the operator's host takes the log from here) --------------------------

    def last_uploaded_seq(self) -> int:
        return self._conn.execute("SELECT coalesce(max(last_seq), 0) FROM uploads").fetchone()[0]

    def unsent(self, limit: int | None = None) -> list[PurseRecord]:
        """The records not yet uploaded, oldest first (what ``terminals.apps.uploads`` sends)."""
        return self.purse_records(after_seq=self.last_uploaded_seq(), limit=limit)

    def unsent_records(self, limit: int | None = None) -> list[dict[str, Any]]:
        """``unsent`` in the log's JSON form."""
        return [r.to_log() for r in self.unsent(limit)]

    def unsent_count(self) -> int:
        return self._conn.execute(
            "SELECT count(*) FROM records WHERE seq > (SELECT coalesce(max(last_seq), 0) FROM uploads)"
        ).fetchone()[0]

    def mark_uploaded(self, batch: str, first_seq: int, last_seq: int, count: int, at: str,
                      result: Mapping[str, Any] | None = None) -> None:
        """Record that the records ``first_seq``…``last_seq`` went to the host as ``batch``."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO uploads (batch, first_seq, last_seq, count, at, result) VALUES (?, ?, ?, ?, ?, ?)",
                (batch, first_seq, last_seq, count, at, None if result is None else json.dumps(result)),
            )
        self.checkpoint()

    def uploads(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT batch, first_seq, last_seq, count, at, result FROM uploads ORDER BY last_seq")
        return [
            {"batch": b, "first_seq": f, "last_seq": l, "count": c, "at": at, "result": json.loads(r) if r else None}
            for b, f, l, c, at, r in rows
        ]

    # --- what the terminal's own host has taken from the log --------------------------

    def replayed_seq(self, what: str) -> int:
        """The log's ``seq`` up to which ``what`` (e.g. ``visits``: a gate's host) has replayed it; 0 at first."""
        value = self._get(f"replayed.{what}")
        return int(value) if value else 0

    def mark_replayed(self, what: str, seq: int) -> None:
        """``what`` has taken every record up to ``seq`` (its own commit, after the host's)."""
        with self.transaction():
            self._conn.execute("INSERT INTO config (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                               "value = excluded.value", (f"replayed.{what}", str(seq)))

    # --- events -------------------------------------------------------------------------

    def add_event(self, at: str, kind: str, subject: str | None, details: Mapping[str, Any] | None = None) -> None:
        """Inside or outside a transaction: a block, an abandoned or unresolved purchase."""
        self._conn.execute(
            "INSERT INTO events (at, kind, subject, details) VALUES (?, ?, ?, ?)",
            (at, kind, subject, None if details is None else _DETAILS_JSON.encode(details)),
        )

    def events(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT at, kind, subject, details FROM events ORDER BY id")
        return [{"at": a, "kind": k, "subject": s, "details": json.loads(d) if d else None} for a, k, s, d in rows]


def _statements(script: str) -> list[str]:
    """Split the schema into statements (triggers keep their inner semicolons)."""
    out, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        text = "\n".join(current).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            out.append(text)
            current = []
    if "".join(current).strip():
        raise ValueError("incomplete statement in the terminal schema")
    return out
