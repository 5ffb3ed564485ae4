"""Simple oddities answered as bad input (exit 2, one line naming the field, nothing written): --km with
--sections, an unknown operator in a filter, a population the simulator cannot hold, a database that is a
directory. (The medical point of sale's blocked PIN: tests/medical/test_medical_pin_blocked.py.)"""

from __future__ import annotations

import shutil

import pytest
from world_template import home, template_home  # noqa: F401  (an initialised world per test)

from sbcard.store.db import content_digest, open_db

NODES = ("bj", "tj", "he", "hub")


def digests(home, nodes=NODES):
    return {n: content_digest(open_db(home / f"{n}.db")) for n in nodes}


def files(home):
    return sorted((str(p.relative_to(home)), p.stat().st_size) for p in home.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("args", "field", "words"),
    [
        (("transit", "fare", "--operator", "tj-metro", "--km", "5", "--sections", "3"), "--sections", "not both"),
        (("transit", "fare", "--operator", "bj-subway", "--km", "5", "--sections", "3"), "--sections", "not both"),
        (("transit", "fare", "--operator", "tj-metro", "--from", "刘园", "--to", "西北角", "--km", "5",
          "--sections", "2"), "--sections", "not both"),
        (("terminal", "list", "--operator", "no-such-operator"), "--operator", "unknown operator 'no-such-operator'"),
        (("terminal", "list", "--operator", "BJ-SUBWAY "), "--operator", "unknown operator"),
        (("terminal", "list", "--operator", "  "), "--operator", "empty value"),
        (("terminal", "list", "--operator", ""), "--operator", "empty value"),
    ],
    ids=["tj-metro-km-and-sections", "bj-subway-km-and-sections", "stations-km-and-sections", "unknown-operator",
         "operator-case", "blank-operator", "empty-operator"],
)
def test_an_oddity_is_bad_input_in_one_line_and_writes_nothing(sbcard, home, args, field, words):
    before = files(home)
    code, out, err, _ = sbcard(*args)
    assert (code, out) == (2, "")
    assert err.startswith(f"error: {field}: ") and err.count("\n") == 1 and words in err
    assert files(home) == before


@pytest.mark.parametrize("operator", ["bj-subway", "BJ-MU-001", "bj-mu-001"], ids=["transit", "venue", "venue-case"])
def test_a_known_operator_filters(sbcard, operator):
    code, _, err, listed = sbcard("terminal", "list", "--operator", operator, "--json")
    assert code == 0 and listed == [], err


@pytest.mark.parametrize("population", ["500001", "2000000000"])
def test_a_population_the_simulator_cannot_hold_is_refused_with_why(sbcard, tmp_path, population):
    where = tmp_path / "sim"
    code, out, err, _ = sbcard("--home", str(where), "simulate", "--population", population, "--days", "1")
    assert (code, out) == (2, "")
    assert err.startswith("error: --population: at most 500,000 people: ") and err.count("\n") == 1
    assert "in memory, about 15 KB each" in err
    assert not where.exists()


@pytest.mark.parametrize("node", NODES)
@pytest.mark.parametrize("command", [("init",), ("terminal", "list"), ("account", "show", "T00000018")],
                         ids=["init", "terminal-list", "account-show"])
def test_a_database_that_is_a_directory_is_reported_as_such(sbcard, home, node, command):
    path = home / f"{node}.db"
    for leftover in home.glob(f"{node}.db*"):
        leftover.unlink()
    path.mkdir()
    others = tuple(n for n in NODES if n != node)
    before = digests(home, others)
    code, out, err, _ = sbcard(*command)
    assert (code, out) == (2, "")
    assert err == f"error: --home: {path} is a directory, not a database file: move it out of the world (then " \
                  "`sbcard init` makes the database)\n"
    assert digests(home, others) == before and path.is_dir() and not any(path.iterdir())
    shutil.rmtree(path)
