"""A Tianjin district (河西区 120103) with finance staff and card holders, for the payment tests.

Holders are registered through the registry; their cards and financial accounts are
written straight into the region's tables (issuing a real card per holder would make
these tests slow and is covered by the issuance tests). Batches reach the database
through the real ``sbcard subsidy import`` of a CSV file (``import_csv``).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sbcard.clock import BEIJING
from sbcard.domain.card_number import compute_check_char as card_check
from sbcard.domain.citizen_id import compute_check_char as id_check
from sbcard.domain.money import fen_to_yuan_str
from sbcard.services.accounts import ledger
from sbcard.store.unit_of_work import UnitOfWork

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
AT = NOW.isoformat()
DISTRICT = "120103"
NODE = "tj"
MAKER, CHECKER, SUPERVISOR, CLERK = "tj-fin-wang", "tj-fin-li", "tj-sup-zhao", "tj-ctr-sun"
STAFF = {
    MAKER: ("王会计", "finance", DISTRICT, NODE),
    CHECKER: ("李复核", "finance", DISTRICT, NODE),
    SUPERVISOR: ("赵主任", "supervisor", DISTRICT, NODE),
    CLERK: ("孙柜员", "counter", DISTRICT, NODE),
}
HOLDERS = 40  # people with an active card and an open account
ITEM, ITEM2 = "GLJT", "ZDSHBZJ"  # 高龄津贴 (monthly, cap ¥800), 最低生活保障金 (monthly)
PERIOD = "202610"
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗"
ROOT = Path(__file__).resolve().parents[2]


def citizen_id(n: int) -> str:
    first17 = f"{DISTRICT}19{40 + n % 40:02d}0{1 + n % 9}1{n % 10}{n % 1000:03d}"
    return first17 + id_check(first17)


def name(n: int) -> str:
    return SURNAMES[n % len(SURNAMES)] + "测" + "一二三四五六七八九十"[n % 10]


def card_number(n: int, generation: int = 0) -> str:
    body = f"T{generation}{n:06d}"
    return body + card_check(body)


def person_fields(n: int) -> dict[str, Any]:
    return {"citizen_id": citizen_id(n), "name": name(n), "region": DISTRICT, "insurance": "resident"}


def give_card(db, n: int, *, generation: int = 0, status: str = "active", account: bool = True,
              replaces: str | None = None) -> str:
    """Write holder n's card (and open their account through it) straight into the region's tables."""
    number = card_number(n, generation)
    cid = citizen_id(n)
    db["applications"].insert({"id": f"TJ-A-T-{number}", "citizen_id": cid, "outlet": "TJ-120103-01",
                               "outlet_region": DISTRICT, "channel": "instant",
                               "kind": "replacement" if replaces else "first", "status": "issued",
                               "operator": CLERK, "card_number": number, "created_at": AT, "updated_at": AT})
    created = f"2026-0{1 + generation}-01T09:00:00+08:00"
    db["cards"].insert({"card_number": number, "card_id_code": ("120000D156000005" + number).ljust(32, "0"),
                        "citizen_id": cid, "application_id": f"TJ-A-T-{number}",
                        "chip_serial": ("8612" + number).ljust(16, "0")[:16],
                        "app_serial": ("03101200" + number).ljust(20, "0"), "status": status,
                        "loss_kind": "formal" if status == "lost" else None, "issue_date": "2026-01-01",
                        "expiry_date": "2036-01-01", "outlet": "TJ-120103-01", "replaces": replaces,
                        "created_at": created, "updated_at": created})
    if account:
        ledger.open_holder_account(db, citizen_id=cid, card_number=number, node=NODE, now=NOW)
    return number


def populate(db, holders: int = HOLDERS) -> None:
    """Cards and accounts for holders 0..holders-1 (already registered)."""
    for n in range(holders):
        give_card(db, n)


# ----------------------------------------------------------------------------- batch files


def row(seq: int, n: int, amount_fen: int, *, item: str = ITEM, period: str = PERIOD, card: str = "",
        who: str | None = None, remark: str = "") -> dict[str, str]:
    return {"seq": str(seq), "citizen_id": citizen_id(n), "name": who if who is not None else name(n),
            "card_number": card, "item": item, "period": period, "amount": fen_to_yuan_str(amount_fen),
            "remark": remark}


def write_csv(path: Path, rows: Sequence[dict[str, str]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=["seq", "citizen_id", "name", "card_number", "item", "period",
                                                 "amount", "remark"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def batch_rows(holders: Iterable[int], amount_fen: int = 30000, **kw: Any) -> list[dict[str, str]]:
    return [row(seq, n, amount_fen + seq, **kw) for seq, n in enumerate(holders, start=1)]


def total_fen(rows: Sequence[dict[str, str]]) -> int:
    return sum(int(r["amount"].replace(".", "")) for r in rows)


def import_csv(sbcard, path: Path, rows: Sequence[dict[str, str]], *, operator: str = MAKER) -> dict[str, Any]:
    """``sbcard subsidy import`` of ``rows`` written to ``path`` (count and total as options); its JSON."""
    write_csv(path, rows)
    code, out, err, data = sbcard("subsidy", "import", str(path), "--region", DISTRICT, "--operator", operator,
                                  "--count", str(len(rows)), "--total", fen_to_yuan_str(total_fen(rows)), "--json")
    assert code == 0, err
    return data


def approved_batch(sbcard, path: Path, rows: Sequence[dict[str, str]]) -> str:
    batch = import_csv(sbcard, path, rows)["batch_id"]
    code, _, err, _ = sbcard("subsidy", "approve", batch, "--operator", CHECKER, "--json")
    assert code == 0, err
    return batch


def insert_batch(db, batch_id: str, rows: Sequence[dict[str, str]], *, maker: str = MAKER,
                 invalid: dict[int, str] | None = None) -> str:
    """A batch written straight into the tables, as the import stores one (for checks the import would never
    let through, such as a header that disagrees with its rows). ``invalid``: seq → reason code."""
    invalid = invalid or {}
    stored = []
    for r in rows:
        seq = int(r["seq"])
        code = invalid.get(seq)
        stored.append({"batch_id": batch_id, "seq": seq, "line": seq + 1, "citizen_id": r["citizen_id"],
                       "name": r["name"], "card_number": r["card_number"] or None, "item": r["item"],
                       "period": r["period"], "amount_fen": int(r["amount"].replace(".", "")),
                       "remark": r["remark"] or None, "status": "invalid" if code else "valid",
                       "reason_code": code, "reason": code and f"test: {code}", "paid_card": None, "txn_id": None,
                       "paid_at": None, "note": None})
    valid = [s for s in stored if s["status"] == "valid"]
    total = sum(s["amount_fen"] for s in stored)
    with UnitOfWork(db) as uow:
        db["subsidy_batches"].insert({
            "id": batch_id, "region": DISTRICT, "source": "generated", "file_name": None, "file_sha256": None,
            "declared_count": len(stored), "declared_total_fen": total, "rows": len(stored), "valid": len(valid),
            "invalid": len(stored) - len(valid), "valid_total_fen": sum(s["amount_fen"] for s in valid),
            "status": "imported", "maker": maker, "checker": None, "reject_reason": None, "created_at": AT,
            "approved_at": None, "paid_at": None})
        db["subsidy_rows"].insert_all(stored)
        uow.commit()
    return batch_id


# ----------------------------------------------------------------------------- the real process


def run_sbcard(home: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess:
    """``python -m sbcard --home HOME …`` in a child process (waited for: no zombie is left)."""
    return subprocess.run([sys.executable, "-m", "sbcard", "--home", str(home), *args], capture_output=True,
                          text=True, env=child_env(env), timeout=timeout, cwd=ROOT)


def start_sbcard(home: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sbcard", "--home", str(home), *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=child_env(env), cwd=ROOT)


def child_env(extra: dict[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SBCARD_")}
    env.update(extra or {})
    return env


def parsed(result: subprocess.CompletedProcess) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


# ----------------------------------------------------------------------------- the invariants


def ledger_sum(db) -> int:
    return db.execute("SELECT coalesce(sum(amount_fen), 0) FROM ledger_entries").fetchone()[0]


def unbalanced_txns(db) -> list[str]:
    return [r[0] for r in db.execute(
        "SELECT txn_id FROM ledger_entries GROUP BY txn_id HAVING sum(amount_fen) != 0")]


def assert_paid_exactly_once(db, batch: str) -> dict[str, Any]:
    """Every row of the batch settled; each paid row has exactly one balanced payment; the totals add up."""
    header = db.execute("SELECT * FROM subsidy_batches WHERE id = ?", [batch]).fetchone()
    b = dict(zip([d[0] for d in db.execute("SELECT * FROM subsidy_batches LIMIT 0").description], header))
    assert b["status"] == "paid"
    rows = list(db.query("SELECT * FROM subsidy_rows WHERE batch_id = ? ORDER BY seq", [batch]))
    assert not [r for r in rows if r["status"] == "valid"]
    credits: dict[str, list[int]] = {}
    for txn, amount in db.execute("SELECT txn_id, amount_fen FROM ledger_entries WHERE txn_id GLOB ?",
                                  [f"SUB-{batch}-*"]):
        credits.setdefault(txn, []).append(amount)
    for r in rows:
        txn = f"SUB-{batch}-{r['seq']}"
        if r["status"] in ("paid", "reversed"):
            assert r["txn_id"] == txn
            legs = sorted(credits.pop(txn))
            assert legs == [-r["amount_fen"], r["amount_fen"]], (txn, legs)
        else:
            assert txn not in credits, f"{txn} posted for a {r['status']} row"
    assert not credits, f"payments without a paid row: {sorted(credits)}"
    paid = [r for r in rows if r["status"] in ("paid", "reversed")]
    failed = [r for r in rows if r["status"] in ("invalid", "failed")]
    assert (b["paid_count"], b["paid_fen"]) == (len(paid), sum(r["amount_fen"] for r in paid))
    assert (b["failed_count"], b["failed_fen"]) == (len(failed), sum(r["amount_fen"] or 0 for r in failed))
    assert b["paid_fen"] + b["failed_fen"] == b["declared_total_fen"]
    assert ledger_sum(db) == 0 and unbalanced_txns(db) == []
    twice = db.execute("SELECT citizen_id, item, period, count(*) FROM subsidy_rows WHERE status = 'paid' "
                       "GROUP BY citizen_id, item, period HAVING count(*) > 1").fetchall()
    assert twice == []
    assert db.execute("SELECT count(*) FROM subsidy_pay_leases WHERE batch_id = ?", [batch]).fetchone()[0] == 0
    return b
