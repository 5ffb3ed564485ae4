"""What a clerk reads: region names beside codes, Beijing time to the second, warnings in colour
on a terminal only — while ``--json`` keeps its keys and values exactly as they were."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from freezegun import freeze_time
from world_template import clock, home, template_home  # noqa: F401  (an initialised world per test)

from sbcard.services.outlets.operators import add_operator
from sbcard.store.world import open_world

ESC = "\x1b["
# 16:30:05.5 UTC is 00:30:05 of the next day in Beijing
LATE_UTC = "2025-03-01T16:30:05.500000+00:00"


def run(home: Path, *args: str, color: bool = False):
    from sbcard.cli.main import cli

    return CliRunner().invoke(cli, ["--home", str(home), *args], color=color, catch_exceptions=False)


def test_operators_show_the_region_by_name(home):
    result = run(home, "operator", "add", "tj-c1", "--name", "李娜", "--role", "counter", "--region", "120103")
    assert result.exit_code == 0, result.stderr
    assert "region  天津市河西区 (120103)" in result.stdout
    listed = run(home, "operator", "list")
    assert "天津市河西区 (120103)" in listed.stdout
    as_json = json.loads(run(home, "operator", "list", "--json").stdout)
    assert [(o["code"], o["region"]) for o in as_json] == [("tj-c1", "120103")]


def test_link_changes_are_shown_in_beijing_time_to_the_second(home):
    with freeze_time(LATE_UTC):
        assert run(home, "hub", "link", "tj", "--down", "--note", "fibre cut").exit_code == 0
    shown = run(home, "hub", "links")
    assert shown.exit_code == 0, shown.stderr
    [tj] = [line for line in shown.stdout.splitlines() if line.startswith("tj ")]
    assert "DOWN" in tj and "2025-03-02 00:30:05" in tj and "+08:00" not in tj and ".5" not in tj
    assert ESC not in shown.stdout  # piped: no colour
    data = json.loads(run(home, "hub", "links", "--json").stdout)
    assert [d["changed_at"] for d in data if d["node"] == "tj"] == ["2025-03-02T00:30:05.500000+08:00"]


def test_a_link_down_stands_out_on_a_terminal(home):
    run(home, "hub", "link", "he", "--down")
    shown = run(home, "hub", "link", "he", color=True)
    assert "\x1b[31m\x1b[1mDOWN\x1b[0m" in shown.stdout


@pytest.mark.parametrize(("color", "expected"), [
    (False, "warning: TJ-120103-01 has 3 blanks left (low at 20): order more\n"),
    (True, "\x1b[33mwarning: TJ-120103-01 has 3 blanks left (low at 20): order more\x1b[0m\n"),
])
def test_low_stock_warning_is_yellow_on_a_terminal_only(home, clock, color, expected):  # noqa: F811
    with open_world(home) as world:
        add_operator(world.region("tj"), code="TJ-C1", name="李娜", role="counter", region="120103", now=clock.now())
    result = run(home, "outlet", "stock", "receive", "TJ-120103-01", "--count", "3", "--operator", "TJ-C1",
                 color=color)
    assert result.exit_code == 0, result.stderr
    assert result.stderr == expected
    assert ESC not in result.stdout


def test_subsidy_items_show_amounts_in_the_reports_format(home):
    shown = run(home, "subsidy", "items")
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(run(home, "subsidy", "items", "--json").stdout)
    big = [i for i in data if i["cap_fen"] >= 100_000]
    assert big, "the catalogue has an item capped at ¥1,000 or more"
    cap = big[0]["cap_fen"]
    assert f"¥{cap // 100:,}.{cap % 100:02d}" in shown.stdout and "," in f"{cap // 100:,}"
    assert isinstance(cap, int)  # JSON: fen, as ever
