"""Subsidy batches in: importing a department's file, generating one from the registry, and what they hold.

``import_batch`` is the maker's step (a finance operator of the batch's region):

1. The same file (by SHA-256) imported before is refused, naming its batch.
2. The file is read once, streaming (``subsidy_files.BatchReader``). Each row whose
   shape, sequence number and amount are in order is checked against the region's
   registry, cards, accounts and earlier batches (``sbcard.domain.subsidies.check_row``),
   a chunk of rows at a time with one query per kind of fact, and its verdict goes to a
   temporary table of this connection. The checks read one consistent snapshot and
   hold no write lock, so counters and other batches carry on meanwhile. Whether a person
   is registered in another region, and a person's latest card in the hub's directory, are
   asked of those nodes' processes when this world holds only the region
   (``subsidies.registered``, ``subsidies.directory_cards_of``: a question per chunk).
3. Then the file is judged whole: a problem anywhere in it (a bad line, a trailer, the
   declared count or total off by a fen) rejects it, naming the line and column; so
   does a file none of whose persons belongs to the region (a file of another region).
4. Only then one transaction stores the batch and all its rows (one INSERT … SELECT
   from the temporary table), with its number from the region's sequence and an audit
   entry. Nothing is stored from a rejected file, and a batch is never half-stored.
   ``checked_file`` gives steps 1–3 and step 4 apart (``CheckedFile.store``), so the service
   checks a file outside its write lock and holds the lock only to store it.

``generate_batch`` builds a batch without a file, by the item's rules
(``fixtures/subsidies/generate_rules.csv``, 免申即享): every person living in the region
whom a rule covers on the day ``as_of`` (by age, from the citizen ID), for the period
``as_of`` falls in; its rows go through the same checks and the same storing, and then
through the same approval and payment as a file's.
"""

from __future__ import annotations

import csv
import os
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any

from sbcard.domain import subsidies
from sbcard.domain.citizen_id import CitizenId
from sbcard.domain.csv_safety import Numeric, safe_row
from sbcard.domain.errors import InvalidInput, NotFound, RuleRefused, SbcardError
from sbcard.domain.lifecycle import CardState
from sbcard.domain.money import fen_to_yuan_str
from sbcard.domain.regions import NODE_NAMES, is_within, node_of, province_code_of, validate_region_code
from sbcard.reference import load_regions
from sbcard.services.exchange import peers
from sbcard.services.outlets import audit, operators
from sbcard.services.subsidies.files import BatchFile, BatchReader, Progress, check_declared, sha256_of
from sbcard.store.migrations import timestamp
from sbcard.store.repositories.subsidies import SubsidiesRepository
from sbcard.store.sequences import next_value
from sbcard.store.unit_of_work import UnitOfWork
from sbcard.store.world import HUB, REGION_NODES, World
from sbcard.domain.sources import combine
from sbcard.reference.subsidies import cap_provenance, generate_rules

MAKER_ROLES = {"finance"}
FIELD = "BATCH"
CHUNK_ROWS = 5_000  # rows whose facts are fetched together (a handful of queries per chunk)
CHECK_CACHE_KIB = 64 * 1024  # the registry's, cards' and accounts' index pages of a million persons
STAGE_CACHE_KIB = 32 * 1024  # the staged verdicts beyond it go to SQLite's temporary file
FAILURE_COLUMNS: tuple[str, ...] = (*subsidies.COLUMNS, "reason_code", "reason")

Checked = tuple[subsidies.SubsidyRow, subsidies.Verdict]


# ----------------------------------------------------------------------------- the catalogue


def items(world: World, *, region: str | None = None) -> list[dict[str, Any]]:
    """The subsidy catalogue as a region's database holds it (every region loads the same fixture).

    Each item says where its cap comes from (``source``, ``confidence``, ``illustrative``).
    """
    node = node_of(_region(region)) if region else next(iter(REGION_NODES))
    return [
        {"code": item.code, "name": item.name, "department": item.department, "period": item.period_type.value,
         "cap_fen": item.cap_fen, "fund_account": item.fund_account,
         **cap_provenance(item.code, item.cap_fen).to_json()}
        for item in _catalogue(UnitOfWork(world.region(node)))
    ]


def _catalogue(uow: UnitOfWork) -> subsidies.Catalogue:
    found = subsidies.Catalogue(subsidies.Item.from_row(row) for row in uow.get(SubsidiesRepository).catalogue())
    if not len(found):
        raise SbcardError("subsidy.no_catalogue", "the subsidy catalogue is empty: run `sbcard init` to load it")
    return found


# ----------------------------------------------------------------------------- import


def import_batch(
    world: World,
    path: Path,
    *,
    region: str,
    operator: str,
    now: datetime,
    count: int | None = None,
    total_fen: int | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Check a department's file and store it as a batch (status ``imported``), or reject it whole."""
    with checked_file(world, path, region=region, operator=operator, now=now, count=count, total_fen=total_fen,
                      progress=progress) as checked:
        return checked.store()


class CheckedFile:
    """A file read, checked and judged whole, its verdicts staged on this connection: ``store()`` keeps it.

    What the service does between the two: the checking (the long part, with no write lock)
    runs outside the process's write lock, and only ``store()`` — one transaction — inside it.
    """

    def __init__(self, uow: UnitOfWork, checker: _Checker, batch: BatchFile, *, node: str, region: str,
                 operator: str, now: datetime, progress: Progress | None) -> None:
        self._uow, self._checker, self.batch = uow, checker, batch
        self._node, self._region, self._operator, self._now, self._progress = node, region, operator, now, progress
        self._stored: str | None = None

    def store(self) -> dict[str, Any]:
        """The batch and all its rows in one transaction (the same file seen since is refused, the maker checked
        again); once."""
        if self._stored is not None:
            raise SbcardError("subsidy.stored_twice", f"this checked file was stored already as {self._stored}")
        maker = _maker(self._uow, self._operator, self._region)
        batch = self.batch
        if self._progress is not None:
            self._progress("storing", 0, 1)
        self._stored = _store(self._uow, self._checker, now=self._now, maker=maker, region=self._region,
                              source="file", file=batch,
                              details={"file": batch.name, "sha256": batch.sha256, "encoding": batch.encoding,
                                       "declared_by": batch.declared_by})
        if self._progress is not None:
            self._progress("storing", 1, 1)
        return _result(self._stored, self._node, self._region, self._checker, source="file", file=batch)


@contextmanager
def checked_file(
    world: World,
    path: Path,
    *,
    region: str,
    operator: str,
    now: datetime,
    count: int | None = None,
    total_fen: int | None = None,
    progress: Progress | None = None,
) -> Iterator[CheckedFile]:
    """Read and check a department's file, judged whole (``FileRejected`` naming line and column otherwise);
    inside the block, ``store()`` keeps it as a batch. Reads only (one snapshot; the verdicts go to a temporary
    table of this connection, dropped when the block ends): nothing is written until ``store()``."""
    check_declared(count, total_fen)
    region = _region(region)
    node = node_of(region)
    uow = UnitOfWork(world.region(node))
    _maker(uow, operator, region)
    catalogue = _catalogue(uow)
    path = Path(path)
    _refuse_seen_file(uow, sha256_of(path), path.name)
    reader = BatchReader(path)
    checker = _Checker(world, node, region, catalogue, now)
    with _staged(uow):
        try:
            checker.stage(reader.rows(progress), progress)
        except sqlite3.IntegrityError:  # the staging table's key met a sequence number twice
            reader.check_seqs()  # FileRejected naming the number and both its lines
            raise
        batch = reader.finish(count=count, total_fen=total_fen, region=region)
        checker.refuse_other_region(batch.name, reader.column("citizen_id"))
        yield CheckedFile(uow, checker, batch, node=node, region=region, operator=operator, now=now,
                          progress=progress)


def _refuse_seen_file(uow: UnitOfWork, sha256: str, name: str) -> None:
    earlier = uow.get(SubsidiesRepository).batch_of_file(sha256)
    if earlier:
        raise RuleRefused("subsidy.same_file", f"this file ({name}) was imported before as batch {earlier[0]} "
                          f"({earlier[1]}, from {earlier[2]}): the same file is never paid twice", "FILE")


def _maker(uow: UnitOfWork, operator: str, region: str) -> str:
    staff = operators.require_operator(uow.db, operator, roles=MAKER_ROLES)
    if not is_within(region, staff["region"]):
        raise RuleRefused("subsidy.maker_region", f"operator {staff['code']} works for region {staff['region']}, "
                          f"not for {region}", "--operator")
    return staff["code"]


def _region(region: str | None) -> str:
    try:
        code = validate_region_code(region or "")
        load_regions().get(code)
        node_of(code)
    except SbcardError as e:
        raise type(e)(e.code, e.message, "--region") from None
    return code


# ----------------------------------------------------------------------------- generate (免申即享)


def generate_batch(
    world: World,
    *,
    item: str,
    as_of: date,
    region: str,
    operator: str,
    now: datetime,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """A batch built from the registry by the item's rules, for the period ``as_of`` falls in."""
    region = _region(region)
    node = node_of(region)
    uow = UnitOfWork(world.region(node))
    maker = _maker(uow, operator, region)
    catalogue = _catalogue(uow)
    found = catalogue.find(item)
    if found is None:
        raise NotFound("subsidy.unknown_item", f"{item!r} is not a subsidy item (see `sbcard subsidy items`)",
                       "--item")
    if as_of.year < 1900:  # ages are counted back from it: year 1 less 80 is no date
        raise InvalidInput("subsidy.as_of", f"{as_of.isoformat()} is before 1900", "--as-of")
    if as_of > now.date():
        raise InvalidInput("subsidy.as_of", f"{as_of.isoformat()} is after today ({now.date().isoformat()}): "
                           "a batch is generated for a day that has come", "--as-of")
    bands = subsidies.bands_for(generate_rules(), found.code, province_code_of(region))
    if not bands:
        raise RuleRefused("subsidy.no_rules", f"{found.name} has no rules for generating a batch in "
                          f"{NODE_NAMES[node]} (fixtures/subsidies/generate_rules.csv)", "--item")
    period = subsidies.period_of(as_of, found.period_type)
    earlier = uow.get(SubsidiesRepository).generated_before(region, found.code, period)
    if earlier:
        raise RuleRefused("subsidy.generated_before", f"{found.name} {period} for region {region} was generated "
                          f"before as batch {earlier[0]} ({earlier[1]}); reject that batch first to generate "
                          "it again", "--item")
    used: Counter[subsidies.AgeBand] = Counter()
    rows = list(_eligible_rows(uow, region, found, bands, as_of, period, used))
    if not rows:
        raise RuleRefused("subsidy.nobody", f"nobody living in region {region} is covered by {found.name}'s rules "
                          f"on {as_of.isoformat()}", "--as-of")
    checker = _Checker(world, node, region, catalogue, now)
    with _staged(uow):
        checker.stage(iter(rows), progress, total=len(rows))
        if progress is not None:
            progress("storing", 0, 1)
        batch_id = _store(uow, checker, now=now, maker=maker, region=region, source="generated", file=None,
                          details={"item": found.code, "period": period, "as_of": as_of.isoformat()})
        if progress is not None:
            progress("storing", 1, 1)
    amounts = combine(band.provenance for band in bands)
    return {**_result(batch_id, node, region, checker, source="generated", file=None),
            "item": found.code, "period": period, "as_of": as_of.isoformat(),
            "rules": [{**band.to_json(), "rows": used[band]} for band in bands],
            "confidence": amounts.confidence, "illustrative": amounts.illustrative}


def _eligible_rows(uow: UnitOfWork, region: str, item: subsidies.Item, bands: list[subsidies.AgeBand], as_of: date,
                   period: str, used: Counter[subsidies.AgeBand]) -> Iterator[subsidies.SubsidyRow]:
    """One row per person living in the region whom a band covers on ``as_of``, by citizen ID (``used``
    counts the rows of each band)."""
    youngest = min(band.min_age for band in bands)
    latest_birth = _years_before(as_of, youngest).isoformat()
    seq = 0
    for cid, name, lives_in in uow.get(SubsidiesRepository).persons_born_by(latest_birth):
        if not is_within(lives_in, region):
            continue
        band = subsidies.band_for_age(bands, CitizenId(cid).age_on(as_of))
        if band is None:
            continue
        seq += 1
        used[band] += 1
        yield subsidies.SubsidyRow(line=seq + 1, seq=seq, citizen_id=cid, name=name, card_number="", item=item.code,
                           period=period, amount_fen=band.amount_fen, remark=f"免申即享 {as_of.isoformat()}")


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February in a common year: born on 1 March that year is not yet that old
        return day.replace(year=day.year - years, month=2, day=28)


# ----------------------------------------------------------------------------- checking rows


class _Asked:
    """Another node's records the checker reads, asked of its process (``sbcard serve --node``)."""

    def __init__(self, world: World, node: str) -> None:
        self.world, self.node = world, node

    def registered(self, cids: list[str]) -> list[str]:
        return peers.ask(self.world, self.node, "subsidies.registered", cids=list(cids)) if cids else []

    def directory_cards_of(self, cids: list[str]) -> list[str]:
        return peers.ask(self.world, self.node, "subsidies.directory_cards_of", cids=list(cids)) if cids else []


def _records(world: World, node: str) -> SubsidiesRepository | _Asked:
    """A node's records for the checks: its database when this world holds it, else its process."""
    if world.holds(node):
        return UnitOfWork(world.hub() if node == HUB else world.region(node)).get(SubsidiesRepository)
    return _Asked(world, node)


class _Checker:
    """Checks rows against one region's records, a chunk at a time, and stages the verdicts."""

    def __init__(self, world: World, node: str, region: str, catalogue: subsidies.Catalogue, now: datetime) -> None:
        self.store = UnitOfWork(world.region(node)).get(SubsidiesRepository)
        self.others = [(NODE_NAMES[n], _records(world, n)) for n in REGION_NODES if n != node]
        self.hub = _records(world, HUB)
        self.region = region
        self.catalogue = catalogue
        self.now = now
        self.today = now.date()
        self.first_line: dict[str, int] = {}
        self.rows = self.valid = self.valid_fen = self.total_fen = self.noted = 0
        self.reasons: Counter[str] = Counter()
        self.belongs = 0  # rows whose person is registered here and lives in the region
        self.elsewhere: tuple[int, str] | None = None  # the first row of a person of another region

    def stage(self, rows: Iterator[subsidies.SubsidyRow], progress: Progress | None, *, total: int | None = None) -> None:
        """Check every row and put it with its verdict in the temporary table.

        One read transaction: every chunk is checked against the same snapshot of the
        region, and it writes only to this connection's temporary database, so it takes
        no write lock on the region's.
        """
        with self.store.snapshot():
            for chunk in _chunks(rows, CHUNK_ROWS):
                self.store.stage([_stage_row(row, verdict) for row, verdict in self.check(chunk)])
                if progress is not None and total is not None:
                    progress("checking", self.rows, total)

    def check(self, chunk: list[subsidies.SubsidyRow]) -> list[Checked]:
        """Each row of the chunk with its verdict; the batch's counters move."""
        people = [row.person_key for row in chunk]
        found = {row.item: self.catalogue.find(row.item) for row in chunk}
        keys = sorted(set(people))
        persons: dict[str, tuple[str, str]] = {}
        accounts: dict[str, tuple[str, str]] = {}
        cards: dict[str, tuple[Any, ...]] = {}
        for cid, name, lives_in, account_card, account_status, *card in self.store.persons_with_cards(keys):
            persons[cid] = (name, lives_in)
            if account_card is not None:
                accounts[cid] = (account_card, account_status)
            if card[0] is not None:
                cards[cid] = tuple(card)
        elsewhere = self._registered_elsewhere([k for k in keys if k not in persons])
        self._latest_cards([k for k in keys if k in persons and k not in cards], cards)
        current = {cid: self._fact(card, accounts) for cid, card in cards.items()}
        named = {number: self._fact(card, accounts) for number, card in self._cards_by_number(
            sorted({_card_key(r.card_number) for r in chunk if r.card_number})).items()}
        paid = self._paid(chunk, people, found)
        checked = []
        first_line = self.first_line
        for row, cid in zip(chunk, people):
            item = found[row.item]
            key = f"{cid}|{item.code if item else row.item}|{row.period.strip()}"
            first = first_line.setdefault(key, row.line)
            person = persons.get(cid)
            facts = subsidies.Facts(
                today=self.today, batch_region=self.region, item=item, registered=person is not None,
                person_region=person[1] if person else None, registered_in=elsewhere.get(cid),
                registry_name=person[0] if person else None,
                named_card=named.get(_card_key(row.card_number)) if row.card_number else None,
                current_card=current.get(cid), first_line=first if first != row.line else None, paid_in=paid.get(key),
            )
            verdict = subsidies.check_row(row, facts)
            self._count(row, verdict, facts)
            checked.append((row, verdict))
        return checked

    def _fact(self, card: tuple[Any, ...], accounts: dict[str, tuple[str, str]]) -> subsidies.CardFact:
        """The card as the rules see it: its effective status and the status of the open account it reaches."""
        number, holder, status = card[0], card[1], card[2]
        held = accounts.get(holder)
        account = held[1] if held is not None and held[0] == number else None
        lapsed = False
        if status == "lost":  # a temporary loss lapses by itself (docs/card-service.md)
            state = CardState(number, status, card[3], _time(card[4]))
            lapsed = state.lapsed(self.now)
            status = state.effective(self.now).status.value
        return subsidies.CardFact(number, holder, status, account, lapsed)

    def _count(self, row: subsidies.SubsidyRow, verdict: subsidies.Verdict, facts: subsidies.Facts) -> None:
        self.rows += 1
        self.total_fen += row.amount_fen
        if verdict.valid:
            self.valid += 1
            self.valid_fen += row.amount_fen
            self.noted += verdict.note is not None
        else:
            self.reasons[verdict.reason_code.value] += 1  # type: ignore[union-attr]
        if facts.registered and facts.person_region and is_within(facts.person_region, self.region):
            self.belongs += 1
        elif (facts.registered or facts.registered_in) and self.elsewhere is None:
            where = facts.registered_in and f"registered in {facts.registered_in}" or \
                f"living in {facts.person_region}"
            self.elsewhere = (row.line, where)

    def refuse_other_region(self, file: str, column: str) -> None:
        """A file none of whose persons belongs to the region, though some are known elsewhere, is not its file."""
        if self.belongs == 0 and self.elsewhere is not None:
            line, where = self.elsewhere
            raise subsidies.FileRejected("other_region", f"no row of the file is of a person of region {self.region} "
                                 f"(this one is {where}): a file of another region?", file=file, line=line,
                                 column=column)

    def _registered_elsewhere(self, keys: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for name, other in self.others:
            for cid in other.registered([k for k in keys if k not in found]):
                found[cid] = name
        return found

    def _latest_cards(self, cids: list[str], cards: dict[str, tuple[Any, ...]]) -> None:
        """The latest card of each person without a valid one, found through the hub's directory (which is
        indexed by citizen ID; this region's cards table is not, but for its valid cards)."""
        if not cids:
            return
        numbers = self.hub.directory_cards_of(cids)
        for row in self._cards_by_number(numbers).values():
            best = cards.get(row[1])
            if best is None or (row[5], row[0]) > (best[5], best[0]):
                cards[row[1]] = row

    def _cards_by_number(self, numbers: list[str]) -> dict[str, tuple[Any, ...]]:
        return {row[0]: row for row in self.store.cards_by_number(numbers)}

    def _paid(self, chunk: list[subsidies.SubsidyRow], people: list[str], found: dict[str, subsidies.Item | None]) -> dict[str, str]:
        """key → the batch that paid it, for the chunk's person, item and period keys (one query per item and period)."""
        groups: dict[tuple[str, str], set[str]] = {}
        for row, cid in zip(chunk, people):
            item = found[row.item]
            if item is not None:
                groups.setdefault((item.code, row.period.strip()), set()).add(cid)
        paid: dict[str, str] = {}
        for (item_code, period), cids in groups.items():
            for cid, batch_id in self.store.paid_in(item_code, period, sorted(cids)):
                paid[f"{cid}|{item_code}|{period}"] = batch_id
        return paid


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _card_key(text: str) -> str:
    return "".join((text or "").split()).upper()


def _chunks(rows: Iterable[subsidies.SubsidyRow], size: int) -> Iterator[list[subsidies.SubsidyRow]]:
    chunk: list[subsidies.SubsidyRow] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _stage_row(row: subsidies.SubsidyRow, verdict: subsidies.Verdict) -> tuple[Any, ...]:
    return (
        row.seq, row.line, verdict.citizen_id or row.citizen_id or None, row.name or None,
        _card_key(row.card_number) or None, verdict.item or row.item or None, verdict.period or row.period or None,
        row.amount_fen, row.remark or None, verdict.status,
        verdict.reason_code.value if verdict.reason_code else None, verdict.reason, verdict.note,
    )


# ----------------------------------------------------------------------------- storing


@contextmanager
def _staged(uow: UnitOfWork) -> Iterator[None]:
    """A temporary table of this connection for the verdicts, dropped after; larger page caches meanwhile."""
    if uow.db.conn.in_transaction:
        raise SbcardError("store.nested_transaction", "a subsidy import runs its own transactions")
    with uow.get(SubsidiesRepository).staging(cache_kib=CHECK_CACHE_KIB, stage_cache_kib=STAGE_CACHE_KIB):
        yield


def _store(uow: UnitOfWork, checker: _Checker, *, now: datetime, maker: str, region: str, source: str,
           file: BatchFile | None, details: dict[str, Any]) -> str:
    """The batch and its rows in one transaction; returns the batch's id."""
    at = timestamp(now)
    with uow:
        if file is not None:
            _refuse_seen_file(uow, file.sha256, file.name)
        batch_id = _next_batch_id(uow, region, now)
        uow.get(SubsidiesRepository).store_staged({
            "id": batch_id, "region": region, "source": source,
            "file_name": file.name if file else None, "file_sha256": file.sha256 if file else None,
            "declared_count": file.declared.count if file else checker.rows,
            "declared_total_fen": file.declared.total_fen if file else checker.total_fen,
            "rows": checker.rows, "valid": checker.valid, "invalid": checker.rows - checker.valid,
            "valid_total_fen": checker.valid_fen, "status": "imported", "maker": maker, "created_at": at,
        })
        audit.record(uow.db, at=now, operator=maker, action=f"subsidy.{'import' if file else 'generate'}",
                     subject=batch_id, details={**details, "region": region, "rows": checker.rows,
                                                "valid": checker.valid, "invalid": checker.rows - checker.valid,
                                                "total_fen": checker.total_fen, "valid_fen": checker.valid_fen})
        uow.finish()
    return batch_id


def _next_batch_id(uow: UnitOfWork, region: str, now: datetime) -> str:
    """``<NODE>-S-<yyyymmdd>-<nnnn>``: the region's batches of the day, numbered from 1."""
    day = now.strftime("%Y%m%d")
    number = next_value(uow.db, f"subsidy_batch_{day}")
    return f"{node_of(region).upper()}-S-{day}-{number:04d}"


def _result(batch_id: str, node: str, region: str, checker: _Checker, *, source: str,
            file: BatchFile | None) -> dict[str, Any]:
    return {
        "batch_id": batch_id, "rows": checker.rows, "valid": checker.valid, "invalid": checker.rows - checker.valid,
        "total_fen": checker.total_fen, "valid_fen": checker.valid_fen,
        "invalid_fen": checker.total_fen - checker.valid_fen, "status": "imported", "source": source,
        "region": region, "node": node,
        "file": file.name if file else None, "sha256": file.sha256 if file else None,
        "format": file.kind if file else None, "encoding": file.encoding if file else None,
        "declared_count": file.declared.count if file else checker.rows,
        "declared_total_fen": file.declared.total_fen if file else checker.total_fen,
        "declared_by": file.declared_by if file else None,
        "reasons": dict(sorted(checker.reasons.items(), key=lambda kv: (-kv[1], kv[0]))),
        "noted": checker.noted,
    }


# ----------------------------------------------------------------------------- what a batch holds


def locate(world: World, batch_id: str) -> tuple[str, UnitOfWork, dict[str, Any]]:
    """(node, a unit of work on its region, batch row): by the id's node prefix (``TJ-S-…``)."""
    text = (batch_id or "").strip().upper()
    if not text:
        raise InvalidInput("subsidy.batch", "no batch id given", FIELD)
    node = text[:2].lower()
    if node in REGION_NODES:
        uow = UnitOfWork(world.region(node))
        row = uow.get(SubsidiesRepository).batch(text)
        if row is not None:
            return node, uow, row
    raise NotFound("subsidy.unknown_batch", f"no subsidy batch {text} in Beijing, Tianjin or Hebei "
                   "(see `sbcard subsidy batches`)", FIELD)


def show(world: World, batch: str) -> dict[str, Any]:
    """The batch: where it came from, who made and checked it, its totals, its rows by status, reason and item."""
    node, uow, row = locate(world, batch)
    batch_id = row["id"]
    store = uow.get(SubsidiesRepository)
    statuses = {status: {"rows": n, "amount_fen": fen} for status, n, fen in store.status_totals(batch_id)}
    reasons = [
        {"reason_code": code, "words": subsidies.describe(code), "status": status, "rows": n, "amount_fen": fen}
        for status, code, n, fen in store.reason_totals(batch_id)
    ]
    by_item = [
        {"item": item, "period": period, "rows": n, "amount_fen": fen}
        for item, period, n, fen in store.item_totals(batch_id)
    ]
    noted = store.noted(batch_id)
    return {
        "batch_id": batch_id, "region": row["region"], "node": node, "source": row["source"],
        "file_name": row["file_name"], "file_sha256": row["file_sha256"], "status": row["status"],
        "maker": row["maker"], "checker": row["checker"], "reject_reason": row["reject_reason"],
        "created_at": row["created_at"], "approved_at": row["approved_at"], "paid_at": row["paid_at"],
        "declared_count": row["declared_count"], "declared_total_fen": row["declared_total_fen"],
        "rows": row["rows"], "valid": row["valid"], "invalid": row["invalid"],
        "valid_total_fen": row["valid_total_fen"], "invalid_total_fen": row["declared_total_fen"] -
        row["valid_total_fen"],
        "paid_count": row["paid_count"], "paid_fen": row["paid_fen"],
        "failed_count": row["failed_count"], "failed_fen": row["failed_fen"],
        "statuses": statuses, "reasons": reasons, "items": by_item, "noted": noted,
    }


def batches(world: World, *, region: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
    """Every region's batches (or those of ``region``: a district, prefecture or province), oldest first."""
    area = _region(region) if region else None
    nodes = [node_of(area)] if area else list(REGION_NODES)
    found = []
    for node in nodes:
        for row in UnitOfWork(world.region(node)).get(SubsidiesRepository).all_batches():
            if area and not is_within(row["region"], area):
                continue
            if status and row["status"] != status:
                continue
            found.append({
                "batch_id": row["id"], "region": row["region"], "node": node, "source": row["source"],
                "file_name": row["file_name"], "status": row["status"], "rows": row["rows"], "valid": row["valid"],
                "invalid": row["invalid"], "declared_total_fen": row["declared_total_fen"],
                "valid_total_fen": row["valid_total_fen"], "paid_count": row["paid_count"],
                "paid_fen": row["paid_fen"], "failed_count": row["failed_count"], "failed_fen": row["failed_fen"],
                "maker": row["maker"], "checker": row["checker"], "created_at": row["created_at"],
            })
    return found


def failures(world: World, batch: str, out_path: Path, *, operator: str | None = None,
             now: datetime | None = None) -> dict[str, Any]:
    """Write the rows not paid (invalid at import, failed at pay time), ready to correct and resubmit.

    The file is a batch file (UTF-8 with a BOM, so that spreadsheet programs show the
    Chinese; text cells guarded against formulas by ``csv_safety``, which the import takes
    off again) with the extra columns ``reason_code`` and ``reason``, which an import
    ignores: correct the rows, drop the ones not to resubmit, add the ``#TOTAL`` trailer
    (or give ``--count``/``--total``) and import it. It is written whole or not at all.
    Writing personal data out is recorded in the batch's region's audit log.
    """
    node, uow, row = locate(world, batch)
    out_path = Path(out_path)
    partial = out_path.with_name(f".{out_path.name}.partial")
    written = amount = 0
    try:
        with partial.open("w", encoding="utf-8-sig", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(FAILURE_COLUMNS)
            for seq, cid, name, card, item, period, fen, remark, code, reason in uow.get(
                    SubsidiesRepository).unpaid_rows(row["id"]):
                writer.writerow(safe_row([seq, cid or "", name or "", card or "", item or "", period or "",
                                          Numeric(fen_to_yuan_str(fen)) if fen is not None else "", remark or "",
                                          code, reason]))
                written += 1
                amount += fen or 0
        os.replace(partial, out_path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    if now is not None:
        with uow:
            audit.record(uow.db, at=now, operator=(operator or "system").strip(), action="subsidy.failures",
                         subject=row["id"], details={"out": str(out_path), "rows": written})
            uow.finish()
    return {"batch_id": row["id"], "node": node, "out": str(out_path), "rows": written, "amount_fen": amount}

