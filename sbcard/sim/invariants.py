"""The world's invariants, checked after each simulated day (and by tests).

``check_day(world, home, day)`` runs every check on the world as it stands (after the
day's uploads and nightly clearing; ``day`` names the day in reports) and returns
``{name: Result}`` in ``NAMES`` order. A check that cannot run (a card file unreadable, a
terminal's database broken) fails with that as its detail rather than raising. Names are
stable JSON keys; a failed check's detail names the card, region and amounts of the
first violations (``MAX_SHOWN`` of them, and how many more).

What the checks read — the three regions' and the hub's databases, every issued card's
file (where issuance put it, else found under ``<home>/cards`` by chip serial) and every
terminal's own state under ``<home>/terminals/<id>/`` (its offline log, its purchases in
flight: ``pending`` and the in-flight slot) — is loaded once per call (``Facts``).

Night after night (``check_day(..., memory=Memory(), touched=...)``, the simulation's way)
the card files and terminal logs read on earlier nights are kept in a ``Memory``, so that a
night reads again only what may have changed since, and the cost of a night follows the
day's work rather than the size of the world:

- a card file is read again when its path is in ``touched`` (the card files the engine
  opened since the last night: its cards' commits and the faults it injects all go through
  it), when it is new to the memory, or when its ``os.stat`` signature (inode, size,
  modification time) differs from the one taken before it was last read. A
  file changed less than ``RACY_NS`` before that read is not kept at all (git's "racily
  clean" rule): a later write within the same tick of the file system's clock could leave
  its signature as it was. So a card file changed behind the engine's back — by anything
  that writes it through the file system, which moves its times — is read again too; the
  assumption is only that file times move forward with each write, as they do on the
  file systems the simulator runs on.
- a terminal's log is append-only (triggers refuse UPDATE and DELETE): the records read
  before are kept and only those after them are read; the last one kept is read again and
  compared, and a log with fewer uploads than before is read whole — so a log put back from
  an older copy (a checkpoint restored) is read whole again. A record turned uploaded since
  is updated. The purchases in flight (``pending``, the in-flight slot) are few and read
  every night.

The memory lives in the process (the engine's); a resumed run starts with an empty one and
reads everything on its first night. Without a memory every call reads everything, as
the tests and ``sbcard`` commands do.

The checks read the stores with their own SQL (``ledger_entries``, the claims, the purse
records …), not through the services' functions or ``sbcard.store.repositories``: they
check the store from outside, so a bug in a service's or a repository's query cannot hide
the violation it causes. They only read; every write to the ledger goes through
``sbcard.services.accounts.ledger``.

- ``money_conserved``: in every region's ledger every transaction (``txn_id``) has two
  or more entries summing to 0, and the whole ledger sums to 0.
- ``hub_conserved``: (1) every settlement the hub recorded nets to zero (Σ ``net`` = 0),
  each region's ``net`` is what the ``matrix`` gives (received − paid), and each matrix
  cell equals the sum of the hub's clearing lines of that day; (2) every line a payer
  region sent is the hub's line (same count and amount), every hub line is its payer's,
  every line a payee region holds is the payer's, and the hub's ``delivered_at`` says
  whether the payee holds it; (3) the regions' ``CLEARING-*`` accounts mirror each other:
  for every pair a ≠ b, ``CLEARING-b`` in a's ledger + ``CLEARING-a`` in b's = what is on
  its way between them — lines a payer posted that the payee does not hold yet, and the
  ``CLEARING-*`` entries of claims (and refunds) not yet in a clearing; for a region
  alone, ``CLEARING-<itself>`` = its own claims not yet cleared.
- ``purse_float_reconciled``: per issuer, ``FLOAT-PURSE``'s balance (Σ of its entries:
  loads in; reversals, clearings and refunds out) == Σ purse balances on the issuer's
  card files − purse refunds paid (``purse_refunds``) + the purchases its cards made that
  are in no clearing (every terminal log record whose key has no ``clearing_day`` at the
  issuer, uploaded or not, rejected ones included, + purchases in flight at a terminal
  that the card committed) + pending loads the card never credited (its online counter
  not past the load's).
- ``no_record_cleared_twice``: a purchase's key is in a clearing in one issuer region at
  most; per issuer and clearing day, its transit lines' count and amount are those of the
  purchases with that ``clearing_day``; the ``FLOAT-PURSE`` entries of kind ``clearing``
  add up to minus its transit lines; per insured region and day, its medical lines add up
  to the ``CLEARING-*`` entries of the claims (and refunds) cleared that day.
- ``no_debit_without_record``: every offline counter a card has used (0 … its offline
  counter − 1) is a record in some terminal's log, or a purchase in flight at a terminal
  that the card committed (its counter passed it and its log, while it still holds it,
  shows that very purchase) and that its next tap there completes.
- ``counters_forward``: per card, the purchases its issuer cleared (``purse_purchases``
  status ``cleared``) have distinct counters whose date-times never go back as the counter
  rises, all below the card's own offline counter; and no (card, counter) is in two
  terminal log records (a card image put back and spent again).
- ``blacklist_honoured``: no terminal log record is a purchase on a card that the hub's
  blacklist, as of the version the terminal held at the tap, lists.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import json
import os
import sqlite3
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import attrs

from sbcard.store.world import REGION_NODES, World
from terminals.emulator import card_file

NAMES: tuple[str, ...] = (
    "money_conserved",
    "hub_conserved",
    "purse_float_reconciled",
    "no_record_cleared_twice",
    "no_debit_without_record",
    "counters_forward",
    "blacklist_honoured",
)
MAX_SHOWN = 5  # violations named in a detail; the rest are counted
RACY_NS = 2_000_000_000  # a card file changed this close to a night's read is read again the next night
FLOAT_PURSE = "FLOAT-PURSE"
REGION_NAMES = {"bj": "北京", "tj": "天津", "he": "河北"}


@attrs.frozen
class Result:
    ok: bool
    detail: str


def check_day(world: World, home: Path, day: dt.date, *, memory: Memory | None = None,
              touched: Collection[str] | None = None,
              read_ahead: Mapping[str, CardRead] | None = None) -> dict[str, Result]:
    """Every invariant on the world as it stands after ``day``'s nightly clearing.

    ``memory``: what earlier nights of this run read (kept up to date by this call); None
    reads every card file and terminal log whole. ``touched``: the card files (paths) opened
    since the memory was last brought up to date — read again whatever their signature says.
    ``read_ahead``: card files another process read since the cards' last commit
    (``read_cards``); one whose signature is still the one it had then is not read again.
    """
    facts = Facts(world, Path(home), day, memory=memory, touched=touched, read_ahead=read_ahead)
    collecting = gc.isenabled()
    gc.disable()  # the checks make many small objects and no cycles: no collector passes over a big heap
    try:
        return {name: _run(CHECKS[name], facts) for name in NAMES}
    finally:
        if collecting:
            gc.enable()


def check(name: str, world: World, home: Path, day: dt.date) -> Result:
    """One invariant by name."""
    return _run(CHECKS[name], Facts(world, Path(home), day))


def to_json(results: Mapping[str, Result]) -> dict[str, bool]:
    """``{name: ok}`` for ``simulate --json``'s ``invariants``."""
    return {name: results[name].ok for name in NAMES if name in results}


def failures(results: Mapping[str, Result]) -> dict[str, str]:
    """``{name: detail}`` of the failed ones."""
    return {name: r.detail for name, r in results.items() if not r.ok}


def describe(results: Mapping[str, Result], day: dt.date | None = None) -> str:
    """A precise multi-line report of the failed invariants (for stderr), or '' when all hold."""
    failed = failures(results)
    if not failed:
        return ""
    head = f"invariants violated after {day.isoformat()}:" if day else "invariants violated:"
    return "\n".join([head, *(f"  {name}: {detail}" for name, detail in failed.items())])


def _run(fn: Callable[[Facts], Result], facts: Facts) -> Result:
    try:
        return fn(facts)
    except Exception as e:  # an invariant that cannot be checked has not been shown to hold
        return Result(False, f"could not be checked: {type(e).__name__}: {e}")


def _shown(problems: list[str]) -> str:
    more = len(problems) - MAX_SHOWN
    return "; ".join(problems[:MAX_SHOWN]) + (f"; and {more} more" if more > 0 else "")


def _region(node: str) -> str:
    return f"{REGION_NAMES.get(node, node)} ({node})"


def _fen(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{abs(fen) // 100:,}.{abs(fen) % 100:02d}"


# ----------------------------------------------------------------------------- what the checks read


@attrs.frozen
class Chip:
    """What a card file says of the purse."""

    card_number: str
    issuer: str
    app_serial: str
    balance: int
    offline_counter: int
    online_counter: int
    log_hex: tuple[str, ...]  # the card's T-Union log records (EF 18) as the file holds them, newest first

    @property
    def log(self) -> tuple[tuple[int, int, int, str, str], ...]:
        """(counter, amount, type, terminal no, date-time) of each log record, newest first (parsed when
        asked: only a card with a purchase in flight or a violation needs it)."""
        return tuple(_log_entry(bytes.fromhex(h)) for h in self.log_hex)


@attrs.frozen
class LogRecord:
    """One record of a terminal's offline log."""

    terminal: str
    seq: int
    app_serial: str
    txn_type: int
    counter: int
    card_number: str | None
    amount_fen: int
    terminal_no: str
    terminal_serial: int
    date_time: str
    blacklist_version: int | None
    uploaded: bool

    @property
    def key(self) -> tuple[str, int, str, str, int]:
        """As the issuer keys it (``purse_purchases``): terminal no, serial, app serial, type (2 hex), counter."""
        return (self.terminal_no, self.terminal_serial, self.app_serial, f"{self.txn_type:02X}", self.counter)


@attrs.frozen
class InFlight:
    """A purchase a terminal sent DEBIT for without writing its record (torn, or the terminal died)."""

    terminal: str
    app_serial: str
    txn_type: int
    counter: int
    amount_fen: int
    terminal_no: str
    date_time: str


_Signature = tuple[int, int, int]


def _signature(st: os.stat_result) -> _Signature:
    """What tells a card file written since it was read: a pwrite moves its modification time, a copy
    the inode. Not the change time: a checkpoint's hard link moves it (``checkpoint.save``) and
    changes nothing in the file."""
    return (st.st_ino, st.st_size, st.st_mtime_ns)


_PurseRead = tuple[int, int, int, tuple[str, ...]]  # balance, offline counter, online counter, log (hex)
CardRead = tuple[_Signature, _PurseRead]


def _purse_read(image: Mapping[str, Any]) -> _PurseRead:
    purse = image["purse"]
    log = tuple(image.get("logs", {}).get("TU/18", []))
    for h in log:
        bytes.fromhex(h)  # a record that is not hex makes the file unreadable here, parsed or not
    return int(purse["balance"]), int(purse["offline_counter"]), int(purse["online_counter"]), log


def read_cards(paths: Collection[str], racy_ns: int | None = None) -> dict[str, CardRead]:
    """The purses on these card files (absolute paths), each with its signature before it was read.

    For a night's checks made in another process while the engine does the night's other
    work (no card is written at night): the checks take a reading whose file still has that
    signature instead of reading the file again. A file that cannot be read, or that was
    written less than ``racy_ns`` (default ``RACY_NS``) before this read (its signature may
    not show a write within the same tick), is left out: the checks read it themselves.
    """
    out: dict[str, CardRead] = {}
    settled_before = time.time_ns() - (RACY_NS if racy_ns is None else racy_ns)
    for path in paths:
        try:
            signature = _signature(os.stat(path))
            if signature[2] >= settled_before:
                continue
            out[path] = (signature, _purse_read(card_file.read_state(path)))
        except (OSError, ValueError, KeyError):
            continue
    return out


@attrs.define
class _KeptCard:
    stored: str | None  # the card's ``virtual_path`` when it was read
    chip_serial: str
    path: str  # the file read (absolute)
    signature: _Signature  # its stat before it was read
    chip: Chip


@attrs.define
class _KeptLog:
    records: list[LogRecord]  # in ``seq`` order
    last_row: tuple | None  # the newest row as read: read again next time to tell the same log
    uploaded: int  # the uploads' highest ``last_seq`` when read


class Memory:
    """The card files and terminal logs earlier nights of one run read (see the module doc).

    Held by whoever checks night after night (the simulation's engine); never written to
    disk: a run resumed in a new process starts with an empty one and reads everything once.
    """

    def __init__(self) -> None:
        self.cards: dict[str, _KeptCard] = {}  # app serial -> its card file as last read
        self.logs: dict[str, _KeptLog] = {}  # terminal (directory name) -> its log as last read
        self.reads = {"card_files": 0, "log_records": 0}  # what the last call read (for measurements)


class Facts:
    """The world's state as the checks see it, each part loaded on first use."""

    def __init__(self, world: World, home: Path, day: dt.date, *, memory: Memory | None = None,
                 touched: Collection[str] | None = None, read_ahead: Mapping[str, CardRead] | None = None) -> None:
        self.world = world
        self.home = home
        self.day = day
        self.memory = memory
        self.read_ahead = read_ahead
        self.touched = {os.path.abspath(t) for t in touched or ()}
        if memory is not None:
            memory.reads = {"card_files": 0, "log_records": 0}

    # --- cards ---------------------------------------------------------------------------

    @cached_property
    def cards(self) -> dict[str, dict[str, Any]]:
        """app serial -> {card_number, issuer, chip_serial, status, virtual_path}, every region's cards."""
        out: dict[str, dict[str, Any]] = {}
        for node in REGION_NODES:
            for number, app_serial, chip_serial, status, path in self.world.region(node).execute(
                    "SELECT card_number, app_serial, chip_serial, status, virtual_path FROM cards"):
                out[app_serial] = {"card_number": number, "issuer": node, "chip_serial": chip_serial,
                                   "status": status, "virtual_path": path}
        return out

    @cached_property
    def _card_files(self) -> dict[str, Path]:
        """chip serial (upper case) -> card file under <home>/cards."""
        cards_dir = self.world.paths.cards_dir
        return {p.stem.upper(): p for p in sorted(cards_dir.rglob("*.card"))} if cards_dir.is_dir() else {}

    def card_file(self, card: Mapping[str, Any]) -> Path | None:
        """The card's file: where issuance put it if that is in this world, else found by chip serial."""
        stored = card.get("virtual_path")
        if stored:
            path = Path(self._home_prefix, stored)  # a relative record names a file under the home
            try:
                path.relative_to(self._cards_root)
            except ValueError:
                pass  # the world was copied or moved: look it up by chip serial
            else:
                if path.is_file():
                    return path
        return self._card_files.get(str(card["chip_serial"]).upper())

    def _card_path(self, card: Mapping[str, Any]) -> str | Path | None:
        """``card_file`` with strings: the stored path if it is under this world's cards, a file."""
        stored = card.get("virtual_path")
        if stored and ".." not in stored:
            if stored[0] != "/":
                stored = self._home_prefix + stored  # recorded relative to the world's home
            if stored.startswith(self._cards_prefix) and os.path.isfile(stored):
                return stored
        return self.card_file(card)

    @cached_property
    def _cards_prefix(self) -> str:
        return os.path.join(str(self._cards_root), "")

    @cached_property
    def _home_prefix(self) -> str:
        return os.path.join(str(self.world.paths.home.absolute()), "")

    @cached_property
    def _cards_root(self) -> Path:
        return self.world.paths.cards_dir.absolute()

    @cached_property
    def chips(self) -> dict[str, Chip]:
        """app serial -> the purse on its card file; ``unreadable`` lists what could not be read."""
        memory = self.memory
        read_ahead = self.read_ahead
        out: dict[str, Chip] = {}
        for app_serial, card in sorted(self.cards.items()):
            if memory is not None:
                chip = self._kept_chip(memory.cards.get(app_serial), card)
                if chip is not None:
                    out[app_serial] = chip
                    continue
            path = self._card_path(card)
            if path is None:
                self.unreadable.append(f"card {card['card_number']} ({_region(card['issuer'])}): no card file")
                continue
            try:
                signature = _signature(os.stat(path)) if memory is not None or read_ahead else None
                ahead = read_ahead.get(os.path.abspath(path)) if read_ahead else None
                if ahead is not None and ahead[0] == signature:
                    purse_read = ahead[1]  # the file as read ahead: it has not changed since
                else:
                    purse_read = _purse_read(card_file.read_state(path))
            except (OSError, ValueError, KeyError) as e:
                self.unreadable.append(f"card {card['card_number']} ({_region(card['issuer'])}): {e}")
                if memory is not None:
                    memory.cards.pop(app_serial, None)
                continue
            chip = out[app_serial] = Chip(card["card_number"], card["issuer"], app_serial, *purse_read)
            if memory is not None and signature is not None:
                memory.reads["card_files"] += 1
                if signature[2] < self._settled_before:
                    memory.cards[app_serial] = _KeptCard(card.get("virtual_path"), str(card["chip_serial"]),
                                                         os.path.abspath(path), signature, chip)
                else:  # written just now: a write within the same tick would leave the signature as it is
                    memory.cards.pop(app_serial, None)
        return out

    @cached_property
    def _settled_before(self) -> int:
        """A card file last changed before this instant (ns) shows any later write in its signature; one
        changed since may be written again within the file system's clock tick (like git's "racily
        clean" files): it is not kept, and is read again next time."""
        return time.time_ns() - RACY_NS

    def _kept_chip(self, kept: _KeptCard | None, card: Mapping[str, Any]) -> Chip | None:
        """The chip as an earlier night read it, if its file cannot have changed since (else None: read it)."""
        if kept is None or kept.path in self.touched or kept.stored != card.get("virtual_path") or \
                kept.chip_serial != str(card["chip_serial"]):
            return None
        try:
            if _signature(os.stat(kept.path)) != kept.signature:
                return None
        except OSError:
            return None
        chip = kept.chip
        if chip.card_number != card["card_number"] or chip.issuer != card["issuer"]:
            return None
        return chip

    @cached_property
    def unreadable(self) -> list[str]:
        return []

    def chip_problems(self) -> list[str]:
        """The cards whose file could not be read (a fresh list)."""
        self.chips  # noqa: B018 - loading the chips fills ``unreadable``
        return list(self.unreadable)

    # --- terminals -----------------------------------------------------------------------

    @cached_property
    def _terminal_dirs(self) -> list[Path]:
        root = self.world.paths.terminals_dir
        if not root.is_dir():
            return []
        return sorted(p for p in root.iterdir() if (p / "terminal.db").is_file())

    @cached_property
    def _terminals(self) -> tuple[list[LogRecord], list[InFlight]]:
        # Here, not at the top: the night's read-ahead worker imports this module to read card
        # files only, and terminal_state (the PSAM and its crypto) would add a quarter second to its start.
        from terminals.apps.terminal_state import INFLIGHT_NAME, InflightSlot

        records: list[LogRecord] = []
        inflight: list[InFlight] = []
        for directory in self._terminal_dirs:
            terminal = directory.name
            conn = sqlite3.connect(directory / "terminal.db", isolation_level=None)
            try:
                records += self._log(conn, terminal)
                bodies = [json.loads(body) for (body,) in conn.execute("SELECT body FROM pending ORDER BY app_serial")]
            finally:
                conn.close()
            slot_path = directory / INFLIGHT_NAME
            if slot_path.is_file():
                slot = InflightSlot(slot_path)
                try:
                    _, body = slot.read()
                finally:
                    slot.close()
                if body is not None:
                    bodies.append(body)
            seen: set[tuple[str, int]] = set()
            for body in bodies:
                mark = (body["app_serial"], int(body["counter"]))
                if mark in seen:
                    continue
                seen.add(mark)
                inflight.append(InFlight(terminal, body["app_serial"], int(body["txn_type"]), int(body["counter"]),
                                         int(body["amount_fen"]), str(body["terminal_no"]).upper(),
                                         str(body["date_time"])))
        return records, inflight

    def _log(self, conn: sqlite3.Connection, terminal: str) -> list[LogRecord]:
        """The terminal's offline log: whole, or (with a memory) what it kept and the records added since."""
        uploaded = conn.execute("SELECT coalesce(max(last_seq), 0) FROM uploads").fetchone()[0]
        kept = self.memory.logs.get(terminal) if self.memory is not None else None
        if kept is not None and kept.uploaded > uploaded:
            kept = None  # fewer uploads than it had: not the log it read
        after = kept.records[-1].seq if kept is not None and kept.records else None
        rows = conn.execute(_LOG_SELECT + ("WHERE seq >= ? ORDER BY seq" if after is not None else "ORDER BY seq"),
                            [] if after is None else [after]).fetchall()
        if kept is not None and after is not None:
            if not rows or rows[0] != kept.last_row:
                kept, after = None, None  # another log in its place (put back from a copy): read it whole
                rows = conn.execute(_LOG_SELECT + "ORDER BY seq").fetchall()
            else:
                rows = rows[1:]
        if kept is None:
            records: list[LogRecord] = []
            last_uploaded = 0
        else:
            records, last_uploaded = kept.records, kept.uploaded
            if uploaded > last_uploaded:  # records sent since: uploaded now
                start = bisect.bisect_right(records, last_uploaded, key=lambda r: r.seq)
                end = bisect.bisect_right(records, uploaded, key=lambda r: r.seq)
                records[start:end] = [attrs.evolve(r, uploaded=True) for r in records[start:end]]
        for row in rows:
            seq, app_serial, txn_type, counter, card, amount, terminal_no, serial, date_time, version = row
            records.append(LogRecord(terminal, seq, app_serial, int(txn_type), int(counter), card, int(amount),
                                     str(terminal_no).upper(), int(serial), str(date_time),
                                     None if version is None else int(version), seq <= uploaded))
        if self.memory is not None:
            self.memory.reads["log_records"] += len(rows)
            last_row = rows[-1] if rows else (kept.last_row if kept is not None else None)
            self.memory.logs[terminal] = _KeptLog(records, last_row, uploaded)
        return records

    @property
    def log_records(self) -> list[LogRecord]:
        return self._terminals[0]

    @property
    def in_flight(self) -> list[InFlight]:
        return self._terminals[1]

    @cached_property
    def records_by_card(self) -> dict[str, dict[int, list[LogRecord]]]:
        """app serial -> counter -> the log records with it."""
        out: dict[str, dict[int, list[LogRecord]]] = defaultdict(lambda: defaultdict(list))
        for r in self.log_records:
            out[r.app_serial][r.counter].append(r)
        return out

    @cached_property
    def committed_in_flight(self) -> list[InFlight]:
        """The purchases in flight the card did commit, with no record anywhere yet."""
        out = []
        for p in self.in_flight:
            if p.counter in self.records_by_card.get(p.app_serial, {}):
                continue  # its record is written (here or, for a reused counter, elsewhere)
            chip = self.chips.get(p.app_serial)
            if chip is None or chip.offline_counter <= p.counter:
                continue  # the card never reached that counter: nothing committed
            in_log = [e for e in chip.log if e[0] == p.counter]
            if in_log and not any(e[1] == p.amount_fen and e[2] == p.txn_type and e[3] == p.terminal_no
                                  and e[4] == p.date_time for e in in_log):
                continue  # the card's log holds another purchase with that counter
            out.append(p)
        return out


_LOG_SELECT = ("SELECT seq, app_serial, txn_type, counter, card_number, amount_fen, terminal_no, terminal_serial, "
               "date_time, blacklist_version FROM records ")


def _log_entry(raw: bytes) -> tuple[int, int, int, str, str]:
    """A card's T-Union log record (23 bytes): counter (2) ‖ overdraft (3) ‖ amount (4) ‖ type (1) ‖
    terminal (6) ‖ date-time (7)."""
    return (int.from_bytes(raw[0:2], "big"), int.from_bytes(raw[5:9], "big"), raw[9], raw[10:16].hex().upper(),
            raw[16:23].hex())


# ----------------------------------------------------------------------------- the checks


def money_conserved(f: Facts) -> Result:
    problems: list[str] = []
    totals = []
    for node in REGION_NODES:
        db = f.world.region(node)
        for txn_id, n, total in db.execute(
                "SELECT txn_id, count(*), sum(amount_fen) FROM ledger_entries GROUP BY txn_id "
                "HAVING sum(amount_fen) != 0 OR count(*) < 2 ORDER BY txn_id"):
            problems.append(f"{_region(node)} transaction {txn_id}: {n} entries summing to {_fen(total)}")
        (grand,) = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries").fetchone()
        (entries,) = db.execute("SELECT count(*) FROM ledger_entries").fetchone()
        totals.append(f"{node} {entries} entries")
        if grand:
            problems.append(f"{_region(node)} ledger sums to {_fen(grand)}, not ¥0.00")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, "every transaction sums to 0 (" + ", ".join(totals) + ")")


def purse_float_reconciled(f: Facts) -> Result:
    cleared = _cleared_keys(f.world)
    problems = f.chip_problems()
    sides: dict[str, dict[str, int]] = {n: {"float": 0, "cards": 0, "uncleared": 0, "pending_loads": 0, "refunds": 0}
                                        for n in REGION_NODES}
    for node in REGION_NODES:
        db = f.world.region(node)
        (sides[node]["float"],) = db.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ?", [FLOAT_PURSE]).fetchone()
        (sides[node]["refunds"],) = db.execute(
            "SELECT coalesce(sum(amount_fen), 0) FROM purse_refunds WHERE paid_at IS NOT NULL").fetchone()
        for app_serial, counter, amount in db.execute(
                "SELECT app_serial, online_counter, amount_fen FROM purse_loads WHERE status = 'pending'"):
            chip = f.chips.get(app_serial)
            if chip is not None and chip.online_counter <= counter:
                sides[node]["pending_loads"] += amount
    for chip in f.chips.values():
        sides[chip.issuer]["cards"] += chip.balance
    for r in f.log_records:
        card = f.cards.get(r.app_serial)
        if card is not None and r.key not in cleared[card["issuer"]]:
            sides[card["issuer"]]["uncleared"] += r.amount_fen
    for p in f.committed_in_flight:
        sides[f.cards[p.app_serial]["issuer"]]["uncleared"] += p.amount_fen
    shown = []
    for node, s in sides.items():
        right = s["cards"] - s["refunds"] + s["uncleared"] + s["pending_loads"]
        line = (f"{_region(node)}: float {_fen(s['float'])} vs cards {_fen(s['cards'])} − refunds {_fen(s['refunds'])}"
                f" + uncleared {_fen(s['uncleared'])} + pending loads {_fen(s['pending_loads'])} = {_fen(right)}")
        shown.append(line)
        if s["float"] != right:
            problems.append(line + f" (off by {_fen(s['float'] - right)})")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, "; ".join(shown))


def no_debit_without_record(f: Facts) -> Result:
    problems = f.chip_problems()
    in_flight = {(p.app_serial, p.counter) for p in f.committed_in_flight}
    used = 0
    for app_serial, chip in sorted(f.chips.items()):
        known = f.records_by_card.get(app_serial, {})
        used += chip.offline_counter
        missing = [c for c in range(chip.offline_counter) if c not in known and (app_serial, c) not in in_flight]
        if missing:
            amounts = {e[0]: e[1] for e in chip.log}
            told = ", ".join(f"{c}" + (f" ({_fen(amounts[c])})" if c in amounts else "") for c in missing[:8])
            problems.append(f"card {chip.card_number} ({_region(chip.issuer)}, balance {_fen(chip.balance)}): "
                            f"offline counter{'s' if len(missing) > 1 else ''} {told}"
                            f"{' …' if len(missing) > 8 else ''} used on the card with no record in any terminal's "
                            f"log or in flight")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, f"{used} offline counters on {len(f.chips)} cards, each a record "
                        f"({len(f.log_records)} in terminal logs, {len(in_flight)} in flight)")


def counters_forward(f: Facts) -> Result:
    problems = f.chip_problems()
    cleared = 0
    for node in REGION_NODES:
        by_card: dict[str, list[tuple[int, str, str, int]]] = defaultdict(list)
        for app_serial, counter, date_time, card, terminal_no, serial in f.world.region(node).execute(
                "SELECT app_serial, counter, date_time, card_number, terminal_no, terminal_serial FROM purse_purchases "
                "WHERE status = 'cleared' ORDER BY app_serial, counter, date_time"):
            by_card[app_serial].append((counter, date_time, terminal_no, serial))
            cleared += 1
        for app_serial, rows in by_card.items():
            number = f.cards.get(app_serial, {}).get("card_number", app_serial)
            for (c0, t0, n0, s0), (c1, t1, n1, s1) in zip(rows, rows[1:]):
                if c1 == c0:
                    problems.append(f"card {number} ({_region(node)}): counter {c0} cleared twice (terminal {n0} "
                                    f"serial {s0} at {t0}, terminal {n1} serial {s1} at {t1})")
                elif t1 < t0:
                    problems.append(f"card {number} ({_region(node)}): counter {c1} at {t1} comes before counter "
                                    f"{c0} at {t0}")
            chip = f.chips.get(app_serial)
            if chip is not None and rows and rows[-1][0] >= chip.offline_counter:
                problems.append(f"card {number} ({_region(node)}): counter {rows[-1][0]} cleared but the card's "
                                f"offline counter is only {chip.offline_counter}")
    for app_serial, by_counter in f.records_by_card.items():
        for counter, recs in by_counter.items():
            if len(recs) > 1:
                number = recs[0].card_number or app_serial
                where = ", ".join(f"{r.terminal} serial {r.terminal_serial} at {r.date_time}" for r in recs)
                problems.append(f"card {number}: counter {counter} used by {len(recs)} purchases ({where})")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, f"{cleared} cleared purchases, counters strictly forward on every card")


def blacklist_honoured(f: Facts) -> Result:
    hub = f.world.hub()
    history: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for card, version, action in hub.execute(
            "SELECT card_number, version, action FROM blacklist_entries ORDER BY card_number, version"):
        history[card].append((version, action))
    problems = []
    checked = 0
    for r in f.log_records:
        entries = history.get(r.card_number or "")
        if not entries or r.blacklist_version is None:
            continue
        checked += 1
        state = None
        for version, action in entries:
            if version <= r.blacklist_version:
                state = (version, action)
        if state is not None and state[1] == "add":
            problems.append(f"card {r.card_number}: purchase of {_fen(r.amount_fen)} (counter {r.counter}) accepted by "
                            f"terminal {r.terminal} at {r.date_time} holding blacklist version {r.blacklist_version}, "
                            f"which lists it since version {state[0]}")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, f"{len(f.log_records)} terminal records, {checked} on cards ever blacklisted, none accepted "
                        f"against the terminal's list")


def hub_conserved(f: Facts) -> Result:
    if not _has_clearing(f.world):
        return Result(False, "no clearing tables: region migration 7 / hub migration 4 missing")
    problems: list[str] = []
    hub = f.world.hub()
    # 1. every recorded settlement nets to zero and agrees with the hub's lines of its day
    hub_lines = _lines(hub, hub=True)
    by_day: dict[str, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for key, line in hub_lines.items():
        by_day[key[0]][(key[2], key[3])] += line["amount_fen"]
    days = 0
    for day, matrix_json, net_json in hub.execute("SELECT day, matrix, net FROM settlements ORDER BY day"):
        days += 1
        matrix, net = json.loads(matrix_json), json.loads(net_json)
        if sum(int(v) for v in net.values()):
            problems.append(f"settlement of {day}: the net positions sum to {_fen(sum(int(v) for v in net.values()))}")
        for node in REGION_NODES:
            paid = sum(int(v) for k, v in (matrix.get(node) or {}).items() if k != node)
            received = sum(int((matrix.get(k) or {}).get(node, 0)) for k in matrix if k != node)
            if int(net.get(node, 0)) != received - paid:
                problems.append(f"settlement of {day}: {_region(node)} net {_fen(int(net.get(node, 0)))}, but the "
                                f"matrix gives {_fen(received - paid)} (received {_fen(received)} − paid {_fen(paid)})")
        for payer in REGION_NODES:
            for payee in REGION_NODES:
                recorded = int((matrix.get(payer) or {}).get(payee, 0))
                lines = by_day.get(day, {}).get((payer, payee), 0)
                if recorded != lines:
                    problems.append(f"settlement of {day}: {_region(payer)} → {_region(payee)} recorded "
                                    f"{_fen(recorded)}, the hub's clearing lines of the day add up to {_fen(lines)}")
    # 2. the hub's lines are the payers' lines; a delivered line is the payee's line
    region_lines = {node: _lines(f.world.region(node)) for node in REGION_NODES}
    for node, lines in region_lines.items():
        for key, line in lines.items():
            day, kind, payer, payee, party = key
            if payer == node and line["sent_at"] is not None:
                theirs = hub_lines.get(key)
                if theirs is None:
                    problems.append(f"{_region(node)}'s {kind} line {day} {payer}→{payee} {party} "
                                    f"({_fen(line['amount_fen'])}) was sent but the hub has no such line")
                elif (theirs["count"], theirs["amount_fen"]) != (line["count"], line["amount_fen"]):
                    problems.append(f"{kind} line {day} {payer}→{payee} {party}: {_region(payer)} says "
                                    f"{line['count']} for {_fen(line['amount_fen'])}, the hub "
                                    f"{theirs['count']} for {_fen(theirs['amount_fen'])}")
            elif payee == node and payer != node:
                mine = region_lines[payer].get(key)
                if mine is None or (mine["count"], mine["amount_fen"]) != (line["count"], line["amount_fen"]):
                    problems.append(f"{_region(node)} received {kind} line {day} {payer}→{payee} {party} "
                                    f"({_fen(line['amount_fen'])}) that {_region(payer)} "
                                    + ("never sent" if mine is None else f"sent as {_fen(mine['amount_fen'])}"))
    for key, line in hub_lines.items():
        day, kind, payer, payee, party = key
        if key not in region_lines[payer]:
            problems.append(f"the hub holds {kind} line {day} {payer}→{payee} {party} ({_fen(line['amount_fen'])}) "
                            f"that {_region(payer)} has no record of")
        if payee != payer and (line["delivered_at"] is not None) != (key in region_lines[payee]):
            problems.append(f"{kind} line {day} {payer}→{payee} {party}: the hub says "
                            f"{'delivered' if line['delivered_at'] else 'not delivered'}, {_region(payee)} "
                            f"{'holds' if key in region_lines[payee] else 'does not hold'} it")
    # 3. the regions' CLEARING accounts mirror each other, but for what is still on its way
    balances = {node: dict(f.world.region(node).execute(
        "SELECT account_no, sum(amount_fen) FROM ledger_entries WHERE account_no LIKE 'CLEARING-%' "
        "GROUP BY account_no").fetchall()) for node in REGION_NODES}
    on_way: dict[tuple[str, str], int] = defaultdict(int)  # (payer, payee) -> fen posted by one side only
    for payer in REGION_NODES:
        for key, line in region_lines[payer].items():
            if key[2] == payer and key[3] != payer and key not in region_lines[key[3]]:
                on_way[(payer, key[3])] += line["amount_fen"]
        for payee, fen in _medical_not_cleared(f.world.region(payer)).items():
            on_way[(payer, payee)] += fen
    mirrored = []
    nodes = list(REGION_NODES)
    for i, a in enumerate(nodes):
        for b in nodes[i:]:
            both = balances[a].get(f"CLEARING-{b}", 0) + (balances[b].get(f"CLEARING-{a}", 0) if a != b else 0)
            expected = on_way[(a, b)] + (on_way[(b, a)] if a != b else 0)
            pair = f"{_region(a)}/{_region(b)}" if a != b else _region(a)
            if both != expected:
                problems.append(f"{pair}: CLEARING accounts sum to {_fen(both)} but {_fen(expected)} is on its way "
                                f"(lines not delivered, claims not cleared) — off by {_fen(both - expected)}")
            elif both:
                mirrored.append(f"{pair} {_fen(both)} on its way")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, f"{days} settlement(s) net to zero and match the hub's {len(hub_lines)} line(s); CLEARING "
                        f"accounts mirror" + (f" ({', '.join(mirrored)})" if mirrored else " exactly"))


def no_record_cleared_twice(f: Facts) -> Result:
    if not _has_clearing(f.world):
        return Result(False, "no clearing tables: region migration 7 missing")
    problems: list[str] = []
    owners: dict[tuple, str] = {}
    records = 0
    for node in REGION_NODES:
        db = f.world.region(node)
        lines = _lines(db)
        # each record of a cleared day counted once: the day's lines are exactly its records
        per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for key in db.execute(
                "SELECT terminal_no, terminal_serial, app_serial, txn_type, counter, clearing_day, amount_fen "
                "FROM purse_purchases WHERE clearing_day IS NOT NULL"):
            records += 1
            k, day, amount = tuple(key[:5]), key[5], key[6]
            if k in owners:
                problems.append(f"purchase {k[2]} counter {k[4]} (terminal {k[0]} serial {k[1]}) is cleared by "
                                f"{_region(owners[k])} and {_region(node)}")
            owners[k] = node
            per_day[day][0] += 1
            per_day[day][1] += amount
        line_days: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        line_total = 0
        for (day, kind, payer, _payee, _party), line in lines.items():
            if kind == "transit" and payer == node:
                line_days[day][0] += line["count"]
                line_days[day][1] += line["amount_fen"]
                line_total += line["amount_fen"]
        for day in sorted(set(per_day) | set(line_days)):
            if per_day.get(day, [0, 0]) != line_days.get(day, [0, 0]):
                r, l = per_day.get(day, [0, 0]), line_days.get(day, [0, 0])
                problems.append(f"{_region(node)} clearing of {day}: its transit lines count {l[0]} purchases for "
                                f"{_fen(l[1])}, the purchases cleared that day are {r[0]} for {_fen(r[1])}")
        (took,) = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = ? "
                             "AND kind = 'clearing'", [FLOAT_PURSE]).fetchone()
        if -took != line_total:
            problems.append(f"{_region(node)}: clearings took {_fen(-took)} from FLOAT-PURSE, its transit lines add "
                            f"up to {_fen(line_total)}")
        # medical: each day's medical lines are the claims (and refunds) that day cleared
        med_lines: dict[str, int] = defaultdict(int)
        for (day, kind, payer, _payee, _party), line in lines.items():
            if kind == "medical" and payer == node:
                med_lines[day] += line["amount_fen"]
        med_claims: dict[str, int] = defaultdict(int)
        for day, fen in db.execute(
                "SELECT c.clearing_day, sum(e.amount_fen) FROM medical_claims c JOIN ledger_entries e "
                "ON e.txn_id = c.txn_id AND e.account_no LIKE 'CLEARING-%' WHERE c.clearing_day IS NOT NULL "
                "GROUP BY c.clearing_day"):
            med_claims[day] += fen
        for day, fen in db.execute(
                "SELECT c.refund_clearing_day, sum(e.amount_fen) FROM medical_claims c JOIN ledger_entries e "
                "ON e.txn_id = c.reversal_txn_id AND e.account_no LIKE 'CLEARING-%' "
                "WHERE c.refund_clearing_day IS NOT NULL GROUP BY c.refund_clearing_day"):
            med_claims[day] += fen
        for day in sorted(set(med_lines) | set(med_claims)):
            if med_lines.get(day, 0) != med_claims.get(day, 0):
                problems.append(f"{_region(node)} clearing of {day}: its medical lines owe "
                                f"{_fen(med_lines.get(day, 0))}, the claims cleared that day "
                                f"{_fen(med_claims.get(day, 0))}")
    if problems:
        return Result(False, _shown(problems))
    return Result(True, f"{records} purchase(s) in a clearing, each once; every day's lines are its records")


def _has_clearing(world: World) -> bool:
    db = world.region("bj")
    return "clearing_day" in {c.name for c in db["purse_purchases"].columns} and \
        world.hub()["settlements"].exists()


def _lines(db: Any, *, hub: bool = False) -> dict[tuple[str, str, str, str, str], dict[str, Any]]:
    """(day, kind, payer, payee, party) -> the clearing line (a region's or the hub's)."""
    extra = "received_at, delivered_at" if hub else "sent_at, txn_id"
    out = {}
    for row in db.execute(f"SELECT day, kind, payer_node, payee_node, party, count, amount_fen, {extra} "
                          "FROM clearing_lines ORDER BY day, kind, payer_node, payee_node, party"):
        out[tuple(row[:5])] = {"count": row[5], "amount_fen": row[6],
                               **({"received_at": row[7], "delivered_at": row[8]} if hub else
                                  {"sent_at": row[7], "txn_id": row[8]})}
    return out


def _medical_not_cleared(db: Any) -> dict[str, int]:
    """payee node -> what this (insured) region's ledger owes on CLEARING-<payee> for claims and refunds
    not yet in a clearing."""
    out: dict[str, int] = defaultdict(int)
    for sql in (
        "SELECT e.account_no, sum(e.amount_fen) FROM medical_claims c JOIN ledger_entries e ON e.txn_id = c.txn_id "
        "WHERE c.clearing_day IS NULL AND e.account_no LIKE 'CLEARING-%' GROUP BY e.account_no",
        "SELECT e.account_no, sum(e.amount_fen) FROM medical_claims c JOIN ledger_entries e "
        "ON e.txn_id = c.reversal_txn_id WHERE c.refund_clearing_day IS NULL AND c.reversal_txn_id IS NOT NULL "
        "AND e.account_no LIKE 'CLEARING-%' GROUP BY e.account_no",
    ):
        for account, fen in db.execute(sql):
            out[account.removeprefix("CLEARING-")] += fen
    return out


def _cleared_keys(world: World) -> dict[str, set[tuple]]:
    """issuer node -> the keys of the purchases in a clearing (none before region migration 7)."""
    out: dict[str, set[tuple]] = {node: set() for node in REGION_NODES}
    for node in REGION_NODES:
        db = world.region(node)
        if "clearing_day" not in {c.name for c in db["purse_purchases"].columns}:
            continue
        out[node] = {tuple(row) for row in db.execute(
            "SELECT terminal_no, terminal_serial, app_serial, txn_type, counter FROM purse_purchases "
            "WHERE clearing_day IS NOT NULL")}
    return out


CHECKS: dict[str, Callable[[Facts], Result]] = {
    "money_conserved": money_conserved,
    "hub_conserved": hub_conserved,
    "purse_float_reconciled": purse_float_reconciled,
    "no_record_cleared_twice": no_record_cleared_twice,
    "no_debit_without_record": no_debit_without_record,
    "counters_forward": counters_forward,
    "blacklist_honoured": blacklist_honoured,
}
