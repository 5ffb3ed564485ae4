"""`sbcard outlet …` as staff run it: list, receive, show, spoil; warnings when stock runs low."""

from __future__ import annotations

from pathlib import Path

import pytest

from sbcard.store.db import content_digest, open_db


@pytest.fixture
def staff(sbcard):
    code, _, err, _ = sbcard("operator", "add", "tj-op", "--name", "王芳", "--role", "counter", "--region", "120103")
    assert code == 0, err


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


def test_outlet_list_has_the_stable_keys_and_filters(sbcard):
    code, _, err, data = sbcard("outlet", "list", "--json")
    assert code == 0, err
    assert list(data[0])[:5] == ["code", "name", "region", "kind", "stock"]
    assert {o["code"][:2] for o in data} == {"BJ", "TJ", "HE"}

    _, _, _, hexi = sbcard("outlet", "list", "--region", "120103", "--json")
    assert [o["code"] for o in hexi] == ["TJ-120103-01", "TJ-120103-02", "TJ-120103-03"]
    _, _, _, shijiazhuang = sbcard("outlet", "list", "--region", "130100", "--json")
    assert {o["region"][:4] for o in shijiazhuang} == {"1301"}
    _, _, _, banks = sbcard("outlet", "list", "--region", "120000", "--kind", "bank_branch", "--json")
    assert banks and all(o["kind"] == "bank_branch" and o["node"] == "tj" for o in banks)
    code, out, _, _ = sbcard("outlet", "list", "--region", "120103")
    assert code == 0 and "中国建设银行天津河西支行社保卡服务网点" in out


def test_receive_then_show_with_a_low_stock_warning(sbcard, home, staff):
    code, out, err, data = sbcard("outlet", "stock", "receive", "TJ-120103-01", "--count", "3",
                                  "--operator", "tj-op", "--json")
    assert code == 0, err
    assert data["outlet"] == "TJ-120103-01" and data["received"] == 3 and data["in_stock"] == 3
    assert all(Path(p).is_file() for p in data["paths"])
    assert err == "warning: TJ-120103-01 has 3 blanks left (low at 20): order more\n"

    code, out, err, shown = sbcard("outlet", "stock", "show", "tj-120103-01", "--json")
    assert code == 0 and "warning" in err
    assert {k: shown[k] for k in ("outlet", "in_stock", "used", "spoiled", "low")} == {
        "outlet": "TJ-120103-01", "in_stock": 3, "used": 0, "spoiled": 0, "low": True}
    assert [b["status"] for b in shown["blanks"]] == ["in_stock"] * 3
    assert shown["blanks"][0]["path"] == data["paths"][0]

    _, _, _, listed = sbcard("outlet", "list", "--region", "120103", "--json")
    assert listed[0]["stock"] == 3


def test_enough_stock_gives_no_warning(sbcard, staff):
    code, _, err, _ = sbcard("outlet", "stock", "receive", "TJ-120103-03", "--count", "6", "--operator", "tj-op")
    assert code == 0 and err == ""


@pytest.mark.parametrize(
    ("args", "exit_code", "message"),
    [
        (["TJ-120103-99", "--count", "1", "--operator", "tj-op"], 2, "error: CODE: no outlet TJ-120103-99 in Tianjin"),
        (["TJ-12010", "--count", "1", "--operator", "tj-op"], 2, "error: CODE: 'TJ-12010' is not an outlet code"),
        (["TJ-120103-01", "--count", "0", "--operator", "tj-op"], 2, "error: --count: a delivery is 1 to 1000"),
        (["TJ-120103-01", "--count", "1", "--operator", "ghost"], 2, "error: --operator: no operator 'ghost'"),
        (["BJ-110105-01", "--count", "1", "--operator", "tj-op"], 2, "error: --operator: no operator 'tj-op' in Beijing"),
    ],
)
def test_a_bad_delivery_is_one_line_and_changes_nothing(sbcard, home, staff, args, exit_code, message):
    before = digests(home)
    code, out, err, _ = sbcard("outlet", "stock", "receive", *args)
    assert code == exit_code and err.startswith(message) and err.count("\n") == 1
    assert digests(home) == before
    assert not (home / "cards" / "stock").exists() or not list((home / "cards" / "stock").rglob("*.card"))


def test_spoiling_a_blank(sbcard, staff):
    _, _, _, data = sbcard("outlet", "stock", "receive", "TJ-120103-01", "--count", "2", "--operator", "tj-op",
                           "--json")
    serial = data["chip_serials"][0]
    code, _, err, spoiled = sbcard("outlet", "stock", "spoil", "TJ-120103-01", serial, "--operator", "tj-op",
                                   "--reason", "chip cracked", "--json")
    assert code == 0, err
    assert spoiled == {"outlet": "TJ-120103-01", "chip_serial": serial, "status": "spoiled", "in_stock": 1}
    code, _, err, _ = sbcard("outlet", "stock", "spoil", "TJ-120103-01", serial, "--operator", "tj-op",
                             "--reason", "again")
    assert code == 1 and err.startswith("error: CHIP_SERIAL: blank ") and "is spoiled" in err
