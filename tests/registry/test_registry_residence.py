"""A person's residence status (issue 16): 户籍 or 居住证 where they live, neither, or not recorded.

Beijing's elderly free bus is for Beijing 户籍 and Beijing 居住证 holders; the registry keeps
which one a person has (``persons.residence``, region migration 13), set by ``person add
--residence``, the ``residence`` column of ``person import``, or ``person residence``.
"""

from __future__ import annotations

import pytest
from registry_helpers import citizen_id

from sbcard.store.db import open_db

LI = citizen_id("110105", "19600101", 121)
WANG = citizen_id("110108", "19620520", 232)
CLERK = ("--operator", "bj-clerk")


@pytest.fixture
def clerk(sbcard):
    code, _, err, _ = sbcard("operator", "add", "bj-clerk", "--name", "周敏", "--role", "counter", "--region", "110105")
    assert code == 0, err
    return CLERK[1]


def _add(sbcard, cid: str, *extra: str):
    return sbcard("person", "add", "--citizen-id", cid, "--name", "李明", "--region", "110105", "--insurance",
                  "employee", *extra, *CLERK, "--json")


@pytest.mark.parametrize(("given", "stored"), [
    (["--residence", "hukou"], "hukou"),
    (["--residence", "permit"], "permit"),
    (["--residence", "none"], "none"),
    ([], "unknown"),  # not recorded unless staff say so
])
def test_person_add_records_the_residence_and_show_tells_it(sbcard, home, clerk, given, stored):
    code, _, err, data = _add(sbcard, LI, *given)
    assert code == 0, err
    assert data["residence"] == stored
    assert open_db(home / "bj.db").execute("SELECT residence FROM persons").fetchone()[0] == stored
    code, out, err, _ = sbcard("person", "show", LI)
    assert code == 0, err
    assert "residence" in out


def test_an_unknown_residence_is_bad_input(sbcard, home, clerk):
    code, out, err, _ = _add(sbcard, LI, "--residence", "visa")
    assert code == 2 and "--residence" in err
    assert open_db(home / "bj.db")["persons"].count == 0


def test_person_import_takes_a_residence_column(sbcard, home, clerk, tmp_path):
    path = tmp_path / "people.csv"
    path.write_text(f"citizen_id,name,insurance,residence\n{LI},李明,employee,hukou\n{WANG},王红,employee,permit\n"
                    f"{citizen_id('110105', '19700101', 343)},赵强,employee,\n"
                    f"{citizen_id('110105', '19700101', 454)},钱多,employee,tourist\n", encoding="utf-8")
    code, _, err, report = sbcard("person", "import", str(path), "--region", "110105", *CLERK, "--json")
    assert code == 0, err
    assert (report["imported"], report["rejected"]) == (3, 1)
    stored = dict(open_db(home / "bj.db").execute("SELECT citizen_id, residence FROM persons").fetchall())
    assert sorted(stored.values()) == ["hukou", "permit", "unknown"]


def test_person_residence_changes_it_and_is_audited(sbcard, home, clerk):
    assert _add(sbcard, LI)[0] == 0
    code, _, err, data = sbcard("person", "residence", LI, "--residence", "permit", *CLERK, "--json")
    assert code == 0, err
    assert data["residence"] == "permit"
    [audit] = open_db(home / "bj.db").execute(
        "SELECT operator, details FROM audit_log WHERE action = 'person.residence'").fetchall()
    assert audit[0] == "bj-clerk" and '"after": "permit"' in audit[1]
    code, _, err, _ = sbcard("person", "residence", citizen_id("110105", "19800101", 565), "--residence", "hukou",
                             *CLERK, "--json")
    assert code == 2 and '"code": "person.unknown"' in err


@pytest.mark.parametrize(("code", "role", "region", "refusal"), [
    ("tj-clerk", "counter", "120103", "person.residence.region"),  # another region's counter staff
    ("bj-finance", "finance", "110105", "operator.role"),  # this region, but not a counter act
])
def test_only_the_persons_regions_counter_staff_record_residence(sbcard, home, clerk, code, role, region, refusal):
    assert _add(sbcard, LI)[0] == 0
    added = sbcard("operator", "add", code, "--name", "陈静", "--role", role, "--region", region)
    assert added[0] == 0, added[2]
    got, _, err, _ = sbcard("person", "residence", LI, "--residence", "hukou", "--operator", code, "--json")
    assert got == 1 and f'"code": "{refusal}"' in err
    db = open_db(home / "bj.db")
    assert db.execute("SELECT residence FROM persons").fetchone()[0] == "unknown"
    assert db.execute("SELECT count(*) FROM audit_log WHERE action = 'person.residence'").fetchone()[0] == 0
