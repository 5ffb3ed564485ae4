"""The medical tests' world: four insured holders with active cards, money in their accounts.

One template per session (cards issued and activated through the real commands, cash
paid in at bank-branch outlets); each test works on its own copy (``medical_world``).
Holders: a Beijing employee, a Hebei (Shijiazhuang) employee and resident, a retired
Tianjin employee. Import the fixtures into a test module:
``from medical_world import clock, medical_template, medical_world  # noqa: F401``.
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

from sbcard.clock import BEIJING
from sbcard.services.accounts import ledger
from sbcard.store.db import open_db
from sbcard.store.world import WorldPaths, open_world

NOW = dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)
PIN = "135790"

STAFF = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
    "HE-C1": ("张伟", "counter", "130102", "he"),
}
OUTLETS = {"bj": "BJ-110105-01", "tj": "TJ-120103-01", "he": "HE-130102-01"}
BANKS = {"bj": "BJ-110105-02", "tj": "TJ-120103-02", "he": "HE-130108-01"}
HOLDERS = {
    "liu": ("bj", {"citizen_id": "110105198506151236", "name": "刘洋", "region": "110105", "insurance": "employee"}),
    "zhao": ("he", {"citizen_id": "130102197804123022", "name": "赵丽", "region": "130102", "insurance": "employee"}),
    "sun": ("he", {"citizen_id": "130102196608234521", "name": "孙红", "region": "130102", "insurance": "resident"}),
    "wang": ("tj", {"citizen_id": "120103195501012013", "name": "王建国", "region": "120103", "insurance": "employee",
                    "retired": True}),
}
DEPOSIT_YUAN = 2000


def circumstances(hospital: Any, insured: str, *, day: dt.date = NOW.date(), registration: Any = None,
                  visit: str = "") -> Any:
    """What the insured region settles a claim at ``hospital`` with: its level and the day's cross-region terms."""
    from sbcard.reference import medical as ref
    from sbcard.domain import medical

    terms = medical.cross_region_terms(ref.cross_region(insured), insured_province=insured,
                                 treated_province=hospital.province, day=day, registration=registration, visit=visit)
    cross = hospital.province != insured
    return medical.Circumstances(hospital.level, cross, registered=terms.kind not in (medical.UNREGISTERED, medical.LOCAL),
                           referral_or_emergency=bool(visit), terms=terms)


def _issue(home: Path, holder: str) -> Card:
    node, fields = HOLDERS[holder]
    return issue_card(home, STAFF, holder, node, fields, outlet=OUTLETS[node], bank=BANKS[node], now=NOW, pin=PIN,
                      deposit_yuan=DEPOSIT_YUAN)


@attrs.define
class MedicalWorld(CardWorld):
    """One test's world and the operations its tests use."""

    tmp: Path

    def items(self, *lines: tuple[str, int, str], name: str = "items.json") -> Path:
        path = self.tmp / name
        path.write_text(json.dumps([{"code": c, "quantity": q, "price": p} for c, q, p in lines]), encoding="utf-8")
        return path

    def settle(self, holder: str, hospital: str, *lines: tuple[str, int, str], options: tuple[str, ...] = (),
               **reader_options: Any) -> tuple[int, Any]:
        code, _, err, done = self.run("medical", "settle", "--reader", self.reader(holder, **reader_options),
                                      "--hospital", hospital, "--items", str(self.items(*lines)), *options, "--json")
        return code, done if done is not None else err

    def ok_settle(self, holder: str, hospital: str, *lines: tuple[str, int, str], options: tuple[str, ...] = ()
                  ) -> dict[str, Any]:
        code, done = self.settle(holder, hospital, *lines, options=options)
        assert code == 0, done
        return done

    def refund(self, claim_id: str, *options: str) -> tuple[int, Any]:
        code, _, err, done = self.run("medical", "refund", claim_id, *options, "--json")
        return code, done if done is not None else err

    def year(self, holder: str, *options: str) -> dict[str, Any]:
        code, _, err, done = self.run("medical", "year", "--card", self.cards[holder].number, *options, "--json")
        assert code == 0, err
        return done

    def link(self, node: str, state: str) -> None:
        code, _, err, _ = self.run("hub", "link", node, f"--{state}", "--json")
        assert code == 0, err

    # --- what the databases and the card hold --------------------------------------------
    def account(self, holder: str) -> int:
        card = self.cards[holder]
        db = open_db(WorldPaths(self.home).db(card.node))
        try:
            return ledger.balance(db, ledger.account_of_card(db, card.number))
        finally:
            db.close()

    def balances(self, node: str) -> dict[str, int]:
        """Every ledger account's balance in ``node`` (zeros left out)."""
        rows = self.query(node, "SELECT account_no, sum(amount_fen) AS b FROM ledger_entries GROUP BY account_no")
        return {r["account_no"]: r["b"] for r in rows if r["b"]}

    def state(self) -> dict[str, Any]:
        """What a refund must restore: every region's ledger, years and personal accounts."""
        out: dict[str, Any] = {}
        for node in ("bj", "tj", "he"):
            out[node] = {
                "ledger": self.balances(node),
                "years": self.query(node, "SELECT citizen_id, year, deductible_paid_fen, fund_paid_fen "
                                          "FROM medical_years ORDER BY citizen_id, year"),
                "accounts": {r["citizen_id"]: r["b"] for r in self.query(
                    node, "SELECT citizen_id, sum(amount_fen) AS b FROM medical_account_entries GROUP BY citizen_id")},
            }
        return out

    def card_state(self, holder: str) -> dict[str, Any]:
        from terminals.emulator.card_file import read_state

        return read_state(self.path(holder))

    def medical_log(self, holder: str) -> list[Any]:
        """DF04/EF08, newest first, parsed."""
        from sbcard.chip.commands import ReadRecord, select_medical
        from sbcard.chip.medical_log import MedicalLogRecord
        from sbcard.chip.sw import RecordNotFound
        from terminals.drivers.emulator import EmulatorReader

        reader = EmulatorReader(self.path(holder))
        try:
            select_medical().send(reader)
            out = []
            for n in range(1, 11):
                try:
                    raw = ReadRecord(0x08, n, by_tag=False).send(reader)
                except RecordNotFound:
                    break
                out.append(MedicalLogRecord.parse(raw))
            return out
        finally:
            reader.close()

    def offline_data(self, holder: str) -> tuple[int, int, int]:
        """DF04/EF06: (limit, used, year)."""
        from sbcard.chip.reading import read_insurance
        from terminals.drivers.emulator import EmulatorReader

        reader = EmulatorReader(self.path(holder))
        try:
            insurance, _ = read_insurance(reader)
        finally:
            reader.close()
        return insurance.offline_limit_fen, insurance.offline_used_fen, insurance.offline_year

    def hub_messages(self, kind: str) -> list[dict[str, Any]]:
        db = open_db(WorldPaths(self.home).db("hub"))
        try:
            return [dict(r) for r in db.query("SELECT * FROM messages WHERE kind = ?", [kind])]
        finally:
            db.close()

    def world(self):
        return open_world(self.home)


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def medical_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Card]]:
    return card_template(tmp_path_factory, "medical", seed=61, now=NOW, staff=STAFF, holders=HOLDERS,
                         issue=_issue)


@pytest.fixture
def clock() -> Iterator[Any]:
    """The frozen time (``clock.move_to(...)`` / ``clock.tick(...)``; the CLI's clock follows)."""
    with freeze_time(NOW) as frozen:
        yield frozen


@pytest.fixture
def medical_world(tmp_path: Path, medical_template: tuple[Path, dict[str, Card]], clock: Any) -> MedicalWorld:
    template, cards = medical_template
    return MedicalWorld(copy_world(template, tmp_path), dict(cards), tmp_path)


__all__ = ["NOW", "PIN", "Card", "MedicalWorld", "clock", "medical_template", "medical_world"]
