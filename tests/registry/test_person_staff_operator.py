"""Registering people is a staff act: ``person add`` and ``person import`` need ``--operator`` (never "system")."""

from __future__ import annotations

import pytest
from registry_helpers import citizen_id

from sbcard.store.db import content_digest, open_db

ZHANG = citizen_id("120103", "19900101", 123)
CLERK = "tj-clerk"


def digests(home):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}


@pytest.fixture
def clerk(sbcard):
    code, _, err, _ = sbcard("operator", "add", CLERK, "--name", "周敏", "--role", "counter", "--region", "120103")
    assert code == 0, err


def _person_add(_tmp_path):
    return ["person", "add", "--citizen-id", ZHANG, "--name", "张三", "--region", "120103", "--insurance", "employee"]


def _person_import(tmp_path):
    source = tmp_path / "people.csv"
    source.write_text("citizen_id,name,insurance\n" + f"{ZHANG},张三,employee\n", encoding="utf-8")
    return ["person", "import", str(source), "--region", "120103", "--errors", str(tmp_path / "errors.csv")]


@pytest.mark.parametrize("operator", [None, "", "  \t"], ids=["missing", "empty", "blank"])
@pytest.mark.parametrize("command", [_person_add, _person_import], ids=["add", "import"])
def test_registering_without_an_operator_is_a_usage_error_and_writes_nothing(
        sbcard, home, tmp_path, clerk, command, operator):
    before = digests(home)
    code, out, err, _ = sbcard(*command(tmp_path), *([] if operator is None else ["--operator", operator]))
    assert code == 2 and out == ""
    assert "--operator" in err.strip().splitlines()[-1]
    assert digests(home) == before and not (tmp_path / "errors.csv").exists()


@pytest.mark.parametrize("command", [_person_add, _person_import], ids=["add", "import"])
def test_the_operator_who_registers_is_recorded(sbcard, home, tmp_path, clerk, command):
    code, _, err, _ = sbcard(*command(tmp_path), "--operator", CLERK)
    assert code == 0, err
    recorded = {r["operator"] for r in open_db(home / "tj.db")["audit_log"].rows_where(
        "action IN ('person.add', 'person.import')")}
    assert recorded == {CLERK}
