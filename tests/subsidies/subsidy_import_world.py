"""A Tianjin district (河西区 120103) for the import tests: finance staff, and people in every card situation.

The people of ``fixtures/subsidies/samples/people.csv`` (so the sample files import
cleanly) and one person per situation a row check knows (a frozen account, a lost
card, a replaced one…). Persons are registered through the registry; cards, accounts
and the hub's directory entries are written straight into the tables (issuing real cards
is the issuance tests' business and would make these slow).
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sbcard.clock import BEIJING
from sbcard.domain.card_number import compute_check_char as card_check
from sbcard.domain.citizen_id import compute_check_char as id_check
from sbcard.reference import fixtures_dir
from sbcard.services.accounts import ledger
from sbcard.store.unit_of_work import UnitOfWork

NOW = datetime(2026, 11, 22, 9, 30, tzinfo=BEIJING)
AT = NOW.isoformat()
DISTRICT, OTHER_DISTRICT = "120103", "120101"
NODE = "tj"
SAMPLES = fixtures_dir() / "subsidies" / "samples"

MAKER, CHECKER, CLERK, OTHER_MAKER, CITY_MAKER, BJ_MAKER = (
    "tj-fin-a", "tj-fin-b", "tj-ctr", "tj-fin-x", "tj-fin-city", "bj-fin")
STAFF = {
    MAKER: ("王会计", "finance", DISTRICT, "tj"),
    CHECKER: ("李复核", "finance", DISTRICT, "tj"),
    CLERK: ("孙柜员", "counter", DISTRICT, "tj"),
    OTHER_MAKER: ("钱会计", "finance", OTHER_DISTRICT, "tj"),
    CITY_MAKER: ("周会计", "finance", "120000", "tj"),
    BJ_MAKER: ("吴会计", "finance", "110105", "bj"),
}


def citizen_id(region: str, born: str, seq: int) -> str:
    first17 = f"{region}{born}{seq:03d}"
    return first17 + id_check(first17)


def card_number(letter: str, n: int, generation: int = 0) -> str:
    body = f"{letter}{generation}{n:06d}"
    return body + card_check(body)


def _sample_people() -> dict[str, dict[str, Any]]:
    with (SAMPLES / "people.csv").open(encoding="utf-8") as f:
        return {row["name"]: {"citizen_id": row["citizen_id"], "name": row["name"], "region": row["region"],
                              "insurance": row["insurance"], "ethnicity": int(row["ethnicity"])}
                for row in csv.DictReader(f)}


SAMPLE_PEOPLE = _sample_people()

# key → (node, registry fields, card situation)
SITUATIONS = ("active", "frozen", "lost", "lapsed", "issued", "none", "cancelled", "replaced", "replaced_pending")
PEOPLE: dict[str, tuple[str, dict[str, Any], str]] = {
    **{f"ok{n}": ("tj", {"citizen_id": citizen_id(DISTRICT, "19700101", 100 + n), "name": f"测试{'一二三四五'[n]}",
                         "region": DISTRICT, "insurance": "resident"}, "active") for n in range(5)},
    "frozen": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 111), "name": "冻结", "region": DISTRICT,
                      "insurance": "resident"}, "frozen"),
    "lost": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 121), "name": "挂失", "region": DISTRICT,
                    "insurance": "resident"}, "lost"),
    "lapsed": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 131), "name": "口头", "region": DISTRICT,
                      "insurance": "resident"}, "lapsed"),
    "issued": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 141), "name": "未启用", "region": DISTRICT,
                      "insurance": "resident"}, "issued"),
    "nocard": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 151), "name": "无卡", "region": DISTRICT,
                      "insurance": "resident"}, "none"),
    "cancelled": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 161), "name": "注销", "region": DISTRICT,
                         "insurance": "resident"}, "cancelled"),
    "replaced": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 171), "name": "补卡", "region": DISTRICT,
                        "insurance": "resident"}, "replaced"),
    "pending": ("tj", {"citizen_id": citizen_id(DISTRICT, "19710101", 181), "name": "新卡未启用",
                       "region": DISTRICT, "insurance": "resident"}, "replaced_pending"),
    "elsewhere": ("tj", {"citizen_id": citizen_id(OTHER_DISTRICT, "19720101", 191), "name": "和平",
                         "region": OTHER_DISTRICT, "insurance": "resident"}, "active"),
    "beijing": ("bj", {"citizen_id": citizen_id("110105", "19720101", 201), "name": "北京", "region": "110105",
                       "insurance": "resident"}, "active"),
    **{name: ("tj", fields, "active") for name, fields in SAMPLE_PEOPLE.items()},
}
UNREGISTERED = citizen_id(DISTRICT, "19730101", 211)


def cid(key: str) -> str:
    return PEOPLE[key][1]["citizen_id"]


def name_of(key: str) -> str:
    return PEOPLE[key][1]["name"]


def registry_people() -> list[tuple[str, dict[str, Any]]]:
    return [(node, fields) for node, fields, _ in PEOPLE.values()]


def cards_of(key: str) -> list[str]:
    """The card numbers a person was given, oldest first."""
    n = list(PEOPLE).index(key)
    node, _, situation = PEOPLE[key]
    letter = node[0].upper()
    if situation == "none":
        return []
    if situation.startswith("replaced"):
        return [card_number(letter, n, 0), card_number(letter, n, 1)]
    return [card_number(letter, n, 0)]


def populate(world) -> None:
    """Every person's cards, accounts and directory entries, as their situation says."""
    for key, (node, fields, situation) in PEOPLE.items():
        if situation == "none":
            continue
        db = world.region(node)
        numbers = cards_of(key)
        person = fields["citizen_id"]
        with UnitOfWork(db) as uow:
            if situation in ("replaced", "replaced_pending"):
                old, new = numbers
                _card(uow.db, old, person, "replaced", node, generation=0)
                _card(uow.db, new, person, "active" if situation == "replaced" else "issued", node, generation=1,
                      replaces=old)
                ledger.open_holder_account(uow.db, citizen_id=person, card_number=old, node=node, now=NOW)
                ledger.move_account(uow.db, from_card=old, to_card=new, now=NOW)
            else:
                [number] = numbers
                status = {"frozen": "active", "lapsed": "lost"}.get(situation, situation)
                _card(uow.db, number, person, status, node, generation=0,
                      temporary=situation == "lapsed")
                if situation != "issued":
                    account = ledger.open_holder_account(uow.db, citizen_id=person, card_number=number, node=node,
                                                         now=NOW)
                    if situation in ("frozen", "lost", "lapsed"):
                        ledger.set_frozen(uow.db, account, frozen=True, now=NOW)
                    if situation == "cancelled":
                        ledger.close_account(uow.db, account, NOW)
            uow.commit()
        with UnitOfWork(world.hub()) as uow:
            for number in numbers:
                status = world.region(node).execute("SELECT status FROM cards WHERE card_number = ?",
                                                    [number]).fetchone()[0]
                uow.db["card_directory"].insert({
                    "card_number": number, "card_id_code": _card_id_code(node, number), "citizen_id": person,
                    "issuing_region": {"tj": "120000", "bj": "110000", "he": "130100"}[node], "status": status,
                    "updated_at": AT})
            uow.commit()


def _card_id_code(node: str, number: str) -> str:
    return ({"tj": "120000", "bj": "110000", "he": "130100"}[node] + "D156000005" + number).ljust(32, "0")


def _card(db, number: str, person: str, status: str, node: str, *, generation: int, replaces: str | None = None,
          temporary: bool = False) -> None:
    application = f"{node.upper()}-A-T-{number}"
    db["applications"].insert({"id": application, "citizen_id": person, "outlet": "TJ-120103-01",
                               "outlet_region": DISTRICT, "channel": "instant",
                               "kind": "replacement" if replaces else "first", "status": "issued",
                               "operator": CLERK, "card_number": number, "created_at": AT, "updated_at": AT})
    created = f"2026-0{1 + generation}-01T09:00:00+08:00"
    db["cards"].insert({
        "card_number": number, "card_id_code": _card_id_code(node, number), "citizen_id": person,
        "application_id": application, "chip_serial": ("86" + number).ljust(16, "0"),
        "app_serial": ("0310" + number).ljust(20, "0"), "status": status,
        "loss_kind": ("temporary" if temporary else "formal") if status == "lost" else None,
        "loss_expires_at": (NOW - timedelta(days=1)).isoformat() if temporary else None,
        "issue_date": "2026-01-01", "expiry_date": "2036-01-01", "outlet": "TJ-120103-01", "replaces": replaces,
        "created_at": created, "updated_at": created})


# ----------------------------------------------------------------------------- batch files

HEADER = ("seq", "citizen_id", "name", "card_number", "item", "period", "amount", "remark")


def row(seq: int, who: str, amount: str = "100.00", *, item: str = "GLJT", period: str = "202610",
        name: str | None = None, card: str = "", remark: str = "", person: str | None = None) -> dict[str, str]:
    """One row paying ``who`` (a key of PEOPLE); ``person`` overrides the citizen ID as written."""
    return {"seq": str(seq), "citizen_id": person if person is not None else cid(who),
            "name": name if name is not None else name_of(who), "card_number": card, "item": item,
            "period": period, "amount": amount, "remark": remark}


def total_of(rows: Sequence[dict[str, str]]) -> str:
    fen = sum(_fen(r["amount"]) for r in rows)
    return f"{'-' if fen < 0 else ''}{abs(fen) // 100}.{abs(fen) % 100:02d}"


def _fen(text: str) -> int:
    from sbcard.domain.money import parse_yuan

    return parse_yuan(text, allow_negative=True)


def write_csv(path: Path, rows: Sequence[dict[str, str]], *, encoding: str = "utf-8", trailer: Any = True,
              header: Sequence[str] = HEADER, extra: Sequence[Sequence[str]] = ()) -> Path:
    """A batch file. ``trailer``: True (the right totals), False (none), or the fields after #TOTAL."""
    lines: list[Sequence[str]] = [list(header)]
    lines += [[r.get(c, "") for c in header] for r in rows]
    if trailer is True:
        lines.append(["#TOTAL", str(len(rows)), total_of(rows)])
    elif trailer:
        lines.append(["#TOTAL", *trailer])
    lines += list(extra)
    with path.open("w", encoding=encoding, newline="") as f:
        csv.writer(f).writerows(lines)
    return path


def write_xlsx(path: Path, rows: Sequence[dict[str, Any]], *, trailer: Any = True, numbers: bool = True) -> Path:
    """A workbook as a spreadsheet program saves one: seq and amount as numbers when ``numbers``."""
    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(list(HEADER))
    for r in rows:
        values = [r.get(c, "") or None for c in HEADER]
        if numbers:
            values[0] = int(r["seq"])
            values[6] = float(r["amount"]) if isinstance(r["amount"], str) else r["amount"]
        sheet.append(values)
    if trailer is True:
        sheet.append(["#TOTAL", len(rows), float(total_of(rows))])
    elif trailer:
        sheet.append(["#TOTAL", *trailer])
    book.save(path)
    return path
