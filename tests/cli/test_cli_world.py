"""`sbcard init` as a user runs it (`sbcard simulate`: tests/sim)."""

from __future__ import annotations

from sbcard.store.db import content_digest, open_db


def test_init_creates_the_four_databases(sbcard, home):
    code, out, err, data = sbcard("init", "--seed", "7", "--json")
    assert code == 0, err
    assert data["created"] is True and data["changed"] is True
    assert {n["node"] for n in data["nodes"]} == {"bj", "tj", "he", "hub"}
    for name in ("bj.db", "tj.db", "he.db", "hub.db"):
        assert (home / name).is_file()


def test_init_twice_changes_nothing_and_says_so(sbcard, home):
    sbcard("init", "--seed", "7")
    before = {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}
    code, out, err, _ = sbcard("init")
    assert code == 0
    assert "nothing changed" in out
    after = {n: content_digest(open_db(home / f"{n}.db")) for n in ("bj", "tj", "he", "hub")}
    assert before == after


def test_global_json_flag_is_accepted_before_the_command(sbcard):
    code, out, _, _ = sbcard("--json", "init")
    assert code == 0 and out.lstrip().startswith("{")


def test_home_comes_from_the_environment(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from sbcard.cli.main import cli

    monkeypatch.setenv("SBCARD_HOME", str(tmp_path / "env-world"))
    result = CliRunner().invoke(cli, ["init"])
    assert result.exit_code == 0
    assert (tmp_path / "env-world" / "hub.db").is_file()
