"""The plain-SQL row helpers, the fast SELECT path of ``query`` and nested ``UnitOfWork.step()`` steps."""

import pytest

from sbcard.domain.errors import SbcardError
from sbcard.store import rows
from sbcard.store.unit_of_work import UnitOfWork


@pytest.fixture
def things(db):
    db.executescript(
        "CREATE TABLE things (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, n INTEGER);"
        "CREATE TABLE named (code TEXT PRIMARY KEY, label TEXT, n INTEGER);"
    )
    return db


def test_insert_returns_the_rowid_and_get_reads_the_row_back(things):
    assert rows.insert(things, "things", {"name": "a", "n": 1}) == 1
    assert rows.insert(things, "things", {"name": "b", "n": None}) == 2
    assert rows.get(things, "things", "name", "b") == {"id": 2, "name": "b", "n": None}
    assert rows.get(things, "things", "name", "zzz") is None


def test_update_sets_the_columns_and_refuses_a_missing_row(things):
    rows.insert(things, "things", {"name": "a", "n": 1})
    rows.update(things, "things", "name", "a", {"n": 5})
    assert rows.get(things, "things", "id", 1)["n"] == 5
    with pytest.raises(SbcardError) as missing:
        rows.update(things, "things", "name", "nobody", {"n": 5})
    assert missing.value.code == "store.no_row"


def test_upsert_inserts_then_replaces_the_other_columns_as_sqlite_utils_does(things):
    rows.upsert(things, "named", {"code": "x", "label": "first", "n": 1}, pk="code")
    rows.upsert(things, "named", {"code": "x", "label": "second", "n": 2}, pk="code")
    things["named"].upsert({"code": "y", "label": "first", "n": 1}, pk="code")
    things["named"].upsert({"code": "y", "label": "second", "n": 2}, pk="code")
    assert list(things.query("SELECT * FROM named ORDER BY rowid")) == [
        {"code": "x", "label": "second", "n": 2}, {"code": "y", "label": "second", "n": 2}]


def test_a_select_gives_dicts_with_repeated_column_names_told_apart(things):
    rows.insert(things, "things", {"name": "a", "n": 1})
    assert list(things.query("SELECT name, n, n FROM things")) == [{"name": "a", "n": 1, "n_2": 1}]
    assert list(things.query("  select id FROM things WHERE n = ?", [1])) == [{"id": 1}]


def test_query_still_refuses_what_returns_no_rows(things):
    with pytest.raises(ValueError):
        things.query("INSERT INTO things (name) VALUES ('x')")
    assert things.execute("SELECT count(*) FROM things").fetchone()[0] == 0


def test_a_failed_inner_step_is_undone_alone_and_the_outer_ones_are_kept(things):
    with UnitOfWork(things) as uow:
        with UnitOfWork(uow.db).step():
            rows.insert(uow.db, "things", {"name": "outer"})
            with pytest.raises(RuntimeError):
                with UnitOfWork(uow.db).step():
                    rows.insert(uow.db, "things", {"name": "inner"})
                    with UnitOfWork(uow.db).step():
                        rows.insert(uow.db, "things", {"name": "innermost"})
                    raise RuntimeError("refused")
            rows.insert(uow.db, "things", {"name": "after"})
        uow.commit()
    assert [r["name"] for r in things.query("SELECT name FROM things ORDER BY id")] == ["outer", "after"]
