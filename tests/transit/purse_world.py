"""The purse-host tests' world: two holders with active cards and money in their accounts.

One template per session (cards issued and activated through the real commands, cash
paid in at a bank-branch outlet); each test works on its own copy (``purse_world``
fixture). Card files are found in the copy by their path relative to the world, so the
copy never touches the template's cards. Import the fixtures into a test module:
``from purse_world import clock, purse_world, purse_template  # noqa: F401``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
from freezegun import freeze_time
from world_template import Card, CardWorld, card_template, copy_world, issue_card

from sbcard.chip.codec import bcd_datetime
from sbcard.clock import BEIJING
from sbcard.services.cards import keys
from sbcard.services.accounts import ledger
from sbcard.chip.purse_record import PurseRecord
from sbcard.store.db import open_db
from sbcard.store.world import WorldPaths, open_world

NOW = dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)
PIN = "135790"

# code → (name, role, region, node)
STAFF = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
}
OUTLETS = {"bj": "BJ-110105-01", "tj": "TJ-120103-01"}
BANKS = {"bj": "BJ-110105-02", "tj": "TJ-120103-02"}
HOLDERS = {
    "liu": ("bj", {"citizen_id": "110105198506151236", "name": "刘洋", "region": "110105", "insurance": "employee"}),
    "chen": ("tj", {"citizen_id": "120103197803024561", "name": "陈静", "region": "120103", "insurance": "resident"}),
}
DEPOSIT_YUAN = 2000  # paid into each holder's account in the template
METRO_TERMINAL = ("bj-subway-9001", "bj-subway", "bj", "110100900001")  # id, operator, node, terminal no


def _issue(home: Path, holder: str) -> Card:
    node, fields = HOLDERS[holder]
    return issue_card(home, STAFF, holder, node, fields, outlet=OUTLETS[node], bank=BANKS[node], now=NOW, pin=PIN,
                      deposit_yuan=DEPOSIT_YUAN)


@attrs.define
class PurseWorld(CardWorld):
    """One test's world and the operations its tests use."""

    def load(self, holder: str, yuan: str, **reader_options: Any) -> tuple[int, str, str, Any]:
        node = self.cards[holder].node
        staff = next(code for code, (_, _, _, n) in STAFF.items() if n == node)
        return self.run("transit", "load", "--reader", self.reader(holder, **reader_options), "--amount", yuan,
                        "--operator", staff, "--outlet", OUTLETS[node], "--json")

    def recover(self, holder: str) -> tuple[int, str, str, Any]:
        node = self.cards[holder].node
        staff = next(code for code, (_, _, _, n) in STAFF.items() if n == node)
        return self.run("transit", "recover", "--reader", self.reader(holder), "--operator", staff, "--json")

    # --- what the card and the issuer hold ----------------------------------------------
    def card_state(self, holder: str) -> dict[str, Any]:
        from terminals.emulator.card_file import read_state

        return read_state(self.path(holder))

    def edit_card(self, holder: str, change: Any) -> None:
        """Edit the card's JSON image behind the card's back (as someone with the file would):
        ``change(image_dict)`` edits it in place; written as the card's new current bank."""
        from terminals.emulator import card_file, image_codec

        doc = card_file.read_state(self.path(holder))
        change(doc)
        card_file.save(image_codec.from_json(doc), self.path(holder))

    def purse(self, holder: str) -> int:
        return self.card_state(holder)["purse"]["balance"]

    def online_counter(self, holder: str) -> int:
        return self.card_state(holder)["purse"]["online_counter"]

    def db(self, node: str):
        return open_db(WorldPaths(self.home).db(node))

    def account(self, holder: str) -> int:
        card = self.cards[holder]
        db = self.db(card.node)
        try:
            account_no = ledger.account_of_card(db, card.number)
            return ledger.balance(db, account_no)
        finally:
            db.close()

    def float_balance(self, node: str) -> int:
        db = self.db(node)
        try:
            rows = db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries WHERE account_no = "
                              "'FLOAT-PURSE'").fetchone()
            return rows[0]
        finally:
            db.close()

    def loads(self, holder: str) -> list[dict[str, Any]]:
        card = self.cards[holder]
        return self.query(card.node, "SELECT * FROM purse_loads WHERE app_serial = ? ORDER BY created_at, id",
                          (card.app_serial,))

    def card_keys(self, holder: str):
        card = self.cards[holder]
        db = self.db(card.node)
        try:
            [row] = db.query("SELECT * FROM cards WHERE card_number = ?", [card.number])
            return keys.keys_for_card(db, row)
        finally:
            db.close()

    # --- purchases made on the chip as a terminal would ---------------------------------
    def purchase(self, holder: str, amount: int, *, serial: int, when: dt.datetime = NOW,
                 terminal: tuple[str, str, str, str] = METRO_TERMINAL, blacklist_version: int | None = 0,
                 txn_type: int = 0x06) -> PurseRecord:
        """A purchase on the card through its real commands (PSAM role played with the issuer's keys)."""
        from terminals.emulator import testing
        from terminals.emulator.card import VirtualCard

        card = self.cards[holder]
        terminal_id, operator, _, terminal_no = terminal
        local = when.astimezone(BEIJING).replace(tzinfo=None)
        with VirtualCard.load(self.path(holder)) as chip:
            chip.power_on()
            receipt = testing.purchase(chip, amount, bytes.fromhex(terminal_no), serial.to_bytes(4, "big"), local,
                                       keys=self.card_keys(holder))
        return PurseRecord(
            app_serial=card.app_serial, txn_type=txn_type if txn_type != 0x06 else receipt.txn_type,
            counter=receipt.counter, terminal_no=terminal_no, terminal_serial=serial, amount_fen=amount,
            balance_before_fen=receipt.balance_before, date_time=bcd_datetime(local).hex(),
            tac=receipt.tac.hex().upper(), issuer_node=card.node, card_number=card.number, terminal=terminal_id,
            operator=operator, blacklist_version=blacklist_version,
        )

    def register_terminal(self, terminal: tuple[str, str, str, str] = METRO_TERMINAL) -> None:
        """The terminal's row in its region's register (as ``terminal add`` writes it)."""
        terminal_id, operator, node, terminal_no = terminal
        db = self.db(node)
        try:
            if not db.execute("SELECT 1 FROM terminals WHERE id = ?", [terminal_id]).fetchone():
                db["terminals"].insert({"id": terminal_id, "operator": operator, "station": None, "node": node,
                                        "psam_id": "PSAM" + terminal_no, "terminal_no": terminal_no,
                                        "blacklist_version": 0, "synced_at": None,
                                        "created_at": NOW.isoformat()})
        finally:
            db.close()

    def upload(self, records: list[PurseRecord], terminal_id: str = METRO_TERMINAL[0],
               now: dt.datetime | None = None, mac: str | None = None):
        """``transit_host.upload``, the batch MACed by the terminal's PSAM (``batch_mac``) unless ``mac`` is given."""
        from sbcard.clock import SystemClock
        from sbcard.services.transit import host as transit_host

        with open_world(self.home) as world:
            mac = mac if mac is not None else self.batch_mac(records, terminal_id)
            return transit_host.upload(world, terminal_id, records, now=now or SystemClock().now(), mac=mac)

    def batch_mac(self, records: list[PurseRecord], terminal_id: str = METRO_TERMINAL[0]) -> str:
        """The batch's MAC by a PSAM holding ``terminal_id``'s upload key (its region's UMK master diversified
        by its number, as ``terminal add`` loads it), over the records as the host reads them."""
        from sbcard.chip.psam import BatchMac
        from sbcard.services.terminals import register as terminals
        from sbcard.services.transit import host as transit_host
        from terminals.psam import MemorySerials, Psam, psam_upload_key

        with open_world(self.home) as world:
            row = terminals.get_terminal(world, terminal_id)
            key = terminals.upload_key(world, terminal_id)
        number = bytes.fromhex(row["terminal_no"])
        psam = Psam(number, [], MemorySerials(), upload_key=psam_upload_key(key))
        return BatchMac(number, len(records), transit_host.batch_digest(records)).send(psam).hex().upper()

    def snapshot(self, label: str) -> Path:
        """Every node's database (SQLite backup) and every card file, put aside under ``label``."""
        import sqlite3

        from sbcard.store.world import NODES

        keep = self.home.parent / f"snapshot-{label}"
        keep.mkdir()
        for node in NODES:
            src = sqlite3.connect(WorldPaths(self.home).db(node))
            dst = sqlite3.connect(keep / f"{node}.db")
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
        for holder in self.cards:
            (keep / f"{holder}.card").write_bytes(self.path(holder).read_bytes())
        return keep

    def restore(self, keep: Path) -> None:
        import sqlite3

        from sbcard.store.world import NODES

        for node in NODES:
            src = sqlite3.connect(keep / f"{node}.db")
            dst = sqlite3.connect(WorldPaths(self.home).db(node))
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
        for holder in self.cards:
            self.path(holder).write_bytes((keep / f"{holder}.card").read_bytes())

    # --- terminals through the command line (Engineer V's validator) ---------------------
    def add_terminal(self, operator: str = "tj-bus", *options: str) -> str:
        if operator == "tj-bus" and not options:
            options = ("--line", "13")  # full fare ¥2.00
        code, _, err, done = self.run("terminal", "add", "--operator", operator, *options, "--json")
        assert code == 0, err
        return done["terminal"]

    def tap(self, holder: str, terminal_id: str, *extra: str, **reader_options: Any) -> tuple[int, Any]:
        code, _, err, done = self.run("transit", "tap", "--reader", self.reader(holder, **reader_options),
                                      "--terminal", terminal_id, *extra, "--json")
        return code, done if done is not None else err

    def upload_terminal(self, terminal_id: str) -> dict[str, Any]:
        code, _, err, done = self.run("transit", "upload", "--terminal", terminal_id, "--json")
        assert code == 0, err
        return done

    def terminal_db(self, terminal_id: str):
        import sqlite3

        return sqlite3.connect(self.home / "terminals" / terminal_id / "terminal.db", isolation_level=None)

    def transit_records(self, node: str = "bj") -> list[dict[str, Any]]:
        rows = self.query(node, "SELECT * FROM transit_records ORDER BY app_serial, counter, terminal_serial")
        for row in rows:
            row["flags"] = json.loads(row["flags"]) if row["flags"] else []
        return rows


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def purse_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Card]]:
    return card_template(tmp_path_factory, "purse", seed=41, now=NOW, staff=STAFF, holders=HOLDERS,
                         issue=_issue)


@pytest.fixture
def clock() -> Iterator[Any]:
    """The frozen time (``clock.tick(timedelta)`` moves it; the CLI's clock follows)."""
    with freeze_time(NOW) as frozen:
        yield frozen


@pytest.fixture
def purse_world(tmp_path: Path, purse_template: tuple[Path, dict[str, Card]], clock: Any) -> PurseWorld:
    template, cards = purse_template
    return PurseWorld(copy_world(template, tmp_path), dict(cards))
