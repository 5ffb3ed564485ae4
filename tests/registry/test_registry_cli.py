"""`sbcard person …` and `sbcard operator …` as staff and scripts run them."""

from __future__ import annotations

import pytest
from registry_helpers import citizen_id

from sbcard.store.db import content_digest, open_db

ZHANG = citizen_id("120103", "19900101", 123)


CLERK = ("--operator", "tj-clerk")


@pytest.fixture
def clerk(sbcard):
    """The member of staff who registers people (``person add`` is a staff act: --operator is required)."""
    code, _, err, _ = sbcard("operator", "add", "tj-clerk", "--name", "周敏", "--role", "counter", "--region", "120103")
    assert code == 0, err
    return CLERK[1]


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


def test_operator_add_and_list(sbcard):
    code, out, err, data = sbcard("operator", "add", "tj-op", "--name", "王芳", "--role", "counter",
                                  "--region", "120103", "--json")
    assert code == 0, err
    assert data["node"] == "tj" and data["role"] == "counter"
    sbcard("operator", "add", "bj-op", "--name", "李娜", "--role", "finance", "--region", "110105")

    code, _, _, listed = sbcard("operator", "list", "--json")
    assert [o["code"] for o in listed] == ["bj-op", "tj-op"]
    code, _, _, listed = sbcard("operator", "list", "--region", "120000", "--json")
    assert [o["code"] for o in listed] == ["tj-op"]


def test_an_operator_code_is_unique_in_the_whole_country(sbcard, home):
    sbcard("operator", "add", "op-1", "--name", "王芳", "--role", "counter", "--region", "120103")
    before = digests(home)
    code, _, err, _ = sbcard("operator", "add", "op-1", "--name", "李娜", "--role", "counter", "--region", "110105")
    assert code == 1 and err == "error: CODE: operator op-1 already exists in Tianjin\n"
    assert digests(home) == before


def test_person_add_routes_to_the_insured_region_and_masks_its_answer(sbcard, home, clerk):
    code, out, err, data = sbcard("person", "add", "--citizen-id", ZHANG, "--name", "张三", "--region", "131003",
                                  "--insured-region", "120116", "--insurance", "employee", "--retired",
                                  "--phone", "13812345678", *CLERK, "--json")
    assert code == 0, err
    assert data["citizen_id"] == "120103********" + ZHANG[-4:] and data["name"] == "张*"
    assert data["phone"] == "138****5678" and data["retired"] is True
    assert open_db(home / "tj.db")["persons"].count == 1 and open_db(home / "he.db")["persons"].count == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--citizen-id", ZHANG[:-1] + "0"], "error: --citizen-id: check character should be"),
        (["--name", "阿" * 16], "error: --name: 32 GBK bytes, the card holds at most 30"),
        (["--region", "310101"], "error: --region: region 310101 is outside Beijing, Tianjin and Hebei"),
        (["--ethnicity", "60"], "error: --ethnicity: 60 is not a GB/T 3304 ethnicity code"),
    ],
)
def test_person_add_refuses_bad_input_in_one_line_and_writes_nothing(sbcard, home, clerk, args, message):
    base = {"--citizen-id": ZHANG, "--name": "张三", "--region": "120103", "--insurance": "employee"}
    base.update(dict(zip(args[::2], args[1::2])))
    before = digests(home)
    code, out, err, _ = sbcard("person", "add", *[x for pair in base.items() for x in pair], *CLERK)
    assert code == 2 and err.startswith(message) and err.count("\n") == 1 and out == ""
    assert digests(home) == before


def test_a_person_registered_in_one_region_is_refused_in_another(sbcard, home, clerk):
    sbcard("person", "add", "--citizen-id", ZHANG, "--name", "张三", "--region", "120103", "--insurance", "employee",
           *CLERK)
    code, _, err, _ = sbcard("person", "add", "--citizen-id", ZHANG, "--name", "张三", "--region", "110105",
                             "--insurance", "employee", *CLERK)
    assert code == 1 and "already registered in Tianjin" in err
    assert open_db(home / "bj.db")["persons"].count == 0


def test_person_show_masks_unless_shown_personally_which_is_audited(sbcard, home, clerk):
    sbcard("operator", "add", "bj-op", "--name", "李娜", "--role", "counter", "--region", "110105")
    sbcard("person", "add", "--citizen-id", ZHANG, "--name", "张三", "--region", "120103", "--insurance", "resident",
           "--address", "天津市河西区友谊路1号", *CLERK)

    code, out, _, data = sbcard("person", "show", ZHANG, "--json")
    assert code == 0 and data["name"] == "张*" and data["node"] == "tj" and data["address"] == "天津市河西区*****"
    assert ZHANG not in out

    code, _, err, _ = sbcard("person", "show", ZHANG, "--show-personal")
    assert code == 2 and "--operator" in err
    code, _, err, _ = sbcard("person", "show", ZHANG, "--show-personal", "--operator", "nobody")
    assert code == 2 and "operator.unknown" not in err and "no operator 'nobody'" in err

    code, out, _, _ = sbcard("person", "show", ZHANG, "--show-personal", "--operator", "bj-op")
    assert code == 0 and ZHANG in out and "张三" in out
    audit = [r for r in open_db(home / "tj.db")["audit_log"].rows if r["action"] == "show_personal"]
    assert [(a["operator"], a["subject"]) for a in audit] == [("bj-op", ZHANG)]


def test_person_show_of_someone_unknown(sbcard):
    code, _, err, _ = sbcard("person", "show", ZHANG)
    assert code == 2 and "is not registered" in err and ZHANG not in err
