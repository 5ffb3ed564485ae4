"""The concession tests' world: Tianjin and Beijing staff, elders about to turn 65, a student.

One template per session (staff and people registered); each test works on its own copy
and issues its cards through the real commands. Time is frozen at ``NOW`` (the ``desk``
fixture moves it). Import into a test module:
``from concession_world import desk, home, template_home  # noqa: F401``.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from freezegun import freeze_time
from world_template import counter_of, home, make_template, receive_blanks  # noqa: F401  (home: fixture)

from sbcard.clock import BEIJING, SystemClock
from sbcard.store.db import open_db
from sbcard.store.world import WorldPaths

NOW = dt.datetime(2025, 3, 3, 9, 0, tzinfo=BEIJING)
PIN = "135790"
OUTLETS = {"bj": "BJ-110105-01", "tj": "TJ-120103-01"}

# code → (name, role, region, node)
STAFF = {
    "BJ-C1": ("王芳", "counter", "110105", "bj"),
    "TJ-C1": ("李娜", "counter", "120103", "tj"),
}
HOLDERS = {
    # 65 on 2025-03-20: the free ride may be enabled from 2025-02-20
    "wang": ("tj", {"citizen_id": "120103196003200024", "name": "王建国", "region": "120103", "insurance": "resident"}),
    # 65 on 2025-04-10: from 2025-03-10
    "zhao": ("tj", {"citizen_id": "120103196004100033", "name": "赵秀兰", "region": "120103", "insurance": "resident"}),
    # 75, with a Beijing card and Beijing 户籍
    "liu": ("bj", {"citizen_id": "110105195001011234", "name": "刘德明", "region": "110105", "insurance": "employee",
                   "residence": "hukou"}),
    # 60 on 2025-03-10, a Beijing 居住证 (居住证 holders get Beijing's elderly concession too)
    "chen": ("bj", {"citizen_id": "110105196503100020", "name": "陈淑华", "region": "110105", "insurance": "employee",
                    "residence": "permit"}),
    # 69, lives in Beijing with neither 户籍 nor 居住证
    "sun": ("bj", {"citizen_id": "110108195506010033", "name": "孙立新", "region": "110108", "insurance": "employee",
                   "residence": "none"}),
    # 74, residence not recorded (as every person registered before region migration 13)
    "zhou": ("bj", {"citizen_id": "110106195008150049", "name": "周玉梅", "region": "110106",
                    "insurance": "employee"}),
}


@pytest.fixture(scope="session")
def template_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_template(tmp_path_factory, "concession", seed=23, now=NOW, staff=STAFF, people=HOLDERS.values())


class Desk:
    """A counter with the CLI at hand: issue cards, run concession commands, look at chips and databases."""

    def __init__(self, sbcard: Any, home: Path, frozen: Any) -> None:
        self.sbcard, self.home, self.frozen = sbcard, home, frozen

    def issue(self, holder: str, *, activate: bool = True) -> str:
        node, fields = HOLDERS[holder]
        staff = counter_of(STAFF, node)
        [blank] = receive_blanks(self.home, STAFF, OUTLETS[node], 1, SystemClock().now())
        code, _, err, applied = self.sbcard("card", "apply", "--citizen-id", fields["citizen_id"], "--outlet",
                                            OUTLETS[node], "--operator", staff, "--json")
        assert code == 0, err
        code, _, err, issued = self.sbcard("card", "issue", applied["application_id"], "--reader",
                                           f"emulator:{blank}", "--operator", staff, "--json")
        assert code == 0, err
        if activate:
            code, _, err, _ = self.sbcard("card", "activate", issued["card_number"], "--pin", PIN, "--operator",
                                          staff, "--json")
            assert code == 0, err
        return issued["card_number"]

    def replace(self, card: str, node: str = "tj") -> str:
        [blank] = receive_blanks(self.home, STAFF, OUTLETS[node], 1, SystemClock().now())
        code, _, err, done = self.sbcard("card", "replace", card, "--reader", f"emulator:{blank}", "--operator",
                                         counter_of(STAFF, node), "--outlet", OUTLETS[node], "--json")
        assert code == 0, err
        return done["new_card"]

    def concession(self, verb: str, card: str, *args: str, operator: str | None = "TJ-C1") -> tuple[Any, ...]:
        staff = ("--operator", operator) if operator and verb != "show" else ()
        return self.sbcard("transit", "concession", verb, card, *staff, *args, "--json")

    def card_path(self, card: str) -> str:
        for node in ("bj", "tj", "he"):
            rows = self.query(node, "SELECT virtual_path FROM cards WHERE card_number = ?", (card,))
            if rows:
                return os.path.join(self.home, rows[0]["virtual_path"])  # recorded relative to the home
        raise AssertionError(f"no card {card}")

    def chip_0017(self, card: str) -> bytes:
        from terminals.apps import counter
        from terminals.drivers.spec import open_reader

        reader = open_reader(f"emulator:{self.card_path(card)}")
        try:
            return counter.read_concession(reader)
        finally:
            reader.close()

    def query(self, node: str, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        db = open_db(WorldPaths(self.home).db(node))
        try:
            return [dict(row) for row in db.query(sql, params)]
        finally:
            db.close()

    def move_to(self, when: dt.datetime) -> None:
        self.frozen.move_to(when)


@pytest.fixture
def desk(sbcard: Any, home: Path) -> Iterator[Desk]:  # noqa: F811  (home: the imported fixture)
    with freeze_time(NOW) as frozen:
        yield Desk(sbcard, home, frozen)
