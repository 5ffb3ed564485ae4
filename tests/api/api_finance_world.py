"""A Beijing district with card holders, a medical claim and a batch file, served by a live server.

The template is the API's (staff accounts of every role) with, in 朝阳区 110105, three
persons registered through the registry: two with a card issued on the emulator, activated
and money deposited (``world_template.issue_card``, the real use cases through the CLI), one
without a card (their batch row is invalid at import). One holder's card settled a claim at a
Beijing hospital (``sbcard medical settle``), for the medical routes to read and refund.
"""

from __future__ import annotations

import csv
import io
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from api_world import LiveServer, start_server
from freezegun import freeze_time
from world_template import NOW, cli, issue_card, ok

from sbcard.clock import SimClock
from sbcard.domain.citizen_id import compute_check_char
from sbcard.services.people import registry
from sbcard.store.world import open_world

DISTRICT = "110105"
OUTLET, BANK = "BJ-110105-01", "BJ-110105-02"
PIN = "135790"
COUNTER = {"BJ-C2": ("陈刚", "counter", DISTRICT, "bj")}  # the counter clerk who issues the cards (no outlet scope)


def citizen_id(first17: str) -> str:
    return first17 + compute_check_char(first17)


LIU = citizen_id("11010519850615123")
CHEN = citizen_id("11010519900302452")
ZHAO = citizen_id("11010519770808201")  # registered, no card
GAO = citizen_id("11010519400101301")  # 85 on NOW, no card: what a generated 高龄津贴 batch finds
PERSONS = {"LIU": (LIU, "刘洋"), "CHEN": (CHEN, "陈静"), "ZHAO": (ZHAO, "赵强"), "GAO": (GAO, "高德明")}


@attrs.frozen
class FinanceWorld:
    home: Path
    cards: dict[str, str]  # holder → card number
    claim_id: str  # LIU's claim at BJH003


@pytest.fixture(scope="session")
def finance_template(api_template: Path, tmp_path_factory: pytest.TempPathFactory) -> FinanceWorld:
    home = tmp_path_factory.mktemp("api-finance-template") / "world"
    shutil.copytree(api_template, home)
    with freeze_time(NOW):
        with open_world(home) as world:
            for holder, (cid, name) in PERSONS.items():
                registry.add_person(world.region("bj"), now=NOW, citizen_id=cid, name=name, region=DISTRICT,
                                    insurance="resident" if holder == "GAO" else "employee")
        cards = {}
        paths = {}
        for holder in ("LIU", "CHEN"):
            cid, name = PERSONS[holder]
            card = issue_card(home, COUNTER, holder, "bj", {"citizen_id": cid, "name": name}, outlet=OUTLET,
                              bank=BANK, now=NOW, pin=PIN, deposit_yuan=50)
            cards[holder], paths[holder] = card.number, home / card.relative_path
        items = home.parent / "items.json"
        items.write_text('[{"code": "XJ01CAA040", "quantity": 2, "price": "12.50"}]', encoding="utf-8")
        claim = ok(cli(home, "medical", "settle", "--reader", f"emulator:{paths['LIU']}", "--hospital", "BJH003",
                       "--items", str(items), "--json"))["claim_id"]
    return FinanceWorld(home=home, cards=cards, claim_id=claim)


@pytest.fixture
def finance(finance_template: FinanceWorld, tmp_path: Path) -> FinanceWorld:
    home = tmp_path / "world"
    shutil.copytree(finance_template.home, home)
    return attrs.evolve(finance_template, home=home)


@pytest.fixture
def server(finance: FinanceWorld) -> Iterator[LiveServer]:
    live = start_server(finance.home, SimClock(NOW))
    try:
        yield live
    finally:
        live.stop()


# ----------------------------------------------------------------------------- batch files and calls


def batch_csv(rows: list[tuple[int, str, str, str, str]], *, encoding: str = "utf-8", trailer: bool = True) -> bytes:
    """A batch file: rows (seq, holder, card number or '', item, amount in yuan) for period 202503."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark"])
    total = 0
    for seq, holder, card, item, amount in rows:
        cid, name = PERSONS[holder]
        writer.writerow([seq, cid, name, card, item, "202503", amount, ""])
        total += int(amount.replace(".", ""))
    if trailer:
        writer.writerow(["#TOTAL", len(rows), f"{total // 100}.{total % 100:02d}"])
    return out.getvalue().encode(encoding)


def standard_batch(finance: FinanceWorld) -> bytes:
    """LIU ¥100.00 and CHEN ¥200.00 (cards), ZHAO ¥50.00 (no card: invalid at import)."""
    return batch_csv([(1, "LIU", finance.cards["LIU"], "GLJT", "100.00"),
                      (2, "CHEN", finance.cards["CHEN"], "GLJT", "200.00"),
                      (3, "ZHAO", "", "GLJT", "50.00")])


_keys = iter(range(1, 10**9))


def key() -> dict[str, str]:
    return {"Idempotency-Key": f"test-{next(_keys)}-{time.monotonic_ns()}"}


def upload(client: httpx.Client, content: bytes, *, name: str = "民政局-202503.csv", region: str = DISTRICT,
           headers: dict[str, str] | None = None, **form: Any) -> httpx.Response:
    return client.post("/api/v1/subsidies/batches", files={"file": (name, content, "text/csv")},
                       data={"region": region, **form}, headers=headers if headers is not None else key())


def wait_for_job(client: httpx.Client, url: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(url)
        assert answer.status_code == 200, answer.text
        job = answer.json()
        if job["state"] in ("done", "failed"):
            return job
        assert time.monotonic() < deadline, f"job still {job['state']}: {job}"
        time.sleep(0.05)


def balance(home: Path, holder: str) -> int:
    """What the holder's financial account holds, from the ledger."""
    with open_world(home) as world:
        [row] = world.region("bj").query(
            "SELECT coalesce(sum(e.amount_fen), 0) AS fen FROM ledger_entries e JOIN accounts a "
            "ON a.account_no = e.account_no WHERE a.kind = 'holder' AND a.citizen_id = ?", [PERSONS[holder][0]])
    return row["fen"]
